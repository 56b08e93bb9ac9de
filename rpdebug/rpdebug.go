// Package rpdebug is a debugging relying party for ID4me: a web page where an integrator
// types an identifier and watches a whole login. It looks up the identifier's _openid
// record, discovers the authority, registers a client dynamically (or reuses one it
// registered before), sends the holder to log in with the claims parameter (the claims
// picked, essential or not, with reasons), and then shows the ID token, the userinfo and
// each agent's answer (which it fetches by following _claim_sources), decoded, verified
// and raw, with every HTTP request and response in the order they were made.
//
// It imports nothing of the registry's server side: what it knows of ID4me is what any
// relying party knows.
package rpdebug

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
)

// Config configures a debugging relying party.
type Config struct {
	// BaseURL is where the RP is served (https://host:port); its redirect URI is
	// BaseURL + "/callback".
	BaseURL string
	// DNS looks up _openid records; nil is the system's resolver.
	DNS TXTResolver
	// Transport reaches authorities and agents (its TLS configuration says whom to trust);
	// nil is http.DefaultTransport.
	Transport http.RoundTripper
	// RegistrationsFile keeps the clients registered, by issuer, across restarts; empty
	// keeps them in memory.
	RegistrationsFile string
	// Now is the clock tokens are checked by; nil is time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Options are a login's choices.
type Options struct {
	// PKCE sends an S256 code challenge.
	PKCE bool
	// UserinfoAlg is "" for JSON userinfo, or RS256 or ES256 for a signed one.
	UserinfoAlg string
	// Encrypt registers an RSA key for encrypted ID tokens and userinfo (RSA-OAEP-256,
	// A128CBC-HS256).
	Encrypt bool
	// AuthPost authenticates at the token endpoint with client_secret_post rather than
	// client_secret_basic.
	AuthPost bool
	// Prompt is the prompt parameter: "", "login" or "consent".
	Prompt string
	// Reregister registers a new client even when one fits.
	Reregister bool
}

func (o Options) authMethod() string {
	if o.AuthPost {
		return "client_secret_post"
	}
	return "client_secret_basic"
}

// profile is what a registration must have been made with to serve these options.
func (o Options) profile(redirectURI string) string {
	p := redirectURI + " " + o.authMethod() + " userinfo=" + cmpOr(o.UserinfoAlg, "json")
	if o.Encrypt {
		p += " encrypted"
	}
	return p
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// ClaimRequest is one claim asked for.
type ClaimRequest struct {
	Name      string
	Essential bool
	Reason    string
}

// StandardClaims are the claims the start page offers (OpenID Connect Core §5.1).
var StandardClaims = []string{
	"email", "email_verified", "name", "given_name", "family_name", "preferred_username",
	"nickname", "phone_number", "address", "birthdate", "locale", "zoneinfo", "website", "picture",
}

// claimsParameter is the claims request parameter for the userinfo of reqs, as ID4me
// relying parties send it.
func claimsParameter(reqs []ClaimRequest) string {
	if len(reqs) == 0 {
		return ""
	}
	ui := map[string]any{}
	for _, r := range reqs {
		var m map[string]any
		if r.Essential || r.Reason != "" {
			m = map[string]any{}
			if r.Essential {
				m["essential"] = true
			}
			if r.Reason != "" {
				m["reason"] = r.Reason
			}
		}
		ui[r.Name] = m
	}
	b, _ := json.Marshal(map[string]any{"userinfo": ui})
	return string(b)
}

// flow is one login, from the identifier typed to the tokens shown.
type flow struct {
	// mu is held while the login finishes and while its page is rendered.
	mu       sync.Mutex
	id       string // in the result page's URL
	state    string
	nonce    string
	verifier string
	browser  string // the hash of the browser's cookie
	created  time.Time
	rec      *recorder

	Options         Options
	Claims          []ClaimRequest
	ClaimsParameter string
	Discovery       Discovery
	provider        providerMetadata
	Registration    Registration
	Reused          bool
	AuthURL         string
	// Steps are what happened, in order, one line each.
	Steps []string
	// Error is the step that failed, if one did.
	Error string

	Result *Result
}

// Result is what a finished login showed.
type Result struct {
	IDToken  Token
	Userinfo Token
	// AccessToken is the authority's access token as the RP got it (opaque to the RP).
	AccessToken string
	// Sources are the agents' answers, one per claims source.
	Sources []Source
	// Claims are the claims the agents answered, by name.
	Claims []Claim
}

// Source is one claims source of userinfo and what its endpoint answered.
type Source struct {
	Name     string
	Endpoint string
	// AccessToken is the authority's token for the agent, decoded and verified.
	AccessToken Token
	Answer      Token
}

// Claim is one claim the RP received from an agent.
type Claim struct {
	Name   string
	Value  string
	Source string
}

func (f *flow) step(format string, args ...any) {
	f.Steps = append(f.Steps, fmt.Sprintf(format, args...))
}

func (f *flow) fail(err error) {
	f.Error = err.Error()
}

// Exchanges is the flow's HTTP log.
func (f *flow) Exchanges() []Exchange { return f.rec.exchanges() }

// flowTTL is how long a login stays (it and its result page).
const flowTTL = time.Hour

// maxFlows bounds the logins kept; the oldest go first.
const maxFlows = 200

// RP is the debugging relying party.
type RP struct {
	cfg   Config
	regs  *registrations
	pages *pages
	key   []byte // CSRF tokens are HMACs of the browser cookie under it
	log   *slog.Logger

	mu    sync.Mutex
	flows []*flow
}

// New makes a debugging relying party.
func New(cfg Config) (*RP, error) {
	if !strings.HasPrefix(cfg.BaseURL, "https://") {
		return nil, fmt.Errorf("the base URL %q must be https", cfg.BaseURL)
	}
	cfg.BaseURL = strings.TrimSuffix(cfg.BaseURL, "/")
	if cfg.DNS == nil {
		cfg.DNS = SystemResolver{}
	}
	if cfg.Transport == nil {
		cfg.Transport = http.DefaultTransport
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	regs, err := loadRegistrations(cfg.RegistrationsFile)
	if err != nil {
		return nil, err
	}
	key := make([]byte, 32)
	rand.Read(key)
	return &RP{cfg: cfg, regs: regs, pages: newPages(), key: key, log: cfg.Logger}, nil
}

// RedirectURI is the RP's redirect URI.
func (rp *RP) RedirectURI() string { return rp.cfg.BaseURL + "/callback" }

// Handler serves the RP's pages.
func (rp *RP) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", rp.startPage)
	mux.HandleFunc("POST /start", rp.start)
	mux.HandleFunc("GET /callback", rp.callback)
	mux.HandleFunc("GET /flows/{id}", rp.resultPage)
	mux.HandleFunc("GET /assets/style.css", rp.pages.serveStyle)
	return mux
}

// cookieName is the browser's cookie: it binds the logins to the browser that started
// them and keys the CSRF token of the start form.
const cookieName = "__Host-rpdebug"

// browserCookie returns the browser's cookie value, setting a new one when it has none.
func (rp *RP) browserCookie(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(cookieName); err == nil && len(c.Value) >= 32 {
		return c.Value
	}
	v := rand.Text() + rand.Text()
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: v, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	return v
}

func (rp *RP) csrfToken(cookie string) string {
	m := hmac.New(sha256.New, rp.key)
	m.Write([]byte("csrf\x00" + cookie))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func browserHash(cookie string) string {
	s := sha256.Sum256([]byte(cookie))
	return base64.RawURLEncoding.EncodeToString(s[:])
}

// startData is the start page's.
type startData struct {
	CSRF       string
	Identifier string
	Claims     []startClaim
	Options    Options
	Alert      string
}

type startClaim struct {
	ClaimRequest
	Asked bool
}

func defaultStart() startData {
	d := startData{Options: Options{PKCE: true}}
	for _, n := range StandardClaims {
		c := startClaim{ClaimRequest: ClaimRequest{Name: n}}
		switch n {
		case "email":
			c.Asked, c.Essential, c.Reason = true, true, "to send you a receipt"
		case "name":
			c.Asked = true
		}
		d.Claims = append(d.Claims, c)
	}
	return d
}

func (rp *RP) startPage(w http.ResponseWriter, r *http.Request) {
	d := defaultStart()
	d.CSRF = rp.csrfToken(rp.browserCookie(w, r))
	d.Identifier = r.URL.Query().Get("identifier")
	rp.pages.render(w, http.StatusOK, "start", d)
}

// maxForm bounds the start form.
const maxForm = 64 << 10

func (rp *RP) start(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		rp.errorPage(w, http.StatusBadRequest, "The form could not be read.", err.Error())
		return
	}
	c, err := r.Cookie(cookieName)
	if err != nil || !hmac.Equal([]byte(r.PostForm.Get("csrf")), []byte(rp.csrfToken(c.Value))) {
		rp.errorPage(w, http.StatusForbidden, "This form has expired.", "Open the start page again and resubmit.")
		return
	}
	d := defaultStart()
	d.CSRF = r.PostForm.Get("csrf")
	d.Identifier = strings.TrimSpace(r.PostForm.Get("identifier"))
	d.Options = Options{
		PKCE:        r.PostForm.Get("pkce") == "on",
		UserinfoAlg: r.PostForm.Get("userinfo"),
		Encrypt:     r.PostForm.Get("encrypt") == "on",
		AuthPost:    r.PostForm.Get("auth") == "client_secret_post",
		Prompt:      r.PostForm.Get("prompt"),
		Reregister:  r.PostForm.Get("reregister") == "on",
	}
	var claims []ClaimRequest
	asked := r.PostForm["claim"]
	for i := range d.Claims {
		c := &d.Claims[i]
		c.Asked = slices.Contains(asked, c.Name)
		c.Essential = r.PostForm.Get("essential_"+c.Name) == "on"
		c.Reason = strings.TrimSpace(r.PostForm.Get("reason_" + c.Name))
		if c.Asked {
			claims = append(claims, c.ClaimRequest)
		}
	}
	switch {
	case d.Identifier == "":
		d.Alert = "Type an identifier: a domain (alice.example) or the e-mail form (bob@example.org)."
	case !slices.Contains([]string{"", "RS256", "ES256"}, d.Options.UserinfoAlg):
		d.Alert = "Userinfo is JSON, or signed with RS256 or ES256."
	case !slices.Contains([]string{"", "login", "consent"}, d.Options.Prompt):
		d.Alert = "prompt is empty, login or consent."
	}
	if d.Alert != "" {
		rp.pages.render(w, http.StatusBadRequest, "start", d)
		return
	}
	f := &flow{
		id: rand.Text(), state: rand.Text(), nonce: rand.Text(), verifier: oauth2.GenerateVerifier(),
		browser: browserHash(c.Value), created: rp.cfg.Now(),
		rec:     &recorder{base: rp.cfg.Transport},
		Options: d.Options, Claims: claims, ClaimsParameter: claimsParameter(claims),
	}
	identifier, err := Canonical(d.Identifier)
	if err != nil {
		d.Alert = err.Error()
		rp.pages.render(w, http.StatusBadRequest, "start", d)
		return
	}
	rp.prepare(r.Context(), f, identifier)
	rp.keep(f)
	rp.pages.render(w, http.StatusOK, "ready", f)
}

func (rp *RP) client(f *flow) *http.Client {
	return &http.Client{
		Transport: f.rec, Timeout: 15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// prepare runs a login up to the authorization request: _openid, discovery, registration.
func (rp *RP) prepare(ctx context.Context, f *flow, identifier string) {
	var err error
	f.Discovery, err = discover(ctx, rp.cfg.DNS, identifier)
	if err != nil {
		f.fail(err)
		return
	}
	if strings.Contains(f.Discovery.Record.Issuer, "://") && !strings.HasPrefix(f.Discovery.Record.Issuer, "https://") {
		f.fail(fmt.Errorf("the record's iss %q is not https: ID4me authorities are served over https", f.Discovery.Record.Issuer))
		return
	}
	f.step("%s names the authority %s (iss) and the agent %q (clp)", f.Discovery.Name, f.Discovery.Issuer, f.Discovery.Record.ClaimsProvider)
	c := rp.client(f)
	f.provider, err = discoverProvider(ctx, c, "discovery", f.Discovery.Issuer)
	if err != nil {
		f.fail(err)
		return
	}
	f.step("discovery: authorization at %s, token at %s", f.provider.AuthorizationEndpoint, f.provider.TokenEndpoint)
	profile := f.Options.profile(rp.RedirectURI())
	reg, ok := rp.regs.get(f.provider.Issuer, profile)
	switch {
	case ok && f.Options.Reregister:
		f.step("a client is registered for these options, but a new one was asked for")
	case ok && reg.expired(rp.cfg.Now()):
		f.step("the client %s registered before has an expired secret: registering again", reg.ClientID)
	case ok:
		f.Registration, f.Reused = reg, true
		f.step("reusing the client %s registered %s", reg.ClientID, reg.Created.UTC().Format(time.RFC3339))
	}
	if !f.Reused {
		reg, err := register(ctx, c, f.provider, rp.RedirectURI(), f.Options, rp.cfg.Now())
		if err != nil {
			f.fail(err)
			return
		}
		if err := rp.regs.put(reg); err != nil {
			f.fail(err)
			return
		}
		f.Registration = reg
		f.step("registered the client %s (%s)", reg.ClientID, profile)
	}
	f.AuthURL = authorizationURL(f.provider, f.Registration, rp.RedirectURI(), f)
}

// keep stores f, dropping logins that are too old or too many.
func (rp *RP) keep(f *flow) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	now := rp.cfg.Now()
	rp.flows = slices.DeleteFunc(rp.flows, func(o *flow) bool { return now.Sub(o.created) > flowTTL })
	if len(rp.flows) >= maxFlows {
		rp.flows = rp.flows[len(rp.flows)-maxFlows+1:]
	}
	rp.flows = append(rp.flows, f)
}

// find returns the login match names, if the browser with cookie started it.
func (rp *RP) find(r *http.Request, match func(*flow) bool) (*flow, error) {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return nil, errors.New("this browser has no cookie of the debugging RP: start the login here")
	}
	rp.mu.Lock()
	defer rp.mu.Unlock()
	for _, f := range rp.flows {
		if match(f) {
			if subtleDiffer(f.browser, browserHash(c.Value)) {
				return nil, errors.New("this login was started in another browser")
			}
			return f, nil
		}
	}
	return nil, errors.New("no login of this RP has this state (it may be older than an hour, or the RP restarted)")
}

func subtleDiffer(a, b string) bool { return !hmac.Equal([]byte(a), []byte(b)) }

func (rp *RP) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	state := q.Get("state")
	f, err := rp.find(r, func(f *flow) bool { return state != "" && hmac.Equal([]byte(f.state), []byte(state)) })
	if err != nil {
		rp.errorPage(w, http.StatusBadRequest, "This answer belongs to no login started here.", err.Error())
		return
	}
	rp.mu.Lock()
	done := f.Result != nil || f.Error != ""
	if !done {
		f.Result = &Result{} // a second answer for the same state is refused
	}
	rp.mu.Unlock()
	if done {
		rp.errorPage(w, http.StatusBadRequest, "This login has been answered already.", "Start a new one.")
		return
	}
	f.mu.Lock()
	f.step("the browser came back: %s", r.URL.RawQuery)
	rp.finish(r.Context(), f, q)
	f.mu.Unlock()
	http.Redirect(w, r, "/flows/"+f.id, http.StatusSeeOther)
}

// finish checks the authorization answer, redeems the code, verifies the ID token,
// fetches userinfo and follows its claims sources.
func (rp *RP) finish(ctx context.Context, f *flow, q map[string][]string) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	res := f.Result
	if e := get("error"); e != "" {
		f.fail(fmt.Errorf("the authority answered %s: %s", e, get("error_description")))
		return
	}
	if iss := get("iss"); iss != "" && iss != f.provider.Issuer {
		f.fail(fmt.Errorf("the answer's iss %q is not the authority %q (RFC 9207: a mix-up)", iss, f.provider.Issuer))
		return
	}
	c := rp.client(f)
	tr, err := redeem(ctx, c, f.provider, f.Registration, rp.RedirectURI(), get("code"), f)
	if err != nil {
		f.fail(err)
		return
	}
	res.AccessToken = tr.AccessToken
	f.step("the code was redeemed for an ID token and an access token (%s, %d s)", tr.TokenType, tr.ExpiresIn)
	keys, err := keySet(ctx, c, "authority JWKS", f.provider.JWKSURI)
	if err != nil {
		f.fail(err)
		return
	}
	now := rp.cfg.Now()
	res.IDToken.Title = "ID token"
	decodeJWT(&res.IDToken, tr.IDToken, f.Registration.DecryptionKey, keys)
	if res.IDToken.claims != nil {
		res.IDToken.checkClaim("iss", f.provider.Issuer)
		res.IDToken.checkAudience(f.Registration.ClientID)
		res.IDToken.checkTimes(now)
		res.IDToken.checkClaim("nonce", f.nonce)
		res.IDToken.checkClaim("id4me.identifier", f.Discovery.Identifier)
	}
	body, ct, err := fetchUserinfo(ctx, c, f.provider, tr.AccessToken)
	res.Userinfo.Title = "Userinfo"
	if err != nil {
		res.Userinfo.Raw = string(body)
		f.fail(err)
		return
	}
	userinfo := &res.Userinfo
	if ct == "application/jwt" {
		decodeJWT(userinfo, strings.TrimSpace(string(body)), f.Registration.DecryptionKey, keys)
		if userinfo.claims != nil && userinfo.Header != "" {
			userinfo.checkClaim("iss", f.provider.Issuer)
			userinfo.checkAudience(f.Registration.ClientID)
		}
	} else {
		userinfo.Raw, userinfo.Payload = string(body), pretty(body)
		userinfo.check("format", json.Unmarshal(body, &userinfo.claims) == nil, "%s", cmpOr(ct, "no Content-Type"))
	}
	if userinfo.claims == nil {
		f.fail(errors.New("userinfo could not be read"))
		return
	}
	userinfo.checkClaim("sub", res.IDToken.claims["sub"])
	rp.followSources(ctx, c, f, keys, now)
}

