package server_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
	"github.com/id4me/id4me-registry/registry"
)

const requestID = "5f0c6e9e-2f7a-4d1e-9a55-1c1b1e0e7a42"

// TestRetriedRegistrationGetsTheFirstOutcome: an agent whose RegisterIdentifier answer was
// lost calls again with the same request_id and gets the identifier it registered, with a
// fresh credential link that works, instead of ALREADY_EXISTS; no second identity is made.
// Another agent's same request_id is its own; the same id for another challenge is refused.
func TestRetriedRegistrationGetsTheFirstOutcome(t *testing.T) {
	e := newAuthEnv(t, envOptions{})
	alpha, beta := e.newAgent("alpha"), e.newAgent("beta")
	c := e.validChallenge(alpha, "alice.example.test")
	req := &registryv1.RegisterIdentifierRequest{ChallengeId: c.Id, ClaimsEndpoint: "https://alpha.agent.test/alice", RequestId: requestID}
	first, err := e.registry.RegisterIdentifier(alpha.ctx(), req)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute)
	retry, err := e.registry.RegisterIdentifier(alpha.ctx(), req)
	if err != nil {
		t.Fatalf("retry with the same request_id: %v", err)
	}
	if !proto.Equal(retry.Identifier, first.Identifier) {
		t.Fatalf("retry answered\n%v\nwant the first answer's identifier\n%v", retry.Identifier, first.Identifier)
	}
	link := retry.GetCredentialLink()
	if link.GetUrl() == "" || link.Url == first.CredentialLink.GetUrl() || link.Purpose != registryv1.CredentialLink_PURPOSE_SETUP {
		t.Fatalf("retry's credential link %v, want a fresh setup link", link)
	}
	if n := e.countRows("identities", ""); n != 1 {
		t.Fatalf("%d identities, want the one of the first call", n)
	}
	if n := e.countRows("journal", "action = ?", "identifier.register"); n != 1 {
		t.Fatalf("%d registrations journaled, want 1", n)
	}
	// The holder, who never saw the first link, sets their credentials with the fresh one.
	e.setCredentials("alice.example.test", link.Url, false)

	// Without the request_id the same call is what it always was.
	_, err = e.registry.RegisterIdentifier(alpha.ctx(), &registryv1.RegisterIdentifierRequest{ChallengeId: c.Id, ClaimsEndpoint: req.ClaimsEndpoint})
	wantStatus(t, err, codes.FailedPrecondition, "CHALLENGE_CONSUMED")

	// Another agent's request_id is its own.
	bc := e.validChallenge(beta, "bob.example.test")
	bob, err := e.registry.RegisterIdentifier(beta.ctx(), &registryv1.RegisterIdentifierRequest{ChallengeId: bc.Id, RequestId: requestID})
	if err != nil || bob.Identifier.Name != "bob.example.test" || bob.Identifier.AgentId != beta.agent.Id {
		t.Fatalf("beta's registration with alpha's request_id: %v, %v", bob, err)
	}

	// The same request_id for another challenge, or other fields, is refused; nothing is made.
	cc := e.validChallenge(alpha, "carol.example.test")
	_, err = e.registry.RegisterIdentifier(alpha.ctx(), &registryv1.RegisterIdentifierRequest{ChallengeId: cc.Id, RequestId: requestID})
	wantStatus(t, err, codes.InvalidArgument, "REQUEST_ID_REUSED")
	_, err = e.registry.RegisterIdentifier(alpha.ctx(), &registryv1.RegisterIdentifierRequest{ChallengeId: c.Id, RequestId: requestID})
	wantStatus(t, err, codes.InvalidArgument, "REQUEST_ID_REUSED")
	if e.identifier("carol.example.test") != nil {
		t.Fatal("carol.example.test was registered under a reused request_id")
	}
	// carol's challenge is still good for a request of its own.
	if _, err := e.registry.RegisterIdentifier(alpha.ctx(), &registryv1.RegisterIdentifierRequest{ChallengeId: cc.Id, RequestId: "carol-1"}); err != nil {
		t.Fatalf("carol with a new request_id: %v", err)
	}

	for _, id := range []string{"has space", strings.Repeat("a", 65), "ünïcode", "semi;colon"} {
		_, err = e.registry.RegisterIdentifier(alpha.ctx(), &registryv1.RegisterIdentifierRequest{ChallengeId: cc.Id, RequestId: id})
		wantStatus(t, err, codes.InvalidArgument, "REQUEST_ID_INVALID")
	}
}

