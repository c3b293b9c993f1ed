// Package store defines what Veilig keeps on disk and the contract every
// backend (sqlite/, later postgres/) must honour. It imports no driver: the
// app chooses a backend in one place, and storetest holds the one
// conformance suite that every backend passes.
//
// Contract, for every method: safe for concurrent use; honours ctx
// cancellation; a missing row yields an error matching ErrNotFound; a
// uniqueness violation yields ErrExists. Methods that take a slice apply it
// atomically: all rows or none. Secrets never cross this interface in the
// clear: HA1 values and trunk secrets arrive sealed by the caller's data
// key. Times keep at least microsecond precision (compare with Equal); a
// zero time stays zero.
//
// The interface is split by role (Extensions, Bans, Audit, ...) so a
// consumer can name the part it uses; Store is their union, what a backend
// implements. Update runs several writes and an audit entry in one
// transaction: a management change and its record of who made it commit
// together or not at all. Every committed change to extensions, bans,
// locks, suspensions and trunks, whoever makes it (this process, another
// one, a hand-run SQL shell), appears in the change feed (Changes), which
// is how running subsystems and other processes hear of it.
package store

import (
	"context"
	"errors"
	"net/netip"
	"time"
)

// Sentinel errors callers match with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	// ErrConflict reports a write that lost a race (an audit entry whose
	// sequence number another writer took first).
	ErrConflict = errors.New("conflict")
)

// Extension is a SIP account. HA1 values are sealed (encrypted) by the
// caller; the store treats them as opaque bytes.
type Extension struct {
	Number    string // the SIP user part, e.g. "1001"
	Name      string // display name
	Realm     string // digest realm the HA1 values were computed for
	HA1MD5    []byte // sealed MD5(user:realm:secret) hex
	HA1SHA256 []byte // sealed SHA-256(user:realm:secret) hex
	CreatedAt time.Time
	UpdatedAt time.Time
	// AllowFrom limits where the extension may register and call from;
	// empty means anywhere the edge serves.
	AllowFrom []netip.Prefix
	// Class is the class of service for outbound calls ("" = default).
	Class string
	// CallerIDs are the numbers the extension may present on outbound
	// calls besides its own number.
	CallerIDs []string
}

// Suspension is an extension whose outbound calling the toll-fraud guard
// stopped until an admin lifts it.
type Suspension struct {
	Extension string
	Reason    string
	Since     time.Time
}

// Ban is a source address refused at the edge until End.
type Ban struct {
	Addr netip.Addr
	// Net is set, and Addr zero, for the ban of a whole network.
	Net    netip.Prefix
	Rule   string   // e.g. "bruteforce", "scanner", "manual"
	Reason string   // for a person
	Cause  []string // the events that led to it
	Start  time.Time
	End    time.Time
	Level  int // escalation step
}

// Lock is an account locked against new sources until Until or, when
// Source is set, locked for that one source address (a failing device
// behind an address whose other devices keep working).
type Lock struct {
	Account string
	Source  netip.Addr // zero: the account-wide lock
	Until   time.Time
	Level   int
	Reason  string
}

// Binding is one registered contact of an extension (location service row).
type Binding struct {
	Number    string
	Contact   string         // the Contact URI as the device sent it
	Source    netip.AddrPort // socket peer the REGISTER came from
	Transport string         // "tls", "tcp", "udp"
	ConnID    string         // transport connection identity (for reuse over NAT)
	CallID    string
	CSeq      uint32
	UserAgent string
	Expires   time.Time
	UpdatedAt time.Time
}

// CallRecord is one call's record (CDR).
type CallRecord struct {
	ID           string
	From         string // calling extension or caller-ID
	To           string // dialled number
	Source       netip.AddrPort
	StartedAt    time.Time
	AnsweredAt   time.Time // zero if never answered
	EndedAt      time.Time
	Disposition  string // "answered", "busy", "no-answer", "cancelled", "failed", "refused"
	Cause        string // SIP code or reason, human readable
	CallerMedia  string // protection on the caller leg, e.g. "SRTP AES_CM_128_HMAC_SHA1_80"
	CalleeMedia  string // protection on the callee leg
	MediaInClear bool   // any hop carried audio unencrypted

	// Outbound calls: the normalised number, its country and class, the
	// estimated cost, the trunk used and the fraud guard's decision.
	E164          string
	Country       string
	Class         string
	EstimatedCost float64
	Trunk         string
	Fraud         string
}

// RecordFilter narrows ListCallRecords. Zero values mean "any".
type RecordFilter struct {
	// Party matches the calling or the called party.
	Party       string
	Disposition string
	// Outbound keeps only calls to outside numbers (E164 set): the
	// toll-fraud baseline needs those alone, and internal calls can
	// outnumber them by far.
	Outbound bool
	Since    time.Time // StartedAt >= Since
	Until    time.Time // StartedAt < Until
	Offset   int
	Limit    int // <= 0: all
}

