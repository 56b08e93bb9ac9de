package e2e

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"html"
	"regexp"
	"slices"
	"strings"
	"testing"

	cdpwebauthn "github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/id4me/id4me-registry/internal/oidctest"
	"github.com/id4me/id4me-registry/internal/testenv"
	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
)

// TestPasskeysBrowser: passkeys in headless Chromium with a virtual authenticator (the
// DevTools WebAuthn domain). Holders add a passkey on the credential link of their
// registration; then the passkey logs in alone, serves as the second factor after the
// password, and a passkey of another identity is refused as the second factor. Screenshots
// go to $ID4ME_TEST_ARTIFACTS.
func TestPasskeysBrowser(t *testing.T) {
	long(t, "passkeys in headless Chromium")
	chromium := findChromium(t)
	// WebAuthn takes no IP address for a relying-party ID: the issuer is localhost.
	e := testenv.New(t, testenv.Options{Authority: true, IssuerHost: "localhost"})
	b := newBrowser(t, e, chromium)
	auth := b.virtualAuthenticator()
	agent, claims := e.StartAgent("alpha")
	const alice, bob = "alice.example.test", "bob.example.test"
	claims.Claims[alice] = map[string]any{"email": "alice@example.test", "name": "Alice"}
	claims.Claims[bob] = map[string]any{"email": "bob@example.test", "name": "Bob"}

	passwords := map[string]string{}
	for _, id := range []string{alice, bob} {
		// The holder adds a passkey on the link, then sets the password, which makes it work.
		b.navigate(e.RegisterForLink(agent, id))
		b.expectTitle("Set up the credentials of " + id)
		b.shot("credential-" + id)
		b.fill("passkey-name", "Laptop of "+id)
		b.clickAndWait("#passkey-add", "#added")
		b.shot("passkey-added-" + id)
		if got := b.text("#added"); !strings.Contains(got, "Laptop of "+id) {
			t.Fatalf("after adding a passkey the page says %q", got)
		}
		if rows := b.tableRows(); len(rows) != 1 || rows[0][0] != "Laptop of "+id || rows[0][1] != "device-bound passkey" {
			t.Fatalf("passkeys on the credential page %q", rows)
		}
		passwords[id] = "correct horse battery staple " + rand.Text()
		b.fill("password", passwords[id])
		b.fill("confirm", passwords[id])
		b.submit(`form:not(.passkey) button[type=submit]`)
		b.expectTitle("Your credentials are set")
		if got := b.text("main"); !strings.Contains(got, "or with your passkey") || !strings.Contains(got, "Laptop of "+id) {
			t.Fatalf("the last page of the link says %q", got)
		}
	}
	got, err := chromedp.Call(b.ctx, cdpwebauthn.GetCredentials, cdpwebauthn.GetCredentialsParams{AuthenticatorID: auth})
	if err != nil {
		t.Fatal(err)
	}
	creds := got.Credentials
	if len(creds) != 2 || !creds[0].IsResidentCredential || creds[0].RpID != "localhost" {
		t.Fatalf("the authenticator holds %d credentials (%+v), want 2 discoverable ones for localhost", len(creds), creds)
	}

	rp := e.NewRP(map[string]any{"client_name": "Shop"})
	var aliceCred string // base64url, learnt from the second-factor page
	t.Run("passkey alone", func(t *testing.T) {
		b.t = t
		req := rp.AuthRequest(map[string]string{"claims": testenv.EmailClaims, "login_hint": alice})
		// Conditional UI: the login page asks for a passkey as it loads, which the browser
		// offers in the identifier's autofill; the virtual authenticator, which needs no
		// touch, answers at once with one of the two (with no allow list), and the page
		// logs that holder in.
		b.navigate(req.URL)
		b.do(chromedp.WaitVisible(chromedp.CSS(`form[action="/consent"]`)))
		b.expectTitle("Share your data?")
		b.shot("consent-after-passkey")
		b.submit(`button[name=decision][value=allow]`)
		res, err := rp.Finish(req, b.callback(), e.Clock.Now)
		if err != nil {
			t.Fatal(err)
		}
		c := res.Claims
		if id := c["id4me.identifier"]; id != alice && id != bob {
			t.Fatalf("identifier %v", id)
		}
		if got, want := c["amr"], []any{"hwk", "user"}; !slices.Equal(got.([]any), want) {
			t.Fatalf("amr %v, want %v", got, want)
		}
		if c["acr"] != "phr" {
			t.Fatalf("acr %v, want phr", c["acr"])
		}
	})

	t.Run("password and passkey", func(t *testing.T) {
		b.t = t
		// No touch: the login page's conditional request waits, and the password is used.
		b.presence(auth, false)
		req := rp.AuthRequest(map[string]string{"claims": testenv.EmailClaims, "login_hint": alice, "prompt": "login consent", "acr_values": "phr"})
		b.navigate(req.URL)
		b.expectTitle("Log in with your ID4me identifier")
		if got := b.text("#acr"); !strings.Contains(got, "asks for a login with a passkey") {
			t.Fatalf("the login page says %q about acr_values=phr", got)
		}
		b.fill("password", passwords[alice])
		b.submit(`form[action="/login"] button[type=submit]`)
		b.expectTitle("Confirm with your passkey")
		b.shot("second-factor")

		// A page changed to ask for Bob's passkey (the authenticator has it) gets it
		// refused: it is not one of Alice's.
		allowed := b.allowedCredentials()
		if len(allowed) != 1 {
			t.Fatalf("the second-factor page allows %d credentials, want Alice's one", len(allowed))
		}
		aliceCred = allowed[0]
		var bobs []byte
		for _, c := range creds {
			if base64.RawURLEncoding.EncodeToString(c.CredentialID) != allowed[0] {
				bobs = c.CredentialID
			}
		}
		b.setAllowedCredentials(base64.RawURLEncoding.EncodeToString(bobs))
		b.presence(auth, true)
		b.clickAndWait("#passkey-second", "#error")
		b.shot("other-identity-refused")
		if got := b.text("#error"); got != "That passkey is not one of "+alice+"'s. Use one of yours." {
			t.Fatalf("with Bob's passkey the page says %q", got)
		}

		// Alice's own passkey, offered again, goes through.
		b.clickAndWait("#passkey-second", "h1")
		b.expectTitle("Share your data?")
		b.submit(`button[name=decision][value=allow]`)
		res, err := rp.Finish(req, b.callback(), e.Clock.Now)
		if err != nil {
			t.Fatal(err)
		}
		c := res.Claims
		if c["id4me.identifier"] != alice {
			t.Fatalf("identifier %v, want %s", c["id4me.identifier"], alice)
		}
		if got, want := c["amr"], []any{"pwd", "hwk", "user", "mfa"}; !slices.Equal(got.([]any), want) {
			t.Fatalf("amr %v, want %v", got, want)
		}
		if c["acr"] != "phr" {
			t.Fatalf("acr %v, want phr", c["acr"])
		}
	})

	t.Run("a reset revokes the passkeys", func(t *testing.T) {
		b.t = t
		link, err := e.RegistryAPI.CreateCredentialLink(agent.Ctx(), &registryv1.CreateCredentialLinkRequest{Identifier: alice, Purpose: registryv1.CredentialLink_PURPOSE_RESET})
		if err != nil {
			t.Fatal(err)
		}
		e.SetCredentials(alice, link.GetUrl(), false)
		// Only Alice's passkey is left in the authenticator: the login page's conditional
		// request gets it, and the authority no longer knows it.
		for _, c := range creds {
			if base64.RawURLEncoding.EncodeToString(c.CredentialID) != aliceCred {
				if _, err := chromedp.Call(b.ctx, cdpwebauthn.RemoveCredential, cdpwebauthn.RemoveCredentialParams{AuthenticatorID: auth, CredentialID: c.CredentialID}); err != nil {
					t.Fatal(err)
				}
			}
		}
		b.presence(auth, true)
		req := rp.AuthRequest(map[string]string{"prompt": "login"})
		b.navigate(req.URL)
		b.do(chromedp.WaitVisible(chromedp.CSS(`#error`)))
		b.shot("reset-passkey-refused")
		if got := b.text("#error"); got != "This passkey cannot log in here. Use another passkey, or your password." {
			t.Fatalf("a passkey of before the reset gets %q", got)
		}
		b.presence(auth, false)
	})

	t.Run("password alone refused for a phishing-resistant request", func(t *testing.T) {
		b.t = t
		// Carol has a password and no passkey: acr_values=phr cannot be met by it.
		h := e.HolderFor(agent, "carol.example.test", false)
		b.presence(auth, false)
		req := rp.AuthRequest(map[string]string{"login_hint": h.Identifier, "prompt": "login", "acr_values": "phr"})
		b.navigate(req.URL)
		b.fill("password", h.Password)
		b.clickAndWait(`form[action="/login"] button[type=submit]`, "#error")
		b.shot("password-alone-refused")
		if got := b.text("#error"); !strings.Contains(got, "asks you to log in with a passkey") {
			t.Fatalf("a password login for acr_values=phr says %q", got)
		}
	})
}

