package agent_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/id4me/id4me-registry/acme"
)

// TestRegisterEmailIdentifier: the toolkit registers an e-mail-form identifier by handing the
// provider its DNS name, "<h>.<domain>", so lego publishes _acme-challenge.<h>.<domain>, where
// the registry looks; the record is removed afterwards.
func TestRegisterEmailIdentifier(t *testing.T) {
	r := startRegistry(t, registryOptions{})
	agentID, token := r.newAgent(t, "alpha")
	c := r.dial(t, token)
	prov := &zoneProvider{publishOn: r.ns, removeFrom: r.ns, timeout: 10 * time.Second, interval: 20 * time.Millisecond}
	// printf '%s' 'alice.smith+id4me' | sha256sum | cut -c1-56
	const dnsName = "42d0feda68886315bce4c8e3768ae05995c214465a4fbca62a41b23e.example.test"
	res, err := c.Register(context.Background(), "alice.smith+id4me@Example.Test", prov)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	if id := res.Identifier; id.GetName() != "alice.smith+id4me@example.test" || id.DnsName != dnsName || id.AgentId != agentID || res.CleanUpErr != nil {
		t.Fatalf("Register = %+v", res)
	}
	if res.Challenge.RecordName != acme.RecordName(dnsName) {
		t.Errorf("challenge record %s, want %s", res.Challenge.RecordName, acme.RecordName(dnsName))
	}
	presented, cleaned := prov.calls()
	if !slices.Equal(presented, []string{dnsName}) || !slices.Equal(cleaned, presented) {
		t.Errorf("Present for %v, CleanUp for %v; want the DNS name %s", presented, cleaned, dnsName)
	}
	for _, ns := range r.ns {
		if serves(t, ns, acme.RecordName(dnsName)) {
			t.Errorf("%s still serves the challenge record", ns.Addr)
		}
	}
	got, err := c.Identifier(context.Background(), "alice.smith+id4me@example.test")
	if err != nil || got.DnsName != dnsName {
		t.Fatalf("Identifier: %v, %v", got, err)
	}
}