// Trunk is a carrier peer. Secret is sealed by the caller.
type Trunk struct {
	Name              string            `json:"name"`
	Host              string            `json:"host"`
	Port              int               `json:"port"`
	Transport         string            `json:"transport"` // tls (default), tcp, udp
	InsecureTransport bool              `json:"insecure_transport"`
	Auth              string            `json:"auth"` // "register" or "ip"
	Username          string            `json:"username,omitempty"`
	Secret            []byte            `json:"secret,omitempty"`
	Realm             string            `json:"realm,omitempty"`
	Addresses         []string          `json:"addresses,omitempty"` // CIDRs inbound is accepted from
	Media             string            `json:"media"`               // srtp (default) or rtp
	ServerName        string            `json:"server_name,omitempty"`
	Pin               string            `json:"pin,omitempty"` // SHA-256 of the carrier certificate, hex
	CAFile            string            `json:"ca_file,omitempty"`
	ClientCert        string            `json:"client_cert,omitempty"`
	ClientKey         string            `json:"client_key,omitempty"`
	DIDs              map[string]string `json:"dids,omitempty"` // number -> extension
	Outbound          bool              `json:"outbound"`
}

// Event is a stored security or operational event. Fields mirrors the JSON
// line written to the event log.
type Event struct {
	ID       int64 // assigned by the store, increasing in insert order
	UID      string
	Time     time.Time
	Type     string // e.g. "auth.failure", "register", "call.refused"
	Severity string // "info", "warning", "alert"
	Source   string // peer address (ip:port) or empty
	Account  string // extension number or empty
	Message  string
	Fields   map[string]string
}

// EventFilter narrows ListEvents. Zero values mean "any".
type EventFilter struct {
	Type     string // exact, or a prefix ending in "." ("guard.")
	Account  string
	Source   string // an address: matches "addr" and "addr:port"
	Severity string
	Since    time.Time // inclusive
	Until    time.Time // exclusive
	BeforeID int64     // ID < BeforeID: the next page after the last ID seen
	Limit    int
}

// AuditEntry is one management change: who made it, through which
// channel, and the target before and after (secrets already replaced by
// the caller). PrevHash and Hash chain the entries (see the auditlog
// package); the store keeps them as given.
type AuditEntry struct {
	Seq      int64 // 1, 2, 3, ... with no gaps
	Time     time.Time
	Actor    string
	Role     string
	Channel  string // "cli", "api", "panel", "system"
	Source   string // the actor's address, if any
	Action   string // e.g. "extension.create"
	Target   string
	Before   string // JSON, "" when the target did not exist
	After    string // JSON, "" when the target is gone
	PrevHash string // hex
	Hash     string // hex
}

// AuditFilter narrows ListAudit. Zero values mean "any".
type AuditFilter struct {
	Actor     string
	Action    string // exact, or a prefix ending in "."
	Target    string
	Since     time.Time
	BeforeSeq int64
	Limit     int
}

// Change is one committed change to a row that running subsystems mirror
// in memory. Seq increases with every change; Key names the row (an
// extension number, an address, a trunk name).
type Change struct {
	Seq   int64
	Topic string
	Key   string
	At    time.Time
}

// Change topics.
const (
	TopicExtension  = "extension"
	TopicBan        = "ban"
	TopicLock       = "lock"
	TopicSuspension = "suspension"
	TopicTrunk      = "trunk"
)

// Extensions are the SIP accounts.
type Extensions interface {
	CreateExtension(ctx context.Context, e Extension) error
	UpdateExtension(ctx context.Context, e Extension) error // by Number; ErrNotFound if absent
	Extension(ctx context.Context, number string) (Extension, error)
	ListExtensions(ctx context.Context) ([]Extension, error)  // ordered by Number
	DeleteExtension(ctx context.Context, number string) error // also removes its bindings
}

// Bindings are the registrar's location service. SaveBindings upserts by
// (Number, Contact) and deletes rows whose Expires is zero or in the past,
// all in one transaction. It skips (without error) bindings whose
// extension no longer exists, so a REGISTER racing a delete cannot fail
// the rest of its batch.
type Bindings interface {
	SaveBindings(ctx context.Context, bs []Binding) error
	DeleteBinding(ctx context.Context, number, contact string) error
	LoadBindings(ctx context.Context, now time.Time) ([]Binding, error) // unexpired only
}

// CallRecords are the CDRs. InsertCallRecords fails with ErrExists on a
// duplicate ID; ListCallRecords returns newest StartedAt first.
type CallRecords interface {
	InsertCallRecords(ctx context.Context, rs []CallRecord) error
	ListCallRecords(ctx context.Context, f RecordFilter) ([]CallRecord, error)
}

