package e2e

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/chromedp"

	"github.com/id4me/id4me-registry/internal/oidctest"
	"github.com/id4me/id4me-registry/internal/testenv"
)

// TestAuthorityBrowser is the login of TestAuthorityEndToEnd in a real browser: headless
// Chromium, driven over the DevTools protocol, opens the credential link of a new
// registration and sets the password (and a TOTP secret), then follows an RP's
// authorization request through the login (and TOTP) and consent pages and lands on the
// RP's redirect URI. Each page is saved as a screenshot, in $ID4ME_TEST_ARTIFACTS when set.
// Without Chromium the test is skipped, except in CI, where it fails.
func TestAuthorityBrowser(t *testing.T) {
	long(t, "a login in headless Chromium")
	for _, tc := range []struct {
		name string
		totp bool
	}{
		{"password", false},
		{"TOTP", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chromium := findChromium(t)
			e := testenv.New(t, testenv.Options{Authority: true})
			b := newBrowser(t, e, chromium)
			agent, claims := e.StartAgent("alpha")
			const identifier = "alice.example.test"
			claims.Claims[identifier] = map[string]any{"email": "alice@example.test", "name": "Alice", "phone_number": "+49 1"}

			// The holder sets the credentials through the link of the registration.
			link := e.RegisterForLink(agent, identifier)
			password := "correct horse battery staple " + rand.Text()
			b.navigate(link)
			b.expectTitle("Set up the credentials of " + identifier)
			b.shot("credential")
			b.fill("password", password)
			b.fill("confirm", password)
			var secret string
			if tc.totp {
				b.do(chromedp.Click(chromedp.ID("totp")))
				b.submit("button[type=submit]")
				b.expectTitle("Add " + identifier + " to your authenticator app")
				b.shot("totp-enrol")
				secret = b.text("#secret")
				if !regexp.MustCompile(`^[A-Z2-7]{16,}$`).MatchString(secret) {
					t.Fatalf("TOTP secret on the page %q", secret)
				}
				b.fill("code", e.TOTPCode(secret))
			}
			b.submit("button[type=submit]")
			b.expectTitle("Your credentials are set")
			b.shot("credential-done")
			// The code that confirmed the enrolment is used: the login needs the next one.
			e.Clock.Advance(30 * time.Second)

			rp := e.NewRP(map[string]any{"client_name": "Shop"})
			req := rp.AuthRequest(map[string]string{"claims": testenv.EmailClaims, "login_hint": identifier})
			b.navigate(req.URL)
			b.expectTitle("Log in with your ID4me identifier")
			b.expectStyled()
			b.shot("login")
			if got := b.value("identifier"); got != identifier {
				t.Fatalf("identifier field %q, want %q from login_hint", got, identifier)
			}
			if got := b.text("p.client"); !strings.Contains(got, "Shop") {
				t.Fatalf("login page names the client as %q, want Shop", got)
			}
			b.fill("password", password)
			b.submit("button[type=submit]")
			if tc.totp {
				b.expectTitle("Enter your authenticator code")
				b.shot("totp")
				b.fill("code", e.TOTPCode(secret))
				b.submit("button[type=submit]")
			}

			b.expectTitle("Share your data?")
			b.shot("consent")
			if got := b.text("p.client"); !strings.Contains(got, "Shop") || !strings.Contains(got, "would like to know who you are") {
				t.Fatalf("consent page names the client as %q, want Shop", got)
			}
			// Claims are named in words, their names in small print beside.
			rows := b.tableRows()
			want := [][]string{{"Email address email", "required", "to send your receipts"}, {"Full name name", "optional", "—"}}
			if !slices.EqualFunc(rows, want, slices.Equal) {
				t.Fatalf("consent table %q, want %q", rows, want)
			}
			small := run(b, chromedp.Evaluate[[][]string](`[...document.querySelectorAll("td .claim")].map(e => [e.textContent, getComputedStyle(e).fontSize])`))
			if len(small) != 2 || small[0][0] != "email" || small[1][0] != "name" || pixels(t, small[0][1]) >= 16 {
				t.Fatalf("claim names in small print: %q, want email and name below the page's 16px", small)
			}
			b.submit(`button[name=decision][value=allow]`)
			cb := b.callback()
			b.shot("callback")

			res, err := rp.Finish(req, cb, e.Clock.Now)
			if err != nil {
				t.Fatalf("finishing the login: %v", err)
			}
			c := res.Claims
			if c["id4me.identifier"] != identifier || c["sub"] == "" {
				t.Fatalf("ID token claims %v", c)
			}
			wantAMR := []any{"pwd"}
			if tc.totp {
				wantAMR = []any{"pwd", "otp", "mfa"}
			}
			if !slices.Equal(c["amr"].([]any), wantAMR) {
				t.Fatalf("amr %v, want %v", c["amr"], wantAMR)
			}
			got, err := rp.DistributedClaims(res.Userinfo)
			if err != nil {
				t.Fatal(err)
			}
			if got["email"] != "alice@example.test" || got["name"] != "Alice" || got["phone_number"] != nil {
				t.Fatalf("distributed claims %v", got)
			}

			// Again: the session and the remembered consent send the browser straight back.
			again := rp.AuthRequest(map[string]string{"claims": testenv.EmailClaims})
			b.navigate(again.URL)
			res2, err := rp.Finish(again, b.callback(), e.Clock.Now)
			if err != nil {
				t.Fatalf("second login: %v", err)
			}
			if res2.Claims["sub"] != c["sub"] {
				t.Fatalf("second login sub %v, first %v", res2.Claims["sub"], c["sub"])
			}
		})
	}
}

