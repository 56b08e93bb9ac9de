package authority_test

import (
	"net/http"
	"testing"

	"github.com/id4me/id4me-registry/internal/oidctest"
	"github.com/id4me/id4me-registry/internal/testdb"
)

// TestAuthorityDatabaseOutageIsUnavailable stops the PostgreSQL server of the test's own under
// a running authority: userinfo answers 503 temporarily_unavailable and the login page a 503
// page, both with Retry-After, without a log line per request (the store logs the outage
// once); once the server is back, both work again.
func TestAuthorityDatabaseOutageIsUnavailable(t *testing.T) {
	pg := testdb.StartServer(t)
	e := newAuthEnv(t, envOptions{dsn: func(testing.TB) string { return pg.DSN() }})
	agent, _ := e.startAgent("alpha")
	h := e.holderFor(agent, "alice.example.test", false)
	rp := e.newRP(nil)
	res := e.login(rp, h, nil)
	// A sign-in in progress, at its login page.
	p, err := h.Get(rp.AuthRequest(map[string]string{"prompt": "login"}).URL)
	if err != nil || p.Action() != "/login" {
		t.Fatalf("login page: %v, page %d %q", err, p.Status, p.Title())
	}
	loginPage := p.URL
	userinfo := func() (int, map[string]any, http.Header) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, e.issuer+"/userinfo", nil)
		req.Header.Set("Authorization", "Bearer "+res.Token.AccessToken)
		return oidctest.SendJSON(t, e.rpClient, req)
	}
	page := func() oidctest.Page {
		t.Helper()
		p, err := h.Get(loginPage)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	pg.Stop(t, "fast")
	for range 3 {
		status, m, hdr := userinfo()
		if status != http.StatusServiceUnavailable || m["error"] != "temporarily_unavailable" || hdr.Get("Retry-After") == "" {
			t.Fatalf("userinfo during the outage: %d %v Retry-After %q, want 503 temporarily_unavailable", status, m, hdr.Get("Retry-After"))
		}
		p := page()
		if p.Status != http.StatusServiceUnavailable || p.Title() != "This service is unavailable for a moment." || p.Header.Get("Retry-After") == "" {
			t.Fatalf("login page during the outage: %d %q Retry-After %q, want the 503 page", p.Status, p.Title(), p.Header.Get("Retry-After"))
		}
	}
	if n := e.logs.count("authority: internal error"); n != 0 {
		t.Fatalf("the outage was logged as %d internal errors:\n%s", n, e.logs.String())
	}
	if n := e.logs.count("database unreachable: calls fail with UNAVAILABLE until it answers again"); n != 1 {
		t.Fatalf("%d log lines say the database is unreachable, want 1 for the whole outage", n)
	}

	pg.Start(t)
	if status, m, _ := userinfo(); status != http.StatusOK || m["sub"] == nil {
		t.Fatalf("userinfo after the outage: %d %v", status, m)
	}
	if p := page(); p.Status != http.StatusOK || p.Action() != "/login" {
		t.Fatalf("login page after the outage: %d %q", p.Status, p.Title())
	}
}
