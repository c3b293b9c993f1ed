package policy

import (
	"net/netip"
	"time"

	"github.com/veilig/veilig/internal/policy/ratelimit"
	"github.com/veilig/veilig/internal/policy/scanner"
)

var (
	dropInvalid    = Decision{Verdict: Drop, Reason: "invalid source", Stage: StageSource, Rule: RuleInvalidSource}
	dropNotAllowed = Decision{Verdict: Drop, Reason: "not allowed", Stage: StageAllowlist, Rule: RuleAllowSources}
	allowTrusted   = Decision{Verdict: Allow, Stage: StageSource, Rule: RuleTrusted}
	rejectLocked   = Decision{Verdict: Reject, Code: 403, Reason: "Forbidden", Stage: StageLockout, Rule: RuleLockout}
	rejectSrcLock  = Decision{Verdict: Reject, Code: 403, Reason: "Forbidden", Stage: StageLockout, Rule: RuleSourceLock}
	rejectAccount  = Decision{Verdict: Reject, Code: 403, Reason: "Forbidden", Stage: StageAllowlist, Rule: RuleAccountAllowlist}
)

// CheckSource is the first check on every message and connection: banned
// sources and sources outside guard.allow_sources are dropped. Trusted
// sources and carriers pass the allowlist (an operator's manual ban still
// holds) and are marked with Rule "trusted". It does not allocate.
func (e *Engine) CheckSource(addr netip.Addr, now time.Time) Decision {
	addr = addr.Unmap()
	if !e.ready() || !addr.IsValid() {
		return dropInvalid
	}
	if b, ok := e.bans.Banned(addr, now); ok {
		return Decision{Verdict: Drop, Reason: "banned", Stage: StageBan, Rule: b.Rule}
	}
	if e.trusted.contains(addr) {
		return allowTrusted
	}
	if len(e.allowed) > 0 && !e.allowed.contains(addr) {
		return dropNotAllowed
	}
	return allow
}

// CheckAccount is the lockout gate, with no side effects: a locked
// account refuses sources that have not authenticated for it before; its
// known devices, and trusted sources, pass. The Reject says only
// "Forbidden", like any other refusal.
func (e *Engine) CheckAccount(account string, source netip.Addr, now time.Time) Decision {
	source = source.Unmap()
	if !e.ready() || !source.IsValid() {
		return dropInvalid
	}
	if e.trusted.contains(source) {
		return allow
	}
	if _, refused := e.locks.Refused(account, source, now); refused {
		return rejectLocked
	}
	if _, locked := e.locks.SourceLocked(account, source, now); locked {
		return rejectSrcLock
	}
	return allow
}

// Gate is the account stage of the chain, before digest verification:
// the account's allowed networks (allowed, empty = any), then the lockout
// gate. A refusal counts as a failed authentication of the source (so a
// source hammering a locked account is banned like a guesser), and a
// lockout refusal also counts against the account (so the lock escalates
// while the attack goes on); the actions say what that changed.
func (e *Engine) Gate(account string, allowed []netip.Prefix, source netip.Addr, now time.Time) (Decision, []Action) {
	source = source.Unmap()
	if !e.ready() || !source.IsValid() {
		return dropInvalid, nil
	}
	if len(allowed) > 0 && !prefixes(allowed).containsUnmapped(source) {
		return rejectAccount, e.failure(source, account, "source not in the account's allowed networks", false, now)
	}
	if d := e.CheckAccount(account, source, now); d.Verdict != Allow {
		return d, e.failure(source, account, "account locked", true, now)
	}
	return allow, nil
}

// Scan matches a request against the scanner fingerprints. A match is
// dropped and its source banned (see Observe with ScannerSeen); a
// shape-only match from a source that has authenticated before is alerted
// and let through, since a false positive there would cut off real
// devices.
func (e *Engine) Scan(m scanner.Message, source netip.Addr, now time.Time) (Decision, []Action) {
	source = source.Unmap()
	if !e.ready() || !source.IsValid() {
		return dropInvalid, nil
	}
	fp, ok := e.scan.Match(m)
	if !ok {
		return allow, nil
	}
	drop, acts := e.scanner(source, fp, now)
	if !drop {
		return allow, acts
	}
	return Decision{Verdict: Drop, Reason: "scanner", Stage: StageScanner, Rule: fp}, acts
}

// AuthenticatedBefore reports whether any account has authenticated from
// source recently: such a source has earned the higher limits.
func (e *Engine) AuthenticatedBefore(source netip.Addr, now time.Time) bool {
	return e.ready() && e.locks.SourceKnown(source.Unmap(), now)
}