// findChromium returns the path of Chromium; without it the test is skipped, or fails in
// CI (CI=true), which installs it.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "/usr/bin/chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed: .ci/run installs it (apt-get install chromium)")
	}
	t.Skip("chromium is not installed")
	return ""
}

// browser is a tab of a headless Chromium that trusts the authority's certificate and
// answers every request to the RP's redirect URI itself, recording its URL.
type browser struct {
	t   *testing.T
	ctx context.Context
	dir string
	n   int

	mu        sync.Mutex
	callbacks []string
}

// browserTimeout bounds a whole browser session; stepTimeout one action.
const (
	browserTimeout = 90 * time.Second
	stepTimeout    = 20 * time.Second
)

func newBrowser(t *testing.T, e *testenv.Env, chromium string, morePins ...string) *browser {
	t.Helper()
	return newPinnedBrowser(t, strings.Join(append([]string{spkiPin(t, e)}, morePins...), ","), chromium)
}

// newPinnedBrowser is newBrowser for servers whose certificates have the public key pins
// (base64 SHA-256 of their SPKI, comma-separated).
func newPinnedBrowser(t *testing.T, pin, chromium string) *browser {
	t.Helper()
	b := &browser{t: t, dir: artifactDir(t)}
	// The authority's certificate is a self-signed dev certificate. Chromium trusts it by its
	// public key (the SHA-256 of its SPKI), not by turning certificate checks off: this is
	// what --ignore-certificate-errors-spki-list is for (it needs --user-data-dir, which
	// chromedp sets to a temporary directory).
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox, // the tests run as root
		chromedp.DisableGPU,
		chromedp.WindowSize(1000, 900),
		chromedp.Flag("ignore-certificate-errors-spki-list", pin),
		chromedp.Flag("lang", "en-US"),
	)
	root, cancelRoot := context.WithTimeout(context.Background(), browserTimeout)
	actx, cancelAlloc := chromedp.NewExecAllocator(root, opts...)
	ctx, cancel := chromedp.NewContext(actx)
	answered := make(chan struct{})
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		cancelRoot()
		<-answered
	})
	b.ctx = ctx
	// The first call starts the browser; the requests to the RP's redirect URI (where
	// nothing listens) are paused and answered with a small page, so that the browser lands
	// there for good and its location is the callback URL.
	paused := chromedp.Events(ctx, fetch.RequestPaused)
	go func() {
		defer close(answered)
		for ev, err := range paused {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.callbacks = append(b.callbacks, ev.Request.URL)
			b.mu.Unlock()
			_, err := chromedp.Call(ctx, fetch.FulfillRequest, fetch.FulfillRequestParams{
				RequestID: ev.RequestID, ResponseCode: 200,
				ResponseHeaders: []*fetch.HeaderEntry{{Name: "Content-Type", Value: "text/html; charset=utf-8"}},
				Body:            []byte(`<!doctype html><title>RP</title><h1>Relying party callback</h1><p id="url"></p>`),
			})
			if err != nil && ctx.Err() == nil {
				t.Logf("answering the callback request: %v", err)
			}
		}
	}()
	if _, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{
		Patterns: []*fetch.RequestPattern{{URLPattern: oidctest.RedirectURI + "*"}},
	}); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return b
}

