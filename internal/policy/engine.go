// Package policy is Veilig's edge-defence decision core. The SIP edge
// reports what it saw (Observe: a failed digest from 127.0.0.9 for 1001
// at t) and asks before it works (CheckSource, Allow*, Gate); the engine
// answers with verdicts and actions (ban 127.0.0.9 until t+1h, alert).
// Time is always passed in and nothing here does I/O, so every rule is
// deterministic and tested with scripted scenarios; the edge applies,
// persists and emits.
//
// The rule families live in subpackages: ipban (failures per source),
// lockout (failures per account, known devices), ratelimit (token buckets,
// connection caps, the global unauthenticated cap) and scanner
// (fingerprints). Engine composes them and the allowlists. All addresses
// are unmapped (::ffff:a.b.c.d becomes a.b.c.d) on the way in.
package policy

import (
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/veilig/veilig/internal/policy/ipban"
	"github.com/veilig/veilig/internal/policy/lockout"
	"github.com/veilig/veilig/internal/policy/ratelimit"
	"github.com/veilig/veilig/internal/policy/scanner"
	"github.com/veilig/veilig/internal/throttle"
)

// maxOutbox bounds the actions waiting for Drain; beyond it they are
// dropped and counted, because the hot path must never wait.
const maxOutbox = 1024

// Deps are what the engine asks of the rest of the system.
type Deps struct {
	// AccountSources returns an account's allowed networks, for Explain;
	// nil or an empty result means the account has no restriction.
	AccountSources func(account string) []netip.Prefix
	// ActiveSource reports a source that carries authenticated
	// registrations or calls right now (an office NAT with agents on
	// it). Authentication failures from such a source lock the failing
	// account for that source instead of banning the source; nil means
	// no source does.
	ActiveSource func(addr netip.Addr) bool
}

// Engine composes the rule families. It is safe for concurrent use. A zero
// or nil Engine refuses everything.
type Engine struct {
	cfg     Config
	deps    Deps
	trusted prefixes
	allowed prefixes

	bans   *ipban.Table
	locks  *lockout.Table
	limits *ratelimit.Guard
	scan   *scanner.Matcher
	alerts *throttle.Throttle[alertKey]

	mu            sync.Mutex
	connFlood     connFlood
	outbox        []Action
	outboxDropped atomic.Uint64
}

// New builds an Engine from a Config, which it validates.
func New(cfg Config, deps Deps) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e := &Engine{
		cfg:     cfg,
		deps:    deps,
		trusted: newPrefixes(cfg.TrustedSources, cfg.Carriers),
		allowed: newPrefixes(cfg.AllowSources),
		alerts:  newAlerter(cfg.AlertWindow, cfg.AlertsPerWindow, cfg.MaxAlertKeys),
	}
	var err error
	if e.bans, err = ipban.New(cfg.Ban); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	if e.locks, err = lockout.New(cfg.Lockout); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	if e.limits, err = ratelimit.New(cfg.RateLimit); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	if e.scan, err = scanner.New(cfg.Scanner); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return e, nil
}

func (e *Engine) ready() bool { return e != nil && e.limits != nil }

// Observe takes one observation and returns what to do about it, in
// order: bans and locks first, then alerts.
func (e *Engine) Observe(o Observation, now time.Time) []Action {
	if !e.ready() {
		return nil
	}
	switch o := o.(type) {
	case AuthFailure:
		return e.failure(o.Source.Unmap(), o.Account, o.Reason, true, now)
	case AuthSuccess:
		src := o.Source.Unmap()
		e.bans.Success(src, o.Account, now)
		e.locks.Success(o.Account, src, now)
	case ScannerSeen:
		_, acts := e.scanner(o.Source.Unmap(), o.Fingerprint, now)
		return acts
	}
	return nil
}

// shared reports a source that carries other devices' authenticated
// traffic: it is never banned whole for authentication failures.
func (e *Engine) shared(src netip.Addr) bool {
	return e.deps.ActiveSource != nil && e.deps.ActiveSource(src)
}

