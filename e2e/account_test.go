package e2e

import (
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/id4me/id4me-registry/internal/testenv"
	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
)

// TestAccountBrowser: the account page in headless Chromium. The holder, logged in at a
// site from another device (an HTTP client), logs in at /account directly, sees the site and
// both sessions, revokes the site, after which its access token is refused at userinfo, and
// ends the other device's session, after which prompt=none there gets login_required. A
// passkey is added on the page and logs in. Screenshots go to $ID4ME_TEST_ARTIFACTS.
func TestAccountBrowser(t *testing.T) {
	long(t, "the account page in headless Chromium")
	chromium := findChromium(t)
	e := testenv.New(t, testenv.Options{Authority: true, IssuerHost: "localhost"})
	b := newBrowser(t, e, chromium)
	agent, claims := e.StartAgent("alpha")
	const alice = "alice.example.test"
	claims.Claims[alice] = map[string]any{"email": "alice@example.test"}
	h := e.HolderFor(agent, alice, false)

	// The other device logs in at the shop, which gets an access token.
	rp := e.NewRP(map[string]any{"client_name": "Shop"})
	res := e.Login(rp, h, map[string]string{"claims": testenv.EmailClaims})
	if _, _, _, err := rp.Userinfo(res.Token.AccessToken); err != nil {
		t.Fatalf("userinfo before the revocation: %v", err)
	}

	// The holder opens the account page, which asks for a login first.
	b.navigate(e.Issuer + "/account")
	b.expectTitle("Log in with your ID4me identifier")
	if got := b.text("p.client"); !strings.Contains(got, "account page") {
		t.Fatalf("the account login names %q", got)
	}
	b.fill("identifier", alice)
	b.fill("password", h.Password)
	b.submit(`form[action="/login"] button[type=submit]`)
	b.expectTitle("Your ID4me account")
	b.shot("account")
	sites := b.rows("#sites")
	if len(sites) != 1 || !strings.Contains(sites[0][0], "Shop") || !strings.Contains(sites[0][1], "email") {
		t.Fatalf("sites on the account page %q", sites)
	}
	sessions := b.rows("#sessions")
	if len(sessions) != 2 {
		t.Fatalf("sessions on the account page %q, want the other device's and this browser's", sessions)
	}

	// Revoking the shop ends its access token.
	b.submit(`#sites button[name=revoke][value=Shop]`)
	if got := b.text("#notice"); !strings.Contains(got, "access was revoked") {
		t.Fatalf("after revoking, the page says %q", got)
	}
	b.shot("site-revoked")
	if len(b.rows("#sites")) != 0 {
		t.Fatalf("the site is still listed: %q", b.rows("#sites"))
	}
	if _, _, _, err := rp.Userinfo(res.Token.AccessToken); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("userinfo with the revoked site's access token: %v, want 401", err)
	}

	// Ending the other device's session: prompt=none there needs a login again.
	b.submit(`#sessions tr:not(:has(strong)) button`)
	if got := b.text("#notice"); got != "The session was ended." {
		t.Fatalf("after ending the session, the page says %q", got)
	}
	b.shot("session-ended")
	if got := b.rows("#sessions"); len(got) != 1 || !strings.Contains(got[0][0], "(this browser)") {
		t.Fatalf("sessions after ending the other one %q", got)
	}
	none := rp.AuthRequest(map[string]string{"prompt": "none"})
	cb, p, err := h.Login(none.URL)
	if err != nil {
		t.Fatalf("prompt=none after the session ended: %v (page %q)", err, p.Title())
	}
	u, err := url.Parse(cb)
	if err != nil || u.Query().Get("error") != "login_required" {
		t.Fatalf("prompt=none after the session ended came back with %s, want error=login_required", cb)
	}

	// A passkey added on the account page (the login is fresh) logs in alone.
	auth := b.virtualAuthenticator()
	b.fill("passkey-name", "Phone")
	b.clickAndWait("#passkey-add", "#notice")
	if got := b.text("#notice"); got != "Your passkey was added." {
		t.Fatalf("after adding a passkey, the page says %q", got)
	}
	if got := b.rows("#account-passkeys"); len(got) != 1 || got[0][0] != "Phone" {
		t.Fatalf("passkeys on the account page %q", got)
	}
	b.shot("passkey-added")
	var activity []string
	for _, row := range b.rows("#activity") {
		activity = append(activity, row[1]+" "+row[2])
	}
	for _, want := range []string{"Passkey added Phone", "A session ended ", "A site's access revoked ", "Signed in with pwd", "Credentials set through a link from your agent "} {
		if !slices.Contains(activity, want) {
			t.Fatalf("recent activity %q lacks %q", activity, want)
		}
	}
	// The agent is told of credential changes (not of sign-ins or revocations), with no
	// secret.
	events, err := e.RegistryAPI.ListEvents(agent.Ctx(), &registryv1.ListEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for _, ev := range events.GetEvents() {
		if ev.GetType() == registryv1.Event_TYPE_CREDENTIALS_CHANGED && ev.GetIdentifier() == alice {
			reasons = append(reasons, ev.GetReason())
		}
	}
	if want := []string{"holder_credential.set", "holder_credential.passkey_add"}; !slices.Equal(reasons, want) {
		t.Fatalf("the agent's credential events %q, want %q", reasons, want)
	}
	// An authenticator app, set up on the page, is confirmed with its first code.
	b.submit(`#totp-begin`)
	b.expectTitle("Add " + alice + " to your authenticator app")
	b.shot("totp-enrol")
	b.fill("code", e.TOTPCode(b.text("#secret")))
	b.submit(`button[type=submit]`)
	if got := b.text("#notice"); !strings.Contains(got, "authenticator app is set up") {
		t.Fatalf("after setting up TOTP, the page says %q", got)
	}
	if got := b.text("#totp-remove"); got != "Remove the authenticator app" {
		t.Fatalf("the TOTP section offers %q", got)
	}

	// Recovery codes are shown once; one replaces the second factor once.
	b.submit(`#recovery-new`)
	b.expectTitle("Your recovery codes")
	b.shot("recovery-codes")
	codes := run(b, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#codes li")].map(li => li.textContent)`))
	if len(codes) != 10 {
		t.Fatalf("recovery codes %q, want 10", codes)
	}
	b.navigate(e.Issuer + "/account")
	if got := b.text("#recovery-left"); !strings.HasPrefix(got, "You have 10 unused recovery codes.") {
		t.Fatalf("the account page says %q of the recovery codes", got)
	}
	b.presence(auth, false) // no passkey answers: the password and a recovery code log in
	shop := rp.AuthRequest(map[string]string{"login_hint": alice, "prompt": "login"})
	b.navigate(shop.URL)
	b.fill("password", h.Password)
	b.submit(`form[action="/login"] button[type=submit]`)
	b.expectTitle("Enter your authenticator code")
	b.do(chromedp.Click(chromedp.CSS(`#use-recovery summary`), chromedp.NodeVisible))
	b.fill("recovery", strings.ToUpper(codes[3]))
	b.submit(`#recovery-submit`)
	b.expectTitle("Share your data?") // the shop's consent was revoked
	b.submit(`button[name=decision][value=allow]`)
	rec, err := rp.Finish(shop, b.callback(), e.Clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rec.Claims["amr"], []any{"pwd", "otp", "mfa"}; !slices.Equal(got.([]any), want) {
		t.Fatalf("amr with a recovery code %v, want %v", got, want)
	}
	b.navigate(e.Issuer + "/account")
	if got := b.text("#recovery-left"); !strings.HasPrefix(got, "You have 9 unused recovery codes.") {
		t.Fatalf("after using one, the account page says %q", got)
	}
	b.presence(auth, true)

	// Logging out leads to the account's login page, whose conditional request the
	// authenticator answers at once: the passkey logs the holder back in.
	b.submit(`#sessions tr:has(strong) button`)
	b.do(chromedp.WaitVisible(chromedp.CSS(`#account-passkeys`)))
	b.expectTitle("Your ID4me account")
	b.shot("account-after-passkey-login")
	if got := b.rows("#account-passkeys"); len(got) != 1 || got[0][3] == "never" {
		t.Fatalf("passkeys after logging in with one %q: it should show its last use", got)
	}
}

// rows returns the text of the cells of the body of the table sel.
func (b *browser) rows(sel string) [][]string {
	b.t.Helper()
	return run(b, chromedp.Evaluate[[][]string](`[...document.querySelectorAll(`+"`"+sel+" tbody tr`"+`)].map(r => [...r.cells].map(c => c.textContent.trim()))`))
}
