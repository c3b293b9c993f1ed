package service

import (
	"errors"
	"fmt"

	"github.com/veilig/veilig/internal/store"
)

// Kind says what sort of failure an Error is.
type Kind string

// Kinds of failure, named as they travel (JSON, HTTP mapping).
const (
	Invalid     Kind = "invalid"     // the request is wrong; Field names the part
	NotFound    Kind = "not_found"   // the target does not exist
	Conflict    Kind = "conflict"    // it exists already, or lost a race
	Forbidden   Kind = "forbidden"   // the actor may not do this
	Unavailable Kind = "unavailable" // the server or store cannot do it now
	Internal    Kind = "internal"    // a bug or a broken store
)

// Error is a failure of an operation, written for the person who asked.
type Error struct {
	Kind    Kind   `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
	Err     error  `json:"-"`
}

func (e *Error) Error() string { return e.Message }

func (e *Error) Unwrap() error { return e.Err }

// Is matches another *Error of the same kind, so errors.Is(err,
// service.ErrNotFound) works whatever the message.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Message == "" && t.Kind == e.Kind
}

// Sentinels for errors.Is.
var (
	ErrInvalid     = &Error{Kind: Invalid}
	ErrNotFound    = &Error{Kind: NotFound}
	ErrConflict    = &Error{Kind: Conflict}
	ErrForbidden   = &Error{Kind: Forbidden}
	ErrUnavailable = &Error{Kind: Unavailable}
)

func invalid(field, format string, args ...any) *Error {
	return &Error{Kind: Invalid, Field: field, Message: fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) *Error {
	return &Error{Kind: NotFound, Message: fmt.Sprintf(format, args...)}
}

func conflict(format string, args ...any) *Error {
	return &Error{Kind: Conflict, Message: fmt.Sprintf(format, args...)}
}

func forbidden(format string, args ...any) *Error {
	return &Error{Kind: Forbidden, Message: fmt.Sprintf(format, args...)}
}

// storeErr turns a store failure into an Error; what describes the
// operation ("read extension 1001").
func storeErr(what string, err error) error {
	if err == nil {
		return nil
	}
	var se *Error
	if errors.As(err, &se) {
		return err
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return &Error{Kind: NotFound, Message: what + ": not found", Err: err}
	case errors.Is(err, store.ErrExists), errors.Is(err, store.ErrConflict):
		return &Error{Kind: Conflict, Message: what + ": " + err.Error(), Err: err}
	}
	return &Error{Kind: Unavailable, Message: what + ": " + err.Error(), Err: err}
}

// KindOf returns err's kind (Internal for errors that are not *Error).
func KindOf(err error) Kind {
	var se *Error
	if errors.As(err, &se) {
		return se.Kind
	}
	return Internal
}
