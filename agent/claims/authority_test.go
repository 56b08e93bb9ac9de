package claims_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/id4me/id4me-registry/agent/accesstoken"
	"github.com/id4me/id4me-registry/agent/claims"
	"github.com/id4me/id4me-registry/internal/oidctest"
	"github.com/id4me/id4me-registry/internal/testenv"
)

// startAgent serves a claims.Server for the authority of e on a TLS server the RPs and the
// authority trust, and creates the agent with its claims endpoint.
func startAgent(t *testing.T, e *testenv.Env, name string) (testenv.Agent, *claims.Server) {
	t.Helper()
	var handler http.Handler
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	e.RPClient.Transport.(*http.Transport).TLSClientConfig.RootCAs.AddCert(srv.Certificate())
	keys, err := claims.NewKeySet(claims.KeySetOptions{Now: e.Clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	s, err := claims.NewServer(claims.Config{
		Issuer:   srv.URL,
		Verifier: accesstoken.NewLazy(e.RPClient, e.Issuer, srv.URL, accesstoken.WithClock(e.Clock.Now)),
		Source:   holders, Keys: keys, Now: e.Clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	handler = s
	return e.NewAgentAt(name, srv.URL, s.ClaimsEndpoint), s
}

// TestClaimsWithTheAuthority: a holder logs in at an RP through the real authority; the RP
// follows _claim_sources to the agent's claims.Server and verifies its signed answer, which
// holds the claims consented to and nothing else; another agent refuses the token.
func TestClaimsWithTheAuthority(t *testing.T) {
	if testing.Short() {
		t.Skip("a login through the registry and the authority: skipped under -short")
	}
	e := testenv.New(t, testenv.Options{Authority: true})
	alpha, alphaServer := startAgent(t, e, "alpha")
	_, betaServer := startAgent(t, e, "beta")
	h := e.HolderFor(alpha, "alice.example.test", false)
	rp := e.NewRP(nil)

	res := e.Login(rp, h, map[string]string{"claims": testenv.EmailClaims})
	src, _ := res.Userinfo["_claim_sources"].(map[string]any)["src1"].(map[string]any)
	if src["endpoint"] != alphaServer.ClaimsEndpoint {
		t.Fatalf("_claim_sources %v, want alpha's endpoint %s", src, alphaServer.ClaimsEndpoint)
	}
	token := src["access_token"].(string)
	sub := res.Userinfo["sub"].(string)
	answer, err := oidctest.FetchAgentClaims(e.RPClient, alphaServer.ClaimsEndpoint, token, sub,
		oidctest.AgentCheck{ClientID: rp.OAuth.ClientID, Now: e.Clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for k := range answer.Claims {
		names = append(names, k)
	}
	slices.Sort(names)
	want := []string{"aud", "email", "exp", "iat", "id4me.identifier", "id4me.identity", "iss", "name", "sub"}
	if !answer.Signed || !slices.Equal(names, want) || answer.Claims["email"] != "alice@example.test" ||
		answer.Claims["iss"] != strings.TrimSuffix(alphaServer.ClaimsEndpoint, claims.ClaimsPath) ||
		answer.Claims["id4me.identity"] != e.Issuer+"#"+sub {
		t.Fatalf("answer (signed %v) %v, want the claims %v", answer.Signed, answer.Claims, want)
	}

	_, err = oidctest.FetchAgentClaims(e.RPClient, betaServer.ClaimsEndpoint, token, sub, oidctest.AgentCheck{ClientID: rp.OAuth.ClientID, Now: e.Clock.Now})
	herr, ok := err.(*oidctest.HTTPError)
	if !ok || herr.Status != http.StatusUnauthorized || !strings.Contains(herr.WWWAuthenticate, `error="invalid_token"`) {
		t.Fatalf("alpha's token at beta: %v, want 401 invalid_token", err)
	}
}
