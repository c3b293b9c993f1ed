// Package ipban decides when a source address is banned: too many failed
// authentications within a sliding window, a scanner fingerprint, or an
// operator's word. Bans escalate for repeat offenders and expire by
// themselves; every ban carries its rule, a reason a person understands,
// the events that caused it, and when it starts and ends.
//
// The package keeps state in memory only. The caller persists what Bans
// returns and hands it back to Restore after a restart.
package ipban

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Rules a ban can carry.
const (
	RuleBruteforce = "bruteforce"
	RuleScanner    = "scanner"
	RuleManual     = "manual"
)

// maxHeld caps the failures held for forgiveness at one source. Only
// accounts that have authenticated from the source can be held, so real
// numbers stay far below it; it is a backstop, not a tuning knob.
const maxHeld = 4096

// Ban is one ban, active or remembered for escalation.
type Ban struct {
	Addr netip.Addr
	// Net is set, and Addr zero, for a ban of a whole network (made by an
	// admin; the engine bans single addresses only).
	Net    netip.Prefix
	Rule   string
	Reason string
	// Cause lists the events that led to the ban, one short line each.
	Cause []string
	Start time.Time
	End   time.Time
	// Level is the step of the escalation ladder this ban used (0 first).
	Level int
}

// Active reports whether the ban refuses its source at now.
func (b Ban) Active(now time.Time) bool { return now.Before(b.End) }

// Failure is one failed authentication as the edge saw it.
type Failure struct {
	Source  netip.Addr
	Account string
	Reason  string // "wrong response", "stale nonce", "unknown user", ...
	// Known says Account has authenticated from Source before; such a
	// failure may be forgiven (the reconnect-storm rule).
	Known bool
	// Trusted sources are counted and reported but never banned.
	Trusted bool
}

// Outcome says what a failure changed.
type Outcome struct {
	// Counted is how many failures the source has in the window now.
	Counted int
	// Held says the failure is waiting to be forgiven rather than counted.
	Held bool
	// Exceeded says the source has more failures in the window than
	// allowed (the auth.bruteforce alert), trusted or not.
	Exceeded bool
	// Banned says this failure banned the source; Ban is that ban.
	Banned bool
	Ban    Ban
}

type event struct {
	at      time.Time
	account string
	reason  string
}

// history is one source's failures: counted ones inside the window (oldest
// first, at most MaxFailures+1 since only those decide) and held ones.
type history struct {
	counted []event
	held    []event
}

// Table holds bans and failure histories. It is safe for concurrent use;
// Banned, the hot path, takes only a read lock.
type Table struct {
	cfg Config

	mu   sync.RWMutex
	bans map[netip.Addr]Ban
	nets map[netip.Prefix]Ban // network bans: few, made by hand

	hmu  sync.Mutex
	hist *simplelru.LRU[netip.Addr, *history]
}

// New returns an empty Table.
func New(cfg Config) (*Table, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	hist, err := simplelru.NewLRU[netip.Addr, *history](cfg.MaxSources, nil)
	if err != nil {
		return nil, fmt.Errorf("ipban: %w", err)
	}
	return &Table{cfg: cfg, bans: make(map[netip.Addr]Ban), nets: make(map[netip.Prefix]Ban), hist: hist}, nil
}

// Banned returns the ban refusing addr at now, if any.
func (t *Table) Banned(addr netip.Addr, now time.Time) (Ban, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if b, ok := t.bans[addr]; ok && b.Active(now) {
		return b, true
	}
	for p, b := range t.nets {
		if p.Contains(addr) && b.Active(now) {
			return b, true
		}
	}
	return Ban{}, false
}

// AddNet bans every address of p for d (an admin's ban of a network).
func (t *Table) AddNet(p netip.Prefix, rule, reason string, d time.Duration, now time.Time) Ban {
	p = p.Masked()
	b := Ban{Net: p, Rule: rule, Reason: reason, Start: now, End: now.Add(d)}
	t.mu.Lock()
	t.nets[p] = b
	t.mu.Unlock()
	return b
}

// RemoveNet lifts the ban of network p; it reports whether one was active.
func (t *Table) RemoveNet(p netip.Prefix, now time.Time) bool {
	p = p.Masked()
	t.mu.Lock()
	b, ok := t.nets[p]
	delete(t.nets, p)
	t.mu.Unlock()
	return ok && b.Active(now)
}

