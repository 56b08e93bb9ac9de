package registry_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/id4me/id4me-registry/registry"
)

// Agents: what an operator may give them, how they authenticate, and what a suspension does.

// pin is a client-certificate pin: 64 hex characters.
func pin(c byte) string { return strings.Repeat(string(c), 64) }

// TestCreateAgent: an agent starts active, with its account key's thumbprint, its display name
// trimmed and its certificate pins in lower case, sorted, each once.
func TestCreateAgent(t *testing.T) {
	w := newWorld(t)
	a, err := w.svc.CreateAgent(w.ctx, operator, registry.AgentSpec{
		DisplayName: "  Alpha Agent ", ClaimsEndpoint: "https://alpha.agent.test/userinfo", Issuer: "https://alpha.agent.test",
		AccountKeyJWK: newAccountKey(t), ClientCertSPKI: []string{pin('B'), " " + pin('a'), pin('b')},
	})
	if err != nil {
		t.Fatal(err)
	}
	if a.DisplayName != "Alpha Agent" || a.State != registry.AgentActive || a.Version != 1 || a.AccountKeyThumbprint == "" ||
		!slices.Equal(a.ClientCertSPKI, []string{pin('a'), pin('b')}) || !strings.HasPrefix(a.ID, registry.AgentIDPrefix) {
		t.Fatalf("created %+v", a)
	}
	if got, err := w.svc.GetAgent(w.ctx, a.ID); err != nil || got.Etag() != a.Etag() {
		t.Fatalf("GetAgent = %+v, %v", got, err)
	}
	if actor, err := w.svc.AuthenticateCertificate(w.ctx, strings.ToUpper(pin('b'))); err != nil || actor.ID != a.ID || actor.Kind != registry.ActorAgent {
		t.Fatalf("AuthenticateCertificate with the pin in upper case = %+v, %v", actor, err)
	}
	if j := w.journal("agent", a.ID); len(j) != 1 || j[0].Action != "agent.create" || j[0].Actor != operator.String() {
		t.Fatalf("journal %+v", j)
	}
	_, err = w.svc.GetAgent(w.ctx, "ag_nosuchagent")
	wantErr(t, err, registry.KindNotFound, "AGENT_NOT_FOUND")
}

