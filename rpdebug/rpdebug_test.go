package rpdebug

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/id4me/id4me-registry/internal/devdns"
)

func startDNS(t *testing.T) *devdns.Server {
	t.Helper()
	s, err := devdns.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.AddZone("example.test.")
	return s
}

func TestDiscoverOverDNS(t *testing.T) {
	ns := startDNS(t)
	ns.SetTXT("_openid.alice.example.test.", "v=OID1;iss=id.example.test;clp=agent.example.test")
	// bob@example.test is looked up under the hash of "bob" (id4me.DNSName).
	ns.SetTXT("_openid.81b637d8fcd2c6da6359e6963113a1170de795e4b725b84d1e0b4cfd.example.test.", "unrelated", "v=OID1;iss=https://id.example.test")
	ns.SetTXT("_openid.broken.example.test.", "v=OID2;iss=id.example.test")
	r := DNSServer{Addr: ns.Addr, Timeout: 2 * time.Second}
	for _, tc := range []struct {
		identifier, name, issuer, err string
		truncate                      bool
	}{
		{identifier: "alice.example.test", name: "_openid.alice.example.test", issuer: "https://id.example.test"},
		{identifier: "alice.example.test", name: "_openid.alice.example.test", issuer: "https://id.example.test", truncate: true},
		{identifier: "bob@example.test", name: "_openid.81b637d8fcd2c6da6359e6963113a1170de795e4b725b84d1e0b4cfd.example.test", issuer: "https://id.example.test"},
		{identifier: "broken.example.test", name: "_openid.broken.example.test", err: "version"},
		{identifier: "nobody.example.test", name: "_openid.nobody.example.test", err: "NXDOMAIN"},
	} {
		t.Run(tc.identifier, func(t *testing.T) {
			ns.SetTruncate(tc.truncate)
			defer ns.SetTruncate(false)
			d, err := discover(context.Background(), r, tc.identifier)
			if d.Name != tc.name {
				t.Errorf("looked up %q, want %q", d.Name, tc.name)
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one saying %q", err, tc.err)
				}
				return
			}
			if err != nil || d.Issuer != tc.issuer {
				t.Fatalf("issuer %q, %v; want %q", d.Issuer, err, tc.issuer)
			}
			if tc.truncate && !strings.Contains(d.Transcript, "(tcp)") {
				t.Errorf("a truncated answer was not asked again over TCP: %s", d.Transcript)
			}
		})
	}
}

func TestClaimsParameter(t *testing.T) {
	got := claimsParameter([]ClaimRequest{{Name: "email", Essential: true, Reason: "for receipts"}, {Name: "name"}, {Name: "phone_number", Reason: "to call"}})
	var m map[string]map[string]any
	if err := json.Unmarshal([]byte(got), &m); err != nil {
		t.Fatal(err)
	}
	ui := m["userinfo"]
	if len(m) != 1 || len(ui) != 3 || ui["name"] != nil {
		t.Fatalf("claims parameter %s", got)
	}
	email, _ := ui["email"].(map[string]any)
	phone, _ := ui["phone_number"].(map[string]any)
	if email["essential"] != true || email["reason"] != "for receipts" || phone["essential"] != nil || phone["reason"] != "to call" {
		t.Fatalf("claims parameter %s", got)
	}
	if claimsParameter(nil) != "" {
		t.Fatal("no claims asked for gives a claims parameter")
	}
}

// TestRecorder checks that the exchange log keeps requests and answers, bodies included,
// in order, and that the caller still reads both bodies whole.
func TestRecorder(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Seen", string(b))
		io.WriteString(w, "answer to "+r.URL.Path)
	}))
	defer srv.Close()
	rec := &recorder{base: http.DefaultTransport}
	c := &http.Client{Transport: rec}
	for _, p := range []string{"/one", "/two"} {
		req, _ := http.NewRequestWithContext(withPurpose(context.Background(), "test"+p), http.MethodPost, srv.URL+p, strings.NewReader("body"+p))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "answer to "+p || resp.Header.Get("X-Seen") != "body"+p {
			t.Fatalf("through the recorder: %q, server saw %q", b, resp.Header.Get("X-Seen"))
		}
	}
	rec.base = failing{}
	c.Get(srv.URL + "/three")
	ex := rec.exchanges()
	if len(ex) != 3 {
		t.Fatalf("%d exchanges, want 3", len(ex))
	}
	if ex[0].Purpose != "test/one" || ex[0].RequestBody != "body/one" || ex[0].ResponseBody != "answer to /one" || !strings.Contains(ex[0].Status, "200 OK") || !strings.Contains(ex[0].ResponseHeader, "X-Seen: body/one") {
		t.Fatalf("first exchange %+v", ex[0])
	}
	if ex[1].URL != srv.URL+"/two" || ex[2].Err == "" || ex[2].Status != "" {
		t.Fatalf("exchanges %+v", ex[1:])
	}
}

type failing struct{}

func (failing) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("no route")
}

func TestRegistrationsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "regs.json")
	regs, err := loadRegistrations(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	reg := Registration{Issuer: "https://id.example.test", ClientID: "c1", ClientSecret: "s", Profile: "p", Response: json.RawMessage(`{"client_id":"c1"}`), Created: now}
	if err := regs.put(reg); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("registrations file: %v, mode %v; want 0600 (it holds client secrets)", err, st.Mode())
	}
	again, err := loadRegistrations(path)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := again.get("https://id.example.test", "p")
	if !ok || got.ClientID != "c1" || got.ClientSecret != "s" {
		t.Fatalf("after a restart: %+v, %v", got, ok)
	}
	if _, ok := again.get("https://id.example.test", "other profile"); ok {
		t.Fatal("a registration for other options was reused")
	}
	if got.expired(now) || !(Registration{SecretExpiresAt: now.Unix()}).expired(now) {
		t.Fatal("expiry of the client secret")
	}
	os.WriteFile(path, []byte("{"), 0o600)
	if _, err := loadRegistrations(path); err == nil {
		t.Fatal("a broken registrations file was read without an error")
	}
}

func TestCanonical(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{in: " Alice.Example.TEST. ", want: "alice.example.test"},
		{in: "Bob@Example.test", want: "bob@example.test"},
		{in: "jörg.example", want: "xn--jrg-sna.example"},
		{in: "anna@bücher.example", want: "anna@xn--bcher-kva.example"},
		{in: "localhost", err: "not an identifier"},
		{in: "@example.test", err: "empty local part"},
	} {
		got, err := Canonical(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Canonical(%q) = %q, %v; want an error saying %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if got != tc.want || err != nil {
			t.Errorf("Canonical(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