// TestRetriedTransferGetsTheSameTransfer: RequestTransfer retried with its request_id answers
// with the transfer the first call made, as it is now; the same id for another challenge is
// refused. A registration retried after its identifier moved away says so.
func TestRetriedTransferGetsTheSameTransfer(t *testing.T) {
	e := newEnv(t, lifecycleOptions(transferPendingPeriod))
	alpha, beta := e.newAgent("alpha"), e.newAgent("beta")
	c := e.validChallenge(alpha, "alice.example.test")
	reg := &registryv1.RegisterIdentifierRequest{ChallengeId: c.Id, RequestId: "register-alice"}
	if _, err := e.registry.RegisterIdentifier(alpha.ctx(), reg); err != nil {
		t.Fatal(err)
	}
	e.register(alpha, "bob.example.test")

	tc := e.transferChallenge(beta, "alice.example.test")
	req := &registryv1.RequestTransferRequest{ChallengeId: tc.Id, RequestId: requestID}
	first, err := e.registry.RequestTransfer(beta.ctx(), req)
	if err != nil {
		t.Fatal(err)
	}
	retry, err := e.registry.RequestTransfer(beta.ctx(), req)
	if err != nil || !proto.Equal(retry, first) {
		t.Fatalf("retry = %v, %v; want the first transfer %v", retry, err, first)
	}
	if n := e.countRows("transfers", ""); n != 1 {
		t.Fatalf("%d transfers, want 1", n)
	}

	// Once the losing agent approves, a retry answers with the transfer as it is now.
	if _, err := e.registry.ApproveTransfer(alpha.ctx(), &registryv1.ApproveTransferRequest{Id: first.Id}); err != nil {
		t.Fatal(err)
	}
	events := e.countRows("events", "")
	retry, err = e.registry.RequestTransfer(beta.ctx(), req)
	if err != nil || retry.Id != first.Id || retry.Status != registryv1.Transfer_STATUS_CLIENT_APPROVED {
		t.Fatalf("retry after approval = %v, %v; want transfer %s approved", retry, err, first.Id)
	}
	if n := e.countRows("events", ""); n != events {
		t.Fatalf("a retry wrote %d events", n-events)
	}

	bc := e.transferChallenge(beta, "bob.example.test")
	_, err = e.registry.RequestTransfer(beta.ctx(), &registryv1.RequestTransferRequest{ChallengeId: bc.Id, RequestId: requestID})
	wantStatus(t, err, codes.InvalidArgument, "REQUEST_ID_REUSED")
	if n := e.countRows("transfers", ""); n != 1 {
		t.Fatalf("%d transfers after a reused request_id, want 1", n)
	}
	// A request_id of a registration is not one of a transfer.
	_, err = e.registry.RequestTransfer(beta.ctx(), &registryv1.RequestTransferRequest{ChallengeId: bc.Id, RequestId: "register-alice"})
	if err != nil {
		t.Fatalf("beta's transfer with alpha's registration's request_id: %v", err)
	}

	// alice left alpha: alpha's retried registration says so rather than pretend.
	_, err = e.registry.RegisterIdentifier(alpha.ctx(), reg)
	wantStatus(t, err, codes.FailedPrecondition, "REQUEST_OUTCOME_GONE")
}

// TestConcurrentRetriesRegisterOnce: calls with one request_id racing each other register the
// identifier once, and every one of them gets it.
func TestConcurrentRetriesRegisterOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn func(testing.TB) string) {
		e := newEnv(t, envOptions{dsn: dsn})
		a := e.newAgent("alpha")
		for round := range raceRounds {
			c := e.validChallenge(a, raceName(round))
			req := &registryv1.RegisterIdentifierRequest{ChallengeId: c.Id, RequestId: c.Id}
			const calls = 4
			var (
				wg    sync.WaitGroup
				names [calls]string
				errs  [calls]error
			)
			for k := range calls {
				wg.Go(func() {
					resp, err := e.registry.RegisterIdentifier(a.ctx(), req)
					names[k], errs[k] = resp.GetIdentifier().GetName(), err
				})
			}
			wg.Wait()
			for k := range calls {
				if errs[k] != nil || names[k] != raceName(round) {
					t.Fatalf("round %d, call %d: %q, %v; want %s", round, k, names[k], errs[k], raceName(round))
				}
			}
		}
		if n := e.countRows("identities", ""); n != raceRounds {
			t.Fatalf("%d identities, want %d", n, raceRounds)
		}
	})
}

// TestRequestOutcomesExpire: the outcome of a call with a request_id is kept for the
// retention, then the background sweep deletes it; a retry after that is a new call.
func TestRequestOutcomesExpire(t *testing.T) {
	const retention = 48 * time.Hour
	e := newEnv(t, envOptions{configure: func(c *registry.Config) { c.RequestIDRetention = retention }})
	a := e.newAgent("alpha")
	c := e.validChallenge(a, "alice.example.test")
	req := &registryv1.RegisterIdentifierRequest{ChallengeId: c.Id, RequestId: requestID}
	if _, err := e.registry.RegisterIdentifier(a.ctx(), req); err != nil {
		t.Fatal(err)
	}
	sweep := func() int {
		t.Helper()
		n, err := e.svc.SweepRequests(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	e.clock.Advance(retention - time.Second)
	if n := sweep(); n != 0 {
		t.Fatalf("the sweep deleted %d outcomes within the retention", n)
	}
	if _, err := e.registry.RegisterIdentifier(a.ctx(), req); err != nil {
		t.Fatalf("retry within the retention: %v", err)
	}
	e.clock.Advance(2 * time.Second)
	if n := sweep(); n != 1 {
		t.Fatalf("the sweep deleted %d outcomes after the retention, want 1", n)
	}
	_, err := e.registry.RegisterIdentifier(a.ctx(), req)
	wantStatus(t, err, codes.FailedPrecondition, "CHALLENGE_CONSUMED")
}