// TestAgentSpecRefusals: what CreateAgent and UpdateAgent refuse, field by field.
func TestAgentSpecRefusals(t *testing.T) {
	w := newWorld(t)
	a := w.newAgent("alpha")
	valid := func() registry.AgentSpec {
		return registry.AgentSpec{
			DisplayName: "x", ClaimsEndpoint: "https://x.agent.test/userinfo", Issuer: "https://x.agent.test", AccountKeyJWK: newAccountKey(t),
		}
	}
	const privateKey = `{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}`
	tests := []struct {
		name   string
		field  registry.AgentField
		change func(s *registry.AgentSpec)
		reason string
	}{
		{"a blank display name", registry.AgentFieldDisplayName, func(s *registry.AgentSpec) { s.DisplayName = " \t" }, "DISPLAY_NAME_INVALID"},
		{"a display name of 201 characters", registry.AgentFieldDisplayName, func(s *registry.AgentSpec) { s.DisplayName = strings.Repeat("ü", 201) }, "DISPLAY_NAME_INVALID"},
		{"a display name not in UTF-8", registry.AgentFieldDisplayName, func(s *registry.AgentSpec) { s.DisplayName = "\xff" }, "DISPLAY_NAME_INVALID"},
		{"no claims endpoint", registry.AgentFieldClaimsEndpoint, func(s *registry.AgentSpec) { s.ClaimsEndpoint = "" }, "CLAIMS_ENDPOINT_REQUIRED"},
		{"a claims endpoint over http", registry.AgentFieldClaimsEndpoint, func(s *registry.AgentSpec) { s.ClaimsEndpoint = "http://x.agent.test/userinfo" }, "CLAIMS_ENDPOINT_NOT_HTTPS"},
		{"a claims endpoint on loopback", registry.AgentFieldClaimsEndpoint, func(s *registry.AgentSpec) { s.ClaimsEndpoint = "https://127.0.0.1/userinfo" }, "CLAIMS_ENDPOINT_PRIVATE_ADDRESS"},
		{"a relative issuer", registry.AgentFieldIssuer, func(s *registry.AgentSpec) { s.Issuer = "/issuer" }, "ISSUER_MALFORMED"},
		{"an issuer with user information", registry.AgentFieldIssuer, func(s *registry.AgentSpec) { s.Issuer = "https://u:p@x.agent.test" }, "ISSUER_USERINFO"},
		{"an issuer on localhost", registry.AgentFieldIssuer, func(s *registry.AgentSpec) { s.Issuer = "https://localhost" }, "ISSUER_PRIVATE_ADDRESS"},
		{"a private account key", registry.AgentFieldAccountKey, func(s *registry.AgentSpec) { s.AccountKeyJWK = privateKey }, "ACCOUNT_KEY_INVALID"},
		{"no account key", registry.AgentFieldAccountKey, func(s *registry.AgentSpec) { s.AccountKeyJWK = "" }, "ACCOUNT_KEY_INVALID"},
		{"a short pin", registry.AgentFieldClientCerts, func(s *registry.AgentSpec) { s.ClientCertSPKI = []string{"abc"} }, "CLIENT_CERT_PIN_INVALID"},
		{"a pin not in hex", registry.AgentFieldClientCerts, func(s *registry.AgentSpec) { s.ClientCertSPKI = []string{pin('g')} }, "CLIENT_CERT_PIN_INVALID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := valid()
			tt.change(&s)
			_, err := w.svc.CreateAgent(w.ctx, operator, s)
			wantErr(t, err, registry.KindInvalidArgument, tt.reason)
			before := w.agent(a)
			_, err = w.svc.UpdateAgent(w.ctx, operator, a.ID, s, []registry.AgentField{tt.field}, "")
			wantErr(t, err, registry.KindInvalidArgument, tt.reason)
			if after := w.agent(a); after.Version != before.Version {
				t.Fatalf("a refused update changed the agent to version %d", after.Version)
			}
		})
	}
	t.Run("dev mode accepts local endpoints", func(t *testing.T) {
		dev := w.instance(func(c *registry.Config) { c.AllowLocalEndpoints = true })
		s := valid()
		s.ClaimsEndpoint, s.Issuer = "http://127.0.0.1:8080/userinfo", "https://localhost:8443"
		if _, err := dev.CreateAgent(w.ctx, operator, s); err != nil {
			t.Fatalf("CreateAgent in dev mode: %v", err)
		}
		s.ClaimsEndpoint = "http://agent.example/userinfo"
		_, err := dev.CreateAgent(w.ctx, operator, s)
		wantErr(t, err, registry.KindInvalidArgument, "CLAIMS_ENDPOINT_NOT_HTTPS")
	})
	t.Run("update mask", func(t *testing.T) {
		_, err := w.svc.UpdateAgent(w.ctx, operator, a.ID, valid(), nil, "")
		wantErr(t, err, registry.KindInvalidArgument, "UPDATE_MASK_REQUIRED")
		_, err = w.svc.UpdateAgent(w.ctx, operator, a.ID, valid(), []registry.AgentField{"id"}, "")
		wantErr(t, err, registry.KindInvalidArgument, "UPDATE_MASK_INVALID")
		_, err = w.svc.UpdateAgent(w.ctx, operator, a.ID, registry.AgentSpec{State: "retired"}, []registry.AgentField{registry.AgentFieldState}, "")
		wantErr(t, err, registry.KindInvalidArgument, "AGENT_STATE_INVALID")
		_, err = w.svc.UpdateAgent(w.ctx, operator, "ag_nosuchagent", valid(), []registry.AgentField{registry.AgentFieldDisplayName}, "")
		wantErr(t, err, registry.KindNotFound, "AGENT_NOT_FOUND")
	})
}

