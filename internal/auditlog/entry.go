package auditlog

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Channel says through which door a change came in.
type Channel string

// The channels an entry can name.
const (
	ChannelCLI    Channel = "cli"
	ChannelAPI    Channel = "api"
	ChannelPanel  Channel = "panel"
	ChannelSystem Channel = "system"
)

// Valid reports whether c is one of the known channels.
func (c Channel) Valid() bool {
	switch c {
	case ChannelCLI, ChannelAPI, ChannelPanel, ChannelSystem:
		return true
	}
	return false
}

// HashSize is the length of a Hash in bytes.
const HashSize = sha256.Size

// Hash is a SHA-256 digest: an entry's hash or a chain's head.
type Hash [HashSize]byte

// String is the lower-case hex form, the form stores and reports use.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// IsZero reports whether h is all zero bytes, the PrevHash of entry 1.
func (h Hash) IsZero() bool { return h == Hash{} }

// MarshalText implements encoding.TextMarshaler (hex).
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler (hex).
func (h *Hash) UnmarshalText(b []byte) error {
	p, err := ParseHash(string(b))
	if err != nil {
		return err
	}
	*h = p
	return nil
}

// ParseHash reads the hex form String writes.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 2*HashSize {
		return h, fmt.Errorf("auditlog: hash %q: want %d hex digits", s, 2*HashSize)
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fmt.Errorf("auditlog: hash %q: %w", s, err)
	}
	return h, nil
}

// Limits on what one entry may hold, so a bad caller cannot make an entry
// that some store refuses, or one that costs much to hash.
const (
	MaxFieldLen = 1024    // Actor, Role, Source, Action, Target
	MaxJSONLen  = 1 << 20 // Before and After, each
)

// Entry is one recorded change. Seq, PrevHash and Hash are filled by Next;
// the rest describes the change.
type Entry struct {
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Actor   string    `json:"actor"` // who: an admin name, "system", a token's id
	Role    string    `json:"role"`  // the actor's role when acting
	Channel Channel   `json:"channel"`
	Source  string    `json:"source"` // the peer address, empty for the CLI and the system
	Action  string    `json:"action"` // such as "extension.create"
	Target  string    `json:"target"` // what was acted on, such as "1001"
	// Before and After are the object's state around the change, with
	// secrets replaced by Redact. Either is empty when there is no such
	// state (a create has no Before, a remove no After).
	Before   json.RawMessage `json:"before,omitempty"`
	After    json.RawMessage `json:"after,omitempty"`
	PrevHash Hash            `json:"prev_hash"`
	Hash     Hash            `json:"hash"`
}

// ErrInvalidEntry is the kind of every error Next returns.
var ErrInvalidEntry = errors.New("auditlog: invalid entry")

// Next returns e made ready to append after prev (nil when e is the first
// entry): Seq and PrevHash follow prev, Time is normalised to UTC
// microseconds, Before and After are compacted, and Hash is computed. A
// store calls it inside the transaction that makes the change, with prev
// read in that same transaction, so two writers cannot fork the chain.
// Whatever Seq, PrevHash or Hash e carried is ignored.
func Next(prev *Entry, e Entry) (Entry, error) {
	if err := check(e); err != nil {
		return Entry{}, err
	}
	if prev == nil {
		e.Seq, e.PrevHash = 1, Hash{}
	} else {
		if prev.Seq == 0 {
			return Entry{}, fmt.Errorf("%w: previous entry has seq 0", ErrInvalidEntry)
		}
		e.Seq, e.PrevHash = prev.Seq+1, prev.Hash
	}
	e.Time = e.Time.UTC().Truncate(time.Microsecond)
	var err error
	if e.Before, err = compact(e.Before); err != nil {
		return Entry{}, fmt.Errorf("%w: before: %v", ErrInvalidEntry, err)
	}
	if e.After, err = compact(e.After); err != nil {
		return Entry{}, fmt.Errorf("%w: after: %v", ErrInvalidEntry, err)
	}
	e.Hash = e.ComputeHash()
	return e, nil
}

func check(e Entry) error {
	if e.Time.IsZero() {
		return fmt.Errorf("%w: time is not set", ErrInvalidEntry)
	}
	if e.Actor == "" {
		return fmt.Errorf("%w: actor is empty", ErrInvalidEntry)
	}
	if e.Action == "" {
		return fmt.Errorf("%w: action is empty", ErrInvalidEntry)
	}
	if !e.Channel.Valid() {
		return fmt.Errorf("%w: channel %q: want cli, api, panel or system", ErrInvalidEntry, e.Channel)
	}
	for _, f := range []struct{ name, v string }{
		{"actor", e.Actor}, {"role", e.Role}, {"source", e.Source}, {"action", e.Action}, {"target", e.Target},
	} {
		if len(f.v) > MaxFieldLen {
			return fmt.Errorf("%w: %s is %d bytes, at most %d", ErrInvalidEntry, f.name, len(f.v), MaxFieldLen)
		}
	}
	if len(e.Before) > MaxJSONLen || len(e.After) > MaxJSONLen {
		return fmt.Errorf("%w: before/after over %d bytes", ErrInvalidEntry, MaxJSONLen)
	}
	return nil
}

func compact(raw json.RawMessage) (json.RawMessage, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// domain opens every hashed encoding; changing the encoding means a new
// version string, so old and new entries can never be confused.
const domain = "veilig/auditlog/v1"

// ComputeHash returns the hash of e as the package doc specifies, from
// every field but Hash itself. Verify compares it with the stored Hash.
func (e *Entry) ComputeHash() Hash {
	h := sha256.New()
	var n [8]byte
	field := func(b []byte) {
		binary.BigEndian.PutUint32(n[:4], uint32(len(b)))
		h.Write(n[:4])
		h.Write(b)
	}
	field([]byte(domain))
	binary.BigEndian.PutUint64(n[:], e.Seq)
	h.Write(n[:])
	binary.BigEndian.PutUint64(n[:], uint64(e.Time.UnixMicro()))
	h.Write(n[:])
	for _, s := range []string{e.Actor, e.Role, string(e.Channel), e.Source, e.Action, e.Target} {
		field([]byte(s))
	}
	field(e.Before)
	field(e.After)
	h.Write(e.PrevHash[:])
	var out Hash
	h.Sum(out[:0])
	return out
}
