package authn

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// LimiterConfig sets the login-attempt rules. Failures are counted two
// ways: per account, which locks the account for a while (the guesser is
// after that account), and per source address, which only slows the
// source down and never bans it. A permanent per-address ban locks out a
// whole office behind one NAT because of one auto-refreshing page; a
// growing delay costs a legitimate user seconds and a guesser most of
// their rate.
type LimiterConfig struct {
	// AccountThreshold failures within AccountWindow lock the account
	// for AccountLock.
	AccountThreshold int
	AccountWindow    time.Duration
	AccountLock      time.Duration
	// SourceFree failures a source may make before it is slowed. Each
	// failure beyond that doubles the wait before the source's next
	// attempt, from one second up to SourceMaxDelay.
	SourceFree     int
	SourceMaxDelay time.Duration
	// SourceForgive is how long it takes for one failure of a source to
	// be forgotten, so a slowed source recovers by itself.
	SourceForgive time.Duration
	// MaxTracked bounds the accounts and the sources remembered (each);
	// the least recently seen are forgotten first.
	MaxTracked int
}

// DefaultLimiterConfig: 5 failures in 15 minutes lock an account for 15
// minutes; a source gets 10 failures free, then waits 1 s, 2 s, 4 s ...
// at most 1 minute between attempts, and is forgiven one failure a
// minute.
func DefaultLimiterConfig() LimiterConfig {
	return LimiterConfig{
		AccountThreshold: 5,
		AccountWindow:    15 * time.Minute,
		AccountLock:      15 * time.Minute,
		SourceFree:       10,
		SourceMaxDelay:   time.Minute,
		SourceForgive:    time.Minute,
		MaxTracked:       100_000,
	}
}

// Validate rejects settings that would disable a rule or ban forever.
func (c LimiterConfig) Validate() error {
	var errs []error
	if c.AccountThreshold < 1 || c.AccountWindow <= 0 || c.AccountLock <= 0 {
		errs = append(errs, fmt.Errorf("account threshold %d, window %v, lock %v: all must be positive", c.AccountThreshold, c.AccountWindow, c.AccountLock))
	}
	if c.SourceFree < 0 || c.SourceMaxDelay < time.Second || c.SourceForgive <= 0 {
		errs = append(errs, fmt.Errorf("source free %d, max delay %v, forgive %v: free >= 0, max delay >= 1s, forgive > 0", c.SourceFree, c.SourceMaxDelay, c.SourceForgive))
	}
	if c.MaxTracked < 1 {
		errs = append(errs, fmt.Errorf("max tracked %d: must be positive", c.MaxTracked))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("authn: limiter: %w", err)
	}
	return nil
}

// AccountState is one account's failure record. It is plain data so a
// store can keep it in the admin's row and every node sees the same lock;
// the in-memory Limiter keeps it in a map for a single node and tests.
type AccountState struct {
	Failures    int
	LastFailure time.Time
	LockedUntil time.Time
}

// AccountAllowed reports whether st lets a login attempt go ahead at now,
// and if not how long until it may.
func (c LimiterConfig) AccountAllowed(st AccountState, now time.Time) (bool, time.Duration) {
	if now.Before(st.LockedUntil) {
		return false, st.LockedUntil.Sub(now)
	}
	return true, 0
}

// AccountFailed returns st after a failed attempt at now, and whether
// this failure is the one that locked the account (raise the event once).
func (c LimiterConfig) AccountFailed(st AccountState, now time.Time) (AccountState, bool) {
	if !st.LockedUntil.IsZero() && !now.Before(st.LockedUntil) {
		st = AccountState{} // a served lock starts a fresh count
	}
	if now.Sub(st.LastFailure) > c.AccountWindow {
		st.Failures = 0
	}
	st.Failures++
	st.LastFailure = now
	if st.Failures >= c.AccountThreshold && !now.Before(st.LockedUntil) {
		st.LockedUntil = now.Add(c.AccountLock)
		return st, true
	}
	return st, false
}

// AccountSucceeded returns the state after a successful login: clean.
func (c LimiterConfig) AccountSucceeded(AccountState) AccountState { return AccountState{} }