// Failure counts one failed authentication and bans its source when it
// has more than MaxFailures in the window.
//
// Reconnect-storm rule: a failure for an account that has authenticated
// from this source before (f.Known) is held, not counted, for Forgive; if
// that account succeeds from the source meanwhile (Success) it is
// forgiven, otherwise it counts with its original time. At most
// ForgiveMax failures per account are held at once. So hundreds of known
// devices behind one NAT that each fail once (stale nonce, first attempt
// after an outage) and then succeed cost nothing, while failures for
// accounts never seen there count at once and ban on the 4th.
func (t *Table) Failure(f Failure, now time.Time) Outcome {
	if _, banned := t.Banned(f.Source, now); banned {
		return Outcome{}
	}
	ev := event{at: now, account: f.Account, reason: f.Reason}
	var out Outcome
	t.hmu.Lock()
	h, ok := t.hist.Get(f.Source)
	if !ok {
		h = &history{}
		t.hist.Add(f.Source, h)
	}
	t.promote(h, now)
	if f.Known && t.cfg.Forgive > 0 && len(h.held) < maxHeld && h.heldFor(f.Account) < t.cfg.ForgiveMax {
		h.held = append(h.held, ev)
		out.Held = true
	} else {
		t.count(h, ev)
	}
	t.trim(h, now)
	out.Counted = len(h.counted)
	var evs []event
	if out.Counted > t.cfg.MaxFailures {
		out.Exceeded = true
		evs = slices.Clone(h.counted)
		if !f.Trusted {
			t.hist.Remove(f.Source)
		}
	}
	t.hmu.Unlock()
	if out.Exceeded && !f.Trusted {
		out.Ban = t.impose(f.Source, RuleBruteforce, t.reason(evs), causes(evs), 0, now)
		out.Banned = true
	}
	return out
}

// Success forgives the held failures of account at src that are still
// within the grace period.
func (t *Table) Success(src netip.Addr, account string, now time.Time) {
	t.hmu.Lock()
	defer t.hmu.Unlock()
	h, ok := t.hist.Peek(src)
	if !ok {
		return
	}
	t.promote(h, now)
	h.held = slices.DeleteFunc(h.held, func(e event) bool { return e.account == account })
}

// Counted reports src's counted failures in the window at now, for
// explanations.
func (t *Table) Counted(src netip.Addr, now time.Time) int {
	t.hmu.Lock()
	defer t.hmu.Unlock()
	h, ok := t.hist.Peek(src)
	if !ok {
		return 0
	}
	n := 0
	for _, e := range h.counted {
		if now.Sub(e.at) < t.cfg.Window {
			n++
		}
	}
	return n
}

// Add bans addr now, for d or (d == 0) the next step of its escalation
// ladder. The engine uses it for scanners, the CLI for manual bans.
func (t *Table) Add(addr netip.Addr, rule, reason string, cause []string, d time.Duration, now time.Time) Ban {
	return t.impose(addr, rule, reason, slices.Clone(cause), d, now)
}

// Remove lifts addr's ban and forgets its failures and escalation; it
// reports whether there was an active ban at now.
func (t *Table) Remove(addr netip.Addr, now time.Time) bool {
	t.mu.Lock()
	b, ok := t.bans[addr]
	delete(t.bans, addr)
	t.mu.Unlock()
	t.hmu.Lock()
	t.hist.Remove(addr)
	t.hmu.Unlock()
	return ok && b.Active(now)
}

// Bans returns the active bans at now, oldest first, for persistence and
// listing.
func (t *Table) Bans(now time.Time) []Ban {
	t.mu.RLock()
	out := make([]Ban, 0, len(t.bans)+len(t.nets))
	for _, b := range t.bans {
		if b.Active(now) {
			out = append(out, b)
		}
	}
	for _, b := range t.nets {
		if b.Active(now) {
			out = append(out, b)
		}
	}
	t.mu.RUnlock()
	slices.SortFunc(out, func(a, b Ban) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		if c := a.Addr.Compare(b.Addr); c != 0 {
			return c
		}
		return a.Net.Addr().Compare(b.Net.Addr())
	})
	return out
}

