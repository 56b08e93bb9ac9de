package server_test

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
)

// TestCreateCredentialLink: a credential link as the API hands it out, from the embedded
// authority; without one, the call is unimplemented and a registration comes without a link.
// Who may ask for a link and when is tested in registry/.
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
	alpha := e.newAgent("alpha")
	c := e.validChallenge(alpha, "carol.example.test")
	reg, err := e.registry.RegisterIdentifier(alpha.ctx(), &registryv1.RegisterIdentifierRequest{ChallengeId: c.Id})
	if err != nil {
		t.Fatal(err)
	}
	if l := reg.CredentialLink; l == nil || l.Purpose != registryv1.CredentialLink_PURPOSE_SETUP || !strings.HasPrefix(l.Url, e.issuer+"/credential/") {
		t.Fatalf("the registration's credential link %v, want a setup link on the authority", l)
	}
	link, err := e.registry.CreateCredentialLink(alpha.ctx(), &registryv1.CreateCredentialLinkRequest{Identifier: "Carol.Example.Test.", Purpose: registryv1.CredentialLink_PURPOSE_RESET})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(link.Url, e.issuer+"/credential/") || link.Url == reg.CredentialLink.Url || link.Identifier != "carol.example.test" ||
		link.Purpose != registryv1.CredentialLink_PURPOSE_RESET || !link.ExpireTime.AsTime().After(e.clock.Now()) {
		t.Fatalf("link %v", link)
	}
	// The authority journals its links through the registry, never their secrets.
	j, err := e.adminAPI.ListJournal(as(e.admin), &registryv1.ListJournalRequest{ObjectType: "identifier", ObjectId: "carol.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	made := 0
	for _, entry := range j.Entries {
		for _, l := range []*registryv1.CredentialLink{reg.CredentialLink, link} {
			if strings.Contains(entry.String(), strings.TrimPrefix(l.Url, e.issuer+"/credential/")) {
				t.Fatal("the journal holds a link's secret")
			}
		}
		if entry.Action == "credential_link.create" {
			made++
		}
	}
	if made != 2 {
		t.Fatalf("%d credential_link.create entries, want 2", made)
	}
	_, err = e.registry.CreateCredentialLink(alpha.ctx(), &registryv1.CreateCredentialLinkRequest{Identifier: "carol.example.test"})
	wantStatus(t, err, codes.InvalidArgument, "PURPOSE_REQUIRED")
}

// TestAdminCreateCredentialLink: an operator makes a credential link for a holder (a support
// case) with a reason, which the journal keeps beside the operator and never the link; no
// reason, no link; an agent's credential does not reach the AdminService.
func TestAdminCreateCredentialLink(t *testing.T) {
	e := newAuthEnv(t, envOptions{})
	alpha := e.newAgent("alpha")
	c := e.validChallenge(alpha, "dave.example.test")
	if _, err := e.registry.RegisterIdentifier(alpha.ctx(), &registryv1.RegisterIdentifierRequest{ChallengeId: c.Id}); err != nil {
		t.Fatal(err)
	}

	_, err := e.adminAPI.CreateCredentialLink(as(e.admin), &registryv1.CreateCredentialLinkRequest{Identifier: "dave.example.test", Purpose: registryv1.CredentialLink_PURPOSE_RESET})
	wantStatus(t, err, codes.InvalidArgument, "REASON_REQUIRED")
	_, err = e.adminAPI.CreateCredentialLink(as(e.admin), &registryv1.CreateCredentialLinkRequest{Identifier: "dave.example.test", Purpose: registryv1.CredentialLink_PURPOSE_RESET, Reason: " "})
	wantStatus(t, err, codes.InvalidArgument, "REASON_REQUIRED")
	_, err = e.adminAPI.CreateCredentialLink(alpha.ctx(), &registryv1.CreateCredentialLinkRequest{Identifier: "dave.example.test", Purpose: registryv1.CredentialLink_PURPOSE_RESET, Reason: "ticket 1"})
	if status.Code(err) != codes.PermissionDenied && status.Code(err) != codes.Unauthenticated {
		t.Fatalf("an agent's credential at the AdminService: %v, want PERMISSION_DENIED or UNAUTHENTICATED", err)
	}
	_, err = e.adminAPI.CreateCredentialLink(as(e.admin), &registryv1.CreateCredentialLinkRequest{Identifier: "nobody.example.test", Purpose: registryv1.CredentialLink_PURPOSE_RESET, Reason: "ticket 1"})
	wantStatus(t, err, codes.NotFound, "IDENTIFIER_NOT_FOUND")

	link, err := e.adminAPI.CreateCredentialLink(as(e.admin), &registryv1.CreateCredentialLinkRequest{Identifier: "Dave.Example.Test", Purpose: registryv1.CredentialLink_PURPOSE_RESET, Reason: "support ticket 4711: lost password"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(link.Url, e.issuer+"/credential/") || link.Identifier != "dave.example.test" || link.Purpose != registryv1.CredentialLink_PURPOSE_RESET {
		t.Fatalf("link %v", link)
	}
	j, err := e.adminAPI.ListJournal(as(e.admin), &registryv1.ListJournalRequest{ObjectType: "identifier", ObjectId: "dave.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	var support *registryv1.JournalEntry
	for _, entry := range j.Entries {
		if strings.Contains(entry.String(), strings.TrimPrefix(link.Url, e.issuer+"/credential/")) {
			t.Fatal("the journal holds the link's secret")
		}
		if entry.Action == "credential_link.create" && strings.HasPrefix(entry.Actor, "operator:") {
			support = entry
		}
	}
	if support == nil || !strings.Contains(support.After, "support ticket 4711: lost password") {
		t.Fatalf("no journal entry by the operator with the reason among %v", j.Entries)
	}
}