// SourceState is one source address's failure score.
type SourceState struct {
	Failures    float64 // decays by one per SourceForgive
	LastFailure time.Time
}

func (c LimiterConfig) decayed(st SourceState, now time.Time) float64 {
	if st.LastFailure.IsZero() {
		return 0
	}
	f := st.Failures - float64(now.Sub(st.LastFailure))/float64(c.SourceForgive)
	return max(f, 0)
}

// sourceDelay is the wait imposed after a source's failures.
func (c LimiterConfig) sourceDelay(failures float64) time.Duration {
	excess := int(math.Round(failures)) - c.SourceFree
	if excess <= 0 {
		return 0
	}
	if excess > 30 {
		return c.SourceMaxDelay
	}
	return min(time.Second<<(excess-1), c.SourceMaxDelay)
}

// SourceAllowed reports whether a source with st may try at now, and if
// not how long until it may. The wait never exceeds SourceMaxDelay.
func (c LimiterConfig) SourceAllowed(st SourceState, now time.Time) (bool, time.Duration) {
	next := st.LastFailure.Add(c.sourceDelay(c.decayed(st, st.LastFailure)))
	if now.Before(next) {
		return false, next.Sub(now)
	}
	return true, 0
}

// SourceFailed returns st after a failed attempt at now.
func (c LimiterConfig) SourceFailed(st SourceState, now time.Time) SourceState {
	return SourceState{Failures: c.decayed(st, now) + 1, LastFailure: now}
}

// Decision is the Limiter's answer to a login attempt.
type Decision struct {
	Allowed    bool
	RetryAfter time.Duration // when not allowed: for the Retry-After header
	// AccountLocked says why the attempt was refused: the account is
	// locked (true) or the source is slowed (false).
	AccountLocked bool
}

// Limiter applies a LimiterConfig in memory, for one node. It is safe for
// concurrent use; memory is bounded by MaxTracked. Time is passed in.
type Limiter struct {
	cfg      LimiterConfig
	mu       sync.Mutex
	accounts *lru.Cache[string, AccountState]
	sources  *lru.Cache[string, SourceState]
}

// NewLimiter returns a Limiter with cfg.
func NewLimiter(cfg LimiterConfig) (*Limiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a, err := lru.New[string, AccountState](cfg.MaxTracked)
	if err != nil {
		return nil, fmt.Errorf("authn: limiter: %w", err)
	}
	s, err := lru.New[string, SourceState](cfg.MaxTracked)
	if err != nil {
		return nil, fmt.Errorf("authn: limiter: %w", err)
	}
	return &Limiter{cfg: cfg, accounts: a, sources: s}, nil
}

// Check says whether a login attempt for account from source may be
// checked at all at now. Call it before looking at the password; a
// refused attempt is not a failure (do not call Failed for it).
func (l *Limiter) Check(account, source string, now time.Time) Decision {
	l.mu.Lock()
	defer l.mu.Unlock()
	a, _ := l.accounts.Peek(account)
	if ok, wait := l.cfg.AccountAllowed(a, now); !ok {
		return Decision{RetryAfter: wait, AccountLocked: true}
	}
	s, _ := l.sources.Peek(source)
	if ok, wait := l.cfg.SourceAllowed(s, now); !ok {
		return Decision{RetryAfter: wait}
	}
	return Decision{Allowed: true}
}

// Failed records a failed attempt and reports whether it locked the
// account just now, so the caller raises the lockout event once.
func (l *Limiter) Failed(account, source string, now time.Time) (lockedNow bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a, _ := l.accounts.Get(account)
	a, lockedNow = l.cfg.AccountFailed(a, now)
	l.accounts.Add(account, a)
	s, _ := l.sources.Get(source)
	l.sources.Add(source, l.cfg.SourceFailed(s, now))
	return lockedNow
}

// Succeeded clears the account's failures. The source's score stays: a
// guesser with one valid account of their own must not be able to wipe
// their record by logging in to it between guesses.
func (l *Limiter) Succeeded(account string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.accounts.Remove(account)
}

// Unlock lifts an account's lock (an owner's action).
func (l *Limiter) Unlock(account string) { l.Succeeded(account) }
