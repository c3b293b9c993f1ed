package policy

import (
	"fmt"
	"net/netip"
	"time"
)

// connFlood follows the SIP edge's connection limit: each eviction or
// refusal at the limit is one report, and reports that keep coming (no
// gap longer than connFloodGap) for ConnFloodAfter are a sustained
// condition.
type connFlood struct {
	start, last      time.Time
	evicted, refused int
	alerted          bool
}

// connFloodGap ends a streak of reports.
const connFloodGap = 5 * time.Second

// ConnectionLimit takes one eviction (evicted) or refusal of a connection
// at the edge's connection limit. When the limit has been under pressure
// without a pause for Config.ConnFloodAfter, it raises flood.connections
// (once per alert window while it lasts).
func (e *Engine) ConnectionLimit(evicted bool, open, limit int, now time.Time) []Action {
	if !e.ready() {
		return nil
	}
	e.mu.Lock()
	cf := &e.connFlood
	if cf.last.IsZero() || now.Sub(cf.last) > connFloodGap {
		*cf = connFlood{start: now}
	}
	cf.last = now
	if evicted {
		cf.evicted++
	} else {
		cf.refused++
	}
	sustained := now.Sub(cf.start) >= e.cfg.ConnFloodAfter
	ev, rf, since := cf.evicted, cf.refused, cf.start
	e.mu.Unlock()
	if !sustained {
		return nil
	}
	msg := fmt.Sprintf("connection limit reached (%d of %d open) for %s: %d connections that never authenticated evicted, %d refused; authenticated devices keep theirs",
		open, limit, now.Sub(since).Round(time.Second), ev, rf)
	return e.alert(nil, AlertFloodConnections, netip.Addr{}, "", msg, now,
		"open", itoa(open), "limit", itoa(limit), "evicted", itoa(ev), "refused", itoa(rf),
		"since", since.UTC().Format(time.RFC3339))
}
