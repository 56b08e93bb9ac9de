package server

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/id4me/id4me-registry/registry"
)

// slogLogger adapts slog to the logging middleware. The middleware logs the method, code,
// duration and the fields below; never payloads or metadata, so no secret reaches the log.
// Calls to the health and reflection services that go well are logged at DEBUG: load
// balancers and grpcurl make them all the time, and they say nothing about the registry.
func slogLogger(l *slog.Logger) logging.Logger {
	return logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		if lvl <= logging.LevelInfo && routineService(fields) {
			lvl = logging.LevelDebug
		}
		l.Log(ctx, slog.Level(lvl), msg, fields...)
	})
}

// routineServices are the services whose calls are logged at DEBUG: gRPC's health checks
// and server reflection (v1 and v1alpha).
var routineServices = []string{"grpc.health.", "grpc.reflection."}

// routineService reports whether the middleware's fields name a call to one of
// routineServices.
func routineService(fields []any) bool {
	for i := 0; i+1 < len(fields); i += 2 {
		if k, _ := fields[i].(string); k != logging.ServiceFieldKey {
			continue
		}
		svc, _ := fields[i+1].(string)
		for _, prefix := range routineServices {
			if strings.HasPrefix(svc, prefix) {
				return true
			}
		}
	}
	return false
}

// actorFields adds who called to each log line.
func actorFields(ctx context.Context) logging.Fields {
	st := callStateFrom(ctx)
	if st == nil || st.actor.Kind == "" {
		return nil
	}
	a := st.actor
	f := logging.Fields{"actor", a.String()}
	if a.CredentialID != "" {
		f = append(f, "credential", a.CredentialID)
	}
	return f
}

// recoverPanic turns a panic in a handler into INTERNAL and logs it with its stack.
func recoverPanic(log *slog.Logger) func(ctx context.Context, p any) error {
	return func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "panic in handler", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		return statusError(registry.ReasonInternal, "internal error; the operator has been told")
	}
}

// agentLimiter rate-limits each agent on its own token bucket. Operators are not limited.
type agentLimiter struct {
	limit rate.Limit
	burst int

	mu       sync.Mutex
	limiters map[string]*rate.Limiter
}

func newAgentLimiter(limit rate.Limit, burst int) *agentLimiter {
	return &agentLimiter{limit: limit, burst: burst, limiters: make(map[string]*rate.Limiter)}
}

// Limit implements the ratelimit middleware's Limiter.
func (l *agentLimiter) Limit(ctx context.Context) error {
	a := ActorFrom(ctx)
	if a.Kind != registry.ActorAgent || l.limit == rate.Inf {
		return nil
	}
	l.mu.Lock()
	lim, ok := l.limiters[a.ID]
	if !ok {
		lim = rate.NewLimiter(l.limit, l.burst)
		l.limiters[a.ID] = lim
	}
	l.mu.Unlock()
	if !lim.Allow() {
		return fmt.Errorf("agent %s is over its limit of %g requests per second", a.ID, float64(l.limit))
	}
	return nil
}

// codeReasons are the reasons of statuses that come without one, by code: the rate limiter's
// RESOURCE_EXHAUSTED, and what gRPC answers itself (a method not implemented, a stream cut
// short, a message that cannot be sent, the health service's unknown service, whose
// NOT_FOUND health checkers rely on).
var codeReasons = map[codes.Code]registry.Reason{
	codes.ResourceExhausted: registry.ReasonRateLimited,
	codes.Canceled:          registry.ReasonCancelled,
	codes.DeadlineExceeded:  registry.ReasonDeadlineExceeded,
	codes.Unavailable:       registry.ReasonUnavailable,
	codes.Unimplemented:     registry.ReasonUnimplemented,
	codes.Internal:          registry.ReasonInternal,
	codes.NotFound:          registry.ReasonNotFound,
}

// withReason makes sure every error status carries an ErrorInfo, as the API promises, even
// when a middleware (the rate limiter) or gRPC built it without one: the reason is
// codeReasons' for its code. Nothing in the server makes a status of another code without
// a reason, so one is logged and answered as INTERNAL.
func withReason(ctx context.Context, log *slog.Logger, err error) error {
	st, ok := status.FromError(err)
	if !ok || st.Code() == codes.OK || len(st.Details()) > 0 {
		return err
	}
	reason, ok := codeReasons[st.Code()]
	if !ok {
		log.ErrorContext(ctx, "internal error", "err", err)
		return statusError(registry.ReasonInternal, "internal error; the operator has been told")
	}
	return statusError(reason, st.Message())
}

func reasonUnary(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		resp, err := h(ctx, req)
		return resp, withReason(ctx, log, err)
	}
}

func reasonStream(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		return withReason(ss.Context(), log, h(srv, ss))
	}
}
