package lockout

import (
	"fmt"
	"net/netip"
	"time"
)

// srcKey names one account at one source.
type srcKey struct {
	account string
	src     netip.Addr
}

// SourceFailure counts a failed authentication for account from src,
// where src is an address that must not be banned whole (it carries other
// accounts' authenticated devices: an office behind one NAT). At
// threshold consecutive failures of the account there, the account is
// locked for src alone; failures go on counting while it is locked (the
// gate's refusals are failures too), climbing the same ladder as account
// locks. A success of the account from src restarts the count.
func (t *Table) SourceFailure(account string, src netip.Addr, reason string, threshold int, now time.Time) Outcome {
	k := srcKey{account, src}
	t.mu.Lock()
	defer t.mu.Unlock()
	c, ok := t.srcCounters.Get(k)
	if !ok {
		c = &counter{}
		t.srcCounters.Add(k, c)
	}
	if !c.last.IsZero() && now.Sub(c.last) >= t.cfg.Memory {
		c.n, c.level = 0, 0
	}
	c.n++
	c.last = now
	if c.n < threshold {
		return Outcome{Consecutive: c.n}
	}
	level := c.level
	cur, had := t.srcLocks[k]
	if had && now.Before(cur.Until.Add(t.cfg.Memory)) {
		level = max(level, cur.Level+1)
	}
	l := Lock{
		Account: account,
		Source:  src,
		Since:   now,
		Until:   now.Add(t.cfg.duration(level)),
		Level:   level,
		Reason: fmt.Sprintf("%d consecutive failed authentications from %s (%s); other devices at that address keep working",
			c.n, src, reason),
	}
	if had && cur.Active(now) {
		l.Since = cur.Since
		l.Until = later(l.Until, cur.Until)
	}
	c.n, c.level = 0, level+1
	if !had && len(t.srcLocks) >= t.cfg.MaxAccounts {
		t.evictSourceLock(now)
	}
	t.srcLocks[k] = l
	return Outcome{Locked: true, Lock: l}
}

// SourceLocked returns the lock of account for src at now, if any.
func (t *Table) SourceLocked(account string, src netip.Addr, now time.Time) (Lock, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	l, ok := t.srcLocks[srcKey{account, src}]
	if !ok || !l.Active(now) {
		return Lock{}, false
	}
	return l, true
}

// SourceConsecutive reports the failures of account from src counted
// towards its source lock.
func (t *Table) SourceConsecutive(account string, src netip.Addr) int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if c, ok := t.srcCounters.Peek(srcKey{account, src}); ok {
		return c.n
	}
	return 0
}

// evictSourceLock makes room for a source lock.
func (t *Table) evictSourceLock(now time.Time) { evictSoonest(t.srcLocks, t.cfg.MaxAccounts, now) }
