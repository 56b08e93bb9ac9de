package grpcconn_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/id4me/id4me-registry/internal/grpcconn"
)

// serve starts a gRPC server on loopback that answers every call with answer(n), n counting
// the calls from 1.
func serve(t *testing.T, answer func(n int64) error) (string, *atomic.Int64) {
	t.Helper()
	var calls atomic.Int64
	srv := grpc.NewServer(grpc.UnknownServiceHandler(func(any, grpc.ServerStream) error {
		return answer(calls.Add(1))
	}))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(srv.Stop)
	return l.Addr().String(), &calls
}

func overloaded(delay time.Duration) error {
	st, _ := status.New(codes.ResourceExhausted, "the server is busy").WithDetails(
		&errdetails.ErrorInfo{Reason: "OVERLOADED", Domain: "id4me-registry"},
		&errdetails.RetryInfo{RetryDelay: durationpb.New(delay)})
	return st.Err()
}

func call(t *testing.T, addr string) error {
	t.Helper()
	conn, err := grpcconn.Dial(addr, grpcconn.Config{Plaintext: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.Invoke(t.Context(), "/test.Service/Method", &emptypb.Empty{}, &emptypb.Empty{})
}

// TestShedCallsAreSentAgain: a call the server shed is sent again after the RetryInfo's wait,
// up to three times; other refusals, and a fourth shedding, reach the caller.
func TestShedCallsAreSentAgain(t *testing.T) {
	addr, calls := serve(t, func(n int64) error {
		if n <= 2 {
			return overloaded(10 * time.Millisecond)
		}
		return status.Error(codes.Unimplemented, "answered")
	})
	if err := call(t, addr); status.Code(err) != codes.Unimplemented || calls.Load() != 3 {
		t.Fatalf("after two sheddings: %v in %d calls, want the third call's answer", err, calls.Load())
	}

	addr, calls = serve(t, func(int64) error { return overloaded(time.Millisecond) })
	if err := call(t, addr); status.Code(err) != codes.ResourceExhausted || calls.Load() != 4 {
		t.Fatalf("always shed: %v in %d calls, want RESOURCE_EXHAUSTED after 4", err, calls.Load())
	}

	// A rate limit is RESOURCE_EXHAUSTED too, but not a shedding: it is not sent again.
	addr, calls = serve(t, func(int64) error {
		st, _ := status.New(codes.ResourceExhausted, "slow down").WithDetails(&errdetails.ErrorInfo{Reason: "RATE_LIMITED"})
		return st.Err()
	})
	if err := call(t, addr); status.Code(err) != codes.ResourceExhausted || calls.Load() != 1 {
		t.Fatalf("rate limited: %v in %d calls, want it once", err, calls.Load())
	}
}

// TestShedRetryEndsWithTheContext: the wait before sending a shed call again ends with the
// caller's context.
func TestShedRetryEndsWithTheContext(t *testing.T) {
	addr, calls := serve(t, func(int64) error { return overloaded(time.Hour) })
	conn, err := grpcconn.Dial(addr, grpcconn.Config{Plaintext: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	err = conn.Invoke(ctx, "/test.Service/Method", &emptypb.Empty{}, &emptypb.Empty{})
	if status.Code(err) != codes.ResourceExhausted || calls.Load() != 1 {
		t.Fatalf("%v in %d calls, want the shedding once, when the context ended", err, calls.Load())
	}
}