// virtualAuthenticator enables the WebAuthn domain and adds a platform authenticator that
// keeps discoverable credentials, verifies the user and answers at once.
func (b *browser) virtualAuthenticator() cdpwebauthn.AuthenticatorID {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	if _, err := chromedp.Call(ctx, cdpwebauthn.Enable, cdpwebauthn.EnableParams{}); err != nil {
		b.t.Fatalf("enabling WebAuthn: %v", err)
	}
	r, err := chromedp.Call(ctx, cdpwebauthn.AddVirtualAuthenticator, cdpwebauthn.AddVirtualAuthenticatorParams{Options: &cdpwebauthn.VirtualAuthenticatorOptions{
		Protocol: cdpwebauthn.AuthenticatorProtocolCtap2, Ctap2version: cdpwebauthn.Ctap2versionCtap21,
		Transport: cdpwebauthn.AuthenticatorTransportInternal, HasResidentKey: true, HasUserVerification: true,
		IsUserVerified: true, AutomaticPresenceSimulation: true,
	}})
	if err != nil {
		b.t.Fatalf("adding a virtual authenticator: %v", err)
	}
	return r.AuthenticatorID
}

// presence turns the virtual authenticator's simulated touch on or off: off, its
// requests wait.
func (b *browser) presence(auth cdpwebauthn.AuthenticatorID, on bool) {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	if _, err := chromedp.Call(ctx, cdpwebauthn.SetAutomaticPresenceSimulation, cdpwebauthn.SetAutomaticPresenceSimulationParams{AuthenticatorID: auth, Enabled: on}); err != nil {
		b.t.Fatalf("turning the authenticator's presence simulation %v: %v", on, err)
	}
}

