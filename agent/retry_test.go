package agent_test

import (
	"context"
	"errors"
	"regexp"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/id4me/id4me-registry/agent"
	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
)

// lostAnswers is a client interceptor that lets the calls of method reach the registry but
// loses the answers of the first lose of them, as a connection broken after the registry
// committed would.
type lostAnswers struct {
	method string
	lose   int

	mu         sync.Mutex
	requestIDs []string
}

func (l *lostAnswers) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	if method != l.method {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.requestIDs = append(l.requestIDs, req.(interface{ GetRequestId() string }).GetRequestId())
	if len(l.requestIDs) <= l.lose {
		return status.Error(codes.Unavailable, "connection reset; the answer is lost")
	}
	return err
}

// sameRequestID checks that the calls seen carried one request_id, a UUID, n times.
func (l *lostAnswers) sameRequestID(t *testing.T, n int) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.requestIDs) != n {
		t.Fatalf("%s was called %d times, want %d", l.method, len(l.requestIDs), n)
	}
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	for _, id := range l.requestIDs {
		if id != l.requestIDs[0] || !uuid.MatchString(id) {
			t.Fatalf("request_ids %v, want one UUID", l.requestIDs)
		}
	}
}

// TestLostAnswersAreRetriedWithTheRequestID: the registry registers (or transfers) but the
// answer is lost; the client asks again with the same request_id and gets the outcome, where
// before it would have been told the challenge was used. It asks once more only.
func TestLostAnswersAreRetriedWithTheRequestID(t *testing.T) {
	r := startRegistry(t, registryOptions{})
	alpha, tokenA := r.newAgent(t, "alpha")
	beta, tokenB := r.newAgent(t, "beta")
	ctx := context.Background()
	both := r.provider()
	both.publishOn = r.ns

	reg := &lostAnswers{method: "/id4me.registry.v1.RegistryService/RegisterIdentifier", lose: 1}
	a := r.dial(t, tokenA, agent.WithGRPCDialOptions(grpc.WithUnaryInterceptor(reg.intercept)))
	res, err := a.Register(ctx, "alice.example.test", both)
	if err != nil {
		t.Fatalf("Register with its first answer lost: %v", err)
	}
	if res.Identifier.GetName() != "alice.example.test" || res.Identifier.AgentId != alpha {
		t.Fatalf("Register = %v", res.Identifier)
	}
	reg.sameRequestID(t, 2)

	tr := &lostAnswers{method: "/id4me.registry.v1.RegistryService/RequestTransfer", lose: 1}
	b := r.dial(t, tokenB, agent.WithGRPCDialOptions(grpc.WithUnaryInterceptor(tr.intercept)))
	res, err = b.Transfer(ctx, "alice.example.test", both)
	if err != nil {
		t.Fatalf("Transfer with its first answer lost: %v", err)
	}
	if res.Transfer.GetGainingAgentId() != beta || res.Transfer.Status != registryv1.Transfer_STATUS_SERVER_APPROVED {
		t.Fatalf("Transfer = %v", res.Transfer)
	}
	tr.sameRequestID(t, 2)
	list, err := b.RegistryService().ListTransfers(ctx, &registryv1.ListTransfersRequest{})
	if err != nil || len(list.Transfers) != 1 || list.Transfers[0].Id != res.Transfer.Id {
		t.Fatalf("ListTransfers = %v, %v; want the one transfer", list, err)
	}

	// Both answers lost: the error is the registry's lost answer, after one retry.
	lost := &lostAnswers{method: "/id4me.registry.v1.RegistryService/RegisterIdentifier", lose: 2}
	a = r.dial(t, tokenA, agent.WithGRPCDialOptions(grpc.WithUnaryInterceptor(lost.intercept)))
	_, err = a.Register(ctx, "carol.example.test", both)
	var se *agent.StepError
	if !errors.As(err, &se) || se.Step != agent.StepRegister || status.Code(errors.Unwrap(se)) != codes.Unavailable {
		t.Fatalf("Register with both answers lost: %v, want an UNAVAILABLE register step", err)
	}
	lost.sameRequestID(t, 2)
}
