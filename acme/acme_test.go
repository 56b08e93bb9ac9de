package acme

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-acme/lego/v4/acme/api"
	"github.com/go-acme/lego/v4/challenge/dns01"
	jose "github.com/go-jose/go-jose/v4"
)

// rfc7638Key is the example RSA key of RFC 7638 §3.1, and rfc7638Thumbprint its thumbprint
// as given in §3.1.
const (
	rfc7638Key = `{
		"kty": "RSA",
		"n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
		"e": "AQAB",
		"alg": "RS256",
		"kid": "2011-04-29"
	}`
	rfc7638Thumbprint = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
)

func TestParseAccountKeyRFC7638Thumbprint(t *testing.T) {
	key, err := ParseAccountKey(rfc7638Key)
	if err != nil {
		t.Fatalf("ParseAccountKey: %v", err)
	}
	if key.Thumbprint != rfc7638Thumbprint {
		t.Errorf("Thumbprint = %s, want %s", key.Thumbprint, rfc7638Thumbprint)
	}
	if key.JWK.KeyID != "2011-04-29" || !key.JWK.IsPublic() {
		t.Errorf("JWK = %+v, want the public key with kid 2011-04-29", key.JWK)
	}
	got, err := Thumbprint(key.JWK)
	if err != nil || got != rfc7638Thumbprint {
		t.Errorf("Thumbprint(JWK) = %s, %v; want %s", got, err, rfc7638Thumbprint)
	}
}

// publicJWK returns pub as a JWK in JSON, as an agent would send it.
func publicJWK(t *testing.T, pub crypto.PublicKey) string {
	t.Helper()
	b, err := (&jose.JSONWebKey{Key: pub}).MarshalJSON()
	if err != nil {
		t.Fatalf("marshal JWK: %v", err)
	}
	return string(b)
}

// legoKeyAuthorization returns the key authorization lego's ACME client computes for token
// with the account key priv. lego fetches a directory first, so a stub one is served over
// TLS on loopback.
func legoKeyAuthorization(t *testing.T, priv crypto.PrivateKey, token string) string {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		base := "https://" + r.Host
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"newNonce":"` + base + `/nonce","newAccount":"` + base +
			`/account","newOrder":"` + base + `/order"}`))
	}))
	t.Cleanup(srv.Close)
	core, err := api.New(srv.Client(), "id4me-registry-test", srv.URL+"/directory", "", priv)
	if err != nil {
		t.Fatalf("lego api.New: %v", err)
	}
	keyAuth, err := core.GetKeyAuthorization(token)
	if err != nil {
		t.Fatalf("lego GetKeyAuthorization: %v", err)
	}
	return keyAuth
}

// TestRecordMatchesLego checks the challenge record against lego, so an agent using any lego
// DNS provider publishes what the registry looks for.
func TestRecordMatchesLego(t *testing.T) {
	// Keep lego from following CNAMEs with real DNS lookups: no network in tests.
	t.Setenv("LEGO_DISABLE_CNAME_SUPPORT", "true")

	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		priv crypto.Signer
	}{
		{"EC P-256", ecKey},
		{"RSA 2048", rsaKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := ParseAccountKey(publicJWK(t, tt.priv.Public()))
			if err != nil {
				t.Fatalf("ParseAccountKey: %v", err)
			}
			token, err := NewToken()
			if err != nil {
				t.Fatal(err)
			}
			keyAuth := KeyAuthorization(token, key.Thumbprint)
			if want := legoKeyAuthorization(t, tt.priv, token); keyAuth != want {
				t.Errorf("KeyAuthorization = %s, lego's client computes %s", keyAuth, want)
			}

			const domain = "bücher-alice.example"
			info := dns01.GetChallengeInfo(domain, keyAuth)
			if got := RecordValue(keyAuth); got != info.Value {
				t.Errorf("RecordValue = %s, lego's Value = %s", got, info.Value)
			}
			if got := RecordName(domain); got != info.FQDN {
				t.Errorf("RecordName = %s, lego's FQDN = %s", got, info.FQDN)
			}
			if got := RecordName(domain + "."); got != info.FQDN {
				t.Errorf("RecordName with trailing dot = %s, lego's FQDN = %s", got, info.FQDN)
			}
		})
	}
}

