package authn

import (
	"fmt"
	"testing"
	"time"
)

var lt0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

func newLimiter(t *testing.T) *Limiter {
	t.Helper()
	l, err := NewLimiter(DefaultLimiterConfig())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLimiterLocksAccountAfterFive(t *testing.T) {
	l := newLimiter(t)
	now := lt0
	for i := 1; i <= 5; i++ {
		src := fmt.Sprintf("127.0.0.%d", 10+i) // spread over sources: the account lock is per account
		if d := l.Check("anna", src, now); !d.Allowed {
			t.Fatalf("attempt %d refused: %+v", i, d)
		}
		locked := l.Failed("anna", src, now)
		if locked != (i == 5) {
			t.Errorf("failure %d: lockedNow = %v", i, locked)
		}
		now = now.Add(10 * time.Second)
	}
	d := l.Check("anna", "127.0.0.99", now)
	if d.Allowed || !d.AccountLocked {
		t.Fatalf("after 5 failures: %+v, want account locked", d)
	}
	if want := 15*time.Minute - 10*time.Second; d.RetryAfter != want {
		t.Errorf("RetryAfter = %v, want %v", d.RetryAfter, want)
	}
	// Another admin is unaffected, from the same sources.
	if d := l.Check("bert", "127.0.0.11", now); !d.Allowed {
		t.Errorf("other account refused: %+v", d)
	}
	// The lock ends after 15 minutes, and the count starts afresh.
	now = lt0.Add(40*time.Second + 15*time.Minute)
	if d := l.Check("anna", "127.0.0.99", now); !d.Allowed {
		t.Fatalf("lock not lifted after 15 minutes: %+v", d)
	}
	if l.Failed("anna", "127.0.0.99", now) {
		t.Error("first failure after the lock locked again")
	}
	if d := l.Check("anna", "127.0.0.99", now); !d.Allowed {
		t.Errorf("one failure after the lock refused: %+v", d)
	}
}

func TestLimiterSuccessResetsAccount(t *testing.T) {
	l := newLimiter(t)
	for range 4 {
		l.Failed("anna", "127.0.0.2", lt0)
	}
	l.Succeeded("anna")
	for i := range 4 {
		if l.Failed("anna", "127.0.0.2", lt0) {
			t.Fatalf("locked after %d failures following a success", i+1)
		}
	}
}

func TestLimiterFailuresOutsideWindowForgotten(t *testing.T) {
	l := newLimiter(t)
	now := lt0
	for i := range 12 {
		if l.Failed("anna", fmt.Sprintf("127.0.1.%d", i), now) {
			t.Fatalf("locked by failures 16 minutes apart (failure %d)", i+1)
		}
		now = now.Add(16 * time.Minute)
	}
}

func TestLimiterSlowsSourceButNeverBans(t *testing.T) {
	cfg := DefaultLimiterConfig()
	l := newLimiter(t)
	src := "127.0.0.7"
	now := lt0
	// A guesser spraying many accounts (none gets 5 failures) from one source.
	attempts, refused := 0, 0
	var longest time.Duration
	for i := 0; i < 2000; i++ {
		account := fmt.Sprintf("user%d", i%500)
		d := l.Check(account, src, now)
		if !d.Allowed {
			refused++
			if d.AccountLocked {
				t.Fatalf("account lock at attempt %d: %+v", i, d)
			}
			if d.RetryAfter > cfg.SourceMaxDelay {
				t.Fatalf("source told to wait %v, over the %v cap", d.RetryAfter, cfg.SourceMaxDelay)
			}
			longest = max(longest, d.RetryAfter)
			now = now.Add(d.RetryAfter) // wait as told
			continue
		}
		attempts++
		l.Failed(account, src, now)
		now = now.Add(100 * time.Millisecond)
	}
	if refused == 0 {
		t.Fatal("a source failing 2000 times was never slowed")
	}
	if longest < cfg.SourceMaxDelay-time.Second {
		t.Errorf("longest wait %v, want it to reach the %v cap", longest, cfg.SourceMaxDelay)
	}
	// Rate once slowed: about one attempt per SourceMaxDelay.
	elapsed := now.Sub(lt0)
	if perHour := float64(attempts) / elapsed.Hours(); perHour > 120 {
		t.Errorf("%d attempts in %v (%.0f/h): not slowed", attempts, elapsed, perHour)
	}
	// A user on another address is not affected.
	if d := l.Check("anna", "127.0.0.8", now); !d.Allowed {
		t.Errorf("other source refused: %+v", d)
	}
	// After a quiet spell the source is fully forgiven.
	later := now.Add(time.Duration(cfg.SourceFree+int(cfg.SourceMaxDelay/time.Second)+5) * cfg.SourceForgive * 2)
	if d := l.Check("anna", src, later); !d.Allowed {
		t.Fatalf("source still refused after a quiet spell: %+v", d)
	}
	for i := range cfg.SourceFree {
		if d := l.Check("anna2", src, later); !d.Allowed {
			t.Fatalf("forgiven source slowed at failure %d: %+v", i+1, d)
		}
		l.Failed(fmt.Sprintf("x%d", i), src, later)
	}
}

func TestLimiterFirstFailuresAreFree(t *testing.T) {
	cfg := DefaultLimiterConfig()
	l := newLimiter(t)
	// A busy office behind one NAT: people mistype, spread over accounts.
	for i := range cfg.SourceFree + 1 {
		if d := l.Check(fmt.Sprintf("agent%d", i), "127.0.0.5", lt0); !d.Allowed {
			t.Fatalf("failure %d from a shared address slowed: %+v", i+1, d)
		}
		l.Failed(fmt.Sprintf("agent%d", i), "127.0.0.5", lt0)
	}
	d := l.Check("agent99", "127.0.0.5", lt0)
	if d.Allowed || d.RetryAfter != time.Second {
		t.Errorf("after %d failures: %+v, want a 1 s wait", cfg.SourceFree+1, d)
	}
	if d := l.Check("agent99", "127.0.0.5", lt0.Add(time.Second)); !d.Allowed {
		t.Errorf("after waiting 1 s: %+v", d)
	}
	l.Failed("agent99", "127.0.0.5", lt0.Add(time.Second))
	if d := l.Check("agent99", "127.0.0.5", lt0.Add(2*time.Second)); d.Allowed || d.RetryAfter != time.Second {
		t.Errorf("after %d failures: %+v, want 2 s from the last failure", cfg.SourceFree+2, d)
	}
}

func TestLimiterSuccessDoesNotClearSource(t *testing.T) {
	cfg := DefaultLimiterConfig()
	l := newLimiter(t)
	for i := range cfg.SourceFree + 3 {
		l.Failed(fmt.Sprintf("victim%d", i), "127.0.0.6", lt0)
	}
	l.Succeeded("mallory")
	if d := l.Check("victim99", "127.0.0.6", lt0); d.Allowed {
		t.Error("a success on the guesser's own account lifted the source's slow-down")
	}
}

func TestLimiterUnlock(t *testing.T) {
	l := newLimiter(t)
	for range 5 {
		l.Failed("anna", "127.0.0.2", lt0)
	}
	l.Unlock("anna")
	if d := l.Check("anna", "127.0.0.3", lt0); !d.Allowed {
		t.Errorf("unlocked account refused: %+v", d)
	}
}

func TestLimiterBoundedMemory(t *testing.T) {
	cfg := DefaultLimiterConfig()
	cfg.MaxTracked = 100
	l, err := NewLimiter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		l.Failed(fmt.Sprintf("a%d", i), fmt.Sprintf("s%d", i), lt0)
	}
	if l.accounts.Len() > 100 || l.sources.Len() > 100 {
		t.Errorf("tracking %d accounts, %d sources; cap 100", l.accounts.Len(), l.sources.Len())
	}
}

