package events

import (
	"slices"
	"strings"
)

// Kind is one event type: its name (the "type" field), its severity, what
// it means for a person reading it, and the fields it carries. The
// catalogue below is the only place a kind is defined.
type Kind struct {
	Name     string
	Severity Severity
	Doc      string
	Fields   []Field
}

// Field documents one entry of an event's "fields" object.
type Field struct {
	Name string
	Doc  string
}

// catalogue is filled by the package's variable initialisers and only read
// afterwards, so lookups need no lock.
var catalogue = map[string]*Kind{}

func define(name string, sev Severity, doc string, fields ...Field) *Kind {
	k := &Kind{Name: name, Severity: sev, Doc: doc, Fields: fields}
	if _, dup := catalogue[name]; dup {
		panic("events: kind " + name + " defined twice")
	}
	catalogue[name] = k
	return k
}

func f(name, doc string) Field { return Field{name, doc} }

// ByName finds a kind by its name, for sources that decide types as data
// (the policy core's alert types).
func ByName(name string) (*Kind, bool) {
	k, ok := catalogue[name]
	return k, ok
}

// Catalogue lists every kind, by name.
func Catalogue() []*Kind {
	out := make([]*Kind, 0, len(catalogue))
	for _, k := range catalogue {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b *Kind) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Server life.
var (
	ServerStarted = define("server.started", Info, "The server started and its listeners are up.",
		f("version", "the build's version"))
	ServerStopped = define("server.stopped", Info, "The server stopped; nothing was accepted after this event.",
		f("version", "the build's version"), f("reason", "why it stopped (signal, error)"))
	TLSReloaded = define("tls.reloaded", Info, "The server certificate was re-read from its files.",
		f("fingerprint", "SHA-256 of the new certificate"))
	RetentionPurged = define("retention.purged", Info, "The retention job deleted rows older than their retention.",
		f("kind", "events, call_records, bans_locks or changes"), f("count", "rows deleted"), f("before", "the cut-off time"))
)

// Authentication and registration.
var (
	AuthSuccess = define("auth.success", Info, "A device authenticated; at most one event per account and source an hour.")
	AuthFailure = define("auth.failure", Warning, "A request failed digest authentication (wrong or unknown credentials, replay, locked account).",
		f("reason", "what was wrong"))
	Register = define("register", Info, "A device registered a new contact, or the same contact from a new connection.",
		f("contact", "the Contact URI"), f("transport", "udp, tcp or tls"), f("user_agent", "the device's User-Agent"))
	Unregister = define("unregister", Info, "A contact was removed (Expires 0 or a wildcard).",
		f("contact", "the Contact URI"))
)

// The edge defences: one event per stage, rule and source a minute, however
// many requests the decision refused.
var (
	GuardSource    = guard("source", "The source address is unusable or not allowed.")
	GuardBan       = guard("ban", "A banned source was refused.")
	GuardAllowlist = guard("allowlist", "A source outside guard.allow_sources or the extension's allowlist was refused.")
	GuardRateLimit = guard("ratelimit", "A source exceeded a rate limit or connection cap.")
	GuardScanner   = guard("scanner", "A request matched a scanner fingerprint.")
	GuardLockout   = guard("lockout", "A request for a locked account came from a source it does not know.")
)

// The SIP edge's connection admission and deadlines; each is deduplicated
// per source and minute, and flood.connections says the limit stays under
// pressure.
var (
	connFields        = []Field{f("open", "connections open"), f("limit", "sip.max_connections"), f("age", "how long the closed connection had been open")}
	ConnectionEvicted = define("connection.evicted", Warning, "A connection that never authenticated was closed to admit a newcomer at the connection limit.",
		append(connFields, f("newcomer", "the address admitted in its place"))...)
	ConnectionRefused = define("connection.refused", Warning, "A new connection was refused at the connection limit: every connection held has authenticated.", connFields...)
	ConnectionTimeout = define("connection.timeout", Warning, "A connection was closed for not finishing a message (sip.message_timeout) or not authenticating (sip.auth_timeout) in time.",
		append(connFields, f("reason", "message_timeout or auth_timeout"))...)
)

func guard(stage, doc string) *Kind {
	return define("guard."+stage, Warning, doc,
		f("stage", "the guard stage"), f("rule", "the rule that refused"), f("verdict", "drop, reject or challenge"))
}

// GuardKind returns the kind for a guard stage's refusals.
func GuardKind(stage string) (*Kind, bool) { return ByName("guard." + stage) }

// Alerts the defences raise (the policy core names them).
var (
	AlertBruteforce = define("auth.bruteforce", Alert, "More failed authentications from one source than the ban threshold allows within its window.",
		f("failures", "failures counted"), f("last_account", "the account last tried"), f("last_reason", "why the last one failed"),
		f("trusted", "true when the source is trusted and so not banned"), f("suppressed", "repeats this alert stands for"))
	AlertBanAdded = define("ban.added", Alert, "A source was banned.",
		f("rule", "bruteforce, scanner or manual"), f("until", "when the ban ends (RFC 3339)"), f("suppressed", "repeats this alert stands for"))
	AlertAccountLocked = define("account.locked", Alert, "An account was locked against new sources after repeated failures.",
		f("last_source", "the source of the last failure"), f("level", "escalation step"), f("suppressed", "repeats this alert stands for"))
	AlertScanner = define("scanner.detected", Alert, "A SIP scanner was recognised.",
		f("fingerprint", "what matched"), f("banned", "whether the source was banned"), f("suppressed", "repeats this alert stands for"))
	AlertFlood = define("flood.detected", Alert, "A source or the edge as a whole is over its rate limits.",
		f("limit", "the limit exceeded"), f("suppressed", "repeats this alert stands for"))
	AlertFloodConnections = define("flood.connections", Alert, "The edge's connection limit stayed under pressure (connections evicted or refused without a pause).",
		f("open", "connections open"), f("limit", "sip.max_connections"), f("evicted", "connections evicted"), f("refused", "connections refused"),
		f("since", "when the pressure began (RFC 3339)"), f("suppressed", "repeats this alert stands for"))
)

// Calls and media.
var (
	CallRefused = define("call.refused", Warning, "A call was refused (no such extension, SRTP required, fraud guard, no route).",
		f("rule", "the rule that refused"), f("code", "the SIP status sent"), f("to", "the dialled number"),
		f("call_id", "the caller's Call-ID"), f("class", "class of service"), f("country", "destination country"), f("from", "calling party"))
	MediaTimeout = define("media.timeout", Warning, "No media arrived for media.timeout; the call was ended.",
		f("call_id", "the caller's Call-ID"))
	MediaInjection = define("media.injection", Alert, "Packets that did not authenticate under a leg's key arrived at its port (injection or RTP bleed attempt).",
		f("call_id", "the caller's Call-ID"), f("leg", "which leg"), f("count", "packets refused"))
)

// Carrier trunks.
var (
	TrunkConnectFailed      = define("trunk.connect_failed", Alert, "Veilig could not connect to a carrier.", f("trunk", "the trunk"))
	TrunkRegistrationFailed = define("trunk.registration_failed", Alert, "Registration with a carrier failed.", f("trunk", "the trunk"), f("reason", "the carrier's answer"))
	TrunkRegistered         = define("trunk.registered", Info, "Registration with a carrier succeeded again after a failure.", f("trunk", "the trunk"))
)

// The toll-fraud guard.
var (
	fraudDest       = []Field{f("number", "E.164 number"), f("country", "destination country"), f("type", "number type"), f("special", "premium, satellite, ..."), f("trunk", "the trunk")}
	FraudRefused    = define("fraud.refused", Warning, "An outbound call was refused by the toll-fraud guard.", append([]Field{f("rule", "the rule that refused")}, fraudDest...)...)
	FraudEmergency  = define("fraud.emergency", Alert, "An emergency number was dialled.", fraudDest...)
	FraudNewCountry = define("fraud.new_country", Warning, "The first call to a country this tenant has not called before.", fraudDest...)
	FraudOutOfHours = define("fraud.business_hours", Warning, "An international call outside business hours (alert mode: allowed).", fraudDest...)
	FraudCallEnded  = define("fraud.call_ended", Warning, "The guard ended a running call (duration or budget).", f("rule", "the limit reached"))
	FraudVolume     = define("fraud.volume_anomaly", Alert, "Outbound volume well above the learnt baseline.",
		f("metric", "calls or minutes"), f("value", "observed"), f("baseline", "expected"))
	FraudTripped       = define("fraud.tripped", Alert, "A volume or spend trip; the extension's outbound calling is suspended (or only alerted).", f("action", "suspend or alert"), f("reason", "what tripped"))
	FraudSuspended     = define("fraud.suspended", Alert, "An extension's outbound calling was suspended.", f("reason", "why"))
	FraudLifted        = define("fraud.lifted", Warning, "An extension's outbound-calling suspension was lifted.")
	FraudBudgetReached = define("fraud.budget_reached", Alert, "A daily spend budget was reached.", f("scope", "extension or trunk"), f("spent", "estimated spend"), f("budget", "the budget"))
)

// Management.
var (
	AdminChange = define("admin.change", Info, "A management change (CLI, API, panel or system), also kept in the audit log.",
		f("action", "e.g. extension.create"), f("target", "what changed"), f("actor", "who"), f("channel", "cli, api, panel or system"),
		f("audit_seq", "the audit log entry"))
	AuditCheckpoint = define("audit.checkpoint", Info, "A signed checkpoint of the audit log (count and head hash); keep it elsewhere to detect a deleted tail.",
		f("entries", "entries in the log"), f("note", "the signed note (veilig auditlog verify --checkpoint)"), f("verifier_key", "the public key that checks it"))
)