// AllowMessage spends one message token of source. Trusted sources are
// never limited; sources that have authenticated before get the known
// limits. A refusal is counted and raises one flood.detected per source
// and alert window (collect it with Drain). It does not allocate.
func (e *Engine) AllowMessage(source netip.Addr, now time.Time) bool {
	source = source.Unmap()
	if !e.ready() || !source.IsValid() {
		return false
	}
	if e.trusted.contains(source) {
		return true
	}
	if e.limits.AllowMessage(source, e.locks.SourceKnown(source, now), now) {
		return true
	}
	e.flood(source, ratelimit.Messages, now)
	return false
}

// AllowTransaction spends one new-transaction token of source and, for
// a source that has never authenticated, one of the global
// unauthenticated bucket: under a flood from unknown addresses, known
// sources keep being served. authenticatedBefore lets the edge vouch for
// the source (for example from its registrations); the engine's own
// memory counts too.
func (e *Engine) AllowTransaction(source netip.Addr, now time.Time, authenticatedBefore bool) bool {
	source = source.Unmap()
	if !e.ready() || !source.IsValid() {
		return false
	}
	if e.trusted.contains(source) {
		return true
	}
	known := authenticatedBefore || e.locks.SourceKnown(source, now)
	ok, refused := e.limits.AllowTransaction(source, known, now)
	if !ok {
		if refused == ratelimit.GlobalUnauthenticated {
			e.flood(netip.Addr{}, refused, now)
		} else {
			e.flood(source, refused, now)
		}
	}
	return ok
}

// AllowAccountTransaction spends one token of the account and method a
// new request from source claims, when source is known (has
// authenticated): a flood from a shared address is limited per account
// and method rather than cut off for everyone there. Unknown sources are
// held by their stricter per-source limits instead; trusted ones by
// nothing. A refusal raises one flood.detected per source, account and
// alert window (collect it with Drain).
func (e *Engine) AllowAccountTransaction(source netip.Addr, account, method string, now time.Time) bool {
	source = source.Unmap()
	if !e.ready() || !source.IsValid() {
		return false
	}
	if e.trusted.contains(source) || !e.locks.SourceKnown(source, now) {
		return true
	}
	if e.limits.AllowAccount(source, account, method, now) {
		return true
	}
	if ok, suppressed := e.alerts.Admit(AlertFlood, alertKey{typ: AlertFlood, src: source, account: account}, now); ok {
		a := Alert{
			Type: AlertFlood, Source: source.String(), Account: account,
			Message: "flood from " + source.String() + " for " + account + " " + method + ": over the per-account limit; the excess is dropped, other accounts at the address are served",
			Fields:  map[string]string{"limit": ratelimit.AccountTransactions.String(), "method": method},
		}
		if suppressed > 0 {
			a.Fields["suppressed"] = itoa(suppressed)
		}
		e.post([]Action{a})
	}
	return false
}

// AllowHandshake spends one TLS handshake token of source.
func (e *Engine) AllowHandshake(source netip.Addr, now time.Time) bool {
	source = source.Unmap()
	if !e.ready() || !source.IsValid() {
		return false
	}
	if e.trusted.contains(source) {
		return true
	}
	if e.limits.AllowHandshake(source, e.locks.SourceKnown(source, now), now) {
		return true
	}
	e.flood(source, ratelimit.Handshakes, now)
	return false
}

// ConnOpened takes a connection slot for source; false means close the
// connection. Every true must be matched by one ConnClosed.
func (e *Engine) ConnOpened(source netip.Addr, now time.Time) bool {
	source = source.Unmap()
	if !e.ready() || !source.IsValid() {
		return false
	}
	if e.trusted.contains(source) {
		return true
	}
	if e.limits.ConnOpened(source, e.locks.SourceKnown(source, now)) {
		return true
	}
	e.flood(source, ratelimit.Conns, now)
	return false
}

// ConnClosed gives back the slot of a connection ConnOpened accepted.
func (e *Engine) ConnClosed(source netip.Addr) {
	if e.ready() {
		e.limits.ConnClosed(source.Unmap())
	}
}

// flood raises flood.detected for src (the zero Addr: the global cap),
// deduplicated, into the outbox.
func (e *Engine) flood(src netip.Addr, k ratelimit.Kind, now time.Time) {
	ok, suppressed := e.alerts.Admit(AlertFlood, alertKey{typ: AlertFlood, src: src}, now)
	if !ok {
		return
	}
	who := "unauthenticated sources together"
	if src.IsValid() {
		who = src.String()
	}
	a := Alert{
		Type:    AlertFlood,
		Message: "flood from " + who + ": over the " + k.String() + " limit; the excess is dropped",
		Fields:  map[string]string{"limit": k.String()},
	}
	if src.IsValid() {
		a.Source = who
	}
	if suppressed > 0 {
		a.Fields["suppressed"] = itoa(suppressed)
	}
	e.post([]Action{a})
}
