package server_test

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
)

// TestCreateCredentialLink covers who may ask for a credential link and when.
func TestCreateCredentialLink(t *testing.T) {
	t.Run("without an authority", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		a := e.newAgent("alpha")
		c := e.validChallenge(a, "nolink.example.test")
		resp, err := e.registry.RegisterIdentifier(a.ctx(), &registryv1.RegisterIdentifierRequest{ChallengeId: c.Id})
		if err != nil {
			t.Fatal(err)
		}
		if resp.CredentialLink != nil {
			t.Fatalf("a registry without an authority gave a credential link %v", resp.CredentialLink)
		}
		_, err = e.registry.CreateCredentialLink(a.ctx(), &registryv1.CreateCredentialLinkRequest{Identifier: "nolink.example.test", Purpose: registryv1.CredentialLink_PURPOSE_RESET})
		wantStatus(t, err, codes.Unimplemented, "NO_AUTHORITY")
	})

	e := newAuthEnv(t, envOptions{})
	alpha, beta := e.newAgent("alpha"), e.newAgent("beta")
	e.register(alpha, "carol.example.test")
	reset := func(a testAgent, identifier string, purpose registryv1.CredentialLink_Purpose) (*registryv1.CredentialLink, error) {
		return e.registry.CreateCredentialLink(a.ctx(), &registryv1.CreateCredentialLinkRequest{Identifier: identifier, Purpose: purpose})
	}

	link, err := reset(alpha, "Carol.Example.Test.", registryv1.CredentialLink_PURPOSE_RESET)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(link.Url, e.issuer+"/credential/") || link.Identifier != "carol.example.test" ||
		link.Purpose != registryv1.CredentialLink_PURPOSE_RESET || !link.ExpireTime.AsTime().After(e.clock.Now()) {
		t.Fatalf("link %v", link)
	}
	// The link's secret is not journaled.
	j, err := e.adminAPI.ListJournal(as(e.admin), &registryv1.ListJournalRequest{ObjectType: "identifier", ObjectId: "carol.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, entry := range j.Entries {
		if strings.Contains(entry.String(), link.Url[len(e.issuer+"/credential/"):]) {
			t.Fatal("the journal holds the link's secret")
		}
		found = found || entry.Action == "credential_link.create"
	}
	if !found {
		t.Fatal("the journal has no credential_link.create entry")
	}

	_, err = reset(beta, "carol.example.test", registryv1.CredentialLink_PURPOSE_RESET)
	wantStatus(t, err, codes.NotFound, "IDENTIFIER_NOT_FOUND")
	_, err = reset(alpha, "carol.example.test", registryv1.CredentialLink_PURPOSE_UNSPECIFIED)
	wantStatus(t, err, codes.InvalidArgument, "PURPOSE_REQUIRED")
	_, err = reset(alpha, "not a name", registryv1.CredentialLink_PURPOSE_RESET)
	if err == nil {
		t.Fatal("a malformed identifier got a link")
	}
	e.serverStatus("carol.example.test", "abuse", registryv1.IdentifierStatus_IDENTIFIER_STATUS_SERVER_HOLD)
	_, err = reset(alpha, "carol.example.test", registryv1.CredentialLink_PURPOSE_RESET)
	wantStatus(t, err, codes.FailedPrecondition, "IDENTIFIER_ON_HOLD")
	e.serverStatus("carol.example.test", "cleared")
	e.deleteIdentifier(alpha, "carol.example.test")
	_, err = reset(alpha, "carol.example.test", registryv1.CredentialLink_PURPOSE_RESET)
	wantStatus(t, err, codes.FailedPrecondition, "IDENTIFIER_PENDING_DELETE")
}