// followSources asks each claims source of userinfo with its access token, as ID4me
// relying parties do, and collects the claims _claim_names assigns to it.
func (rp *RP) followSources(ctx context.Context, c *http.Client, f *flow, authorityKeys *jose.JSONWebKeySet, now time.Time) {
	res := f.Result
	names, _ := res.Userinfo.claims["_claim_names"].(map[string]any)
	sources, _ := res.Userinfo.claims["_claim_sources"].(map[string]any)
	srcNames := make([]string, 0, len(sources))
	for n := range sources {
		srcNames = append(srcNames, n)
	}
	slices.Sort(srcNames)
	answers := map[string]map[string]any{}
	for _, n := range srcNames {
		s, _ := sources[n].(map[string]any)
		src := Source{Name: n}
		src.Endpoint, _ = s["endpoint"].(string)
		at, _ := s["access_token"].(string)
		src.AccessToken.Title = "Access token for the agent (" + n + ")"
		decodeJWT(&src.AccessToken, at, nil, authorityKeys)
		if src.AccessToken.claims != nil {
			src.AccessToken.checkClaim("iss", f.provider.Issuer)
			src.AccessToken.checkClaim("client_id", f.Registration.ClientID)
			src.AccessToken.checkTimes(now)
		}
		src.Answer.Title = "The agent's answer (" + n + ")"
		body, ct, err := bearerGET(ctx, c, "claims source "+n, src.Endpoint, at, "application/jwt, application/json;q=0.5")
		switch {
		case err != nil:
			src.Answer.Raw = string(body)
			src.Answer.check("answer", false, "%v", err)
		case ct == "application/jwt":
			raw := strings.TrimSpace(string(body))
			iss := unverifiedClaim(raw, "iss")
			var keys = rp.agentKeys(ctx, c, &src.Answer, iss)
			decodeJWT(&src.Answer, raw, nil, keys)
			if keys == nil && src.Answer.claims != nil {
				src.Answer.check("signature", false, "not verified: the agent's keys could not be fetched")
			}
		default:
			src.Answer.Raw, src.Answer.Payload = string(body), pretty(body)
			if src.Answer.check("format", json.Unmarshal(body, &src.Answer.claims) == nil, "%s: unsigned JSON, nothing to verify", cmpOr(ct, "no Content-Type")) {
				src.Answer.check("signature", false, "none: OpenID Connect Core §5.6.2 and the ID4me RP libraries expect a signed JWT")
			}
		}
		if a := src.Answer.claims; a != nil {
			src.Answer.checkClaim("sub", res.Userinfo.claims["sub"])
			src.Answer.checkAudience(f.Registration.ClientID)
			src.Answer.checkClaim("id4me.identifier", f.Discovery.Identifier)
			if aud := unverifiedClaim(at, "aud"); aud != "" {
				src.Answer.checkClaim("iss", aud)
			}
			answers[n] = a
		}
		res.Sources = append(res.Sources, src)
		f.step("asked the claims source %s at %s", n, src.Endpoint)
	}
	claimNames := make([]string, 0, len(names))
	for n := range names {
		claimNames = append(claimNames, n)
	}
	slices.Sort(claimNames)
	for _, n := range claimNames {
		src, _ := names[n].(string)
		v, ok := answers[src][n]
		if !ok {
			res.Claims = append(res.Claims, Claim{Name: n, Source: src, Value: "(not answered)"})
			continue
		}
		s, ok := v.(string)
		if !ok {
			b, _ := json.Marshal(v)
			s = string(b)
		}
		res.Claims = append(res.Claims, Claim{Name: n, Value: s, Source: src})
	}
}

// agentKeys fetches the JWKS of the agent at iss, through its discovery document.
func (rp *RP) agentKeys(ctx context.Context, c *http.Client, t *Token, iss string) *jose.JSONWebKeySet {
	if !strings.HasPrefix(iss, "https://") {
		t.check("iss", false, "%q is not an https issuer whose keys could verify the answer", iss)
		return nil
	}
	md, err := discoverProvider(ctx, c, "agent discovery", iss)
	if err != nil {
		t.check("agent keys", false, "%v", err)
		return nil
	}
	keys, err := keySet(ctx, c, "agent JWKS", md.JWKSURI)
	if err != nil {
		t.check("agent keys", false, "%v", err)
		return nil
	}
	return keys
}

func (rp *RP) resultPage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	f, err := rp.find(r, func(f *flow) bool { return hmac.Equal([]byte(f.id), []byte(id)) })
	if err != nil {
		rp.errorPage(w, http.StatusNotFound, "No such login here.", err.Error())
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	rp.pages.render(w, http.StatusOK, "result", f)
}
