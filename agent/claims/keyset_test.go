package claims_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/id4me/id4me-registry/agent/claims"
)

func kids(set jose.JSONWebKeySet) []string {
	var out []string
	for _, k := range set.Keys {
		out = append(out, k.KeyID)
	}
	return out
}

// TestKeySetFile: a key set opened from a file creates it (readable by its owner alone),
// writes rotations back, and a second open finds the same keys.
func TestKeySetFile(t *testing.T) {
	now := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := func() time.Time { return now }
	path := filepath.Join(t.TempDir(), "agent-keys.json")
	ks, err := claims.OpenKeySet(path, claims.KeySetOptions{Algorithm: jose.ES256, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", st.Mode().Perm())
	}
	first := kids(ks.JWKS())
	if err := ks.Rotate(); err != nil {
		t.Fatal(err)
	}
	rotated := kids(ks.JWKS())
	if len(first) != 1 || len(rotated) != 2 || rotated[0] != first[0] {
		t.Fatalf("kids %v, then %v after a rotation", first, rotated)
	}
	again, err := claims.OpenKeySet(path, claims.KeySetOptions{Algorithm: jose.ES256, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	if got := kids(again.JWKS()); !slices.Equal(got, rotated) {
		t.Fatalf("reopened key set publishes %v, want %v", got, rotated)
	}
	// The reopened set signs with the current key: what it signs verifies with that kid.
	jws, err := again.Sign([]byte(`{"iss":"https://agent.example.test"}`))
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := jose.ParseSigned(jws, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	if kid := parsed.Signatures[0].Header.KeyID; kid != rotated[1] {
		t.Fatalf("signed with %s, want the current key %s", kid, rotated[1])
	}
	set := again.JWKS()
	if _, err := parsed.Verify(set.Key(rotated[1])[0]); err != nil {
		t.Fatal(err)
	}

	if err := os.WriteFile(path, []byte(`{"keys":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := claims.OpenKeySet(path, claims.KeySetOptions{}); err == nil {
		t.Fatal("a key file without keys opened")
	}
}

// TestKeySetUse: an agent's own key becomes the signing key; keys that cannot sign RS256 or
// ES256 are refused.
func TestKeySetUse(t *testing.T) {
	ks, err := claims.NewKeySet(claims.KeySetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	own, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := ks.Use(own); err != nil {
		t.Fatal(err)
	}
	jws, err := ks.Sign([]byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := jose.ParseSigned(jws, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parsed.Verify(&own.PublicKey); err != nil {
		t.Fatalf("not signed with the agent's own key: %v", err)
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for name, k := range map[string]crypto.Signer{"RSA 1024": small, "P-384": p384} {
		if err := ks.Use(k); err == nil {
			t.Errorf("%s: Use accepted it", name)
		}
	}
	if _, err := claims.NewKeySet(claims.KeySetOptions{Algorithm: jose.HS256}); err == nil {
		t.Fatal("a key set for HS256 was made")
	}

	srv := httptest.NewServer(ks)
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Content-Type") != "application/jwk-set+json" {
		t.Fatalf("JWKS content type %q", resp.Header.Get("Content-Type"))
	}
}

// TestKeySetUseAgain: a key that signed before and is given again signs, published once.
func TestKeySetUseAgain(t *testing.T) {
	ks, err := claims.NewKeySet(claims.KeySetOptions{Algorithm: jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	own, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := ks.Use(own); err != nil {
		t.Fatal(err)
	}
	if err := ks.Rotate(); err != nil {
		t.Fatal(err)
	}
	if err := ks.Use(own); err != nil {
		t.Fatal(err)
	}
	got := kids(ks.JWKS())
	sorted := slices.Clone(got)
	slices.Sort(sorted)
	if len(got) != 3 || len(slices.Compact(sorted)) != 3 {
		t.Fatalf("JWKS kids %v: want the first key, the rotated one and the agent's, each once", got)
	}
}
