// Package lockout locks an account after consecutive failed
// authentications, but only against sources that have never authenticated
// for it: its known devices keep registering and calling, so an attacker
// who guesses wrong cannot lock agents out. Locks escalate while failures
// continue and end by themselves or by an operator (Unlock).
//
// State is in memory; the caller persists Locks and Devices and hands them
// back to Restore and RestoreDevices after a restart.
package lockout

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Lock is one account lock or, with Source set, a source lock: the
// account locked for that one source address only.
type Lock struct {
	Account string
	Source  netip.Addr // zero for the account-wide lock
	Since   time.Time
	Until   time.Time
	// Level is the step of the escalation ladder (0 first).
	Level  int
	Reason string
}

// Active reports whether the lock holds at now.
func (l Lock) Active(now time.Time) bool { return now.Before(l.Until) }

// Device is a source an account has authenticated from.
type Device struct {
	Account  string
	Source   netip.Addr
	LastSeen time.Time
}

// Outcome says what a failure changed.
type Outcome struct {
	// Consecutive is the failure count after this failure (0 when it
	// just locked the account).
	Consecutive int
	// Locked says this failure locked the account or made its lock
	// longer; Lock is the lock.
	Locked bool
	Lock   Lock
}

type counter struct {
	n     int
	level int
	last  time.Time
}

type device struct {
	src  netip.Addr
	last time.Time
}

// Table holds failure counters, locks and known devices. It is safe for
// concurrent use; the checks take only a read lock.
type Table struct {
	cfg Config

	mu       sync.RWMutex
	counters *simplelru.LRU[string, *counter]
	locks    map[string]Lock
	devices  map[string][]device
	sources  map[netip.Addr]time.Time

	// Source locks (sourcelock.go).
	srcCounters *simplelru.LRU[srcKey, *counter]
	srcLocks    map[srcKey]Lock
}

// New returns an empty Table.
func New(cfg Config) (*Table, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c, err := simplelru.NewLRU[string, *counter](cfg.MaxAccounts, nil)
	if err != nil {
		return nil, fmt.Errorf("lockout: %w", err)
	}
	sc, err := simplelru.NewLRU[srcKey, *counter](cfg.MaxAccounts, nil)
	if err != nil {
		return nil, fmt.Errorf("lockout: %w", err)
	}
	return &Table{
		cfg:         cfg,
		counters:    c,
		locks:       make(map[string]Lock),
		devices:     make(map[string][]device),
		sources:     make(map[netip.Addr]time.Time),
		srcCounters: sc,
		srcLocks:    make(map[srcKey]Lock),
	}, nil
}

// Failure counts a failed authentication for account from src and locks
// the account at Threshold consecutive failures. Failures go on counting
// while it is locked (refusals at the gate are failures too), so a
// continuing attack climbs the ladder: 15m, 1h, 24h.
func (t *Table) Failure(account string, src netip.Addr, reason string, now time.Time) Outcome {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, ok := t.counters.Get(account)
	if !ok {
		c = &counter{}
		t.counters.Add(account, c)
	}
	if !c.last.IsZero() && now.Sub(c.last) >= t.cfg.Memory {
		c.n, c.level = 0, 0
	}
	c.n++
	c.last = now
	if c.n < t.cfg.Threshold {
		return Outcome{Consecutive: c.n}
	}
	level := c.level
	cur, had := t.locks[account]
	if had && now.Before(cur.Until.Add(t.cfg.Memory)) {
		// The counter may have been evicted; the lock remembers.
		level = max(level, cur.Level+1)
	}
	l := Lock{
		Account: account,
		Since:   now,
		Until:   now.Add(t.cfg.duration(level)),
		Level:   level,
		Reason:  fmt.Sprintf("%d consecutive failed authentications, the last from %s (%s)", c.n, src, reason),
	}
	if had && cur.Active(now) {
		l.Since = cur.Since
		l.Until = later(l.Until, cur.Until)
	}
	c.n, c.level = 0, level+1
	if !had && len(t.locks) >= t.cfg.MaxAccounts {
		t.evictLock(now)
	}
	t.locks[account] = l
	return Outcome{Locked: true, Lock: l}
}

// Success records that account authenticated from src: src becomes (or
// stays) one of its known devices and the consecutive count restarts. The
// escalation level stays until Memory passes without failures, so a
// device's success does not reset an attack's ladder.
func (t *Table) Success(account string, src netip.Addr, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c, ok := t.counters.Peek(account); ok {
		c.n = 0
	}
	if c, ok := t.srcCounters.Peek(srcKey{account, src}); ok {
		c.n = 0
	}
	t.addDevice(account, src, now)
}

// Known reports whether src is a known device of account at now.
func (t *Table) Known(account string, src netip.Addr, now time.Time) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.known(account, src, now)
}

func (t *Table) known(account string, src netip.Addr, now time.Time) bool {
	for _, d := range t.devices[account] {
		if d.src == src && now.Sub(d.last) < t.cfg.DeviceTTL {
			return true
		}
	}
	return false
}

// SourceKnown reports whether any account has authenticated from src
// within DeviceTTL: such a source has earned higher rate limits.
func (t *Table) SourceKnown(src netip.Addr, now time.Time) bool {
	t.mu.RLock()
	last, ok := t.sources[src]
	t.mu.RUnlock()
	return ok && now.Sub(last) < t.cfg.DeviceTTL
}