// failure counts a failed authentication against the source and, with
// countAccount, against the account. A source that carries authenticated
// registrations or calls (shared) is not banned: the failing account is
// locked for that source once it fails there as often as would ban a
// source, and the brute-force alert is raised, while the other accounts'
// devices there keep working.
func (e *Engine) failure(src netip.Addr, account, reason string, countAccount bool, now time.Time) []Action {
	if !src.IsValid() {
		return nil
	}
	trusted := e.trusted.contains(src)
	shared := !trusted && e.shared(src)
	known := account != "" && e.locks.Known(account, src, now)
	var lo, so lockout.Outcome
	if countAccount && account != "" {
		lo = e.locks.Failure(account, src, reason, now)
	}
	if shared && account != "" {
		so = e.locks.SourceFailure(account, src, reason, e.cfg.Ban.MaxFailures+1, now)
	}
	ib := e.bans.Failure(ipban.Failure{Source: src, Account: account, Reason: reason, Known: known, Trusted: trusted || shared}, now)
	var acts []Action
	if ib.Banned {
		acts = append(acts, banAction(ib.Ban))
	}
	if lo.Locked {
		acts = append(acts, LockAccount{Account: account, Until: lo.Lock.Until, Level: lo.Lock.Level, Reason: lo.Lock.Reason})
	}
	if so.Locked {
		acts = append(acts, LockAccount{Account: account, Source: src, Until: so.Lock.Until, Level: so.Lock.Level, Reason: so.Lock.Reason})
	}
	if ib.Exceeded {
		msg := fmt.Sprintf("%d failed authentications from %s within %s", ib.Counted, src, e.cfg.Ban.Window)
		kv := []string{"failures", fmt.Sprint(ib.Counted), "last_account", account, "last_reason", reason}
		switch {
		case trusted:
			msg += " (trusted source: not banned)"
			kv = append(kv, "trusted", "true")
		case shared:
			msg += " (the address carries authenticated devices: not banned; failing accounts are locked for it)"
			kv = append(kv, "shared", "true")
		}
		acts = e.alert(acts, AlertBruteforce, src, "", msg, now, kv...)
	}
	if so.Locked {
		acts = e.alert(acts, AlertBruteforce, src, account,
			fmt.Sprintf("account %s locked for %s until %s after failed authentications there; the address carries other authenticated devices and is not banned",
				account, src, so.Lock.Until.UTC().Format(time.RFC3339)),
			now, "shared", "true", "locked_for_source", "true", "level", fmt.Sprint(so.Lock.Level), "last_reason", reason)
	}
	if ib.Banned {
		acts = e.alert(acts, AlertBanAdded, src, "", banMessage(ib.Ban), now, "rule", ib.Ban.Rule, "until", ib.Ban.End.UTC().Format(time.RFC3339))
	}
	if lo.Locked {
		acts = e.alert(acts, AlertAccountLocked, netip.Addr{}, account,
			fmt.Sprintf("account %s locked against new sources until %s: %s", account, lo.Lock.Until.UTC().Format(time.RFC3339), lo.Lock.Reason),
			now, "last_source", src.String(), "level", fmt.Sprint(lo.Lock.Level))
	}
	return acts
}

