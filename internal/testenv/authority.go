package testenv

import (
	"context"
	"crypto/rand"
	"net/http"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/id4me/id4me-registry/internal/oidctest"
	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
)

// The helpers below need an Env made with Options.Authority.

// EmailClaims is a claims request parameter as ID4me relying parties send it: email,
// essential with a reason, and name.
const EmailClaims = `{"userinfo":{"email":{"essential":true,"reason":"to send your receipts"},"name":null}}`

// StartAgent starts a test agent's claims endpoint and creates the agent with it.
func (e *Env) StartAgent(name string) (Agent, *oidctest.Agent) {
	e.t.Helper()
	ag := oidctest.StartAgent(e.RPClient, e.Issuer, e.Clock.Now)
	e.t.Cleanup(ag.Server.Close)
	e.RPClient.Transport.(*http.Transport).TLSClientConfig.RootCAs.AddCert(ag.Server.Certificate())
	return e.NewAgentAt(name, ag.Issuer, ag.Endpoint), ag
}

// HolderFor registers identifier with agent a and has its holder set a password (and a
// TOTP secret, when withTOTP) through the credential link of the registration.
func (e *Env) HolderFor(a Agent, identifier string, withTOTP bool) *oidctest.Holder {
	e.t.Helper()
	return e.SetCredentials(identifier, e.RegisterForLink(a, identifier), withTOTP)
}

// RegisterForLink registers identifier with agent a and returns the setup credential link.
func (e *Env) RegisterForLink(a Agent, identifier string) string {
	e.t.Helper()
	c := e.ValidChallenge(a, identifier, registryv1.Purpose_PURPOSE_REGISTER)
	resp, err := e.RegistryAPI.RegisterIdentifier(a.Ctx(), &registryv1.RegisterIdentifierRequest{ChallengeId: c.Id})
	if err != nil {
		e.t.Fatalf("RegisterIdentifier: %v", err)
	}
	link := resp.GetCredentialLink()
	if link.GetUrl() == "" || link.GetPurpose() != registryv1.CredentialLink_PURPOSE_SETUP {
		e.t.Fatalf("registration gave credential link %v, want a setup link", link)
	}
	return link.GetUrl()
}

// SetCredentials has the holder of identifier set a new random password (and a TOTP
// secret, when withTOTP) through link, in a browser of its own.
func (e *Env) SetCredentials(identifier, link string, withTOTP bool) *oidctest.Holder {
	e.t.Helper()
	h := &oidctest.Holder{Client: oidctest.HTTPClient(e.Roots, true), Identifier: identifier, Password: "correct horse battery staple " + rand.Text()}
	p, err := h.SetCredentials(link, withTOTP, e.TOTPCode)
	if err != nil || p.Title() != "Your credentials are set" {
		e.t.Fatalf("setting credentials: %v; page %d %q %q", err, p.Status, p.Title(), p.Alert())
	}
	return h
}

// TOTPCode is the current TOTP code of secret by the Env's clock.
func (e *Env) TOTPCode(secret string) string {
	code, err := totp.GenerateCodeCustom(secret, e.Clock.Now(), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		e.t.Fatal(err)
	}
	return code
}

// NewRP registers a relying party with metadata added to (or replacing) the defaults.
func (e *Env) NewRP(metadata map[string]any) *oidctest.RP {
	e.t.Helper()
	rp, err := oidctest.NewRP(context.Background(), e.RPClient, e.Issuer, metadata)
	if err != nil {
		e.t.Fatalf("RP: %v", err)
	}
	return rp
}

// NewID4meRP registers a relying party shaped like the ID4me RP libraries, with metadata
// added to (or replacing) theirs.
func (e *Env) NewID4meRP(extra map[string]any) *oidctest.ID4meRP {
	e.t.Helper()
	rp, err := oidctest.NewID4meRP(e.RPClient, e.Issuer, oidctest.ID4meMetadata(extra))
	if err != nil {
		e.t.Fatalf("ID4me RP: %v", err)
	}
	return rp
}

// Login runs a whole login of h at rp with extra authorization parameters.
func (e *Env) Login(rp *oidctest.RP, h *oidctest.Holder, extra map[string]string) *oidctest.Result {
	e.t.Helper()
	req := rp.AuthRequest(extra)
	cb, p, err := h.Login(req.URL)
	if err != nil {
		e.t.Fatalf("login: %v (page %d %q: %q)", err, p.Status, p.Title(), p.Alert())
	}
	res, err := rp.Finish(req, cb, e.Clock.Now)
	if err != nil {
		e.t.Fatalf("finishing the login: %v", err)
	}
	return res
}
