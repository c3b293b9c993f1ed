package call

import (
	"net/http"
	"time"

	"github.com/veilig/veilig/internal/events"
	"github.com/veilig/veilig/internal/sipedge"
	"github.com/veilig/veilig/internal/tollfraud"
)

// isPhoneNumber reports a dialled string that is meant for the outside
// world rather than an extension: digits, optionally with a leading +.
func isPhoneNumber(s string) bool {
	if s == "" {
		return false
	}
	for i, ch := range s {
		if ch == '+' && i == 0 {
			continue
		}
		if ch < '0' || ch > '9' {
			return false
		}
	}
	return true
}

// outbound handles a call to a number that is not an extension: every such
// call passes the toll-fraud guard first. Carrier trunks are not built yet,
// so a call the guard allows is refused as unroutable (480) after its
// decision is recorded.
func (m *Manager) outbound(r *sipedge.Request, dialled string) error {
	now := time.Now()
	class := ""
	if m.o.Class != nil {
		class = m.o.Class(r.Account)
	}
	d := m.o.Fraud.Decide(tollfraud.Request{Extension: r.Account, Class: tollfraud.Class(class), Dialled: dialled}, now)
	for _, e := range d.Events {
		m.o.Events.Emit(e)
	}
	if !d.Allow {
		code := d.Code
		if code == 0 {
			code = 403
		}
		m.o.Events.Emit(events.New(events.CallRefused, events.Warning, r.Peer(), r.Account, "call refused: "+d.Reason,
			"to", dialled, "code", cseqString(uint32(code)), "rule", string(d.Rule), "e164", d.Destination.E164,
			"country", d.Destination.Country, "class", string(d.Class)))
		return m.refuse(r, code, http.StatusText(code), d.Reason, "")
	}
	m.o.Fraud.CallEnded(d.Call, now, 0)
	return m.refuse(r, 480, "Temporarily Unavailable", "no carrier trunk is configured for "+d.Destination.E164, "no_trunk")
}