// scanner bans src for a fingerprint, except trusted sources and shape
// matches (weaker evidence) from sources that have authenticated before:
// those are alerted, not banned, and the message passes.
func (e *Engine) scanner(src netip.Addr, fp string, now time.Time) (bool, []Action) {
	if !src.IsValid() {
		return true, nil
	}
	if _, banned := e.bans.Banned(src, now); banned {
		return true, nil
	}
	var acts []Action
	switch {
	case e.trusted.contains(src):
		return true, e.alert(acts, AlertScanner, src, "", fmt.Sprintf("scanner fingerprint %s from trusted source %s (not banned)", fp, src), now,
			"fingerprint", fp, "banned", "false")
	case scanner.IsShape(fp) && e.locks.SourceKnown(src, now):
		return false, e.alert(acts, AlertScanner, src, "", fmt.Sprintf("scanner-shaped request %s from %s, which has authenticated before (not banned)", fp, src), now,
			"fingerprint", fp, "banned", "false")
	}
	b := e.bans.Add(src, ipban.RuleScanner, "scanner fingerprint "+fp,
		[]string{now.UTC().Format(time.RFC3339) + " request matched " + fp}, 0, now)
	acts = append(acts, banAction(b))
	acts = e.alert(acts, AlertScanner, src, "", fmt.Sprintf("scanner %s from %s: dropped and banned", fp, src), now, "fingerprint", fp, "banned", "true")
	acts = e.alert(acts, AlertBanAdded, src, "", banMessage(b), now, "rule", b.Rule, "until", b.End.UTC().Format(time.RFC3339))
	return true, acts
}

func banAction(b ipban.Ban) BanSource {
	return BanSource{Addr: b.Addr, Until: b.End, Rule: b.Rule, Reason: b.Reason, Cause: b.Cause}
}

func banMessage(b ipban.Ban) string {
	return fmt.Sprintf("%s banned until %s (%s): %s", b.Addr, b.End.UTC().Format(time.RFC3339), b.Rule, b.Reason)
}

// Drain returns and forgets the actions raised on the hot path (flood
// alerts), which cannot return them. Call it after an Allow* method said
// no, or on a ticker.
func (e *Engine) Drain() []Action {
	if !e.ready() {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.outbox
	e.outbox = nil
	return out
}

func (e *Engine) post(acts []Action) {
	if len(acts) == 0 {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, a := range acts {
		if len(e.outbox) >= maxOutbox {
			e.outboxDropped.Add(1)
			continue
		}
		e.outbox = append(e.outbox, a)
	}
}

// IPBan returns the ban table, for listing, persistence (Bans, Restore)
// and the CLI (Add, Remove).
func (e *Engine) IPBan() *ipban.Table { return e.bans }

// Lockout returns the lockout table, for persistence (Locks, Restore,
// Devices, RestoreDevices) and the CLI (Unlock).
func (e *Engine) Lockout() *lockout.Table { return e.locks }

// Scanner returns the fingerprint matcher.
func (e *Engine) Scanner() *scanner.Matcher { return e.scan }

// Ban bans addr by hand for d (0: the escalation ladder), for
// `veilig ban add`.
func (e *Engine) Ban(addr netip.Addr, d time.Duration, reason string, now time.Time) BanSource {
	addr = addr.Unmap()
	return banAction(e.bans.Add(addr, ipban.RuleManual, reason, []string{now.UTC().Format(time.RFC3339) + " banned by an operator"}, d, now))
}

// BanNet bans every address of network p for d, for `veilig ban add CIDR`.
func (e *Engine) BanNet(p netip.Prefix, d time.Duration, reason string, now time.Time) ipban.Ban {
	return e.bans.AddNet(p, ipban.RuleManual, reason, d, now)
}

// UnbanNet lifts the ban of network p.
func (e *Engine) UnbanNet(p netip.Prefix, now time.Time) bool { return e.bans.RemoveNet(p, now) }

// Unban lifts addr's ban, for `veilig ban remove`.
func (e *Engine) Unban(addr netip.Addr, now time.Time) bool { return e.bans.Remove(addr.Unmap(), now) }

// Unlock ends account's lock, for `veilig ext unlock`.
func (e *Engine) Unlock(account string, now time.Time) bool { return e.locks.Unlock(account, now) }

// Stats are the engine's counters, for metrics.
type Stats struct {
	RateLimit        ratelimit.Stats
	AlertsSuppressed uint64
	OutboxDropped    uint64
}

// Stats returns the counters.
func (e *Engine) Stats() Stats {
	if !e.ready() {
		return Stats{}
	}
	return Stats{
		RateLimit:        e.limits.Stats(),
		AlertsSuppressed: e.alerts.Suppressed(),
		OutboxDropped:    e.outboxDropped.Load(),
	}
}
