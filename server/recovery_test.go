package server

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A panicking handler becomes INTERNAL with a reason, and the panic and its stack are logged
// but not sent to the caller.
func TestPanicBecomesInternal(t *testing.T) {
	var logs strings.Builder
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	intercept := recovery.UnaryServerInterceptor(recovery.WithRecoveryHandlerContext(recoverPanic(log)))
	_, err := intercept(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/id4me.registry.v1.RegistryService/GetIdentifier"},
		func(context.Context, any) (any, error) { panic("secret internal detail") })
	st := status.Convert(err)
	if st.Code() != codes.Internal || strings.Contains(st.Message(), "secret internal detail") {
		t.Fatalf("got %v %q, want INTERNAL without the panic's text", st.Code(), st.Message())
	}
	if len(st.Details()) != 1 || st.Details()[0].(*errdetails.ErrorInfo).Reason != "INTERNAL" {
		t.Fatalf("details %v, want ErrorInfo INTERNAL", st.Details())
	}
	if !strings.Contains(logs.String(), "secret internal detail") || !strings.Contains(logs.String(), "recovery_test.go") {
		t.Fatalf("the panic and its stack are not in the log: %s", logs.String())
	}
}
