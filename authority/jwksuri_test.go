package authority_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/id4me/id4me-registry/authority"
	"github.com/id4me/id4me-registry/internal/oidctest"
)

// TestAuthorityClientUpdatesAreRateLimited: an RFC 7592 update, which may make the authority
// fetch a new jwks_uri, counts against the source's registration limit like a registration:
// past it, the update is refused with 429 and Retry-After, and nothing is fetched.
func TestAuthorityClientUpdatesAreRateLimited(t *testing.T) {
	host := newJWKSHost(t)
	_, public := rpEncryptionKey(t, "RSA")
	jwksURI, hits := host.serveSet(jwkSet(public))
	e := newAuthEnv(t, envOptions{configureAuthority: func(c *authority.Config) {
		host.allowing(0)(c)
		c.RegistrationRate, c.RegistrationBurst = 1.0/3600, 2
	}})
	status, reg, err := oidctest.PostJSON(e.rpClient, e.issuer+"/register", map[string]any{"redirect_uris": []string{oidctest.RedirectURI}})
	if err != nil || status != http.StatusCreated {
		t.Fatalf("registration: %d %v %v", status, reg, err)
	}
	uri, token := registration(t, reg)
	update := func(jwksURI string) map[string]any {
		return map[string]any{
			"client_id": reg["client_id"], "redirect_uris": []string{oidctest.RedirectURI},
			"id_token_encrypted_response_alg": "RSA-OAEP-256", "jwks_uri": jwksURI,
		}
	}
	status, m, _ := e.clientConfig(http.MethodPut, uri, token, update(jwksURI))
	if status != http.StatusOK || hits.Load() != 1 {
		t.Fatalf("first update: %d %v after %d fetches, want 200 and one fetch", status, m, hits.Load())
	}
	token, _ = m["registration_access_token"].(string)
	other, otherHits := host.serveSet(jwkSet(public))
	status, m, hdr := e.clientConfig(http.MethodPut, uri, token, update(other))
	if status != http.StatusTooManyRequests || m["error"] != "rate_limited" || hdr.Get("Retry-After") == "" {
		t.Fatalf("update past the limit: %d %v Retry-After %q, want 429 rate_limited", status, m, hdr.Get("Retry-After"))
	}
	if otherHits.Load() != 0 {
		t.Fatalf("a refused update fetched its jwks_uri %d times", otherHits.Load())
	}
	// The token was not spent: after the wait the update goes through.
	e.clock.Advance(time.Hour)
	if status, m, _ := e.clientConfig(http.MethodPut, uri, token, update(other)); status != http.StatusOK || otherHits.Load() != 1 {
		t.Fatalf("update an hour later: %d %v after %d fetches", status, m, otherHits.Load())
	}
}