// spkiPin is the base64 SHA-256 of the public key of the certificate the authority's HTTPS
// listener presents, verified against the env's roots.
func spkiPin(t *testing.T, e *testenv.Env) string {
	t.Helper()
	u, err := url.Parse(e.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", u.Host, &tls.Config{RootCAs: e.Roots, ServerName: u.Hostname()})
	if err != nil {
		t.Fatalf("TLS to the authority: %v", err)
	}
	defer conn.Close()
	sum := sha256.Sum256(conn.ConnectionState().PeerCertificates[0].RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// artifactDir is where the screenshots go: a directory per test under
// $ID4ME_TEST_ARTIFACTS, or a temporary directory.
func artifactDir(t *testing.T) string {
	t.Helper()
	base := os.Getenv("ID4ME_TEST_ARTIFACTS")
	if base == "" {
		return t.TempDir()
	}
	dir := filepath.Join(base, regexp.MustCompile(`[^A-Za-z0-9._-]+`).ReplaceAllString(t.Name(), "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// step returns a context for one action.
func (b *browser) step() (context.Context, context.CancelFunc) {
	return context.WithTimeout(b.ctx, stepTimeout)
}

func (b *browser) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("browser: %v (at %s)", err, b.location())
	}
}

func run[T any](b *browser, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("browser: %v (at %s)", err, b.location())
	}
	return v
}

// location is the tab's URL, for messages.
func (b *browser) location() string {
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
	defer cancel()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		return "unknown location: " + err.Error()
	}
	return loc
}

// navigate opens u and waits until the page (after redirects) has loaded.
func (b *browser) navigate(u string) {
	b.t.Helper()
	b.do(chromedp.Navigate(u))
}

// submit clicks the button sel and waits for the page the form leads to.
func (b *browser) submit(sel string) {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
	if err != nil {
		b.t.Fatalf("submitting with %s: %v (at %s)", sel, err, b.location())
	}
	if resp != nil && resp.Status >= 400 {
		b.shot("error")
		b.t.Fatalf("submitting with %s: status %d at %s: %q", sel, resp.Status, resp.URL, b.text("main"))
	}
}

// fill types v into the input with the id.
func (b *browser) fill(id, v string) {
	b.t.Helper()
	b.do(chromedp.SendKeys(chromedp.ID(id), v, chromedp.NodeVisible))
}

func (b *browser) value(id string) string {
	b.t.Helper()
	return run(b, chromedp.Value(chromedp.ID(id)))
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	return strings.TrimSpace(run(b, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible)))
}

// expectTitle checks the page's heading; on another page it fails with the page's text.
func (b *browser) expectTitle(want string) {
	b.t.Helper()
	if got := b.text("h1"); got != want {
		b.shot("unexpected")
		b.t.Fatalf("page %q at %s, want %q; the page says %q", got, b.location(), want, b.text("main"))
	}
}

// expectStyled checks that the page's style sheet applied (the CSP allows it, the asset
// is served): the main box is white on the grey page.
func (b *browser) expectStyled() {
	b.t.Helper()
	got := run(b, chromedp.Evaluate[[]string](`[getComputedStyle(document.body).backgroundColor, getComputedStyle(document.querySelector("main")).backgroundColor]`))
	if want := []string{"rgb(244, 245, 247)", "rgb(255, 255, 255)"}; !slices.Equal(got, want) {
		b.t.Fatalf("background colours (body, main) %q, want %q: is /assets/style.css applied?", got, want)
	}
}

// tableRows returns the text of the cells of the consent table's body.
func (b *browser) tableRows() [][]string {
	b.t.Helper()
	return run(b, chromedp.Evaluate[[][]string](`[...document.querySelectorAll("table tbody tr")].map(r => [...r.cells].map(c => c.textContent.trim()))`))
}

// callback waits until the tab is at the RP's redirect URI and returns that URL, checked
// against the request the browser made there.
func (b *browser) callback() string {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	for {
		loc, err := chromedp.Run(ctx, chromedp.Location())
		if err == nil && strings.HasPrefix(loc, oidctest.RedirectURI+"?") {
			b.mu.Lock()
			seen := slices.Contains(b.callbacks, loc)
			b.mu.Unlock()
			if !seen {
				b.t.Fatalf("the tab is at %s, but the browser made no request for it", loc)
			}
			return loc
		}
		select {
		case <-ctx.Done():
			b.shot("no-callback")
			b.t.Fatalf("the browser did not reach %s: at %s (%v)", oidctest.RedirectURI, b.location(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// shot saves a full-page screenshot as NN-name.png.
func (b *browser) shot(name string) {
	b.t.Helper()
	buf := run(b, chromedp.FullScreenshot(100))
	if len(buf) == 0 {
		b.t.Fatalf("empty screenshot of %s", name)
	}
	b.n++
	p := filepath.Join(b.dir, fmt.Sprintf("%02d-%s.png", b.n, name))
	if err := os.WriteFile(p, buf, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot %s", p)
}

// pixels reads a computed CSS length such as "12.8px".
func pixels(t *testing.T, css string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(strings.TrimSuffix(css, "px"), 64)
	if err != nil {
		t.Fatalf("CSS length %q: %v", css, err)
	}
	return v
}
