package authority_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/id4me/id4me-registry/authority"
	"github.com/id4me/id4me-registry/internal/oidctest"
)

// rpEncryptionKey makes a relying party's key pair for encrypted responses: RSA 2048 or EC
// P-256, its public half as a JWK with a kid and "use": "enc".
func rpEncryptionKey(t *testing.T, kty string) (any, jose.JSONWebKey) {
	t.Helper()
	var private, public any
	switch kty {
	case "RSA":
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		private, public = k, &k.PublicKey
	case "EC":
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		private, public = k, &k.PublicKey
	default:
		t.Fatalf("key type %q", kty)
	}
	return private, jose.JSONWebKey{Key: public, KeyID: "rp-" + strings.ToLower(kty) + "-" + rand.Text()[:8], Use: "enc"}
}

// jwkSet is a JWK Set of keys, as a JSON value of registration metadata.
func jwkSet(keys ...any) map[string]any {
	return map[string]any{"keys": keys}
}

// jwksHost serves relying parties' jwks_uri over HTTPS on loopback; roots trusts them all,
// and is what the authority is configured with.
type jwksHost struct {
	t     *testing.T
	roots *x509.CertPool
}

func newJWKSHost(t *testing.T) *jwksHost { return &jwksHost{t: t, roots: x509.NewCertPool()} }

// serve starts an HTTPS server whose every answer is h's, and counts the requests it gets.
func (j *jwksHost) serve(h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	var hits atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		h(w, r)
	}))
	j.t.Cleanup(srv.Close)
	j.roots.AddCert(srv.Certificate())
	return srv, &hits
}

// serveSet serves a JWK Set with a cache lifetime.
func (j *jwksHost) serveSet(set any) (string, *atomic.Int64) {
	body, err := json.Marshal(set)
	if err != nil {
		j.t.Fatal(err)
	}
	srv, hits := j.serve(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "public, max-age=600")
		w.Write(body)
	})
	return srv.URL + "/jwks.json", hits
}

// allowing configures the authority to fetch jwks_uri from the host's servers on loopback.
func (j *jwksHost) allowing(timeout time.Duration) func(*authority.Config) {
	return func(c *authority.Config) {
		c.AllowPrivateJWKSURI, c.JWKSURIRootCAs, c.JWKSURITimeout = true, j.roots, timeout
	}
}

