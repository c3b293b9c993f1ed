package policy

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/veilig/veilig/internal/policy/ratelimit"
)

// Reason is one line of `veilig why`: something that refuses the source
// or account now (Refuses), or a fact worth knowing (failures counting
// towards a ban), with what lifts it.
type Reason struct {
	Stage   string
	Rule    string
	Refuses bool
	Message string
	// Until is when it ends by itself; zero when it does not.
	Until time.Time
	// Lift is the command or configuration change that ends it.
	Lift string
}

// Explain says everything that currently refuses addr, and account when
// it is not empty, for `veilig why ADDR [--ext NUMBER]`. It changes no
// state and spends no tokens.
func (e *Engine) Explain(addr netip.Addr, account string, now time.Time) []Reason {
	addr = addr.Unmap()
	if !e.ready() {
		return []Reason{{Stage: StageSource, Rule: "engine", Refuses: true, Message: "the policy engine is not configured: everything is refused"}}
	}
	if !addr.IsValid() {
		return []Reason{{Stage: StageSource, Rule: RuleInvalidSource, Refuses: true, Message: "not a valid address"}}
	}
	var out []Reason
	trusted := e.trusted.contains(addr)
	if b, ok := e.bans.Banned(addr, now); ok {
		msg := fmt.Sprintf("banned%s (%s rule): %s", sinceText(b.Start), b.Rule, b.Reason)
		lifted := addr.String()
		if b.Net.IsValid() {
			msg = fmt.Sprintf("in the banned network %s%s (%s rule): %s", b.Net, sinceText(b.Start), b.Rule, b.Reason)
			lifted = b.Net.String()
		}
		if b.Level > 0 {
			msg += fmt.Sprintf("; repeat offence, ban step %d", b.Level+1)
		}
		for _, c := range b.Cause {
			msg += "\n  " + c
		}
		out = append(out, Reason{Stage: StageBan, Rule: b.Rule, Refuses: true, Message: msg, Until: b.End,
			Lift: "veilig ban remove " + lifted})
	} else if !trusted && e.shared(addr) {
		out = append(out, Reason{Stage: StageBan, Rule: RuleShared, Message: fmt.Sprintf(
			"carries authenticated registrations or calls, so failed authentications never ban it (%d in the last %s): an account that fails %d times in a row from it is locked for this address alone, and the other devices here keep working",
			e.bans.Counted(addr, now), e.cfg.Ban.Window, e.cfg.Ban.MaxFailures+1)})
	} else if n := e.bans.Counted(addr, now); n > 0 {
		out = append(out, Reason{Stage: StageBan, Rule: "bruteforce", Message: fmt.Sprintf(
			"%d failed authentications in the last %s; more than %d bans the source (it carries no authenticated registrations or calls, so it is banned as a whole)",
			n, e.cfg.Ban.Window, e.cfg.Ban.MaxFailures)})
	}
	switch {
	case trusted:
		out = append(out, Reason{Stage: StageSource, Rule: RuleTrusted,
			Message: "trusted source or carrier: never banned automatically, rate limited or locked out; failures still raise alerts"})
	case len(e.allowed) > 0 && !e.allowed.contains(addr):
		out = append(out, Reason{Stage: StageAllowlist, Rule: RuleAllowSources, Refuses: true,
			Message: "not in guard.allow_sources: every message is dropped",
			Lift:    "add " + addr.String() + " (or its network) to guard.allow_sources in the configuration"})
	}
	if !trusted {
		known := e.locks.SourceKnown(addr, now)
		class := "unknown"
		if known {
			class = "known"
		}
		for _, l := range e.limits.State(addr, known, now) {
			out = append(out, e.explainLimit(class, l, now))
		}
	}
	if account == "" {
		return out
	}
	if e.deps.AccountSources != nil {
		if nets := e.deps.AccountSources(account); len(nets) > 0 && !prefixes(nets).containsUnmapped(addr) {
			out = append(out, Reason{Stage: StageAllowlist, Rule: RuleAccountAllowlist, Refuses: true,
				Message: fmt.Sprintf("extension %s only accepts %v", account, nets),
				Lift:    "add " + addr.String() + " to extension " + account + "'s allowed networks"})
		}
	}
	if l, ok := e.locks.Locked(account, now); ok {
		r := Reason{Stage: StageLockout, Rule: RuleLockout, Until: l.Until, Lift: "veilig ext unlock " + account,
			Message: fmt.Sprintf("extension %s locked%s against sources that have not authenticated for it: %s",
				account, sinceText(l.Since), l.Reason)}
		if _, refused := e.locks.Refused(account, addr, now); refused && !trusted {
			r.Refuses = true
		} else {
			r.Message += "; " + addr.String() + " is a known device of it (or trusted) and is not refused"
		}
		out = append(out, r)
	} else if n := e.locks.Consecutive(account); n > 0 {
		out = append(out, Reason{Stage: StageLockout, Rule: RuleLockout, Message: fmt.Sprintf(
			"extension %s has %d consecutive failed authentications; %d lock it against new sources", account, n, e.cfg.Lockout.Threshold)})
	}
	if l, ok := e.locks.SourceLocked(account, addr, now); ok {
		out = append(out, Reason{Stage: StageLockout, Rule: RuleSourceLock, Refuses: !trusted, Until: l.Until,
			Lift:    "veilig ext unlock " + account,
			Message: fmt.Sprintf("extension %s locked for %s alone%s: %s", account, addr, sinceText(l.Since), l.Reason)})
	} else if n := e.locks.SourceConsecutive(account, addr); n > 0 {
		out = append(out, Reason{Stage: StageLockout, Rule: RuleSourceLock, Message: fmt.Sprintf(
			"extension %s has %d consecutive failed authentications from %s; %d lock it for this address", account, n, addr, e.cfg.Ban.MaxFailures+1)})
	}
	return out
}

func (e *Engine) explainLimit(class string, l ratelimit.Limited, now time.Time) Reason {
	r := Reason{Stage: StageRateLimit, Rule: l.Kind.String(), Refuses: true,
		Lift: "wait; a source earns the known-source limits by authenticating, or list it in guard.trusted_sources"}
	switch l.Kind {
	case ratelimit.Conns:
		r.Message = fmt.Sprintf("%d connections open, the cap for %s sources is %d", l.Open, class, l.Max)
		r.Lift = "close connections; " + r.Lift
	case ratelimit.GlobalUnauthenticated:
		r.Message = fmt.Sprintf("all sources that never authenticated together are over the global new-transaction limit (%v/s); refills in %s",
			e.cfg.RateLimit.GlobalUnauthenticated.Rate, l.Refill.Round(time.Millisecond))
	default:
		r.Message = fmt.Sprintf("over the %s limit for %s sources; refills in %s", l.Kind, class, l.Refill.Round(time.Millisecond))
		r.Until = now.Add(l.Refill)
	}
	return r
}

// sinceText says when a lock began, or nothing for a lock restored from
// the store, which keeps only its end.
func sinceText(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return " since " + t.UTC().Format(time.RFC3339)
}
