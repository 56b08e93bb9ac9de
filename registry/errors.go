package registry

import (
	"errors"
	"fmt"
)

// Kind classifies a registry error the way a caller must react to it. The transports map
// each kind to their own codes (gRPC status codes, HTTP statuses).
type Kind int

// The kinds of registry errors.
const (
	// KindInternal is a failure of the registry itself; the caller may retry later.
	KindInternal Kind = iota
	// KindInvalidArgument: the request is malformed or breaks a policy rule.
	KindInvalidArgument
	// KindNotFound: the object does not exist, or is not the caller's to see.
	KindNotFound
	// KindAlreadyExists: the object (e.g. an identifier) is taken.
	KindAlreadyExists
	// KindFailedPrecondition: the object is not in a state that allows the operation.
	KindFailedPrecondition
	// KindAborted: a concurrent change won (etag mismatch); re-read and retry.
	KindAborted
	// KindPermissionDenied: the caller is known but may not do this.
	KindPermissionDenied
	// KindUnauthenticated: the caller's credential is missing or not valid.
	KindUnauthenticated
	// KindResourceExhausted: a rate or size limit was hit.
	KindResourceExhausted
	// KindUnavailable: a dependency (DNS, database) is out of reach or did not answer in time.
	KindUnavailable
	// KindUnimplemented: the registry does not offer this (yet).
	KindUnimplemented
	// KindCanceled: the caller cancelled the call.
	KindCanceled
	// KindDeadlineExceeded: the call ran out of time.
	KindDeadlineExceeded
)

var kindNames = map[Kind]string{
	KindInternal:           "internal",
	KindInvalidArgument:    "invalid argument",
	KindNotFound:           "not found",
	KindAlreadyExists:      "already exists",
	KindFailedPrecondition: "failed precondition",
	KindAborted:            "aborted",
	KindPermissionDenied:   "permission denied",
	KindUnauthenticated:    "unauthenticated",
	KindResourceExhausted:  "resource exhausted",
	KindUnavailable:        "unavailable",
	KindUnimplemented:      "unimplemented",
	KindCanceled:           "cancelled",
	KindDeadlineExceeded:   "deadline exceeded",
}

// String returns the kind's name.
func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Error is a registry error: a kind, a machine-readable reason from the catalogue (see
// Reason) and a message a person can act on. Make one with NewError, which takes the kind
// from the reason.
type Error struct {
	Kind Kind
	// Reason is a catalogued Reason (a string until the store's errors use the catalogue).
	Reason  Reason
	Message string
	// Err is the underlying cause, if any; it is not shown to callers.
	Err error
}

// Error returns the message, with the cause when there is one.
func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is an *Error of the same kind whose reason is empty or equal, so
// errors.Is(err, registry.ErrInvalidArgument) matches every invalid-argument error.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok {
		return false
	}
	return t.Kind == e.Kind && (t.Reason == "" || t.Reason == e.Reason)
}

// NewError returns an *Error with reason r, r's kind from the catalogue, and a formatted
// message.
func NewError(r Reason, format string, args ...any) *Error {
	return &Error{Kind: r.Kind(), Reason: r, Message: fmt.Sprintf(format, args...)}
}

// ErrInvalidArgument matches, with errors.Is, every invalid-argument error; KindOf tells the
// kind of any error.
var ErrInvalidArgument = &Error{Kind: KindInvalidArgument}

// KindOf returns the kind of err: that of the first *Error in its chain, or KindInternal.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

// ReasonOf returns the reason of the first *Error in err's chain, or "".
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return Reason(e.Reason)
	}
	return ""
}
