// Package events carries Veilig's security and operational events and its
// call records from where they happen (the SIP edge, the B2BUA, the
// defences, the management layer) to every place that keeps or acts on
// them: the store, the JSON-lines log and, plugged in the same way, alert
// rules and SIEM sinks.
//
// Every event type is defined once, in the catalogue (catalogue.go), with
// its severity, a description and the fields it carries; New takes a
// catalogued *Kind, so an event of an undocumented type does not compile.
// Events are encoded with a versioned schema (SchemaVersion): a SIEM
// filters on fields, never on message text.
//
// Ordering and backpressure: Emit never blocks the caller. The bus hands
// each event to every sink's own bounded queue; a sink that falls behind
// loses events from its queue (counted, per sink), never delays the SIP
// path or another sink. Each sink writes in group commits: whatever
// queued while its last write ran goes out in the next one, so latency is
// one write when idle and throughput is a batch under load.
package events

import (
	"encoding/hex"
	"math/rand/v2"
	"net/netip"
	"time"
)

// SchemaVersion is the version of the event and call-record encoding
// (the "v" field of every JSON line). It changes only when a field changes
// meaning or goes away; new fields and new types keep it.
const SchemaVersion = 1

// Severity ranks events for alerting.
type Severity string

// Severities.
const (
	Info    Severity = "info"
	Warning Severity = "warning"
	Alert   Severity = "alert"
)

// Event is one security or operational event.
type Event struct {
	// ID is unique per event (time-ordered hex), for deduplication
	// downstream: a SIEM that receives an event twice keeps one.
	ID       string            `json:"id"`
	Time     time.Time         `json:"time"`
	Type     string            `json:"type"`
	Severity Severity          `json:"severity"`
	Source   string            `json:"source,omitempty"`
	Account  string            `json:"account,omitempty"`
	Message  string            `json:"message"`
	Fields   map[string]string `json:"fields,omitempty"`
}

// New makes an event of a catalogued kind; source may be the zero
// AddrPort, kv are field name and value pairs.
func New(k *Kind, source netip.AddrPort, account, msg string, kv ...string) Event {
	e := Event{ID: NewID(time.Now()), Type: k.Name, Severity: k.Severity, Account: account, Message: msg}
	if source.IsValid() {
		e.Source = source.String()
	}
	if len(kv) > 1 {
		e.Fields = make(map[string]string, len(kv)/2)
		for i := 0; i+1 < len(kv); i += 2 {
			e.Fields[kv[i]] = kv[i+1]
		}
	}
	return e
}

// NewID makes a 128-bit identifier whose first 48 bits are the time in
// milliseconds, so IDs sort roughly by time; the rest is random.
func NewID(t time.Time) string {
	var b [16]byte
	ms := uint64(t.UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	r1, r2 := rand.Uint64(), rand.Uint32()
	for i := 6; i < 14; i++ {
		b[i] = byte(r1)
		r1 >>= 8
	}
	b[14], b[15] = byte(r2), byte(r2>>8)
	return hex.EncodeToString(b[:])
}

// CallRecord is the record of one call, as written to the store and log.
type CallRecord struct {
	ID           string    `json:"id"`
	From         string    `json:"from"`
	To           string    `json:"to"`
	Source       string    `json:"source,omitempty"`
	StartedAt    time.Time `json:"started_at"`
	AnsweredAt   time.Time `json:"answered_at,omitzero"`
	EndedAt      time.Time `json:"ended_at"`
	Disposition  string    `json:"disposition"`
	Cause        string    `json:"cause,omitempty"`
	CallerMedia  string    `json:"caller_media,omitempty"`
	CalleeMedia  string    `json:"callee_media,omitempty"`
	MediaInClear bool      `json:"media_in_clear"`

	E164          string  `json:"e164,omitempty"`
	Country       string  `json:"country,omitempty"`
	Class         string  `json:"class,omitempty"`
	EstimatedCost float64 `json:"estimated_cost,omitempty"`
	Trunk         string  `json:"trunk,omitempty"`
	Fraud         string  `json:"fraud,omitempty"`
}

// Emitter is what the SIP path needs: fire and forget.
type Emitter interface {
	Emit(e Event)
	Record(r CallRecord)
}

// Discard is an Emitter that drops everything (tests, tools).
type Discard struct{}

// Emit drops e.
func (Discard) Emit(Event) {}

// Record drops r.
func (Discard) Record(CallRecord) {}