// TestAuthorityEncryptedResponses: a relying party registers encrypted ID tokens and userinfo
// with its public key inline (jwks) or by reference (jwks_uri, served over HTTPS and fetched
// once); it decrypts what it gets with its own private key, verifies the inner JWTs against
// the authority's JWKS, and reaches the agent's claims. The ID token is a nested JWT; userinfo
// is signed then encrypted, or encrypted JSON.
func TestAuthorityEncryptedResponses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		kty     string
		byURI   bool
		md      map[string]any
		alg     string
		idEnc   string
		uiEnc   string
		uiNest  bool
		idtSign string
	}{
		{
			name: "RSA-OAEP-256 A256GCM jwks, userinfo signed then encrypted", kty: "RSA",
			md: map[string]any{
				"id_token_encrypted_response_alg": "RSA-OAEP-256", "id_token_encrypted_response_enc": "A256GCM",
				"userinfo_signed_response_alg":    "RS256",
				"userinfo_encrypted_response_alg": "RSA-OAEP-256", "userinfo_encrypted_response_enc": "A256GCM",
			},
			alg: "RSA-OAEP-256", idEnc: "A256GCM", uiEnc: "A256GCM", uiNest: true, idtSign: "RS256",
		},
		{
			name: "ECDH-ES A128GCM jwks_uri, userinfo encrypted", kty: "EC", byURI: true,
			md: map[string]any{
				"id_token_encrypted_response_alg": "ECDH-ES", "id_token_encrypted_response_enc": "A128GCM",
				"userinfo_encrypted_response_alg": "ECDH-ES", "userinfo_encrypted_response_enc": "A128GCM",
			},
			alg: "ECDH-ES", idEnc: "A128GCM", uiEnc: "A128GCM", idtSign: "RS256",
		},
		{
			// OpenID Connect Dynamic Client Registration §2: an alg alone means A128CBC-HS256.
			name: "RSA-OAEP-256 default enc jwks_uri, userinfo encrypted", kty: "RSA", byURI: true,
			md: map[string]any{
				"id_token_encrypted_response_alg": "RSA-OAEP-256",
				"userinfo_encrypted_response_alg": "RSA-OAEP-256",
			},
			alg: "RSA-OAEP-256", idEnc: "A128CBC-HS256", uiEnc: "A128CBC-HS256", idtSign: "RS256",
		},
		{
			name: "ECDH-ES jwks, ES256, userinfo signed then encrypted", kty: "EC",
			md: map[string]any{
				"id_token_signed_response_alg":    "ES256",
				"id_token_encrypted_response_alg": "ECDH-ES", "id_token_encrypted_response_enc": "A128CBC-HS256",
				"userinfo_signed_response_alg":    "ES256",
				"userinfo_encrypted_response_alg": "ECDH-ES", "userinfo_encrypted_response_enc": "A256GCM",
			},
			alg: "ECDH-ES", idEnc: "A128CBC-HS256", uiEnc: "A256GCM", uiNest: true, idtSign: "ES256",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host := newJWKSHost(t)
			private, public := rpEncryptionKey(t, tc.kty)
			// A signing key of the RP's beside it, which the authority must not encrypt to.
			_, sig := rpEncryptionKey(t, tc.kty)
			sig.Use = "sig"
			set := jwkSet(sig, public)
			var hits *atomic.Int64
			if tc.byURI {
				var uri string
				uri, hits = host.serveSet(set)
				tc.md["jwks_uri"] = uri
			} else {
				tc.md["jwks"] = set
			}
			e := newAuthEnv(t, envOptions{configureAuthority: host.allowing(0)})
			agent, claims := e.startAgent("alpha")
			h := e.holderFor(agent, "alice.example.test", false)
			claims.Claims["alice.example.test"] = map[string]any{"email": "alice@example.test", "name": "Alice"}
			rp := e.newRP(tc.md)
			rp.DecryptionKey = private
			reg := rp.Registration
			if reg["id_token_encrypted_response_enc"] != tc.idEnc || reg["userinfo_encrypted_response_enc"] != tc.uiEnc ||
				reg["id_token_encrypted_response_alg"] != tc.alg {
				t.Fatalf("registration answered %v", reg)
			}

			res := e.login(rp, h, map[string]string{"claims": emailClaims})
			raw, _ := res.Token.Extra("id_token").(string)
			if strings.Count(raw, ".") != 4 || res.IDTokenJWE == nil {
				t.Fatalf("ID token %.40s… is not a JWE", raw)
			}
			hdr := res.IDTokenJWE
			if hdr.Algorithm != tc.alg || hdr.ExtraHeaders["enc"] != tc.idEnc || hdr.ExtraHeaders["cty"] != "JWT" || hdr.KeyID != public.KeyID {
				t.Fatalf("ID token JWE header alg %s enc %v cty %v kid %s; want %s %s JWT %s",
					hdr.Algorithm, hdr.ExtraHeaders["enc"], hdr.ExtraHeaders["cty"], hdr.KeyID, tc.alg, tc.idEnc, public.KeyID)
			}
			// go-oidc verified the inner JWT against the authority's JWKS; it is the ID token.
			if c := res.Claims; c["id4me.identifier"] != "alice.example.test" || c["aud"] != rp.OAuth.ClientID || c["sub"] == "" {
				t.Fatalf("ID token claims %v", c)
			}
			inner, _, err := rp.Decrypt(raw)
			if err != nil {
				t.Fatal(err)
			}
			if sig, err := jose.ParseSigned(string(inner), []jose.SignatureAlgorithm{jose.SignatureAlgorithm(tc.idtSign)}); err != nil || sig.Signatures[0].Header.Algorithm != tc.idtSign {
				t.Fatalf("inner ID token: %v; want a JWS signed with %s", err, tc.idtSign)
			}
			// Another key cannot read it.
			other := &oidctest.RP{DecryptionKey: func() any { k, _ := rpEncryptionKey(t, tc.kty); return k }()}
			if _, _, err := other.Decrypt(raw); err == nil {
				t.Fatal("another key decrypted the ID token")
			}

			if res.UserinfoType != "application/jwt" || res.UserinfoJWE == nil {
				t.Fatalf("userinfo %s %.40q: want an encrypted JWT", res.UserinfoType, res.RawUserinfo)
			}
			uh := res.UserinfoJWE
			cty, _ := uh.ExtraHeaders["cty"].(string)
			if uh.Algorithm != tc.alg || uh.ExtraHeaders["enc"] != tc.uiEnc || (cty == "JWT") != tc.uiNest || uh.KeyID != public.KeyID {
				t.Fatalf("userinfo JWE header alg %s enc %v cty %q kid %s", uh.Algorithm, uh.ExtraHeaders["enc"], cty, uh.KeyID)
			}
			u := res.Userinfo
			if u["sub"] != res.Claims["sub"] || u["aud"] != rp.OAuth.ClientID || u["iss"] != e.issuer {
				t.Fatalf("userinfo %v", u)
			}
			got, err := rp.DistributedClaims(u)
			if err != nil || got["email"] != "alice@example.test" || got["name"] != "Alice" {
				t.Fatalf("distributed claims %v, %v", got, err)
			}
			if tc.byURI && hits.Load() != 1 {
				t.Fatalf("jwks_uri fetched %d times; want once, at registration, then from the cache", hits.Load())
			}
		})
	}
}