// TestAuthorityJWKSURIFailuresSayNothingOfConnections: a registration whose jwks_uri cannot
// be fetched is refused with the same description whatever stopped the connection (a closed
// port, a server that does not speak TLS), so that the registration endpoint cannot be used
// to probe hosts and ports; and registering again at once does not fetch again.
func TestAuthorityJWKSURIFailuresSayNothingOfConnections(t *testing.T) {
	host := newJWKSHost(t)
	e := newAuthEnv(t, envOptions{configureAuthority: func(c *authority.Config) {
		host.allowing(time.Second)(c)
		c.RegistrationBurst = 1000
	}})
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()
	// A server that answers in plain HTTP, counting its connections.
	var plainConns atomic.Int64
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pl.Close() })
	go func() {
		for {
			c, err := pl.Accept()
			if err != nil {
				return
			}
			plainConns.Add(1)
			c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
			c.Close()
		}
	}()
	const want = "the jwks_uri could not be fetched: no HTTPS answer from it within 1s"
	for name, uri := range map[string]string{
		"closed port": "https://" + closedAddr + "/jwks",
		"not TLS":     "https://" + pl.Addr().String() + "/jwks",
	} {
		t.Run(name, func(t *testing.T) {
			md := map[string]any{"redirect_uris": []string{oidctest.RedirectURI}, "id_token_encrypted_response_alg": "RSA-OAEP-256", "jwks_uri": uri}
			for range 2 {
				status, m, err := oidctest.PostJSON(e.rpClient, e.issuer+"/register", md)
				if err != nil {
					t.Fatal(err)
				}
				if status != http.StatusBadRequest || m["error"] != "invalid_client_metadata" || m["error_description"] != want {
					t.Fatalf("%d %v, want 400 invalid_client_metadata %q", status, m, want)
				}
				for _, word := range []string{"dial", "refused", "tls", "handshake", "127.0.0.1"} {
					if strings.Contains(strings.ToLower(m["error_description"].(string)), word) {
						t.Fatalf("the description %q speaks of %q", m["error_description"], word)
					}
				}
			}
		})
	}
	if n := e.countRows("authority_clients", ""); n != 0 {
		t.Fatalf("%d clients stored by refused registrations", n)
	}
	if n := plainConns.Load(); n != 1 {
		t.Fatalf("the plaintext server was connected to %d times for two registrations at once, want 1", n)
	}
}

// TestAuthorityCodeSurvivesFailingJWKSURI: when the relying party's jwks_uri fails as its
// code is redeemed at an instance that has no copy of its set, the token request fails with
// server_error before the code is used, no token is stored, and the same code redeems once
// the jwks_uri answers again.
func TestAuthorityCodeSurvivesFailingJWKSURI(t *testing.T) {
	host := newJWKSHost(t)
	private, public := rpEncryptionKey(t, "RSA")
	var down atomic.Bool
	srv, hits := host.serve(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		json.NewEncoder(w).Encode(jwkSet(public))
	})
	e := newAuthEnv(t, envOptions{configureAuthority: host.allowing(0)})
	agent, _ := e.startAgent("alpha")
	h := e.holderFor(agent, "alice.example.test", false)
	rp := e.newRP(map[string]any{"id_token_encrypted_response_alg": "RSA-OAEP-256", "jwks_uri": srv.URL + "/jwks"})
	rp.DecryptionKey = private
	req, code := e.authCode(rp, h, nil)
	client, base := e.otherInstance(host.allowing(0))
	post := func() (int, map[string]any) {
		t.Helper()
		status, m, _ := oidctest.PostToken(t, client, base, rp.Redemption(req, code))
		return status, m
	}

	down.Store(true)
	tokensBefore := e.countRows("authority_access_tokens", "")
	status, m := post()
	if status != http.StatusInternalServerError || m["error"] != "server_error" || !strings.Contains(fmt.Sprint(m["error_description"]), "HTTP status 503") {
		t.Fatalf("token with the jwks_uri down: %d %v, want 500 server_error saying what the jwks_uri answered", status, m)
	}
	if n := e.countRows("authority_access_tokens", ""); n != tokensBefore {
		t.Fatalf("a failed token request stored %d access tokens", n-tokensBefore)
	}
	if n := e.countRows("authority_grants", "use_time IS NOT NULL"); n != 0 {
		t.Fatalf("a failed token request used %d codes", n)
	}

	// Back again, and past the least time between two fetches: the same code redeems.
	down.Store(false)
	e.clock.Advance(31 * time.Second)
	status, m = post()
	idt, _ := m["id_token"].(string)
	if status != http.StatusOK || idt == "" {
		t.Fatalf("the code once the jwks_uri is back: %d %v, want tokens", status, m)
	}
	if _, _, err := rp.Decrypt(idt); err != nil {
		t.Fatalf("the ID token: %v", err)
	}
	if n := hits.Load(); n != 3 {
		t.Fatalf("jwks_uri fetched %d times, want 3: at registration, failing, and once back", n)
	}
}
