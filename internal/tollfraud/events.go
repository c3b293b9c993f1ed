package tollfraud

import (
	"strconv"
	"time"

	"github.com/veilig/veilig/internal/events"
)

// Names of the event types this package raises (the kinds themselves are
// defined in the events catalogue). Every refusal is a Refused event whose
// "rule" field names the rule that fired.
var (
	EventRefused       = events.FraudRefused.Name
	EventEmergency     = events.FraudEmergency.Name
	EventNewCountry    = events.FraudNewCountry.Name
	EventOutOfHours    = events.FraudOutOfHours.Name // alert mode: allowed, but out of hours
	EventCallEnded     = events.FraudCallEnded.Name  // the guard asked for a running call to end
	EventVolume        = events.FraudVolume.Name
	EventTripped       = events.FraudTripped.Name
	EventSuspended     = events.FraudSuspended.Name // by an admin
	EventLifted        = events.FraudLifted.Name
	EventBudgetReached = events.FraudBudgetReached.Name
)

func event(now time.Time, k *events.Kind, ext, msg string, kv ...string) events.Event {
	e := events.New(k, zeroAddr, ext, msg, kv...)
	e.Time = now
	e.ID = events.NewID(now)
	return e
}

func destFields(d Destination, trunk string) []string {
	return []string{"number", d.E164, "country", d.Country, "type", string(d.Type), "special", string(d.Special), "trunk", trunk}
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', 2, 64) }