// TestUpdateAgent: UpdateAgent changes the fields named and nothing else; a new account key
// is what new challenges are bound to.
func TestUpdateAgent(t *testing.T) {
	w := newWorld(t)
	a := w.newAgent("alpha")
	before := w.agent(a)
	old := w.challenge(a, alice, registry.PurposeRegister)
	key := newAccountKey(t)
	got, err := w.svc.UpdateAgent(w.ctx, operator, a.ID, registry.AgentSpec{
		DisplayName: "ignored", AccountKeyJWK: key, ClientCertSPKI: []string{pin('C')},
	}, []registry.AgentField{registry.AgentFieldAccountKey, registry.AgentFieldClientCerts}, before.Etag())
	if err != nil {
		t.Fatal(err)
	}
	if got.DisplayName != before.DisplayName || got.AccountKeyJWK != key || got.AccountKeyThumbprint == before.AccountKeyThumbprint ||
		!slices.Equal(got.ClientCertSPKI, []string{pin('c')}) || got.Version != 2 || got.LinkGeneration != before.LinkGeneration {
		t.Fatalf("updated %+v from %+v", got, before)
	}
	if c := w.challenge(a, alice, registry.PurposeRegister); !strings.HasSuffix(c.KeyAuthorization, "."+got.AccountKeyThumbprint) {
		t.Fatalf("a new challenge's key authorization %q is not bound to the new key", c.KeyAuthorization)
	}
	if !strings.HasSuffix(old.KeyAuthorization, "."+before.AccountKeyThumbprint) {
		t.Fatalf("an older challenge's key authorization %q changed", old.KeyAuthorization)
	}
	if j := w.journal("agent", a.ID); j[len(j)-1].Action != "agent.update" {
		t.Fatalf("journal %v", actions(j))
	}
}

// TestSuspension: a suspended agent cannot authenticate, by token or certificate, from the
// moment it is suspended; the credential links it asked for are void for good; resuming lets
// it in again.
func TestSuspension(t *testing.T) {
	w := newWorld(t)
	created, err := w.svc.CreateAgent(w.ctx, operator, registry.AgentSpec{
		DisplayName: "alpha", ClaimsEndpoint: "https://alpha.agent.test/userinfo", Issuer: "https://alpha.agent.test",
		AccountKeyJWK: newAccountKey(t), ClientCertSPKI: []string{pin('a')},
	})
	if err != nil {
		t.Fatal(err)
	}
	a := registry.Actor{Kind: registry.ActorAgent, ID: created.ID}
	_, bearer, err := w.svc.CreateAgentToken(w.ctx, operator, a.ID, "ci")
	if err != nil {
		t.Fatal(err)
	}
	authenticate := func() (error, error) {
		_, byToken := w.svc.AuthenticateBearer(w.ctx, bearer)
		_, byCert := w.svc.AuthenticateCertificate(w.ctx, pin('a'))
		return byToken, byCert
	}
	// Authenticated once, each answer is cached.
	if byToken, byCert := authenticate(); byToken != nil || byCert != nil {
		t.Fatalf("an active agent: %v, %v", byToken, byCert)
	}
	w.register(a, alice)
	generation := w.agent(a).LinkGeneration

	suspended := w.setAgentState(a, registry.AgentSuspended)
	if suspended.LinkGeneration != generation+1 {
		t.Fatalf("link generation %d after the suspension, want %d", suspended.LinkGeneration, generation+1)
	}
	byToken, byCert := authenticate()
	wantErr(t, byToken, registry.KindPermissionDenied, "AGENT_SUSPENDED")
	wantErr(t, byCert, registry.KindPermissionDenied, "AGENT_SUSPENDED")
	_, err = w.svc.CreateCredentialLink(w.ctx, a, alice, registry.CredentialLinkReset)
	wantErr(t, err, registry.KindFailedPrecondition, "SPONSOR_SUSPENDED")

	// Suspending again changes nothing more.
	if again := w.setAgentState(a, registry.AgentSuspended); again.LinkGeneration != suspended.LinkGeneration {
		t.Fatalf("a second suspension advanced the link generation to %d", again.LinkGeneration)
	}
	resumed := w.setAgentState(a, registry.AgentActive)
	if resumed.LinkGeneration != suspended.LinkGeneration {
		t.Fatalf("resuming moved the link generation to %d, want %d: it must not revive old links", resumed.LinkGeneration, suspended.LinkGeneration)
	}
	if byToken, byCert := authenticate(); byToken != nil || byCert != nil {
		t.Fatalf("a resumed agent: %v, %v", byToken, byCert)
	}
	want := []string{"agent.create", "agent.suspend", "agent.update", "agent.resume"}
	if got := actions(w.journal("agent", a.ID)); !slices.Equal(got, want) {
		t.Fatalf("journal %v, want %v", got, want)
	}
}

