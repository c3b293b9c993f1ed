// Package store defines what Veilig keeps on disk and the contract every
// backend (sqlite/, later postgres/) must honour. It imports no driver: the
// app wires a concrete backend in, and storetest holds the one conformance
// suite that all backends pass.
//
// Contract, for every method: safe for concurrent use; honours ctx
// cancellation; a missing row yields an error matching ErrNotFound; a
// uniqueness violation yields ErrExists. Methods that take a slice apply it
// atomically: all rows or none. Secrets never cross this interface in the
// clear: HA1 values arrive sealed by the caller's data key. Times keep at
// least microsecond precision (compare with Equal); a zero time stays zero.
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
	Addr   netip.Addr
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
	ID       int64
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
	Type    string
	Account string
	Since   time.Time
	Limit   int
}

// Store is everything Veilig persists.
type Store interface {
	// Extensions.
	CreateExtension(ctx context.Context, e Extension) error
	UpdateExtension(ctx context.Context, e Extension) error // by Number; ErrNotFound if absent
	Extension(ctx context.Context, number string) (Extension, error)
	ListExtensions(ctx context.Context) ([]Extension, error)  // ordered by Number
	DeleteExtension(ctx context.Context, number string) error // also removes its bindings

	// Bindings. SaveBindings upserts by (Number, Contact) and deletes rows
	// whose Expires is zero or in the past, all in one transaction. It skips
	// (without error) bindings whose extension no longer exists, so a
	// REGISTER racing a delete cannot fail the rest of its batch.
	SaveBindings(ctx context.Context, bs []Binding) error
	DeleteBinding(ctx context.Context, number, contact string) error
	LoadBindings(ctx context.Context, now time.Time) ([]Binding, error) // unexpired only

	// Records and events.
	// InsertCallRecords fails with ErrExists on a duplicate ID.
	InsertCallRecords(ctx context.Context, rs []CallRecord) error
	ListCallRecords(ctx context.Context, limit int) ([]CallRecord, error) // newest first; limit <= 0: all
	// ListOutboundCallRecords lists only calls to outside numbers (E164
	// set), newest first: the toll-fraud baseline needs those alone, and
	// internal calls can outnumber them by far.
	ListOutboundCallRecords(ctx context.Context, limit int) ([]CallRecord, error)
	// InsertEvents assigns IDs (Event.ID is ignored), increasing in insert order.
	InsertEvents(ctx context.Context, es []Event) error
	ListEvents(ctx context.Context, f EventFilter) ([]Event, error) // newest first; Since inclusive

	// Bans and locks. Saves upsert by address, or by account and source;
	// lists return only those still in force at now (locks ordered by
	// account, the account-wide lock before source locks). SaveGuard
	// saves several at once, in one transaction, so a burst of security
	// decisions is durable with one commit. DeleteLock removes the
	// account's lock and its source locks.
	SaveBan(ctx context.Context, b Ban) error
	DeleteBan(ctx context.Context, addr netip.Addr) error // ErrNotFound if absent
	ListBans(ctx context.Context, now time.Time) ([]Ban, error)
	SaveLock(ctx context.Context, l Lock) error
	DeleteLock(ctx context.Context, account string) error // ErrNotFound if absent
	ListLocks(ctx context.Context, now time.Time) ([]Lock, error)
	SaveGuard(ctx context.Context, bans []Ban, locks []Lock) error
	// Suspensions of outbound calling; SaveSuspension upserts.
	SaveSuspension(ctx context.Context, s Suspension) error
	DeleteSuspension(ctx context.Context, extension string) error // ErrNotFound if absent
	ListSuspensions(ctx context.Context) ([]Suspension, error)

	// Trunks, whole rows; SaveTrunk upserts by name.
	SaveTrunk(ctx context.Context, t Trunk) error
	DeleteTrunk(ctx context.Context, name string) error // ErrNotFound if absent
	ListTrunks(ctx context.Context) ([]Trunk, error)

	// GuardVersion changes whenever any process commits a change to bans
	// or locks.
	GuardVersion(ctx context.Context) (int64, error)

	// Version changes whenever any connection (another process too, such as
	// the CLI) commits a change to extensions; caches compare it cheaply.
	Version(ctx context.Context) (int64, error)

	Close() error
}
