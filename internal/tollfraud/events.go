package tollfraud

import (
	"strconv"
	"time"

	"github.com/veilig/veilig/internal/events"
)

// Event types this package raises. Every refusal is a Refused event whose
// "rule" field names the rule that fired.
const (
	EventRefused       = "fraud.refused"
	EventEmergency     = "fraud.emergency"
	EventNewCountry    = "fraud.new_country"
	EventOutOfHours    = "fraud.business_hours" // alert mode: allowed, but out of hours
	EventCallEnded     = "fraud.call_ended"     // the guard asked for a running call to end
	EventVolume        = "fraud.volume_anomaly"
	EventTripped       = "fraud.tripped"
	EventSuspended     = "fraud.suspended" // by an admin
	EventLifted        = "fraud.lifted"
	EventBudgetReached = "fraud.budget_reached"
)

func event(now time.Time, typ string, sev events.Severity, ext, msg string, kv ...string) events.Event {
	e := events.New(typ, sev, zeroAddr, ext, msg, kv...)
	e.Time = now
	return e
}

func destFields(d Destination, trunk string) []string {
	return []string{"number", d.E164, "country", d.Country, "type", string(d.Type), "special", string(d.Special), "trunk", trunk}
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', 2, 64) }
