// Package service is the one way to manage Veilig. The CLI, the control
// socket, the HTTP API and the panel are clients of it; none of them reads
// or writes the store on its own. Every operation is an Op: a name, the
// permission it needs, a typed request and a typed result. Operations
// that change something take an Actor (who, through which channel, from
// where) and write one audit entry per change, with the target before and
// after (secrets replaced by a keyed hash), in the same transaction as the
// change: if the entry cannot be written, the change does not happen.
//
// Errors are *Error values with a Kind (invalid with the field, not found,
// conflict, forbidden, unavailable), so a CLI prints the sentence and an
// HTTP API maps the kind to a status code without matching strings.
//
// A Service runs in two places. Inside the server it has the live parts
// (the defences' memory, the registrar, the call manager) and a change
// made through it takes effect at once. In a CLI process with no server
// running it has only the store, and the server (when it starts, or
// through the change feed) picks the change up.
package service