// clickAndWait clicks sel, whose form's script runs a WebAuthn ceremony before it posts,
// and waits for an element of the page that follows.
func (b *browser) clickAndWait(sel, next string) {
	b.t.Helper()
	run(b, chromedp.Evaluate[string](`document.body.dataset.before = "1"`))
	b.do(chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
	b.do(chromedp.WaitVisible(chromedp.CSS(`body:not([data-before]) ` + next)))
}

// allowedCredentials returns the IDs (base64url) of the credentials the page's passkey
// form allows.
func (b *browser) allowedCredentials() []string {
	b.t.Helper()
	return run(b, chromedp.Evaluate[[]string](`(JSON.parse(document.querySelector("form.passkey").dataset.options).publicKey.allowCredentials || []).map(c => c.id)`))
}

// setAllowedCredentials changes the page's passkey form to allow only the credential id.
func (b *browser) setAllowedCredentials(id string) {
	b.t.Helper()
	run(b, chromedp.Evaluate[bool](`(() => {
		const f = document.querySelector("form.passkey"), o = JSON.parse(f.dataset.options);
		o.publicKey.allowCredentials = [{type: "public-key", id: `+"`"+id+"`"+`}];
		f.dataset.options = JSON.stringify(o);
		return true;
	})()`))
}

// TestPasskeyAloneNeedsUserVerification: the login page asks for a passkey alone (the
// discoverable login) only with user verification required, so that an authenticator
// that does not verify its user (no PIN, no biometrics) cannot log in on possession alone;
// go-webauthn then refuses an assertion without the UV flag. Read off the page as the
// browser gets it.
func TestPasskeyAloneNeedsUserVerification(t *testing.T) {
	long(t, "the login page of an authority with passkeys")
	e := testenv.New(t, testenv.Options{Authority: true, IssuerHost: "localhost"})
	rp := e.NewRP(nil)
	h := &oidctest.Holder{Client: oidctest.HTTPClient(e.Roots, true)}
	p, err := h.Get(rp.AuthRequest(nil).URL)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`data-ceremony="get" data-options="([^"]*)" data-conditional`).FindStringSubmatch(p.Body)
	if m == nil {
		t.Fatalf("the login page offers no passkey login:\n%s", p.Body)
	}
	var opts struct {
		PublicKey struct {
			UserVerification string `json:"userVerification"`
			AllowCredentials []any  `json:"allowCredentials"`
		} `json:"publicKey"`
	}
	if err := json.Unmarshal([]byte(html.UnescapeString(m[1])), &opts); err != nil {
		t.Fatalf("the passkey options %q: %v", m[1], err)
	}
	if opts.PublicKey.UserVerification != "required" || len(opts.PublicKey.AllowCredentials) != 0 {
		t.Fatalf("the passkey-alone login asks for user verification %q (allow list %v), want required and no allow list", opts.PublicKey.UserVerification, opts.PublicKey.AllowCredentials)
	}
}