// TestAuthorityEncryptionKeyGone: a client whose jwks_uri no longer holds a key for its
// algorithm gets a token error that says so, after one fetch more.
func TestAuthorityEncryptionKeyGone(t *testing.T) {
	host := newJWKSHost(t)
	private, public := rpEncryptionKey(t, "RSA")
	_, ec := rpEncryptionKey(t, "EC")
	var serveKey atomic.Bool
	serveKey.Store(true)
	srv, hits := host.serve(func(w http.ResponseWriter, r *http.Request) {
		set := jwkSet(ec)
		if serveKey.Load() {
			set = jwkSet(public)
		}
		w.Header().Set("Cache-Control", "max-age=60")
		json.NewEncoder(w).Encode(set)
	})
	e := newAuthEnv(t, envOptions{configureAuthority: host.allowing(0)})
	agent, _ := e.startAgent("alpha")
	h := e.holderFor(agent, "alice.example.test", false)
	rp := e.newRP(map[string]any{"id_token_encrypted_response_alg": "RSA-OAEP-256", "jwks_uri": srv.URL + "/jwks"})
	rp.DecryptionKey = private

	// The key goes, and the cached set expires: the set fetched then lacks the key.
	serveKey.Store(false)
	e.clock.Advance(2 * time.Minute)
	req := rp.AuthRequest(nil)
	cb, p, err := h.Login(req.URL)
	if err != nil {
		t.Fatalf("login: %v (page %q)", err, p.Alert())
	}
	_, err = rp.Finish(req, cb, e.clock.Now)
	if err == nil || !strings.Contains(err.Error(), "cannot be encrypted for this client") || !strings.Contains(err.Error(), "RSA-OAEP-256") {
		t.Fatalf("token with the key gone: %v; want an error saying the ID token cannot be encrypted", err)
	}
	if n := hits.Load(); n != 2 {
		t.Fatalf("jwks_uri fetched %d times, want 2: at registration and when the cache expired", n)
	}
}

// registrationRefused posts metadata to the registration endpoint and fails unless it is
// refused with invalid_client_metadata, a description containing want, and no client stored.
func registrationRefused(t *testing.T, e *authEnv, md map[string]any, want string) {
	t.Helper()
	if _, ok := md["redirect_uris"]; !ok {
		md["redirect_uris"] = []string{oidctest.RedirectURI}
	}
	before := e.countRows("authority_clients", "")
	status, body, err := oidctest.PostJSON(e.rpClient, e.issuer+"/register", md)
	if err != nil {
		t.Fatal(err)
	}
	desc, _ := body["error_description"].(string)
	if status != http.StatusBadRequest || body["error"] != "invalid_client_metadata" || !strings.Contains(desc, want) {
		t.Fatalf("registration answered %d %v; want 400 invalid_client_metadata mentioning %q", status, body, want)
	}
	if after := e.countRows("authority_clients", ""); after != before {
		t.Fatalf("a refused registration stored a client (%d → %d)", before, after)
	}
}

