package server_test

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
)

const requestID = "5f0c6e9e-2f7a-4d1e-9a55-1c1b1e0e7a42"

// TestRetriedCallsOnTheWire: an agent whose RegisterIdentifier or RequestTransfer answer was
// lost calls again with the same request_id and gets the first answer; the retried
// registration comes with a fresh credential link that works. The rules of request_id
// (arguments, agents, retention, races) are tested in registry/.
func TestRetriedCallsOnTheWire(t *testing.T) {
	e := newAuthEnv(t, envOptions{})
	alpha, beta := e.newAgent("alpha"), e.newAgent("beta")
	c := e.validChallenge(alpha, "alice.example.test")
	req := &registryv1.RegisterIdentifierRequest{ChallengeId: c.Id, ClaimsEndpoint: "https://alpha.agent.test/alice", RequestId: requestID}
	first, err := e.registry.RegisterIdentifier(alpha.ctx(), req)
	if err != nil {
		t.Fatal(err)
	}
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
	// The holder, who never saw the first link, sets their credentials with the fresh one.
	h := e.setCredentials("alice.example.test", link.Url, false)
	h.Client.CloseIdleConnections()

	other := e.validChallenge(alpha, "carol.example.test")
	_, err = e.registry.RegisterIdentifier(alpha.ctx(), &registryv1.RegisterIdentifierRequest{ChallengeId: other.Id, RequestId: requestID})
	wantStatus(t, err, codes.InvalidArgument, "REQUEST_ID_REUSED")
	_, err = e.registry.RegisterIdentifier(alpha.ctx(), &registryv1.RegisterIdentifierRequest{ChallengeId: other.Id, RequestId: "has space"})
	wantStatus(t, err, codes.InvalidArgument, "REQUEST_ID_INVALID")

	tc := e.transferChallenge(beta, "alice.example.test")
	treq := &registryv1.RequestTransferRequest{ChallengeId: tc.Id, RequestId: requestID}
	tr, err := e.registry.RequestTransfer(beta.ctx(), treq)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := e.registry.RequestTransfer(beta.ctx(), treq); err != nil || !proto.Equal(again, tr) {
		t.Fatalf("retried RequestTransfer = %v, %v; want the first transfer %v", again, err, tr)
	}
	// alice left alpha: alpha's retried registration says so rather than pretend.
	_, err = e.registry.RegisterIdentifier(alpha.ctx(), req)
	wantStatus(t, err, codes.FailedPrecondition, "REQUEST_OUTCOME_GONE")
}
