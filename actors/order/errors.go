package order

import (
	"errors"
	"fmt"
)

// Code is a stable, machine-readable error code. It is part of the public API: clients
// switch on it, so a code never changes meaning. Its first three digits are, by
// convention, the HTTP status the edge answers it with; the domain itself knows nothing of
// HTTP.
type Code int

// The codes. Add new ones; never renumber.
const (
	CodeOK                Code = 0
	CodeInvalidRequest    Code = 40000 // malformed JSON, unknown fields, wrong types, missing header
	CodeUnauthenticated   Code = 40100 // missing, forged, expired token; bad credentials
	CodeForbidden         Code = 40300 // the caller's role may not do this
	CodeNotFound          Code = 40400 // unknown order, or one the caller may not see
	CodeRouteNotFound     Code = 40401 // no such endpoint
	CodeMethodNotAllowed  Code = 40500
	CodeIllegalTransition Code = 40900 // the command is not allowed in the order's current state
	CodeAlreadyExists     Code = 40901 // the resource exists already
	CodeOutOfStock        Code = 40902 // not enough units of a sku are available (on hand and not reserved)
	CodeTooLarge          Code = 41300 // request body over the limit
	CodeHeadersTooLarge   Code = 43100 // request headers over the limit
	CodeValidation        Code = 42200 // well-formed but invalid (unknown sku, qty out of range)
	CodeKeyReused         Code = 42201 // idempotency key reused for a different request
	CodeDuplicateItem     Code = 42202 // the same sku on two lines of one order
	CodeOrderTooLarge     Code = 42203 // an order's total quantity or value over the limit
	CodeRateLimited       Code = 42900
	CodeInternal          Code = 50000 // a bug or an unexpected failure; details are only logged
	CodeUnavailable       Code = 50300 // try again: the order moved, a node is draining, the store is busy
)

// Retryable reports whether the same request (with the same idempotency key) may succeed
// if sent again.
func (c Code) Retryable() bool { return c == CodeUnavailable }

// Error is the one application error type. Its Code and Message are safe to show to a
// client; anything that is not an *Error is reported to clients as CodeInternal and only
// logged in full.
type Error struct {
	Code    Code
	Message string
	// Reason says why a CodeUnavailable error is worth retrying (one of the Reason
	// constants); empty for other codes. Metrics and retry policies read it, never the
	// message, which is for people.
	Reason Reason
}

// Reason classifies a retryable error. The set is closed so that a metric labelled with it
// cannot grow with error texts.
type Reason string

// The reasons a CodeUnavailable error may carry.
const (
	ReasonMoved       Reason = "moved"       // the order moved, its activation is stale, or no node may activate it now
	ReasonDraining    Reason = "draining"    // the node hosting the order is leaving
	ReasonUnreachable Reason = "unreachable" // the grain's node could not be reached
	ReasonTimeout     Reason = "timeout"     // the grain did not answer in time
	ReasonStore       Reason = "store"       // the grain could not load or save the order
	ReasonOther       Reason = "other"       // anything else
)

// Reasons lists every Reason.
var Reasons = []Reason{ReasonMoved, ReasonDraining, ReasonUnreachable, ReasonTimeout, ReasonStore, ReasonOther}

// Unavailable builds a retryable error (CodeUnavailable) with its reason.
func Unavailable(reason Reason, format string, args ...any) *Error {
	return &Error{Code: CodeUnavailable, Message: fmt.Sprintf(format, args...), Reason: reason}
}

// ErrorReason returns the retry reason of the first *Error in err's chain: its Reason, or
// ReasonOther when it has none; "" when err carries no *Error.
func ErrorReason(err error) Reason {
	var e *Error
	if !errors.As(err, &e) {
		return ""
	}
	if e.Reason == "" {
		return ReasonOther
	}
	return e.Reason
}

func (e *Error) Error() string { return fmt.Sprintf("%s (code %d)", e.Message, e.Code) }

// Errorf builds an *Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, CodeOK for nil and
// CodeInternal for anything else.
func ErrorCode(err error) Code {
	if err == nil {
		return CodeOK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// ErrorMessage returns the client-safe message of err.
func ErrorMessage(err error) string {
	if err == nil {
		return "ok"
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
