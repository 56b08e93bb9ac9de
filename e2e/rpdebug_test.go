package e2e

import (
	"crypto/tls"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/id4me/id4me-registry/internal/oidctest"
	"github.com/id4me/id4me-registry/internal/testenv"
	"github.com/id4me/id4me-registry/rpdebug"
)

// debugRP is a debugging relying party (id4me-registry rp) served over HTTPS on loopback
// for an Env: it looks _openid records up on the Env's first nameserver and reaches the
// authority and the agents with the Env's client. It presents the authority's certificate,
// so the browser harness, which trusts that certificate's key, trusts it too.
type debugRP struct {
	URL string
	RP  *rpdebug.RP
}

func startDebugRP(t *testing.T, e *testenv.Env) *debugRP {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "https://" + l.Addr().String()
	rp, err := rpdebug.New(rpdebug.Config{
		BaseURL: base, DNS: rpdebug.DNSServer{Addr: e.NS[0].Addr},
		Transport: e.RPClient.Transport, Now: e.Clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rp.Handler(), TLSConfig: &tls.Config{Certificates: e.TLS.Certificates}}
	go srv.ServeTLS(l, "", "")
	t.Cleanup(func() { srv.Close() })
	return &debugRP{URL: base, RP: rp}
}

// publishOpenID publishes the _openid record of identifier on the Env's nameservers,
// naming its authority as ID4me records do: by host.
func publishOpenID(e *testenv.Env, identifier, clp string) string {
	rec := "v=OID1;iss=" + strings.TrimPrefix(e.Issuer, "https://") + ";clp=" + clp
	for _, ns := range e.NS {
		ns.SetTXT("_openid."+identifier+".", rec)
	}
	return rec
}

// TestDebuggingRPBrowser drives the debugging relying party in headless Chromium: the
// identifier typed, the _openid record shown, the login and the consent at the authority,
// and the result page with the agent's claims and every token verified. Each page is saved
// as a screenshot in $ID4ME_TEST_ARTIFACTS when set.
func TestDebuggingRPBrowser(t *testing.T) {
	long(t, "the debugging RP in headless Chromium")
	chromium := findChromium(t)
	e := testenv.New(t, testenv.Options{Authority: true})
	agent, claims := e.StartAgent("alpha")
	const identifier = "alice.example.test"
	claims.Claims[identifier] = map[string]any{"email": "alice@example.test", "name": "Alice", "phone_number": "+49 1"}
	h := e.HolderFor(agent, identifier, false)
	record := publishOpenID(e, identifier, "agent.example.test")
	rp := startDebugRP(t, e)
	b := newBrowser(t, e, chromium)

	b.navigate(rp.URL + "/")
	b.expectTitle("Log in with ID4me")
	b.expectStyled()
	b.fill("identifier", identifier)
	// email (essential, with a reason) and name are ticked by default; name gets a reason.
	b.fill("reason-name", "to greet you")
	b.shot("rp-start")
	b.submit("button[type=submit]")

	b.expectTitle("Ready to log in")
	if got := b.text("pre.record"); got != record {
		t.Fatalf("the page shows the record %q, want %q", got, record)
	}
	if got := b.text("#claims-parameter"); !strings.Contains(got, `"reason":"to send you a receipt"`) || !strings.Contains(got, `"essential":true`) {
		t.Fatalf("claims parameter %s", got)
	}
	b.shot("rp-ready")
	b.submit("#login")

	b.expectTitle("Log in with your ID4me identifier")
	if got := b.value("identifier"); got != identifier {
		t.Fatalf("identifier field %q, want %q from login_hint", got, identifier)
	}
	b.fill("password", h.Password)
	b.submit("button[type=submit]")
	b.expectTitle("Share your data?")
	want := [][]string{{"Email address email", "required", "to send you a receipt"}, {"Full name name", "optional", "to greet you"}}
	if rows := b.tableRows(); !slices.EqualFunc(rows, want, slices.Equal) {
		t.Fatalf("consent table %q, want %q", rows, want)
	}
	b.shot("rp-consent")
	b.submit(`button[name=decision][value=allow]`)

	b.expectTitle("Logged in as " + identifier)
	b.shot("rp-result")
	wantClaims := [][]string{{"email", "alice@example.test", "src1"}, {"name", "Alice", "src1"}}
	rows := b.tableRows()
	if len(rows) != 2 || rows[0][0] != "email" || rows[0][1] != "alice@example.test" || rows[1][0] != "name" || rows[1][1] != "Alice" {
		t.Fatalf("claims on the result page %q, want %q", rows, wantClaims)
	}
	checks := run(b, chromedp.Evaluate[[][]string](`[...document.querySelectorAll("section.token")].map(s => [s.querySelector("h3").textContent, String(s.querySelectorAll(".ok").length), [...s.querySelectorAll(".bad")].map(x => x.parentElement.textContent.trim()).join("; ")])`))
	sections := map[string][]string{}
	for _, c := range checks {
		sections[c[0]] = c[1:]
	}
	// The agent (agent/claims's handler) answers a JWT, verified with the agent's JWKS.
	for _, title := range []string{"ID token", "Userinfo", "Access token for the agent (src1)", "The agent's answer (src1)"} {
		if c := sections[title]; c == nil || c[0] == "0" || c[1] != "" {
			t.Fatalf("%s checks (passed, failed): %q", title, c)
		}
	}
	if got := b.text("ol.exchanges"); !strings.Contains(got, claims.Issuer+"/.well-known/openid-configuration") {
		t.Fatalf("the exchange log lacks the agent's discovery: %s", got)
	}
	if got := b.text("ol.exchanges"); !strings.Contains(got, "/.well-known/openid-configuration") || !strings.Contains(got, claims.Endpoint) {
		t.Fatalf("the exchange log lacks discovery or the agent: %s", got)
	}
}

// TestDebuggingRPOptions runs the debugging relying party's login with each of its options,
// the holder's browser played over HTTP, and checks what the result page shows.
func TestDebuggingRPOptions(t *testing.T) {
	long(t, "debugging RP logins through the whole stack")
	e := testenv.New(t, testenv.Options{Authority: true})
	agent, claims := e.StartAgent("alpha")
	const identifier = "alice.example.test"
	claims.Claims[identifier] = map[string]any{"email": "alice@example.test", "name": "Alice"}
	h := e.HolderFor(agent, identifier, false)
	publishOpenID(e, identifier, "agent.example.test")
	rp := startDebugRP(t, e)
	for _, tc := range []struct {
		name   string
		form   url.Values
		expect []string
	}{
		{"defaults", url.Values{"pkce": {"on"}}, []string{"code_challenge_method=S256", "Content-Type: application/json"}},
		{"no PKCE, post auth, RS256 userinfo", url.Values{"auth": {"client_secret_post"}, "userinfo": {"RS256"}},
			[]string{"Content-Type: application/jwt", "client_secret_post", "verified with the JWKS key"}},
		{"defaults again: the client is reused", url.Values{"pkce": {"on"}}, []string{"reusing the client"}},
		{"encrypted, ES256 userinfo", url.Values{"pkce": {"on"}, "userinfo": {"ES256"}, "encrypt": {"on"}},
			[]string{"JWE header", "RSA-OAEP-256", "ES256, verified"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			browser := oidctest.HTTPClient(e.Roots, true)
			page := get(t, browser, rp.URL+"/")
			form := tc.form
			form.Set("csrf", hiddenField(t, page, "csrf"))
			form.Set("identifier", identifier)
			form["claim"] = []string{"email", "name"}
			form.Set("essential_email", "on")
			page = post(t, browser, rp.URL+"/start", form)
			authURL := html.UnescapeString(between(page, `id="login" href="`, `"`))
			if authURL == "" {
				t.Fatalf("no login link on the page: %s", page)
			}
			if pkce := strings.Contains(authURL, "code_challenge="); pkce != (form.Get("pkce") == "on") {
				t.Fatalf("PKCE %v in the authorization request %s, asked for %q", pkce, authURL, form.Get("pkce"))
			}
			h.Client = browser
			cb, p, err := h.Login(authURL)
			if err != nil {
				t.Fatalf("login: %v (page %q %q)", err, p.Title(), p.Alert())
			}
			if !strings.HasPrefix(cb, rp.URL+"/callback?") {
				t.Fatalf("the authority sent the browser to %s", cb)
			}
			result := get(t, browser, cb)
			if !strings.Contains(result, "<h1>Logged in as "+identifier+"</h1>") {
				t.Fatalf("result page: %s", result)
			}
			for _, want := range append(tc.expect, "alice@example.test", "Alice") {
				if !strings.Contains(result, want) {
					t.Errorf("the result page lacks %q", want)
				}
			}
		})
	}

	t.Run("refusals", func(t *testing.T) {
		browser := oidctest.HTTPClient(e.Roots, true)
		get(t, browser, rp.URL+"/")
		resp, err := browser.PostForm(rp.URL+"/start", url.Values{"identifier": {identifier}, "csrf": {"forged"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("a start without the form's CSRF token: %d, want 403", resp.StatusCode)
		}
		other := oidctest.HTTPClient(e.Roots, true)
		resp, err = other.Get(rp.URL + "/callback?code=x&state=unknown")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("a callback with an unknown state: %d, want 400", resp.StatusCode)
		}
		// A login started in one browser cannot be finished in another.
		page := get(t, browser, rp.URL+"/")
		page = post(t, browser, rp.URL+"/start", url.Values{"csrf": {hiddenField(t, page, "csrf")}, "identifier": {identifier}})
		state := between(html.UnescapeString(between(page, `id="login" href="`, `"`)), "state=", "&")
		get(t, other, rp.URL+"/")
		resp, err = other.Get(rp.URL + "/callback?code=x&state=" + state)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("a callback in another browser: %d, want 400", resp.StatusCode)
		}
		// An identifier without an _openid record says so.
		page = get(t, browser, rp.URL+"/")
		page = post(t, browser, rp.URL+"/start", url.Values{"csrf": {hiddenField(t, page, "csrf")}, "identifier": {"nobody.example.test"}})
		if !strings.Contains(page, "_openid.nobody.example.test") || !strings.Contains(page, `id="error"`) {
			t.Fatalf("an identifier without a record: %s", page)
		}
	})
}

func get(t *testing.T, c *http.Client, u string) string {
	t.Helper()
	resp, err := c.Get(u)
	return readBody(t, resp, err)
}

func post(t *testing.T, c *http.Client, u string, form url.Values) string {
	t.Helper()
	resp, err := c.PostForm(u, form)
	return readBody(t, resp, err)
}

func readBody(t *testing.T, resp *http.Response, err error) string {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %d: %s", resp.Request.Method, resp.Request.URL, resp.StatusCode, b)
	}
	return string(b)
}

func hiddenField(t *testing.T, page, name string) string {
	t.Helper()
	v := between(page, `name="`+name+`" value="`, `"`)
	if v == "" {
		t.Fatalf("no hidden field %s on the page", name)
	}
	return v
}

// between returns the text of s between the first start and the end after it.
func between(s, start, end string) string {
	_, rest, ok := strings.Cut(s, start)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, end)
	return v
}
