package server_test

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
	"github.com/id4me/id4me-registry/registry"
)

// refusedEndpoints are claims endpoints no agent may set outside dev mode, each with the rule
// (the reason's suffix) it breaks.
var refusedEndpoints = []struct{ url, rule string }{
	{"https://169.254.169.254/latest/meta-data/", "PRIVATE_ADDRESS"},
	{"https://10.0.0.1/userinfo", "PRIVATE_ADDRESS"},
	{"https://172.16.3.4/", "PRIVATE_ADDRESS"},
	{"https://192.168.1.1:8443/", "PRIVATE_ADDRESS"},
	{"https://127.0.0.1/", "PRIVATE_ADDRESS"},
	{"https://127.9.9.9/", "PRIVATE_ADDRESS"},
	{"https://0.0.0.0/", "PRIVATE_ADDRESS"},
	{"https://0.1.2.3/", "PRIVATE_ADDRESS"},
	{"https://100.64.0.1/", "PRIVATE_ADDRESS"},
	{"https://224.0.0.1/", "PRIVATE_ADDRESS"},
	{"https://255.255.255.255/", "PRIVATE_ADDRESS"},
	{"https://[::1]/", "PRIVATE_ADDRESS"},
	{"https://[::]/", "PRIVATE_ADDRESS"},
	{"https://[fe80::1%25eth0]/", "PRIVATE_ADDRESS"},
	{"https://[fe80::1]/", "PRIVATE_ADDRESS"},
	{"https://[fd00::1]/", "PRIVATE_ADDRESS"},
	{"https://[ff02::1]/", "PRIVATE_ADDRESS"},
	{"https://[::ffff:169.254.169.254]/", "PRIVATE_ADDRESS"},
	{"https://[::ffff:127.0.0.1]/", "PRIVATE_ADDRESS"},
	{"https://[64:ff9b::a00:1]/", "PRIVATE_ADDRESS"},
	{"https://[2002:c0a8:101::1]/", "PRIVATE_ADDRESS"},
	{"https://localhost/", "PRIVATE_ADDRESS"},
	{"https://api.localhost./", "PRIVATE_ADDRESS"},
	{"https://127.1/", "MALFORMED"},
	{"https://0x7f.0.0.1/", "MALFORMED"},
	{"https://2130706433/", "MALFORMED"},
	{"http://agent.example/userinfo", "NOT_HTTPS"},
	{"http://127.0.0.1/userinfo", "NOT_HTTPS"},
	{"ftp://agent.example/", "NOT_HTTPS"},
	{"https://agent.example:0/", "PORT_INVALID"},
	{"https://agent.example:65536/", "PORT_INVALID"},
	{"https://user:pw@agent.example/", "USERINFO"},
	{"https://agent.example/userinfo#x", "FRAGMENT"},
	{"https:///userinfo", "MALFORMED"},
}

// acceptedEndpoints are claims endpoints on public addresses and names.
var acceptedEndpoints = []string{
	"https://agent.example/userinfo",
	"https://agent.example:8443/claims?tenant=1",
	"https://8.8.8.8/",
	"https://[2001:4860:4860::8888]/",
	"https://[::ffff:8.8.8.8]/",
	"https://agent-1.example/",
}

