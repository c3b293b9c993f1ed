package policy

import (
	"net/netip"
	"strconv"
	"time"

	"github.com/veilig/veilig/internal/throttle"
)

type alertKey struct {
	typ     string
	src     netip.Addr
	account string
}

// newAlerter deduplicates alerts: one per key and window, and at most
// perType of one type per window. Suppressed repeats are counted, and the
// next alert for the key says how many it stands for.
func newAlerter(window time.Duration, perType, maxKeys int) *throttle.Throttle[alertKey] {
	return throttle.New[alertKey](window, perType, maxKeys)
}

// alert appends the alert to acts if the deduplication admits it.
func (e *Engine) alert(acts []Action, typ string, src netip.Addr, account, msg string, now time.Time, kv ...string) []Action {
	ok, suppressed := e.alerts.Admit(typ, alertKey{typ: typ, src: src, account: account}, now)
	if !ok {
		return acts
	}
	a := Alert{Type: typ, Account: account, Message: msg, Fields: make(map[string]string, len(kv)/2+1)}
	if src.IsValid() {
		a.Source = src.String()
	}
	for i := 0; i+1 < len(kv); i += 2 {
		a.Fields[kv[i]] = kv[i+1]
	}
	if suppressed > 0 {
		a.Fields["suppressed"] = strconv.Itoa(suppressed)
	}
	return append(acts, a)
}

func itoa(n int) string { return strconv.Itoa(n) }
