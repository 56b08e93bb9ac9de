package server_test

import (
	"testing"

	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
)

// The DNS label of the local part alice.smith+id4me, computed apart from the code under test
// with coreutils: printf '%s' 'alice.smith+id4me' | sha256sum | cut -c1-56
const aliceLabel = "42d0feda68886315bce4c8e3768ae05995c214465a4fbca62a41b23e"

// TestEmailIdentifierOnTheWire: an e-mail-form identifier's challenge, identifier and
// resolution carry its DNS name, where its records are published and checked. Its rules
// (canonical form, DNS name, what it may not share a name with) are tested in registry/.
func TestEmailIdentifierOnTheWire(t *testing.T) {
	e := newEnv(t, envOptions{})
	a := e.newAgent("alpha")
	const (
		canonical = "alice.smith+id4me@example.test"
		dnsName   = aliceLabel + ".example.test"
	)
	c, err := e.registry.CreateChallenge(a.ctx(), &registryv1.CreateChallengeRequest{Identifier: "alice.smith+id4me@Example.TEST.", Purpose: registryv1.Purpose_PURPOSE_REGISTER})
	if err != nil {
		t.Fatal(err)
	}
	if c.Identifier != canonical || c.DnsName != dnsName || c.RecordName != "_acme-challenge."+dnsName+"." {
		t.Fatalf("challenge for %s, DNS name %s, record %s", c.Identifier, c.DnsName, c.RecordName)
	}
	e.publish(c)
	if v, err := e.registry.VerifyChallenge(a.ctx(), &registryv1.VerifyChallengeRequest{Id: c.Id}); err != nil || v.Status != registryv1.Challenge_STATUS_VALID {
		t.Fatalf("VerifyChallenge = %v, %v", v, err)
	}
	reg, err := e.registry.RegisterIdentifier(a.ctx(), &registryv1.RegisterIdentifierRequest{ChallengeId: c.Id})
	if err != nil {
		t.Fatal(err)
	}
	if id := reg.Identifier; id.Name != canonical || id.DnsName != dnsName || id.UnicodeName != canonical {
		t.Fatalf("registered %v", id)
	}
	res, err := e.resolver.ResolveIdentifier(as(e.admin), &registryv1.ResolveIdentifierRequest{Identifier: "alice.smith+id4me@EXAMPLE.test"})
	if err != nil || res.Identifier != canonical || res.DnsName != dnsName {
		t.Fatalf("ResolveIdentifier = %v, %v", res, err)
	}
}