// TestAuthorityRefusesEncryptionItCannotHonour: registrations asking for encryption the
// authority cannot do, or giving keys it cannot use or should not fetch, are refused with
// invalid_client_metadata and a reason, and store nothing.
func TestAuthorityRefusesEncryptionItCannotHonour(t *testing.T) {
	host := newJWKSHost(t)
	rsaPrivate, rsaPublic := rpEncryptionKey(t, "RSA")
	_, ecPublic := rpEncryptionKey(t, "EC")
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	privateJWK, err := jose.JSONWebKey{Key: rsaPrivate, KeyID: "leaked", Use: "enc"}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var privateKey map[string]any
	json.Unmarshal(privateJWK, &privateKey)
	withUse := func(k jose.JSONWebKey, use, alg string) jose.JSONWebKey {
		k.Use, k.Algorithm = use, alg
		return k
	}

	good, _ := host.serveSet(jwkSet(rsaPublic))
	leaky, _ := host.serveSet(jwkSet(privateKey))
	ecOnly, _ := host.serveSet(jwkSet(ecPublic))
	big, _ := host.serve(func(w http.ResponseWriter, r *http.Request) {
		keys := []any{rsaPublic}
		for range 200 {
			keys = append(keys, map[string]any{"kty": "unknown", "pad": strings.Repeat("x", 400)})
		}
		json.NewEncoder(w).Encode(jwkSet(keys...))
	})
	release := make(chan struct{})
	slow, slowHits := host.serve(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) })
	missing, _ := host.serve(http.NotFound)
	redirect, _ := host.serve(func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, good, http.StatusFound) })

	const timeout = 2 * time.Second
	e := newAuthEnv(t, envOptions{configureAuthority: func(c *authority.Config) {
		host.allowing(timeout)(c)
		c.RegistrationBurst = 1000
	}})
	rsaAlg := map[string]any{"id_token_encrypted_response_alg": "RSA-OAEP-256"}
	with := func(base map[string]any, kv ...any) map[string]any {
		md := map[string]any{}
		for k, v := range base {
			md[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			md[kv[i].(string)] = kv[i+1]
		}
		return md
	}
	for _, tc := range []struct {
		name string
		md   map[string]any
		want string
	}{
		{"RSA1_5", map[string]any{"id_token_encrypted_response_alg": "RSA1_5", "jwks": jwkSet(rsaPublic)}, "id_token_encrypted_response_alg must be one of"},
		{"dir", map[string]any{"userinfo_encrypted_response_alg": "dir", "jwks": jwkSet(rsaPublic)}, "userinfo_encrypted_response_alg must be one of"},
		{"A192GCM", with(rsaAlg, "id_token_encrypted_response_enc", "A192GCM", "jwks", jwkSet(rsaPublic)), "id_token_encrypted_response_enc must be one of"},
		{"enc without alg", map[string]any{"id_token_encrypted_response_enc": "A128GCM", "jwks": jwkSet(rsaPublic)}, "id_token_encrypted_response_enc needs id_token_encrypted_response_alg"},
		{"userinfo enc without alg", map[string]any{"userinfo_encrypted_response_enc": "A256GCM", "jwks": jwkSet(rsaPublic)}, "userinfo_encrypted_response_enc needs"},
		{"no keys", rsaAlg, "register jwks or jwks_uri"},
		{"jwks and jwks_uri", with(rsaAlg, "jwks", jwkSet(rsaPublic), "jwks_uri", good), "jwks and jwks_uri"},
		{"jwks_uri over http", with(rsaAlg, "jwks_uri", strings.Replace(good, "https:", "http:", 1)), "jwks_uri must be an https URL"},
		{"jwks_uri with user information", with(rsaAlg, "jwks_uri", strings.Replace(good, "https://", "https://rp:secret@", 1)), "jwks_uri must be an https URL"},
		{"EC key for RSA-OAEP-256", with(rsaAlg, "jwks", jwkSet(ecPublic)), `"kty": "RSA"`},
		{"RSA key for ECDH-ES", map[string]any{"userinfo_encrypted_response_alg": "ECDH-ES", "jwks": jwkSet(rsaPublic)}, "can be used with ECDH-ES"},
		{"signing key", with(rsaAlg, "jwks", jwkSet(withUse(rsaPublic, "sig", ""))), `"use" absent or "enc"`},
		{"key for another alg", with(rsaAlg, "jwks", jwkSet(withUse(rsaPublic, "enc", "RSA-OAEP"))), `"alg" absent or "RSA-OAEP-256"`},
		{"RSA key of 1024 bits", with(rsaAlg, "jwks", jwkSet(jose.JSONWebKey{Key: &weak.PublicKey})), "at least 2048 bits"},
		{"one of two algorithms without a key", with(rsaAlg, "userinfo_encrypted_response_alg", "ECDH-ES", "jwks", jwkSet(rsaPublic)), "can be used with ECDH-ES"},
		{"private key in jwks", with(rsaAlg, "jwks", jwkSet(privateKey)), "private or symmetric key material"},
		{"symmetric key in jwks", with(rsaAlg, "jwks", jwkSet(map[string]any{"kty": "oct", "k": "c2VjcmV0c2VjcmV0c2VjcmV0"}, rsaPublic)), "private or symmetric key material"},
		{"private key without encryption", map[string]any{"jwks": jwkSet(privateKey)}, "private or symmetric key material"},
		{"jwks not a set", with(rsaAlg, "jwks", rsaPublic), "not a JWK Set"},
		{"private key at jwks_uri", with(rsaAlg, "jwks_uri", leaky), "private or symmetric key material"},
		{"no usable key at jwks_uri", with(rsaAlg, "jwks_uri", ecOnly), "can be used with RSA-OAEP-256"},
		{"oversized jwks_uri", with(rsaAlg, "jwks_uri", big.URL+"/jwks"), "larger than 64 KiB"},
		{"slow jwks_uri", with(rsaAlg, "jwks_uri", slow.URL+"/jwks"), "jwks_uri"},
		{"jwks_uri answering 404", with(rsaAlg, "jwks_uri", missing.URL+"/jwks"), "404"},
		{"jwks_uri redirecting", with(rsaAlg, "jwks_uri", redirect.URL+"/jwks"), "302"},
	} {
		t.Run(tc.name, func(t *testing.T) { registrationRefused(t, e, tc.md, tc.want) })
	}
	if slowHits.Load() != 1 {
		t.Fatalf("the slow jwks_uri was asked %d times, want once", slowHits.Load())
	}

	// Outside development, a jwks_uri on loopback is refused: an address at once, a name
	// when it resolves to one, before any connection is made.
	prod := newAuthEnv(t, envOptions{configureAuthority: func(c *authority.Config) {
		c.JWKSURIRootCAs, c.RegistrationBurst = host.roots, 1000
	}})
	srv, hits := host.serve(func(w http.ResponseWriter, r *http.Request) { json.NewEncoder(w).Encode(jwkSet(rsaPublic)) })
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	for _, uri := range []string{
		srv.URL + "/jwks",
		"https://localhost:" + port + "/jwks",
		"https://[::1]:" + port + "/jwks",
		"https://10.0.0.1/jwks",
		"https://169.254.169.254/latest/jwks",
		"https://[::ffff:127.0.0.1]:" + port + "/jwks",
	} {
		t.Run("not public "+uri, func(t *testing.T) {
			registrationRefused(t, prod, with(rsaAlg, "jwks_uri", uri), "is not a public address")
		})
	}
	if hits.Load() != 0 {
		t.Fatalf("the loopback jwks_uri was asked %d times, want never", hits.Load())
	}
	// The same server, in development: accepted.
	if _, err := oidctest.NewRP(t.Context(), e.rpClient, e.issuer, with(rsaAlg, "jwks_uri", srv.URL+"/jwks")); err != nil {
		t.Fatalf("registration in development: %v", err)
	}
	if hits.Load() != 1 {
		t.Fatalf("the jwks_uri was asked %d times in development, want once", hits.Load())
	}
}

// TestAuthorityDiscoveryEncryption: discovery lists the encryption algorithms relying parties
// may register.
func TestAuthorityDiscoveryEncryption(t *testing.T) {
	e := newAuthEnv(t, envOptions{})
	resp, err := e.rpClient.Get(e.issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d map[string]json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"id_token_encryption_alg_values_supported": `["RSA-OAEP-256","ECDH-ES"]`,
		"id_token_encryption_enc_values_supported": `["A128CBC-HS256","A128GCM","A256GCM"]`,
		"userinfo_encryption_alg_values_supported": `["RSA-OAEP-256","ECDH-ES"]`,
		"userinfo_encryption_enc_values_supported": `["A128CBC-HS256","A128GCM","A256GCM"]`,
	} {
		if string(d[k]) != want {
			t.Errorf("discovery %s = %s, want %s", k, d[k], want)
		}
	}
}