// Restore loads bans kept by the caller (after a restart, or made by
// another node). A ban already held for the same address wins if it ends
// later. Expired bans are kept for escalation.
func (t *Table) Restore(bans []Ban) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, b := range bans {
		if b.Net.IsValid() {
			b.Net = b.Net.Masked()
			if cur, ok := t.nets[b.Net]; !ok || !cur.End.After(b.End) {
				t.nets[b.Net] = b
			}
			continue
		}
		if !b.Addr.IsValid() {
			continue
		}
		b.Addr = b.Addr.Unmap()
		if cur, ok := t.bans[b.Addr]; ok && cur.End.After(b.End) {
			continue
		}
		t.bans[b.Addr] = b
	}
}

// Len reports how many bans (active or remembered) the table holds.
func (t *Table) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.bans) + len(t.nets)
}

func (t *Table) impose(addr netip.Addr, rule, reason string, cause []string, d time.Duration, now time.Time) Ban {
	t.mu.Lock()
	defer t.mu.Unlock()
	level := 0
	prev, had := t.bans[addr]
	if had && now.Before(prev.End.Add(t.cfg.Memory)) {
		level = prev.Level + 1
	}
	if d <= 0 {
		d = t.cfg.duration(level)
	}
	b := Ban{Addr: addr, Rule: rule, Reason: reason, Cause: cause, Start: now, End: now.Add(d), Level: level}
	if !had && len(t.bans) >= t.cfg.MaxBans {
		t.evict(now)
	}
	t.bans[addr] = b
	return b
}

// evict makes room for one ban: first it forgets bans past their
// escalation memory, then, if the table is still full (a flood of banned
// spoofed addresses), the ban that ends soonest.
func (t *Table) evict(now time.Time) {
	for a, b := range t.bans {
		if !now.Before(b.End.Add(t.cfg.Memory)) {
			delete(t.bans, a)
		}
	}
	if len(t.bans) < t.cfg.MaxBans {
		return
	}
	var victim netip.Addr
	var end time.Time
	for a, b := range t.bans {
		if !victim.IsValid() || b.End.Before(end) {
			victim, end = a, b.End
		}
	}
	delete(t.bans, victim)
}

// promote counts the held failures whose grace has run out.
func (t *Table) promote(h *history, now time.Time) {
	keep := h.held[:0]
	for _, e := range h.held {
		if now.Sub(e.at) >= t.cfg.Forgive {
			t.count(h, e)
		} else {
			keep = append(keep, e)
		}
	}
	clear(h.held[len(keep):])
	h.held = keep
}

// count inserts e in time order, keeping the newest MaxFailures+1.
func (t *Table) count(h *history, e event) {
	i := len(h.counted)
	for i > 0 && h.counted[i-1].at.After(e.at) {
		i--
	}
	h.counted = slices.Insert(h.counted, i, e)
	if n := len(h.counted) - (t.cfg.MaxFailures + 1); n > 0 {
		h.counted = slices.Delete(h.counted, 0, n)
	}
}

func (t *Table) trim(h *history, now time.Time) {
	i := 0
	for i < len(h.counted) && now.Sub(h.counted[i].at) >= t.cfg.Window {
		i++
	}
	h.counted = slices.Delete(h.counted, 0, i)
}

func (h *history) heldFor(account string) int {
	n := 0
	for _, e := range h.held {
		if e.account == account {
			n++
		}
	}
	return n
}

// reason words a bruteforce ban for a person: "4 failed digest
// authentications for 1001 within 10m0s".
func (t *Table) reason(evs []event) string {
	var accounts []string
	for _, e := range evs {
		if e.account != "" && !slices.Contains(accounts, e.account) {
			accounts = append(accounts, e.account)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d failed digest authentications", len(evs))
	switch {
	case len(accounts) > 3:
		fmt.Fprintf(&b, " for %s and %d other accounts", strings.Join(accounts[:3], ", "), len(accounts)-3)
	case len(accounts) > 0:
		fmt.Fprintf(&b, " for %s", strings.Join(accounts, ", "))
	}
	fmt.Fprintf(&b, " within %s", t.cfg.Window)
	return b.String()
}

func causes(evs []event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		acct := e.account
		if acct == "" {
			acct = "-"
		}
		out[i] = fmt.Sprintf("%s %s: %s", e.at.UTC().Format(time.RFC3339), acct, e.reason)
	}
	return out
}