// Refused returns the lock that refuses src for account at now: an active
// lock, and src not a known device of the account.
func (t *Table) Refused(account string, src netip.Addr, now time.Time) (Lock, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	l, ok := t.locks[account]
	if !ok || !l.Active(now) || t.known(account, src, now) {
		return Lock{}, false
	}
	return l, true
}

// Locked returns account's active lock at now, whoever asks.
func (t *Table) Locked(account string, now time.Time) (Lock, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	l, ok := t.locks[account]
	if !ok || !l.Active(now) {
		return Lock{}, false
	}
	return l, true
}

// Consecutive reports account's current failure count.
func (t *Table) Consecutive(account string) int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if c, ok := t.counters.Peek(account); ok {
		return c.n
	}
	return 0
}

// Unlock ends account's lock and its source locks and forgets its
// failures and escalation (veilig ext unlock); it reports whether a lock
// was active at now.
func (t *Table) Unlock(account string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	l, ok := t.locks[account]
	active := ok && l.Active(now)
	delete(t.locks, account)
	t.counters.Remove(account)
	for k, sl := range t.srcLocks {
		if k.account == account {
			active = active || sl.Active(now)
			delete(t.srcLocks, k)
		}
	}
	for _, k := range t.srcCounters.Keys() {
		if k.account == account {
			t.srcCounters.Remove(k)
		}
	}
	return active
}

// Locks returns the active locks at now, account-wide and source locks,
// by account (the account-wide lock first) then source.
func (t *Table) Locks(now time.Time) []Lock {
	t.mu.RLock()
	out := make([]Lock, 0, len(t.locks)+len(t.srcLocks))
	for _, l := range t.locks {
		if l.Active(now) {
			out = append(out, l)
		}
	}
	for _, l := range t.srcLocks {
		if l.Active(now) {
			out = append(out, l)
		}
	}
	t.mu.RUnlock()
	slices.SortFunc(out, func(a, b Lock) int {
		if c := strings.Compare(a.Account, b.Account); c != 0 {
			return c
		}
		return a.Source.Compare(b.Source)
	})
	return out
}

// Restore loads locks kept by the caller; a lock already held that ends
// later wins.
func (t *Table) Restore(locks []Lock) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, l := range locks {
		if l.Source.IsValid() {
			l.Source = l.Source.Unmap()
			k := srcKey{l.Account, l.Source}
			if cur, ok := t.srcLocks[k]; ok && cur.Until.After(l.Until) {
				continue
			}
			t.srcLocks[k] = l
			continue
		}
		if cur, ok := t.locks[l.Account]; ok && cur.Until.After(l.Until) {
			continue
		}
		t.locks[l.Account] = l
	}
}

// Devices returns every known device, by account then source.
func (t *Table) Devices() []Device {
	t.mu.RLock()
	var out []Device
	for a, ds := range t.devices {
		for _, d := range ds {
			out = append(out, Device{Account: a, Source: d.src, LastSeen: d.last})
		}
	}
	t.mu.RUnlock()
	slices.SortFunc(out, func(a, b Device) int {
		if c := strings.Compare(a.Account, b.Account); c != 0 {
			return c
		}
		return a.Source.Compare(b.Source)
	})
	return out
}

// RestoreDevices loads known devices kept by the caller (or taken from
// the registrar's bindings), so that a restart does not turn every agent
// into a stranger during the reconnect storm that follows it.
func (t *Table) RestoreDevices(devs []Device) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, d := range devs {
		if d.Source.IsValid() {
			t.addDevice(d.Account, d.Source.Unmap(), d.LastSeen)
		}
	}
}

func (t *Table) addDevice(account string, src netip.Addr, at time.Time) {
	ds := t.devices[account]
	oldest := -1
	for i := range ds {
		if ds[i].src == src {
			ds[i].last = later(ds[i].last, at)
			oldest = -2
			break
		}
		if oldest < 0 || ds[i].last.Before(ds[oldest].last) {
			oldest = i
		}
	}
	switch {
	case oldest == -2:
	case len(ds) < t.cfg.MaxDevices:
		t.devices[account] = append(ds, device{src: src, last: at})
	default:
		ds[oldest] = device{src: src, last: at}
	}
	if last, ok := t.sources[src]; ok {
		t.sources[src] = later(last, at)
		return
	}
	if len(t.sources) >= t.cfg.MaxSources {
		t.evictSource(at)
	}
	t.sources[src] = at
}

// evictSource makes room in the known-source set: first the expired, then
// the least recently seen.
func (t *Table) evictSource(now time.Time) {
	var victim netip.Addr
	var oldest time.Time
	for s, last := range t.sources {
		if now.Sub(last) >= t.cfg.DeviceTTL {
			delete(t.sources, s)
			continue
		}
		if !victim.IsValid() || last.Before(oldest) {
			victim, oldest = s, last
		}
	}
	if len(t.sources) >= t.cfg.MaxSources {
		delete(t.sources, victim)
	}
}

// evictLock makes room for a lock.
func (t *Table) evictLock(now time.Time) { evictSoonest(t.locks, t.cfg.MaxAccounts, now) }

// evictSoonest makes room in a full map of locks: first it drops the
// expired, then, if still at max, the one that ends soonest.
func evictSoonest[K comparable](locks map[K]Lock, max int, now time.Time) {
	var victim K
	var end time.Time
	found := false
	for k, l := range locks {
		if !l.Active(now) {
			delete(locks, k)
			continue
		}
		if !found || l.Until.Before(end) {
			victim, end, found = k, l.Until, true
		}
	}
	if len(locks) >= max {
		delete(locks, victim)
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