// TestAgentTokens: an agent token authenticates its agent until revoked; its secret is shown
// once and kept only as a hash.
func TestAgentTokens(t *testing.T) {
	w := newWorld(t)
	a, b := w.newAgent("alpha"), w.newAgent("beta")
	tok, bearer, err := w.svc.CreateAgentToken(w.ctx, operator, a.ID, "deploy")
	if err != nil {
		t.Fatal(err)
	}
	id, secret, ok := strings.Cut(bearer, ".")
	if !ok || id != tok.ID || !strings.HasPrefix(id, registry.AgentTokenPrefix) || len(secret) < 43 || tok.AgentID != a.ID || tok.Revoked() {
		t.Fatalf("token %+v with bearer %q", tok, bearer)
	}
	actor, err := w.svc.AuthenticateBearer(w.ctx, bearer)
	if err != nil || actor != (registry.Actor{Kind: registry.ActorAgent, ID: a.ID, CredentialID: tok.ID}) {
		t.Fatalf("AuthenticateBearer = %+v, %v", actor, err)
	}
	for _, entry := range w.journal("agent_token", tok.ID) {
		if strings.Contains(entry.After, secret) || strings.Contains(entry.Before, secret) {
			t.Fatal("the journal holds the token's secret")
		}
	}
	refusals := []struct {
		name, bearer, reason string
	}{
		{"not a bearer value", "nonsense", "CREDENTIAL_MALFORMED"},
		{"no secret", tok.ID + ".", "CREDENTIAL_MALFORMED"},
		{"another prefix", "xx_" + strings.TrimPrefix(bearer, registry.AgentTokenPrefix), "CREDENTIAL_MALFORMED"},
		{"an unknown token", registry.AgentTokenPrefix + "nosuchtoken." + secret, "CREDENTIAL_INVALID"},
		{"a wrong secret", tok.ID + ".wrong", "CREDENTIAL_INVALID"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			_, err := w.svc.AuthenticateBearer(w.ctx, tt.bearer)
			wantErr(t, err, registry.KindUnauthenticated, tt.reason)
		})
	}

	_, err = w.svc.RevokeAgentToken(w.ctx, operator, b.ID, tok.ID)
	wantErr(t, err, registry.KindNotFound, "CREDENTIAL_NOT_FOUND")
	revoked, err := w.svc.RevokeAgentToken(w.ctx, operator, a.ID, tok.ID)
	if err != nil || !revoked.RevokeTime.Equal(w.clock.Now()) {
		t.Fatalf("RevokeAgentToken = %+v, %v", revoked, err)
	}
	_, err = w.svc.AuthenticateBearer(w.ctx, bearer)
	wantErr(t, err, registry.KindUnauthenticated, "CREDENTIAL_REVOKED")
	w.clock.Advance(time.Second)
	if again, err := w.svc.RevokeAgentToken(w.ctx, operator, a.ID, tok.ID); err != nil || !again.RevokeTime.Equal(revoked.RevokeTime) {
		t.Fatalf("revoking again = %+v, %v; want it as it was", again, err)
	}
	if got := actions(w.journal("agent_token", tok.ID)); !slices.Equal(got, []string{"agent_token.create", "agent_token.revoke"}) {
		t.Fatalf("journal %v", got)
	}
	list, err := w.svc.ListAgentTokens(w.ctx, a.ID)
	if err != nil || len(list) != 1 || list[0].ID != tok.ID || !list[0].Revoked() {
		t.Fatalf("ListAgentTokens = %+v, %v", list, err)
	}

	_, _, err = w.svc.CreateAgentToken(w.ctx, operator, "", "no agent")
	wantErr(t, err, registry.KindInvalidArgument, "AGENT_ID_REQUIRED")
	_, _, err = w.svc.CreateAgentToken(w.ctx, operator, "ag_nosuchagent", "")
	wantErr(t, err, registry.KindNotFound, "AGENT_NOT_FOUND")
	_, _, err = w.svc.CreateAgentToken(w.ctx, operator, a.ID, strings.Repeat("d", 201))
	wantErr(t, err, registry.KindInvalidArgument, "DESCRIPTION_TOO_LONG")
	_, err = w.svc.ListAgentTokens(w.ctx, "ag_nosuchagent")
	wantErr(t, err, registry.KindNotFound, "AGENT_NOT_FOUND")
	_, err = w.svc.AuthenticateCertificate(w.ctx, pin('f'))
	wantErr(t, err, registry.KindUnauthenticated, "CLIENT_CERT_UNKNOWN")
}

