package server_test

import (
	"context"
	"crypto/sha256"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
	"github.com/id4me/id4me-registry/registry"
)

// journalActions lists the journal's actions on objects of type objType.
func (e *env) journalActions(objType string) []string {
	e.t.Helper()
	j, err := e.adminAPI.ListJournal(as(e.admin), &registryv1.ListJournalRequest{ObjectType: objType, PageSize: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, en := range j.Entries {
		out = append(out, en.Action+" "+en.ObjectId)
	}
	return out
}

// TestCreateAgentTokenWithoutAgentIsRefused: an empty agent_id used to make a credential with
// operator powers. It is INVALID_ARGUMENT now, and nothing is stored or journaled.
func TestCreateAgentTokenWithoutAgentIsRefused(t *testing.T) {
	e := newEnv(t, envOptions{})
	creds, journal := e.countRows("credentials", ""), e.countRows("journal", "")
	tok, err := e.adminAPI.CreateAgentToken(as(e.admin), &registryv1.CreateAgentTokenRequest{Description: "meant for an agent"})
	wantStatus(t, err, codes.InvalidArgument, "AGENT_ID_REQUIRED")
	if tok.GetSecret() != "" {
		t.Fatal("a refused call returned a secret")
	}
	if n := e.countRows("credentials", ""); n != creds {
		t.Fatalf("credentials: %d, want %d: something was created", n, creds)
	}
	if n := e.countRows("journal", ""); n != journal {
		t.Fatalf("journal entries: %d, want %d", n, journal)
	}
}

// TestAgentTokenWithoutAgentIsNoOperator: a token that an earlier version made for no agent
// (tk_…, no agent) authenticates as nobody, though it is listed (and can be revoked) with the
// operator credentials.
func TestAgentTokenWithoutAgentIsNoOperator(t *testing.T) {
	e := newEnv(t, envOptions{})
	const id, secret = "tk_legacyagentlesstoken00000", "c2VjcmV0LW9mLWFuLWFnZW50bGVzcy10b2tlbg"
	sum := sha256.Sum256([]byte(secret))
	err := e.store.Tx(context.Background(), func(tx registry.Tx) error {
		return tx.CreateCredential(context.Background(), registry.Credential{ID: id, SecretHash: sum[:], CreateTime: time.Now()})
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.adminAPI.ListAgents(as(id+"."+secret), &registryv1.ListAgentsRequest{})
	wantStatus(t, err, codes.Unauthenticated, "CREDENTIAL_INVALID")
	list, err := e.adminAPI.ListOperatorCredentials(as(e.admin), &registryv1.ListOperatorCredentialsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Credentials) != 2 || list.Credentials[1].Id != id {
		t.Fatalf("operator credentials = %v, want the bootstrap one and %s", list.Credentials, id)
	}
	// Revoking it does not count as revoking an operator: the bootstrap credential stays.
	if _, err := e.adminAPI.RevokeOperatorCredential(as(e.admin), &registryv1.RevokeOperatorCredentialRequest{Id: id}); err != nil {
		t.Fatalf("revoking the agentless token: %v", err)
	}
}

// TestOperatorCredentials: an operator credential made by CreateOperatorCredential works on
// the AdminService and the ResolverService, is listed without its secret, and once revoked is
// refused; every step is journaled. The last operator credential cannot be revoked.
func TestOperatorCredentials(t *testing.T) {
	e := newEnv(t, envOptions{})
	a := e.newAgent("alpha")
	e.clock.Advance(time.Second) // listed after the bootstrap credential

	created, err := e.adminAPI.CreateOperatorCredential(as(e.admin), &registryv1.CreateOperatorCredentialRequest{Description: "on-call laptop"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(created.Id, registry.OperatorPrefix) || !strings.HasPrefix(created.Secret, created.Id+".") || created.Description != "on-call laptop" {
		t.Fatalf("created %v, want an op_ credential with its secret", created)
	}
	op := created.Secret
	if _, err := e.adminAPI.ListAgents(as(op), &registryv1.ListAgentsRequest{}); err != nil {
		t.Fatalf("ListAgents with the new credential: %v", err)
	}
	if _, err := e.adminAPI.CreateAgentToken(as(op), &registryv1.CreateAgentTokenRequest{AgentId: a.agent.Id}); err != nil {
		t.Fatalf("CreateAgentToken with the new credential: %v", err)
	}
	e.register(a, "alice.example.test")
	if _, err := e.resolver.ResolveIdentifier(as(op), &registryv1.ResolveIdentifierRequest{Identifier: "alice.example.test"}); err != nil {
		t.Fatalf("ResolveIdentifier with the new credential: %v", err)
	}
	// It is an operator's, not an agent's.
	_, err = e.registry.ListIdentifiers(as(op), &registryv1.ListIdentifiersRequest{})
	wantStatus(t, err, codes.PermissionDenied, "AGENT_CREDENTIAL_REQUIRED")
	// Agents cannot make one.
	_, err = e.adminAPI.CreateOperatorCredential(a.ctx(), &registryv1.CreateOperatorCredentialRequest{})
	wantStatus(t, err, codes.PermissionDenied, "OPERATOR_CREDENTIAL_REQUIRED")
	_, err = e.adminAPI.CreateOperatorCredential(as(op), &registryv1.CreateOperatorCredentialRequest{Description: strings.Repeat("x", 201)})
	wantStatus(t, err, codes.InvalidArgument, "DESCRIPTION_TOO_LONG")

	list, err := e.adminAPI.ListOperatorCredentials(as(op), &registryv1.ListOperatorCredentialsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range list.Credentials {
		if c.Secret != "" {
			t.Fatalf("ListOperatorCredentials returned a secret for %s", c.Id)
		}
		ids = append(ids, c.Id)
	}
	bootstrap := strings.SplitN(e.admin, ".", 2)[0]
	if strings.Join(ids, ",") != bootstrap+","+created.Id {
		t.Fatalf("operator credentials = %v, want %s and %s (no agent tokens)", ids, bootstrap, created.Id)
	}

	// An agent's token is not an operator credential to revoke.
	_, err = e.adminAPI.RevokeOperatorCredential(as(op), &registryv1.RevokeOperatorCredentialRequest{Id: strings.SplitN(a.token, ".", 2)[0]})
	wantStatus(t, err, codes.NotFound, "CREDENTIAL_NOT_FOUND")
	_, err = e.adminAPI.RevokeOperatorCredential(as(op), &registryv1.RevokeOperatorCredentialRequest{})
	wantStatus(t, err, codes.InvalidArgument, "CREDENTIAL_ID_REQUIRED")

	revoked, err := e.adminAPI.RevokeOperatorCredential(as(e.admin), &registryv1.RevokeOperatorCredentialRequest{Id: created.Id})
	if err != nil || revoked.RevokeTime == nil || revoked.Secret != "" {
		t.Fatalf("RevokeOperatorCredential = %v, %v; want it revoked", revoked, err)
	}
	_, err = e.adminAPI.ListAgents(as(op), &registryv1.ListAgentsRequest{})
	wantStatus(t, err, codes.Unauthenticated, "CREDENTIAL_REVOKED")
	_, err = e.resolver.ResolveIdentifier(as(op), &registryv1.ResolveIdentifierRequest{Identifier: "alice.example.test"})
	wantStatus(t, err, codes.Unauthenticated, "CREDENTIAL_REVOKED")
	again, err := e.adminAPI.RevokeOperatorCredential(as(e.admin), &registryv1.RevokeOperatorCredentialRequest{Id: created.Id})
	if err != nil || !again.RevokeTime.AsTime().Equal(revoked.RevokeTime.AsTime()) {
		t.Fatalf("revoking again = %v, %v; want the first revocation unchanged", again, err)
	}

	// The bootstrap credential is the last one now: it stays.
	_, err = e.adminAPI.RevokeOperatorCredential(as(e.admin), &registryv1.RevokeOperatorCredentialRequest{Id: bootstrap})
	wantStatus(t, err, codes.FailedPrecondition, "LAST_OPERATOR_CREDENTIAL")
	if _, err := e.adminAPI.ListAgents(as(e.admin), &registryv1.ListAgentsRequest{}); err != nil {
		t.Fatalf("the last operator credential stopped working: %v", err)
	}

	want := []string{"operator_credential.create " + bootstrap, "operator_credential.create " + created.Id, "operator_credential.revoke " + created.Id}
	if got := e.journalActions("operator_credential"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("journal:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestConcurrentRevocationsKeepAnOperator: two operators each revoking their own credential,
// the last two, at the same time leave one of them working, on either database.
func TestConcurrentRevocationsKeepAnOperator(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn func(testing.TB) string) {
		e := newEnv(t, envOptions{DSN: dsn})
		for round := range raceRounds {
			second, err := e.adminAPI.CreateOperatorCredential(as(e.admin), &registryv1.CreateOperatorCredentialRequest{Description: "second"})
			if err != nil {
				t.Fatal(err)
			}
			bearers := []string{e.admin, second.Secret}
			ids := []string{strings.SplitN(e.admin, ".", 2)[0], second.Id}
			var (
				wg   sync.WaitGroup
				errs = make([]error, 2)
			)
			for k, id := range ids {
				wg.Go(func() {
					_, errs[k] = e.adminAPI.RevokeOperatorCredential(as(bearers[k]), &registryv1.RevokeOperatorCredentialRequest{Id: id})
				})
			}
			wg.Wait()
			var ok, last int
			for k, err := range errs {
				switch {
				case err == nil:
					ok++
				case status.Code(err) == codes.FailedPrecondition:
					last++
				default:
					t.Fatalf("round %d: revoking %s: %v", round, ids[k], err)
				}
			}
			if ok != 1 || last != 1 {
				t.Fatalf("round %d: %d revoked, %d refused as the last; want one each", round, ok, last)
			}
			if errs[0] == nil {
				e.admin = second.Secret // carry on with the credential that is left
			}
			if _, err := e.adminAPI.ListAgents(as(e.admin), &registryv1.ListAgentsRequest{}); err != nil {
				t.Fatalf("round %d: the credential left does not work: %v", round, err)
			}
		}
	})
}
