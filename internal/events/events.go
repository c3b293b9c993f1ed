// Package events carries Veilig's security events and call records from
// the SIP path to where they are kept: the store and a JSON-lines log (and,
// in later issues, alert rules and SIEM sinks).
//
// Ordering and backpressure: Emit never blocks the caller. Events enter one
// bounded queue and are written in the order they were emitted; when the
// queue is full the newest event is dropped and counted (Dropped), because
// a SIP message must never wait on a disk. A slow sink is the bug, not the
// caller.
package events

import (
	"net/netip"
	"time"
)

// Severity ranks events for alerting.
type Severity string

// Severities.
const (
	Info    Severity = "info"
	Warning Severity = "warning"
	Alert   Severity = "alert"
)

// Event types emitted so far. Later issues add to this list.
const (
	AuthSuccess   = "auth.success"
	AuthFailure   = "auth.failure"
	Register      = "register"
	Unregister    = "unregister"
	CallRefused   = "call.refused"
	CallEnded     = "call.ended"
	ServerStarted = "server.started"
	TLSReloaded   = "tls.reloaded"

	// The SIP edge's connection admission and deadlines: a connection
	// that never authenticated closed to admit a newcomer at the
	// connection limit, a newcomer refused at the limit, a connection
	// closed for a message not finished in time or for not authenticating
	// in time. Each is deduplicated per source and minute; the alert
	// flood.connections says the limit stays under pressure.
	ConnectionEvicted = "connection.evicted"
	ConnectionRefused = "connection.refused"
	ConnectionTimeout = "connection.timeout"
	FloodConnections  = "flood.connections"
)

// Event is one security or operational event.
type Event struct {
	Time     time.Time         `json:"time"`
	Type     string            `json:"type"`
	Severity Severity          `json:"severity"`
	Source   string            `json:"source,omitempty"`
	Account  string            `json:"account,omitempty"`
	Message  string            `json:"message"`
	Fields   map[string]string `json:"fields,omitempty"`
}

// New is a convenience constructor; source may be the zero AddrPort.
func New(typ string, sev Severity, source netip.AddrPort, account, msg string, kv ...string) Event {
	e := Event{Type: typ, Severity: sev, Account: account, Message: msg}
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
