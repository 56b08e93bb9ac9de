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
}

// statusError builds a gRPC status with an ErrorInfo carrying reason.
func statusError(code codes.Code, reason, msg string) error {
	st := status.New(code, msg)
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: ErrorDomain}); err == nil {
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
// without its text, which may name internals.
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
		return statusError(codes.Canceled, "CANCELLED", "the call was cancelled")
	}
	if !isRegistry && errors.Is(err, context.DeadlineExceeded) {
		return statusError(codes.DeadlineExceeded, "DEADLINE_EXCEEDED", "the call ran out of time")
	}
	if !isRegistry || re.Kind == registry.KindInternal {
		log.ErrorContext(ctx, "internal error", "err", err)
		return statusError(codes.Internal, "INTERNAL", "internal error; the operator has been told")
	}
	return statusError(kindCodes[re.Kind], re.Reason, re.Message)
}
