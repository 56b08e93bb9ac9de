package e2e

import (
	"context"
	"html"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/id4me/id4me-registry/internal/oidctest"
	"github.com/id4me/id4me-registry/internal/testenv"
	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
)

// TestEmailIdentifierEndToEnd: an e-mail-form identifier is registered through the DNS
// challenge at _acme-challenge.<h>.<domain> on loopback DNS, GetIdentifier shows it with its
// DNS name, the periodic check reads its _openid record at _openid.<h>.<domain>, and its holder
// logs in at a relying party by typing local@domain: the ID token and the agent's access token
// carry the e-mail form as id4me.identifier, and the RP reaches the agent's claims.
func TestEmailIdentifierEndToEnd(t *testing.T) {
	long(t, "an e-mail-form identifier registered, checked and logged in with")
	e := testenv.New(t, testenv.Options{Authority: true})
	agent, claims := e.StartAgent("alpha")
	const (
		typed     = "alice.smith+id4me@Example.TEST."
		canonical = "alice.smith+id4me@example.test"
	)

	// The first 56 hex digits of SHA-256("alice.smith+id4me"), written out.
	const dnsName = "42d0feda68886315bce4c8e3768ae05995c214465a4fbca62a41b23e.example.test"
	c, err := e.RegistryAPI.CreateChallenge(agent.Ctx(), &registryv1.CreateChallengeRequest{Identifier: typed, Purpose: registryv1.Purpose_PURPOSE_REGISTER})
	if err != nil {
		t.Fatal(err)
	}
	if c.Identifier != canonical || c.DnsName != dnsName || c.RecordName != "_acme-challenge."+dnsName+"." {
		t.Fatalf("challenge for %s, DNS name %s, record %s; want %s, %s, _acme-challenge.%s.", c.Identifier, c.DnsName, c.RecordName, canonical, dnsName, dnsName)
	}
	// Published where an agent's lego provider would, given the DNS name.
	for _, ns := range e.NS {
		ns.Add("_acme-challenge." + dnsName + `. 60 IN TXT "` + c.RecordValue + `"`)
	}
	v, err := e.RegistryAPI.VerifyChallenge(agent.Ctx(), &registryv1.VerifyChallengeRequest{Id: c.Id})
	if err != nil || v.Status != registryv1.Challenge_STATUS_VALID {
		t.Fatalf("VerifyChallenge = %v, %v", v, err)
	}
	reg, err := e.RegistryAPI.RegisterIdentifier(agent.Ctx(), &registryv1.RegisterIdentifierRequest{ChallengeId: c.Id})
	if err != nil {
		t.Fatal(err)
	}
	if id := reg.Identifier; id.Name != canonical || id.DnsName != dnsName || id.UnicodeName != canonical {
		t.Fatalf("registered %v", id)
	}

	// Read in any form of the domain; the local part is the one typed.
	got, err := e.RegistryAPI.GetIdentifier(agent.Ctx(), &registryv1.GetIdentifierRequest{Identifier: "alice.smith+id4me@EXAMPLE.test"})
	if err != nil || got.Name != canonical || got.DnsName != dnsName {
		t.Fatalf("GetIdentifier = %v, %v; want %s with DNS name %s", got, err, canonical, dnsName)
	}
	for _, other := range []string{"Alice.Smith+id4me@example.test", dnsName} {
		_, err = e.RegistryAPI.GetIdentifier(agent.Ctx(), &registryv1.GetIdentifierRequest{Identifier: other})
		if st, _ := status.FromError(err); st.Code() != codes.NotFound {
			t.Fatalf("GetIdentifier(%s) = %v, want NOT_FOUND", other, err)
		}
	}
	res, err := e.ResolverAPI.ResolveIdentifier(testenv.As(e.Operator), &registryv1.ResolveIdentifierRequest{Identifier: canonical})
	if err != nil || res.Identifier != canonical || res.DnsName != dnsName {
		t.Fatalf("ResolveIdentifier = %v, %v", res, err)
	}

	// The periodic check reads the record relying parties look up.
	for _, ns := range e.NS {
		ns.Add("_openid." + dnsName + `. 60 IN TXT "v=OID1;iss=id.example.test;clp=` + strings.TrimPrefix(claims.Issuer, "https://") + `"`)
	}
	e.Clock.Advance(24 * time.Hour)
	if n, err := e.Svc.SweepOpenID(context.Background()); err != nil || n != 1 {
		t.Fatalf("SweepOpenID = %d, %v; want 1 check", n, err)
	}
	got, err = e.RegistryAPI.GetIdentifier(agent.Ctx(), &registryv1.GetIdentifierRequest{Identifier: canonical})
	if err != nil || got.OpenidRecord.GetStatus() != registryv1.OpenIDRecordCheck_STATUS_MATCHES {
		t.Fatalf("openid record check = %v, %v; want MATCHES", got.GetOpenidRecord(), err)
	}
	asked := false
	for _, q := range e.NS[0].Queries() {
		asked = asked || q.Name == "_openid."+dnsName+"."
	}
	if !asked {
		t.Fatalf("the nameserver was not asked for _openid.%s.", dnsName)
	}

	// The holder sets credentials through the registration's link and logs in by typing the
	// e-mail form, as an ID4me RP's login_hint suggests it.
	h := e.SetCredentials(canonical, reg.GetCredentialLink().GetUrl(), false)
	claims.Claims[canonical] = map[string]any{"email": "alice.smith@example.test", "name": "Alice"}
	rp := e.NewRP(map[string]any{"client_name": "Shop"})
	req := rp.AuthRequest(map[string]string{"claims": testenv.EmailClaims, "login_hint": canonical})
	first, err := oidctest.HTTPClient(e.Roots, true).Get(req.URL)
	if err != nil {
		t.Fatal(err)
	}
	page, err := io.ReadAll(first.Body)
	first.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(html.UnescapeString(string(page)), `value="`+canonical+`"`) {
		t.Fatalf("the login page does not offer the login_hint %s:\n%s", canonical, page)
	}
	result := e.Login(rp, h, map[string]string{"claims": testenv.EmailClaims, "login_hint": canonical})
	if result.Claims["id4me.identifier"] != canonical {
		t.Fatalf("ID token id4me.identifier = %v, want %s", result.Claims["id4me.identifier"], canonical)
	}
	distributed, err := rp.DistributedClaims(result.Userinfo)
	if err != nil {
		t.Fatal(err)
	}
	if distributed["email"] != "alice.smith@example.test" || distributed["name"] != "Alice" {
		t.Fatalf("distributed claims %v", distributed)
	}
	toks := claims.Tokens()
	if len(toks) != 1 || toks[0]["id4me.identifier"] != canonical || toks[0]["sub"] != result.Claims["sub"] {
		t.Fatalf("agent access tokens %v, want one for %s", toks, canonical)
	}

	// The session answers a login_hint of the same identifier in another form of its domain,
	// and not one whose local part differs in case: that is another identifier.
	again := rp.AuthRequest(map[string]string{"prompt": "none", "login_hint": "alice.smith+id4me@EXAMPLE.test."})
	p, err := h.Get(again.URL)
	if !strings.HasPrefix(p.URL, oidctest.RedirectURI+"?code=") {
		t.Fatalf("prompt=none with the session's identifier as login_hint: %v %s, want a code", err, p.URL)
	}
	other := rp.AuthRequest(map[string]string{"prompt": "none", "login_hint": "Alice.Smith+id4me@example.test"})
	p, err = h.Get(other.URL)
	oidctest.WantCallbackError(t, p, err, e.Issuer, oidctest.RedirectURI, other.State, "login_required")
}
