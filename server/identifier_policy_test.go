package server_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
	"github.com/id4me/id4me-registry/registry"
)

// TestSpecialUseNamesRefusedOutsideDev: without dev mode a register challenge for a special-use
// name is refused at once, with the RFC that reserves it, and nothing is stored; an identifier
// registered under such a name before (under dev mode, or an older policy) still resolves, reads
// and can be transferred.
func TestSpecialUseNamesRefusedOutsideDev(t *testing.T) {
	e := newEnv(t, envOptions{configure: func(c *registry.Config) { c.AllowSpecialUseNames = false }})
	a := e.newAgent("alpha")
	for _, tc := range []struct{ identifier, rfc string }{
		{"alice.example.test", "RFC 6761"},
		{"alice.example.com", "RFC 6761"},
		{"alice@example.org", "RFC 6761"},
		{"printer.local", "RFC 6762"},
		{"duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzczad.onion", "RFC 7686"},
		{"alice.alt", "RFC 9476"},
		{"router.home.arpa", "RFC 8375"},
		{"alice.localhost", "RFC 6761"},
		{"alice.internal", "ICANN"},
	} {
		_, err := e.registry.CreateChallenge(a.ctx(), &registryv1.CreateChallengeRequest{Identifier: tc.identifier, Purpose: registryv1.Purpose_PURPOSE_REGISTER})
		wantStatus(t, err, codes.InvalidArgument, registry.ReasonIdentifierSpecialUse)
		if msg := status.Convert(err).Message(); !strings.Contains(msg, tc.rfc) {
			t.Errorf("%s: message %q does not name %s", tc.identifier, msg, tc.rfc)
		}
	}
	if n := e.countRows("challenges", ""); n != 0 {
		t.Fatalf("%d challenges stored, want none", n)
	}

	// alice.example.test was registered before the policy existed.
	now := e.clock.Now()
	err := e.store.Tx(context.Background(), func(tx registry.Tx) error {
		if err := tx.CreateIdentity(context.Background(), registry.Identity{ID: "id_legacy", SubjectSeed: "seed", CreateTime: now}); err != nil {
			return err
		}
		return tx.CreateIdentifier(context.Background(), registry.Identifier{
			Name: "alice.example.test", UnicodeName: "alice.example.test", AgentID: a.agent.Id, IdentityID: "id_legacy",
			CreateTime: now, UpdateTime: now, Version: 1,
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.registry.GetIdentifier(a.ctx(), &registryv1.GetIdentifierRequest{Identifier: "alice.example.test"})
	if err != nil || got.DnsName != "alice.example.test" {
		t.Fatalf("GetIdentifier = %v, %v", got, err)
	}
	if r, err := e.resolver.ResolveIdentifier(as(e.admin), &registryv1.ResolveIdentifierRequest{Identifier: "alice.example.test"}); err != nil || r.AgentId != a.agent.Id {
		t.Fatalf("ResolveIdentifier = %v, %v", r, err)
	}
	b := e.newAgent("beta")
	c, err := e.registry.CreateChallenge(b.ctx(), &registryv1.CreateChallengeRequest{Identifier: "alice.example.test", Purpose: registryv1.Purpose_PURPOSE_TRANSFER})
	if err != nil || c.RecordName != "_acme-challenge.alice.example.test." {
		t.Fatalf("transfer challenge = %v, %v", c, err)
	}
}

// TestSpecialUseNamesRefusedAtUse: a register challenge made under dev mode cannot register a
// special-use name on an instance without it; the challenge stays as it was.
func TestSpecialUseNamesRefusedAtUse(t *testing.T) {
	e := newEnv(t, envOptions{})
	a := e.newAgent("alpha")
	c := e.validChallenge(a, "alice.example.test")
	strict, err := registry.New(registry.Config{Store: e.store, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	_, err = strict.RegisterIdentifier(context.Background(), actorOf(a), c.Id, "", "")
	if registry.ReasonOf(err) != registry.ReasonIdentifierSpecialUse {
		t.Fatalf("RegisterIdentifier on an instance without dev mode = %v, want %s", err, registry.ReasonIdentifierSpecialUse)
	}
	if n := e.countRows("identifiers", ""); n != 0 {
		t.Fatalf("%d identifiers stored, want none", n)
	}
	if got, err := e.registry.GetChallenge(a.ctx(), &registryv1.GetChallengeRequest{Id: c.Id}); err != nil || got.Status != registryv1.Challenge_STATUS_VALID {
		t.Fatalf("challenge after the refusal = %v, %v; want still valid", got, err)
	}
}

// TestMixedScriptLabelsRefused: a label or local part that mixes scripts in a way UTS #39
// marks as confusable-prone (a Cyrillic "а" among Latin letters) cannot be registered, dev
// mode or not; the message names the scripts. Japanese with Latin is accepted.
func TestMixedScriptLabelsRefused(t *testing.T) {
	e := newEnv(t, envOptions{})
	a := e.newAgent("alpha")
	for _, tc := range []struct{ identifier, scripts string }{
		{"\u0430pple.example.test", "Cyrillic and Latin"},
		{"xn--pple-43d.example.test", "Cyrillic and Latin"},
		{"p\u0430ypal@example.test", "Cyrillic and Latin"},
		{"micr\u03bfsoft.example.test", "Greek and Latin"},
	} {
		_, err := e.registry.CreateChallenge(a.ctx(), &registryv1.CreateChallengeRequest{Identifier: tc.identifier, Purpose: registryv1.Purpose_PURPOSE_REGISTER})
		wantStatus(t, err, codes.InvalidArgument, registry.ReasonIdentifierMixedScript)
		if msg := status.Convert(err).Message(); !strings.Contains(msg, tc.scripts) {
			t.Errorf("%s: message %q does not name %s", tc.identifier, msg, tc.scripts)
		}
	}
	if n := e.countRows("challenges", ""); n != 0 {
		t.Fatalf("%d challenges stored, want none", n)
	}
	if id := e.register(a, "abc日本ひらがな.example.test"); id.UnicodeName != "abc日本ひらがな.example.test" {
		t.Fatalf("registered %v", id)
	}
}