func TestRecordValueKnownAnswer(t *testing.T) {
	// base64url(SHA-256("token.thumbprint")), computed independently with
	// printf %s token.thumbprint | openssl dgst -sha256 -binary | basenc --base64url (less the padding).
	const want = "61rBZ_4knHblO0MNoxFsXZ_eTFUHum0B6IVRbhvUn5I"
	if got := RecordValue(KeyAuthorization("token", "thumbprint")); got != want {
		t.Errorf("RecordValue = %s, want %s", got, want)
	}
	if got := RecordName("alice.example"); got != "_acme-challenge.alice.example." {
		t.Errorf("RecordName = %s", got)
	}
}

func TestParseAccountKeyAccepts(t *testing.T) {
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for name, pub := range map[string]crypto.PublicKey{
		"EC P-384": p384.Public(),
		"EC P-521": p521.Public(),
		"Ed25519":  edPub,
	} {
		t.Run(name, func(t *testing.T) {
			key, err := ParseAccountKey(publicJWK(t, pub))
			if err != nil {
				t.Fatalf("ParseAccountKey: %v", err)
			}
			sum, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			if want := base64.RawURLEncoding.EncodeToString(sum); key.Thumbprint != want {
				t.Errorf("Thumbprint = %s, want %s", key.Thumbprint, want)
			}
		})
	}
}

func TestParseAccountKeyRefuses(t *testing.T) {
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecPrivate, err := (&jose.JSONWebKey{Key: ecKey}).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	_, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPrivate, err := (&jose.JSONWebKey{Key: edPriv}).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	rsaPrivate, err := (&jose.JSONWebKey{Key: rsa1024}).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	oct, err := (&jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef")}).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	ecPublic := publicJWK(t, ecKey.Public())

	tests := []struct {
		name    string
		in      string
		mention string // a word the message must contain to tell the caller what is wrong
	}{
		{"empty", "", "empty"},
		{"blank", "  \n", "empty"},
		{"garbage", "not json", "JSON"},
		{"JSON array", `[1,2]`, "JSON"},
		{"no kty", `{"n":"AQAB","e":"AQAB"}`, "kty"},
		{"kty not a string", `{"kty":1}`, "kty"},
		{"EC private key", string(ecPrivate), "private"},
		{"Ed25519 private key", string(edPrivate), "private"},
		{"RSA private key", string(rsaPrivate), "private"},
		{"private member in another case", strings.Replace(string(ecPrivate), `"d"`, `"D"`, 1), "private"},
		{"oct key", string(oct), "symmetric"},
		{"RSA 1024", publicJWK(t, rsa1024.Public()), "1024"},
		{"unsupported curve", `{"kty":"EC","crv":"secp256k1",` +
			`"x":"WbbxTvBcpOWzdG8bXzqPYT1HaGQTWbGExKbHzLMCwbg",` +
			`"y":"Ivai5N-mVnP1eeB3zeZh3uWR5Jd4FGRUZGJFi8i4OMk"}`, "secp256k1"},
		{"X25519 is not a signing key", `{"kty":"OKP","crv":"X25519",` +
			`"x":"hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo"}`, "X25519"},
		{"unknown kty", `{"kty":"AKP","alg":"ML-DSA-44","pub":"AAAA"}`, "AKP"},
		{"EC point not on the curve", strings.Replace(ecPublic, `"y":"`, `"y":"A`, 1), "EC"},
		{"too long", `{"kty":"RSA","pad":"` + strings.Repeat("a", 20000) + `"}`, "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := ParseAccountKey(tt.in)
			if err == nil {
				t.Fatalf("ParseAccountKey accepted %s: %+v", tt.in, key)
			}
			if !errors.Is(err, ErrInvalidAccountKey) {
				t.Errorf("error %v does not match ErrInvalidAccountKey", err)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q does not mention %q", err, tt.mention)
			}
		})
	}
}

func TestNewToken(t *testing.T) {
	seen := make(map[string]bool)
	for range 1000 {
		token, err := NewToken()
		if err != nil {
			t.Fatal(err)
		}
		if seen[token] {
			t.Fatalf("token %s issued twice", token)
		}
		seen[token] = true
		raw, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil {
			t.Fatalf("token %s is not unpadded base64url: %v", token, err)
		}
		if len(raw) != TokenBytes {
			t.Fatalf("token %s decodes to %d bytes, want %d", token, len(raw), TokenBytes)
		}
	}
}
