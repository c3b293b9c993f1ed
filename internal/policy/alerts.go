package policy

import (
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

type alertKey struct {
	typ     string
	src     netip.Addr
	account string
}

type alertSeen struct {
	last       time.Time
	suppressed int
}

type typeWindow struct {
	start time.Time
	n     int
}

// alerter deduplicates alerts: one per key and window, and at most perType
// of one type per window. Suppressed repeats are counted, and the next
// alert for the key says how many it stands for.
type alerter struct {
	window  time.Duration
	perType int

	mu    sync.Mutex
	seen  *simplelru.LRU[alertKey, *alertSeen]
	types map[string]*typeWindow

	suppressed atomic.Uint64
}

func newAlerter(window time.Duration, perType, maxKeys int) *alerter {
	seen, _ := simplelru.NewLRU[alertKey, *alertSeen](maxKeys, nil)
	return &alerter{window: window, perType: perType, seen: seen, types: make(map[string]*typeWindow)}
}

// admit decides whether the alert for k goes out at now; suppressed is
// how many were held back for k since its last one. It does not allocate
// when it says no to a known key, so a flood costs a map lookup.
func (a *alerter) admit(k alertKey, now time.Time) (ok bool, suppressed int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, found := a.seen.Get(k)
	if found && now.Sub(s.last) < a.window {
		s.suppressed++
		a.suppressed.Add(1)
		return false, 0
	}
	if !found {
		s = &alertSeen{}
		a.seen.Add(k, s)
	}
	tw := a.types[k.typ]
	if tw == nil {
		tw = &typeWindow{}
		a.types[k.typ] = tw
	}
	if now.Sub(tw.start) >= a.window {
		tw.start, tw.n = now, 0
	}
	if tw.n >= a.perType {
		s.last = now
		s.suppressed++
		a.suppressed.Add(1)
		return false, 0
	}
	tw.n++
	suppressed = s.suppressed
	s.last, s.suppressed = now, 0
	return true, suppressed
}

// alert appends the alert to acts if the deduplication admits it.
func (e *Engine) alert(acts []Action, typ string, src netip.Addr, account, msg string, now time.Time, kv ...string) []Action {
	ok, suppressed := e.alerts.admit(alertKey{typ: typ, src: src, account: account}, now)
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