// Events are the stored security and operational events. InsertEvents
// assigns IDs (Event.ID is ignored), increasing in insert order, and skips
// an event whose non-empty UID is already stored (a retried batch);
// ListEvents returns newest first.
type Events interface {
	InsertEvents(ctx context.Context, es []Event) error
	ListEvents(ctx context.Context, f EventFilter) ([]Event, error)
}

// Bans are source bans. SaveBan upserts by address; ListBans returns only
// those in force at now, soonest to end first.
type Bans interface {
	SaveBan(ctx context.Context, b Ban) error
	DeleteBan(ctx context.Context, addr netip.Addr) error // ErrNotFound if absent
	Ban(ctx context.Context, addr netip.Addr, now time.Time) (Ban, error)
	// NetBan and DeleteNetBan are Ban and DeleteBan for network bans
	// (Ban.Net), keyed by the masked prefix.
	NetBan(ctx context.Context, p netip.Prefix, now time.Time) (Ban, error)
	DeleteNetBan(ctx context.Context, p netip.Prefix) error
	ListBans(ctx context.Context, now time.Time) ([]Ban, error)
}

// Locks are account lockouts: account-wide, or for one source address
// (Lock.Source). SaveLock upserts by account and source; DeleteLock
// removes the account's lock and its source locks; Lock returns the
// account-wide lock; ListLocks returns every lock in force at now, by
// account, the account-wide lock before source locks.
type Locks interface {
	SaveLock(ctx context.Context, l Lock) error
	DeleteLock(ctx context.Context, account string) error // ErrNotFound if absent
	Lock(ctx context.Context, account string, now time.Time) (Lock, error)
	ListLocks(ctx context.Context, now time.Time) ([]Lock, error)
}

// GuardSaver saves the bans and locks of a burst of security decisions in
// one transaction, so they are durable with one commit.
type GuardSaver interface {
	SaveGuard(ctx context.Context, bans []Ban, locks []Lock) error
}

// Suspensions of outbound calling; SaveSuspension upserts.
type Suspensions interface {
	SaveSuspension(ctx context.Context, s Suspension) error
	DeleteSuspension(ctx context.Context, extension string) error // ErrNotFound if absent
	Suspension(ctx context.Context, extension string) (Suspension, error)
	ListSuspensions(ctx context.Context) ([]Suspension, error)
}

// Trunks are carrier peers, whole rows; SaveTrunk upserts by name.
type Trunks interface {
	SaveTrunk(ctx context.Context, t Trunk) error
	DeleteTrunk(ctx context.Context, name string) error // ErrNotFound if absent
	Trunk(ctx context.Context, name string) (Trunk, error)
	ListTrunks(ctx context.Context) ([]Trunk, error)
}

// AuditReader reads the audit log. ListAudit returns newest first;
// ScanAudit returns entries with Seq > after in Seq order, for
// verification.
type AuditReader interface {
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, error)
	ScanAudit(ctx context.Context, after int64, limit int) ([]AuditEntry, error)
	AuditHead(ctx context.Context) (AuditEntry, error) // ErrNotFound when empty
}

// AuditWriter appends to the audit log; only a transaction has it, so an
// entry is always written together with the change it records. An entry
// whose Seq is not the head's plus one fails with ErrConflict.
type AuditWriter interface {
	AppendAudit(ctx context.Context, e AuditEntry) error
}

// ChangeFeed reads committed changes with Seq > after, oldest first.
type ChangeFeed interface {
	Changes(ctx context.Context, after int64, limit int) ([]Change, error)
	LastChange(ctx context.Context) (int64, error)
}

// Purger deletes old rows in bounded batches for the retention job; each
// call deletes at most limit rows and reports how many it deleted.
type Purger interface {
	PurgeEvents(ctx context.Context, before time.Time, limit int) (int, error)
	PurgeCallRecords(ctx context.Context, before time.Time, limit int) (int, error)
	// PurgeExpired deletes bans and locks that ended before now.
	PurgeExpired(ctx context.Context, now time.Time, limit int) (int, error)
	PurgeChanges(ctx context.Context, before time.Time, limit int) (int, error)
}

// Tx is what a transaction may do: every read and write of the roles that
// management changes touch, and append to the audit log.
type Tx interface {
	Extensions
	Bans
	Locks
	Suspensions
	Trunks
	AuditReader
	AuditWriter
}

// Store is everything Veilig persists.
type Store interface {
	Extensions
	Bindings
	CallRecords
	Events
	Bans
	Locks
	GuardSaver
	Suspensions
	Trunks
	AuditReader
	ChangeFeed
	Purger

	// Update runs fn in one transaction: everything fn wrote commits
	// when it returns nil and nothing does when it returns an error
	// (which Update returns).
	Update(ctx context.Context, fn func(tx Tx) error) error

	Close() error
}