// TestOperatorCredentials: operator credentials authenticate operators; the last one not
// revoked cannot be revoked, so that someone can always reach the AdminService.
func TestOperatorCredentials(t *testing.T) {
	w := newWorld(t)
	first, bearer, err := w.svc.CreateOperatorCredential(w.ctx, registry.System, "bootstrap")
	if err != nil {
		t.Fatal(err)
	}
	if actor, err := w.svc.AuthenticateBearer(w.ctx, bearer); err != nil || actor.Kind != registry.ActorOperator || actor.ID != first.ID {
		t.Fatalf("AuthenticateBearer = %+v, %v; want the operator", actor, err)
	}
	_, err = w.svc.RevokeOperatorCredential(w.ctx, operator, first.ID)
	wantErr(t, err, registry.KindFailedPrecondition, "LAST_OPERATOR_CREDENTIAL")
	second, _, err := w.svc.CreateOperatorCredential(w.ctx, operator, "replacement")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.RevokeOperatorCredential(w.ctx, operator, first.ID); err != nil {
		t.Fatalf("revoking with another left: %v", err)
	}
	_, err = w.svc.AuthenticateBearer(w.ctx, bearer)
	wantErr(t, err, registry.KindUnauthenticated, "CREDENTIAL_REVOKED")
	_, err = w.svc.RevokeOperatorCredential(w.ctx, operator, second.ID)
	wantErr(t, err, registry.KindFailedPrecondition, "LAST_OPERATOR_CREDENTIAL")
	if n, err := w.svc.CountOperators(w.ctx); err != nil || n != 2 {
		t.Fatalf("CountOperators = %d, %v; want 2, the revoked one included", n, err)
	}
	a := w.newAgent("alpha")
	tok, _, err := w.svc.CreateAgentToken(w.ctx, operator, a.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.svc.RevokeOperatorCredential(w.ctx, operator, tok.ID)
	wantErr(t, err, registry.KindNotFound, "CREDENTIAL_NOT_FOUND")
	_, err = w.svc.RevokeOperatorCredential(w.ctx, operator, "")
	wantErr(t, err, registry.KindInvalidArgument, "CREDENTIAL_ID_REQUIRED")
}
