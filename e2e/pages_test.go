package e2e

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/id4me/id4me-registry/internal/testdb"
)

// TestAuthorityLandingPageAndBranding opens the issuer's root in headless Chromium, as
// someone who types the host of an identifier's _openid record would: a page in the
// authority's style with its name, its issuer, a link to discovery and what ID4me is, and
// the favicon. Then the same on a registry started with --ui-name and --ui-dir, whose files
// replace the style sheet and a template of the layout. Screenshots go to
// $ID4ME_TEST_ARTIFACTS.
func TestAuthorityLandingPageAndBranding(t *testing.T) {
	long(t, "registries and headless Chromium")
	chromium := findChromium(t)

	t.Run("default", func(t *testing.T) {
		in := startInstance(t, testdb.SQLite(t))
		b := newPinnedBrowser(t, instancePin(t, in.HTTPAddr), chromium)
		issuer := "https://" + in.HTTPAddr
		b.navigate(issuer + "/")
		b.expectTitle("ID4me Identity Authority")
		b.expectStyled()
		b.shot("home")
		if got := run(b, chromedp.Title()); got != "Identity authority – ID4me Identity Authority" {
			t.Errorf("document title %q", got)
		}
		if got := b.text("main"); !strings.Contains(got, issuer) || !strings.Contains(got, "ID4me identity authority") {
			t.Errorf("the landing page says %q; want the issuer %s and what it is", got, issuer)
		}
		links := run(b, chromedp.Evaluate[[]string](`[...document.querySelectorAll("main a")].map(a => a.href)`))
		for _, want := range []string{issuer + "/.well-known/openid-configuration", "https://id4me.org/"} {
			if !strings.Contains(strings.Join(links, " "), want) {
				t.Errorf("links %q, want %s", links, want)
			}
		}
		// The favicon is served from the binary, named by the page, and draws.
		icon := run(b, chromedp.Evaluate[[]any](`[document.querySelector("link[rel=icon]").href, document.querySelector(".brand img").naturalWidth]`))
		if icon[0] != issuer+"/favicon.svg" || icon[1].(float64) == 0 {
			t.Errorf("favicon link and image width %v, want %s/favicon.svg, drawn", icon, issuer)
		}
		b.navigate(issuer + "/favicon.svg")
		if got := run(b, chromedp.Evaluate[string](`document.contentType`)); got != "image/svg+xml" {
			t.Errorf("/favicon.svg served as %q", got)
		}
	})

	t.Run("branded", func(t *testing.T) {
		dir := t.TempDir()
		files := map[string]string{
			"style.css": "body { background: rgb(10, 20, 30); } main { background: rgb(250, 240, 230); }",
			// "foot" of the layout, redefined: the operator's footer on every page.
			"foot.html": `{{define "foot"}}<footer><p id="operator">Run by Example Registry GmbH</p></footer></main></body></html>{{end}}`,
		}
		for name, content := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		in := startInstance(t, testdb.SQLite(t), "--ui-name", "Example Registry ID", "--ui-dir", dir)
		b := newPinnedBrowser(t, instancePin(t, in.HTTPAddr), chromium)
		b.navigate("https://" + in.HTTPAddr + "/")
		b.expectTitle("Example Registry ID")
		b.shot("home-branded")
		if got := b.text(".brand"); got != "Example Registry ID" {
			t.Errorf("brand %q, want the --ui-name", got)
		}
		if got := b.text("#operator"); got != "Run by Example Registry GmbH" {
			t.Errorf("footer %q, want the --ui-dir template's", got)
		}
		colours := run(b, chromedp.Evaluate[[]string](`[getComputedStyle(document.body).backgroundColor, getComputedStyle(document.querySelector("main")).backgroundColor]`))
		if colours[0] != "rgb(10, 20, 30)" || colours[1] != "rgb(250, 240, 230)" {
			t.Errorf("background colours %q: the --ui-dir style sheet is not applied", colours)
		}
	})

	// A --ui-dir whose template does not parse stops the registry at start, saying why.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "consent.html"), []byte(`{{define "consent"}}{{.Nope`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, stderr, err := cli(t, nil, "serve", "--dev", "--db", testdb.SQLite(t), "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--ui-dir", dir); err == nil || !strings.Contains(stderr, "consent.html") {
		t.Errorf("serve with a broken --ui-dir template: err %v, stderr %q; want a refusal naming the file", err, stderr)
	}
}

// instancePin is the base64 SHA-256 of the public key of the certificate a registry started
// by the test serves at addr (its self-signed dev certificate).
func instancePin(t *testing.T, addr string) string {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) // the pin is taken from it
	if err != nil {
		t.Fatalf("TLS to %s: %v", addr, err)
	}
	defer conn.Close()
	sum := sha256.Sum256(conn.ConnectionState().PeerCertificates[0].RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}