// TestClaimsEndpointsCannotPointIntoPrivateNetworks: outside dev mode, no agent or identifier
// gets a claims endpoint (nor an agent an issuer) that would send relying parties into their
// own network, whichever call sets it: CreateAgent, UpdateAgent, RegisterIdentifier and
// UpdateIdentifier. Nothing is stored.
func TestClaimsEndpointsCannotPointIntoPrivateNetworks(t *testing.T) {
	e := newEnv(t, envOptions{})
	a := e.newAgent("alpha")
	e.register(a, "alice.example.test")
	before := a.agent.ClaimsEndpoint
	regChallenge := e.validChallenge(a, "bob.example.test")
	for _, tc := range refusedEndpoints {
		t.Run(tc.url, func(t *testing.T) {
			req := &registryv1.CreateAgentRequest{
				DisplayName: "x", ClaimsEndpoint: tc.url, Issuer: "https://x.example",
				AccountKeyJwk: `{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}`,
			}
			_, err := e.adminAPI.CreateAgent(as(e.admin), req)
			wantStatus(t, err, codes.InvalidArgument, "CLAIMS_ENDPOINT_"+tc.rule)
			req.ClaimsEndpoint, req.Issuer = "https://x.example/userinfo", tc.url
			_, err = e.adminAPI.CreateAgent(as(e.admin), req)
			wantStatus(t, err, codes.InvalidArgument, "ISSUER_"+tc.rule)

			_, err = e.adminAPI.UpdateAgent(as(e.admin), &registryv1.UpdateAgentRequest{
				Agent:      &registryv1.Agent{Id: a.agent.Id, ClaimsEndpoint: tc.url},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"claims_endpoint"}},
			})
			wantStatus(t, err, codes.InvalidArgument, "CLAIMS_ENDPOINT_"+tc.rule)
			_, err = e.adminAPI.UpdateAgent(as(e.admin), &registryv1.UpdateAgentRequest{
				Agent:      &registryv1.Agent{Id: a.agent.Id, Issuer: tc.url},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"issuer"}},
			})
			wantStatus(t, err, codes.InvalidArgument, "ISSUER_"+tc.rule)

			_, err = e.registry.UpdateIdentifier(a.ctx(), &registryv1.UpdateIdentifierRequest{
				Identifier: &registryv1.Identifier{Name: "alice.example.test", ClaimsEndpoint: tc.url},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"claims_endpoint"}},
			})
			wantStatus(t, err, codes.InvalidArgument, "CLAIMS_ENDPOINT_"+tc.rule)
			_, err = e.registry.RegisterIdentifier(a.ctx(), &registryv1.RegisterIdentifierRequest{ChallengeId: regChallenge.Id, ClaimsEndpoint: tc.url})
			wantStatus(t, err, codes.InvalidArgument, "CLAIMS_ENDPOINT_"+tc.rule)
		})
	}
	// Nothing changed: one agent, its endpoints, alice's override, and bob unregistered.
	if n := e.countRows("agents", ""); n != 1 {
		t.Errorf("%d agents stored, want 1", n)
	}
	got, err := e.adminAPI.GetAgent(as(e.admin), &registryv1.GetAgentRequest{Id: a.agent.Id})
	if err != nil || got.ClaimsEndpoint != before || got.Issuer != a.agent.Issuer {
		t.Errorf("agent after refusals: %v, %v; want it unchanged", got, err)
	}
	if i := e.identifier("alice.example.test"); i.ClaimsEndpoint != "" {
		t.Errorf("alice's claims endpoint = %q, want none", i.ClaimsEndpoint)
	}
	if e.identifier("bob.example.test") != nil {
		t.Error("bob.example.test was registered with a refused claims endpoint")
	}

	for _, u := range acceptedEndpoints {
		t.Run(u, func(t *testing.T) {
			i, err := e.registry.UpdateIdentifier(a.ctx(), &registryv1.UpdateIdentifierRequest{
				Identifier: &registryv1.Identifier{Name: "alice.example.test", ClaimsEndpoint: u},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"claims_endpoint"}},
			})
			if err != nil || i.ClaimsEndpoint != u {
				t.Fatalf("UpdateIdentifier(%s) = %v, %v; want it set", u, i, err)
			}
			if _, err := e.adminAPI.UpdateAgent(as(e.admin), &registryv1.UpdateAgentRequest{
				Agent:      &registryv1.Agent{Id: a.agent.Id, ClaimsEndpoint: u, Issuer: u},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"claims_endpoint", "issuer"}},
			}); err != nil {
				t.Fatalf("UpdateAgent(%s): %v", u, err)
			}
		})
	}
}

// TestDevModeAcceptsLocalEndpoints: with --dev (Config.AllowLocalEndpoints) agents running
// beside the registry may use loopback and private addresses, and http on loopback; what is
// malformed stays refused.
func TestDevModeAcceptsLocalEndpoints(t *testing.T) {
	e := newEnv(t, envOptions{Configure: func(c *registry.Config) { c.AllowLocalEndpoints = true }})
	a := e.newAgentAt("alpha", "http://127.0.0.1:9000", "http://localhost:9000/userinfo")
	e.register(a, "alice.example.test")
	for _, u := range []string{"https://10.0.0.1/", "https://[::1]:8443/", "http://[::1]/", "https://localhost/", "https://169.254.169.254/"} {
		if _, err := e.registry.UpdateIdentifier(a.ctx(), &registryv1.UpdateIdentifierRequest{
			Identifier: &registryv1.Identifier{Name: "alice.example.test", ClaimsEndpoint: u},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"claims_endpoint"}},
		}); err != nil {
			t.Errorf("dev mode refused %s: %v", u, err)
		}
	}
	for _, tc := range []struct{ url, reason string }{
		{"http://10.0.0.1/", "CLAIMS_ENDPOINT_NOT_HTTPS"},
		{"https://user@localhost/", "CLAIMS_ENDPOINT_USERINFO"},
		{"https://localhost:0/", "CLAIMS_ENDPOINT_PORT_INVALID"},
	} {
		_, err := e.registry.UpdateIdentifier(a.ctx(), &registryv1.UpdateIdentifierRequest{
			Identifier: &registryv1.Identifier{Name: "alice.example.test", ClaimsEndpoint: tc.url},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"claims_endpoint"}},
		})
		wantStatus(t, err, codes.InvalidArgument, tc.reason)
	}
}
