package server

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/id4me/id4me-registry/registry"
)

// ErrorDomain is the domain of every google.rpc.ErrorInfo the registry returns.
const ErrorDomain = "id4me-registry"

var kindCodes = map[registry.Kind]codes.Code{
	registry.KindInternal:           codes.Internal,
	registry.KindInvalidArgument:    codes.InvalidArgument,
	registry.KindNotFound:           codes.NotFound,
	registry.KindAlreadyExists:      codes.AlreadyExists,
	registry.KindFailedPrecondition: codes.FailedPrecondition,
	registry.KindAborted:            codes.Aborted,
	registry.KindPermissionDenied:   codes.PermissionDenied,
	registry.KindUnauthenticated:    codes.Unauthenticated,
	registry.KindResourceExhausted:  codes.ResourceExhausted,
	registry.KindUnavailable:        codes.Unavailable,
	registry.KindUnimplemented:      codes.Unimplemented,
	registry.KindCanceled:           codes.Canceled,
	registry.KindDeadlineExceeded:   codes.DeadlineExceeded,
}

// statusError builds a gRPC status with reason's code and an ErrorInfo carrying reason.
func statusError(reason registry.Reason, msg string) error {
	return statusWithReason(kindCodes[reason.Kind()], reason, msg)
}

// statusWithReason builds a gRPC status with code and an ErrorInfo carrying reason.
func statusWithReason(code codes.Code, reason registry.Reason, msg string) error {
	st := status.New(code, msg)
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: string(reason), Domain: ErrorDomain}); err == nil {
		st = d
	}
	return st.Err()
}

// callEnd returns why the call's context ended, or nil. gRPC ends a call at its deadline by
// cancelling it, which may come before the deadline's own expiry: a cancellation at or after
// the deadline is the deadline.
func callEnd(ctx context.Context) error {
	err := ctx.Err()
	if dl, ok := ctx.Deadline(); ok && errors.Is(err, context.Canceled) && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return err
}

// toStatus turns an error from the registry into a gRPC status error with an ErrorInfo. A
// registry *Error keeps its message; anything else is logged and reported as INTERNAL
// without its text, which may name internals. A registry error whose reason is not in the
// catalogue, or has another kind there, is logged as such (tests fail on that line): it is
// answered with its own reason and the catalogue's code, so a reason keeps one code.
func toStatus(ctx context.Context, log *slog.Logger, err error) error {
	if err == nil {
		return nil
	}
	var re *registry.Error
	isRegistry := errors.As(err, &re)
	if _, ok := status.FromError(err); ok && !isRegistry {
		return err
	}
	// When the call's deadline passed or the client cancelled it, what failed inside (a
	// statement cancelled, a transaction already rolled back, a connection cut) followed
	// from that: say so, rather than blame the registry or the database.
	if ctxErr := callEnd(ctx); ctxErr != nil && (!isRegistry || re.Kind == registry.KindInternal || re.Kind == registry.KindUnavailable) {
		err, isRegistry = ctxErr, false
	}
	if !isRegistry && errors.Is(err, context.Canceled) {
		return statusError(registry.ReasonCancelled, "the call was cancelled")
	}
	if !isRegistry && errors.Is(err, context.DeadlineExceeded) {
		return statusError(registry.ReasonDeadlineExceeded, "the call ran out of time")
	}
	kind := registry.KindInternal
	if isRegistry {
		kind = catalogued(ctx, log, re)
	}
	if kind == registry.KindInternal {
		log.ErrorContext(ctx, "internal error", "err", err)
		return statusError(registry.ReasonInternal, "internal error; the operator has been told")
	}
	return statusWithReason(kindCodes[kind], registry.Reason(re.Reason), re.Message)
}

// uncataloguedReason is the message of the log line for a registry error whose reason is not
// in the catalogue or has another kind there; the server's tests fail on it.
const uncataloguedReason = "error reason not as catalogued"

// catalogued returns the kind to answer e with: its reason's kind in the catalogue. A reason
// not catalogued keeps e's kind, and so does an internal error (its message is not shown);
// both, and a kind other than the catalogue's, are logged.
func catalogued(ctx context.Context, log *slog.Logger, e *registry.Error) registry.Kind {
	in, ok := registry.Reason(e.Reason).Info()
	switch {
	case !ok:
		log.ErrorContext(ctx, uncataloguedReason, "reason", e.Reason, "kind", e.Kind.String(), "err", e)
		return e.Kind
	case in.Kind != e.Kind:
		log.ErrorContext(ctx, uncataloguedReason, "reason", e.Reason, "kind", e.Kind.String(), "catalogue_kind", in.Kind.String(), "err", e)
	}
	if e.Kind == registry.KindInternal {
		return registry.KindInternal
	}
	return in.Kind
}