func TestLimiterConfigValidate(t *testing.T) {
	if err := DefaultLimiterConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*LimiterConfig){
		"no threshold": func(c *LimiterConfig) { c.AccountThreshold = 0 },
		"no lock":      func(c *LimiterConfig) { c.AccountLock = 0 },
		"no window":    func(c *LimiterConfig) { c.AccountWindow = 0 },
		"no forgive":   func(c *LimiterConfig) { c.SourceForgive = 0 },
		"tiny delay":   func(c *LimiterConfig) { c.SourceMaxDelay = time.Millisecond },
		"no memory":    func(c *LimiterConfig) { c.MaxTracked = 0 },
	} {
		c := DefaultLimiterConfig()
		mod(&c)
		if _, err := NewLimiter(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestAccountStateIsPortable(t *testing.T) {
	// What a store does: keep the state in the admin's row between
	// requests, possibly on different nodes.
	c := DefaultLimiterConfig()
	var st AccountState
	var locked bool
	for i := range 5 {
		st, locked = c.AccountFailed(st, lt0.Add(time.Duration(i)*time.Second))
	}
	if !locked || st.LockedUntil != lt0.Add(4*time.Second+15*time.Minute) {
		t.Errorf("state %+v locked %v", st, locked)
	}
	if ok, _ := c.AccountAllowed(st, lt0.Add(5*time.Minute)); ok {
		t.Error("locked state allows")
	}
	if ok, _ := c.AccountAllowed(c.AccountSucceeded(st), lt0.Add(5*time.Minute)); !ok {
		t.Error("state after success still locked")
	}
}
