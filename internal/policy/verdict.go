package policy

// Verdict is what a check decides for a message.
type Verdict int

// Verdicts, after CoreDNS acl's actions adapted to SIP. The zero Verdict
// is not a decision: an edge that meets one must treat it as Drop, so a
// forgotten field fails closed.
const (
	Allow     Verdict = iota + 1
	Reject            // answer with Code and Reason
	Challenge         // answer with a digest challenge
	Drop              // send nothing: no amplification, nothing for scanners
)

func (v Verdict) String() string {
	switch v {
	case Allow:
		return "allow"
	case Reject:
		return "reject"
	case Challenge:
		return "challenge"
	case Drop:
		return "drop"
	}
	return "invalid"
}

// Stages of the guard chain a Decision can come from.
const (
	StageSource    = "source" // address validity, trusted sources
	StageBan       = "ban"
	StageAllowlist = "allowlist"
	StageRateLimit = "ratelimit"
	StageScanner   = "scanner"
	StageLockout   = "lockout"
)

// Rules a Decision can name besides those of ipban (bruteforce, scanner,
// manual) and scanner fingerprints.
const (
	RuleInvalidSource    = "invalid_source"
	RuleTrusted          = "trusted"
	RuleAllowSources     = "allow_sources"
	RuleAccountAllowlist = "account_allowlist"
	RuleLockout          = "lockout"
	// RuleSourceLock: the account is locked for this source only (a
	// failing device behind an address that carries authenticated ones).
	RuleSourceLock = "source_lock"
	// RuleShared: the source carries authenticated registrations or
	// calls, so failures lock accounts for it instead of banning it.
	RuleShared = "shared_source"
)

// Decision is one check's answer. Every non-Allow decision is worth one
// event (stage, rule, source, account, verdict) and one counter
// increment at the edge.
type Decision struct {
	Verdict Verdict
	// Code and Reason are the SIP status for Reject; Reason is also the
	// short word for other verdicts ("banned").
	Code   int
	Reason string
	Stage  string
	Rule   string
}

var allow = Decision{Verdict: Allow}
