package authority_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/id4me/id4me-registry/authority"
	"github.com/id4me/id4me-registry/dnsverify"
	"github.com/id4me/id4me-registry/internal/dbtest"
	"github.com/id4me/id4me-registry/internal/fakeclock"
	"github.com/id4me/id4me-registry/internal/oidctest"
	"github.com/id4me/id4me-registry/registry"
	"github.com/id4me/id4me-registry/sqlstore"
)

// clock is the settable clock the authority's tests run on.
type clock = fakeclock.Clock

func newClock() *clock { return fakeclock.New(time.Date(2030, 1, 2, 3, 4, 5, 678000, time.UTC)) }

// logBuffer collects JSON log lines from many goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// count returns how many of the lines have the message msg.
func (l *logBuffer) count(msg string) int {
	n := 0
	for line := range strings.Lines(l.String()) {
		var rec struct{ Msg string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == msg {
			n++
		}
	}
	return n
}

// authEnv is an authority serving its Handler on a real HTTPS listener on loopback (its
// issuer), on its store from sqlstore, with the registry beside it as the binary wires
// them, without gRPC: a registry.Service on the same store, whose Resolver the authority
// reads and which asks the authority for credential links. The registry's DNS checks pass
// (passingDNS): registering an identifier is a step of the tests' setup, not what they test.
type authEnv struct {
	t     *testing.T
	clock *clock
	logs  *logBuffer
	store *sqlstore.Store
	// resolver is the mapping the authority reads, shared with registry.
	resolver *registry.Resolver
	registry *registry.Service
	// auth is the authority, for what no endpoint starts (SendBackchannelLogouts, Run).
	auth   *authority.Authority
	issuer string
	// roots trust the authority's and the test agents' certificates.
	roots *x509.CertPool
	// rpClient is the relying parties' and agents' client; oidctest.HTTPClient(e.roots,
	// true) makes holders' browsers.
	rpClient *http.Client
}

// envOptions changes what newAuthEnv makes.
type envOptions struct {
	// dsn picks the database; default an in-memory SQLite database of the test's own.
	dsn func(t testing.TB) string
	// configureAuthority, if set, changes the authority's configuration before it is made.
	configureAuthority func(*authority.Config)
	// configureKeys, if set, changes the configuration of the authority's signing keys.
	configureKeys func(*authority.KeyConfig)
}

func newAuthEnv(t *testing.T, opts envOptions) *authEnv {
	t.Helper()
	ctx := context.Background()
	e := &authEnv{t: t, clock: fakeclock.New(time.Now().UTC()), logs: &logBuffer{}}
	dsn := ":memory:"
	if opts.dsn != nil {
		dsn = opts.dsn(t)
	}
	log := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	store, err := sqlstore.Open(ctx, dsn, sqlstore.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	e.store = store
	// The listener comes first: its address is the issuer.
	srv := httptest.NewUnstartedServer(nil)
	t.Cleanup(srv.Close)
	srv.EnableHTTP2 = true
	e.issuer = "https://" + srv.Listener.Addr().String()
	kcfg := authority.KeyConfig{Now: e.clock.Now, Logger: log}
	if opts.configureKeys != nil {
		opts.configureKeys(&kcfg)
	}
	keys, err := authority.NewKeySet(ctx, store.Authority(), kcfg)
	if err != nil {
		t.Fatal(err)
	}
	e.resolver = registry.NewResolver(store, 0, e.clock.Now)
	acfg := authority.Config{
		Issuer: e.issuer, Store: store.Authority(), Keys: keys, Resolver: e.resolver, Logger: log, Now: e.clock.Now,
		// Cheap hashes: the tests count logins, not hash strength.
		Password: authority.PasswordParams{Memory: 64, Time: 1, Threads: 1},
	}
	if opts.configureAuthority != nil {
		opts.configureAuthority(&acfg)
	}
	auth, err := authority.New(acfg)
	if err != nil {
		t.Fatal(err)
	}
	e.auth = auth
	e.registry, err = registry.New(registry.Config{
		Store: store, DNS: passingDNS{}, Resolver: e.resolver, CredentialLinks: auth, Now: e.clock.Now,
		// The test agents' claims endpoints are on loopback, the identifiers under example.test.
		AllowLocalEndpoints: true, AllowSpecialUseNames: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = auth.Handler()
	srv.StartTLS()
	e.roots = x509.NewCertPool()
	e.roots.AddCert(srv.Certificate())
	e.rpClient = oidctest.HTTPClient(e.roots, false)
	return e
}

// passingDNS is the registry's DNS checker here: every challenge record is published.
type passingDNS struct{}

func (passingDNS) CheckTXT(_ context.Context, name, want string) dnsverify.Result {
	return dnsverify.Result{Name: name, OK: want != ""}
}

// as is the registry's actor for agent a.
func as(a registry.Agent) registry.Actor { return registry.Actor{Kind: registry.ActorAgent, ID: a.ID} }

// newAgent creates an agent whose issuer and claims endpoint are on <name>.agent.test,
// where nothing answers.
func (e *authEnv) newAgent(name string) registry.Agent {
	e.t.Helper()
	return e.newAgentAt(name, "https://"+name+".agent.test", "https://"+name+".agent.test/userinfo")
}

// newAgentAt creates an agent with the given issuer and claims endpoint.
func (e *authEnv) newAgentAt(name, issuer, claimsEndpoint string) registry.Agent {
	e.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		e.t.Fatal(err)
	}
	jwk, err := jose.JSONWebKey{Key: &key.PublicKey}.MarshalJSON()
	if err != nil {
		e.t.Fatal(err)
	}
	a, err := e.registry.CreateAgent(context.Background(), registry.System, registry.AgentSpec{
		DisplayName: name, ClaimsEndpoint: claimsEndpoint, Issuer: issuer, AccountKeyJWK: string(jwk),
	})
	if err != nil {
		e.t.Fatalf("CreateAgent(%s): %v", name, err)
	}
	return a
}

// startAgent starts a test agent's claims endpoint and creates the agent with it.
func (e *authEnv) startAgent(name string) (registry.Agent, *oidctest.Agent) {
	e.t.Helper()
	ag := oidctest.StartAgent(e.rpClient, e.issuer, e.clock.Now)
	e.t.Cleanup(ag.Server.Close)
	e.roots.AddCert(ag.Server.Certificate())
	return e.newAgentAt(name, ag.Issuer, ag.Endpoint), ag
}

// holderFor registers identifier with agent a and has its holder set a password (and a
// TOTP secret, when withTOTP) through the setup credential link.
func (e *authEnv) holderFor(a registry.Agent, identifier string, withTOTP bool) *oidctest.Holder {
	e.t.Helper()
	return e.setCredentials(identifier, e.registerForLink(a, identifier), withTOTP)
}

// registerForLink registers identifier with agent a and returns the setup credential link
// that comes with the registration.
func (e *authEnv) registerForLink(a registry.Agent, identifier string) string {
	e.t.Helper()
	ctx := context.Background()
	c, err := e.registry.CreateChallenge(ctx, as(a), identifier, registry.PurposeRegister)
	if err != nil {
		e.t.Fatalf("CreateChallenge(%s): %v", identifier, err)
	}
	if c, err = e.registry.VerifyChallenge(ctx, as(a), c.ID); err != nil || c.Status != registry.ChallengeValid {
		e.t.Fatalf("VerifyChallenge(%s): %v, status %v", identifier, err, c.Status)
	}
	if _, err := e.registry.RegisterIdentifier(ctx, as(a), c.ID, "", ""); err != nil {
		e.t.Fatalf("RegisterIdentifier(%s): %v", identifier, err)
	}
	link, err := e.createLink(a, identifier, registry.CredentialLinkSetup)
	if err != nil || link.URL == "" || link.Purpose != registry.CredentialLinkSetup {
		e.t.Fatalf("registration gave credential link %+v, %v, want a setup link", link, err)
	}
	return link.URL
}

// createLink asks the registry for a credential link for identifier as agent a.
func (e *authEnv) createLink(a registry.Agent, identifier string, purpose registry.CredentialLinkPurpose) (registry.CredentialLink, error) {
	return e.registry.CreateCredentialLink(context.Background(), as(a), identifier, purpose)
}

// serverStatus sets identifier's server statuses as the registry's operator.
func (e *authEnv) serverStatus(identifier, reason string, statuses ...registry.Status) {
	e.t.Helper()
	if _, err := e.registry.SetServerStatus(context.Background(), registry.System, identifier, statuses, reason, ""); err != nil {
		e.t.Fatalf("SetServerStatus(%s, %v): %v", identifier, statuses, err)
	}
}

// deleteIdentifier deletes identifier as its sponsor a: it is pending delete.
func (e *authEnv) deleteIdentifier(a registry.Agent, identifier string) {
	e.t.Helper()
	if _, err := e.registry.DeleteIdentifier(context.Background(), as(a), identifier, ""); err != nil {
		e.t.Fatalf("DeleteIdentifier(%s): %v", identifier, err)
	}
}

// wantRefusal fails unless err is a registry error of kind with reason: what the gRPC API
// answers as the status code and ErrorInfo reason.
func wantRefusal(t *testing.T, err error, kind registry.Kind, reason string) {
	t.Helper()
	if registry.KindOf(err) != kind || string(registry.ReasonOf(err)) != reason {
		t.Fatalf("got %v, want %v %s", err, kind, reason)
	}
}

// check fails the test if the step of its setup that returned err failed.
func (e *authEnv) check(err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatal(err)
	}
}

// setCredentials has the holder of identifier set a password (and a TOTP secret, when
// withTOTP) through a credential link, in a browser of its own.
func (e *authEnv) setCredentials(identifier, link string, withTOTP bool) *oidctest.Holder {
	e.t.Helper()
	h := &oidctest.Holder{Client: oidctest.HTTPClient(e.roots, true), Identifier: identifier, Password: "correct horse battery staple " + rand.Text()}
	e.wantCredentialsSet(h.SetCredentials(link, withTOTP, e.totpCode))
	return h
}

// wantCredentialsSet fails unless a holder's credentials were set: what
// oidctest.Holder.SetCredentials returned is the page that says so.
func (e *authEnv) wantCredentialsSet(p oidctest.Page, err error) {
	e.t.Helper()
	if err != nil || p.Title() != "Your credentials are set" {
		e.t.Fatalf("setting credentials: %v; page %d %q %q", err, p.Status, p.Title(), p.Alert())
	}
}

// totpCode is the current TOTP code of secret by the env's clock.
func (e *authEnv) totpCode(secret string) string {
	code, err := totp.GenerateCodeCustom(secret, e.clock.Now(), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	e.check(err)
	return code
}

// newRP registers a relying party built on go-oidc.
func (e *authEnv) newRP(metadata map[string]any) *oidctest.RP {
	e.t.Helper()
	rp, err := oidctest.NewRP(context.Background(), e.rpClient, e.issuer, metadata)
	e.check(err)
	return rp
}

// newID4meRP registers a relying party shaped like the ID4me RP libraries, with metadata
// added to (or replacing) theirs.
func (e *authEnv) newID4meRP(extra map[string]any) *oidctest.ID4meRP {
	e.t.Helper()
	rp, err := oidctest.NewID4meRP(e.rpClient, e.issuer, oidctest.ID4meMetadata(extra))
	e.check(err)
	return rp
}

// callback runs req in h's browser (logging in and consenting as needed) and returns where
// the authority sent it back to.
func (e *authEnv) callback(h *oidctest.Holder, req oidctest.Request) string {
	e.t.Helper()
	cb, p, err := h.Login(req.URL)
	if err != nil {
		e.t.Fatalf("login: %v (page %d %q: %q)", err, p.Status, p.Title(), p.Alert())
	}
	return cb
}

// login runs a whole login of h at rp with extra authorization parameters.
func (e *authEnv) login(rp *oidctest.RP, h *oidctest.Holder, extra map[string]string) *oidctest.Result {
	e.t.Helper()
	req := rp.AuthRequest(extra)
	res, err := rp.Finish(req, e.callback(h, req), e.clock.Now)
	e.check(err)
	return res
}

// id4meLogin runs a whole login of h at rp with a nonce.
func (e *authEnv) id4meLogin(rp *oidctest.ID4meRP, h *oidctest.Holder) *oidctest.ID4meResult {
	e.t.Helper()
	req := rp.AuthRequest(oidctest.ID4meLogin{Nonce: true})
	res, err := rp.Finish(req, e.callback(h, req), e.clock.Now)
	e.check(err)
	return res
}

// id4meCode runs req in h's browser (logging in and consenting as needed) and returns the
// code the RP got.
func (e *authEnv) id4meCode(rp *oidctest.ID4meRP, h *oidctest.Holder, req oidctest.Request) string {
	e.t.Helper()
	code, err := rp.Code(req, e.callback(h, req))
	e.check(err)
	return code
}

// emailClaims is a claims request parameter asking userinfo for the e-mail address, with a
// reason, and the name.
const emailClaims = `{"userinfo":{"email":{"essential":true,"reason":"to send your receipts"},"name":null}}`

// The authority's messages, as a holder reads them.
const (
	alertWrongCredentials = "The identifier or the password is wrong."
	alertCannotLogIn      = "This identifier cannot log in at present. Its agent can tell you why."
	alertWrongCode        = "The code is wrong or has expired. Enter the current code from your authenticator app."
	alertUsedCode         = "That code has been used already. Wait for the next one and enter it."
)

// countRows counts the rows of a table straight from the database.
func (e *authEnv) countRows(table, where string, args ...any) int64 {
	e.t.Helper()
	return dbtest.CountRows(e.t, e.store, table, where, args...)
}

// issued counts the rows of dbtest.IssuedTables.
func (e *authEnv) issued() map[string]int64 {
	e.t.Helper()
	return dbtest.Issued(e.t, e.store)
}

// wantNothingIssued fails unless the authority holds the same rows of dbtest.IssuedTables
// as before.
func (e *authEnv) wantNothingIssued(t *testing.T, before map[string]int64) {
	t.Helper()
	dbtest.WantNothingIssued(t, e.store, before)
}

// hasSession reports whether h's browser holds a login session cookie of the authority.
func (e *authEnv) hasSession(h *oidctest.Holder) bool {
	u, _ := url.Parse(e.issuer)
	for _, c := range h.Client.Jar.Cookies(u) {
		if c.Name == "__Host-id4me-session" {
			return true
		}
	}
	return false
}

// submitLogin posts identifier and password on a new login form of rp in h's browser.
func (e *authEnv) submitLogin(rp *oidctest.RP, h *oidctest.Holder, identifier, password string) (oidctest.Page, error) {
	e.t.Helper()
	return oidctest.SubmitLogin(e.t, h, rp, identifier, password)
}

// wantCallbackError fails unless the authority sent the browser back to redirect with the
// OAuth error code, the request's state and the authority's iss.
func (e *authEnv) wantCallbackError(t *testing.T, p oidctest.Page, err error, redirect, state, code string) {
	t.Helper()
	oidctest.WantCallbackError(t, p, err, e.issuer, redirect, state, code)
}

// authCode runs rp's authorization request in h's browser and returns the request and the
// code it gave.
func (e *authEnv) authCode(rp *oidctest.RP, h *oidctest.Holder, extra map[string]string) (oidctest.Request, string) {
	e.t.Helper()
	return oidctest.AuthCode(e.t, h, rp, extra)
}

// postToken sends a token request and returns the status, the JSON answer and the headers.
func (e *authEnv) postToken(r oidctest.TokenRequest) (int, map[string]any, http.Header) {
	e.t.Helper()
	return oidctest.PostToken(e.t, e.rpClient, e.issuer, r)
}

// userinfoStatus asks userinfo with an access token and returns the status and the error
// code of a refusal.
func (e *authEnv) userinfoStatus(accessToken string) (int, string) {
	e.t.Helper()
	return oidctest.UserinfoStatus(e.t, e.rpClient, e.issuer, accessToken)
}

// wantUserinfoRefused fails unless userinfo refuses accessToken with 401 invalid_token.
func (e *authEnv) wantUserinfoRefused(t *testing.T, accessToken string) {
	t.Helper()
	oidctest.WantUserinfoRefused(t, e.rpClient, e.issuer, accessToken)
}

// otherInstance starts a second authority on e's store, as another instance behind the
// same load balancer would be: its caches are its own. It returns a client for it and the
// URL to reach it at (its issuer is e's); e.roots trusts it too.
func (e *authEnv) otherInstance(configure func(*authority.Config)) (*http.Client, string) {
	e.t.Helper()
	keys, err := authority.NewKeySet(e.t.Context(), e.store.Authority(), authority.KeyConfig{Now: e.clock.Now})
	if err != nil {
		e.t.Fatal(err)
	}
	cfg := authority.Config{
		Issuer: e.issuer, Store: e.store.Authority(), Keys: keys, Resolver: e.resolver, Now: e.clock.Now,
		Password: authority.PasswordParams{Memory: 64, Time: 1, Threads: 1},
	}
	configure(&cfg)
	a, err := authority.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	srv := httptest.NewTLSServer(a.Handler())
	e.t.Cleanup(srv.Close)
	e.roots.AddCert(srv.Certificate())
	return srv.Client(), srv.URL
}
