package authority_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/id4me/id4me-registry/authority"
	"github.com/id4me/id4me-registry/internal/storedb"
	"github.com/id4me/id4me-registry/sqlstore"
)

func newKEK(t *testing.T) *authority.KeyEncryptionKey {
	t.Helper()
	k, err := authority.ParseKeyEncryptionKey(authority.GenerateKeyEncryptionKey())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKeyEncryptionKeyFile(t *testing.T) {
	file := authority.GenerateKeyEncryptionKey()
	// What `openssl rand -base64 32` prints: 44 characters and a newline.
	if len(file) != 45 || file[44] != '\n' {
		t.Fatalf("generated file %q: want 32 bytes in base64 on one line", file)
	}
	a, err := authority.ParseKeyEncryptionKey(file)
	if err != nil {
		t.Fatal(err)
	}
	again, err := authority.ParseKeyEncryptionKey(append([]byte("  "), append(file, "\r\n"...)...))
	if err != nil || again.ID() != a.ID() {
		t.Fatalf("the same key with white space around it: %v, id %q, want %q", err, again.ID(), a.ID())
	}
	if b := newKEK(t); b.ID() == a.ID() || a.ID() == "" {
		t.Fatalf("two random keys have ids %q and %q", a.ID(), b.ID())
	}
	raw, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(string(file)))
	if strings.Contains(a.ID(), base64.RawURLEncoding.EncodeToString(raw[:6])) {
		t.Fatalf("the id %q shows the key", a.ID())
	}
	for name, bad := range map[string]string{
		"empty":         "",
		"16 bytes":      base64.StdEncoding.EncodeToString(make([]byte, 16)),
		"33 bytes":      base64.StdEncoding.EncodeToString(make([]byte, 33)),
		"not base64":    strings.Repeat("!", 44),
		"two keys":      string(file) + string(file),
		"hex, not b64":  strings.Repeat("ab", 32),
		"base64url -_ ": strings.ReplaceAll(strings.ReplaceAll(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xfb, 0xff}, 16)), "+", "-"), "/", "_"),
	} {
		if _, err := authority.ParseKeyEncryptionKey([]byte(bad)); err == nil {
			t.Errorf("%s: %q accepted as a key-encryption key", name, bad)
		}
	}
}

// rawKeys reads the private_jwk column of every signing key straight from the database, as
// a copy of it would show them.
func rawKeys(t *testing.T, s *sqlstore.Store) map[string][]byte {
	t.Helper()
	rows, err := storedb.DB(s).Raw("SELECT id, private_jwk FROM authority_signing_keys").Rows()
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var id string
		var jwk []byte
		if err := rows.Scan(&id, &jwk); err != nil {
			t.Fatal(err)
		}
		out[id] = jwk
	}
	return out
}

// privateParts returns the private members of each stored unsealed key, by kid.
func privateParts(t *testing.T, raw map[string][]byte) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for id, b := range raw {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("key %s is not stored as a JWK: %v", id, err)
		}
		for _, member := range []string{"d", "p", "q", "dp", "dq", "qi"} {
			if v, ok := m[member].(string); ok {
				out[id] = append(out[id], v)
			}
		}
		if len(out[id]) == 0 {
			t.Fatalf("key %s has no private member", id)
		}
	}
	return out
}

// wantNoPrivateKey fails unless no stored key is, holds or shows a private key.
func wantNoPrivateKey(t *testing.T, raw map[string][]byte, secrets map[string][]string) {
	t.Helper()
	if len(raw) == 0 {
		t.Fatal("no keys stored")
	}
	for id, b := range raw {
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(b); err == nil {
			t.Fatalf("stored key %s parses as a JWK (%T)", id, jwk.Key)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("stored key %s: %v", id, err)
		}
		for _, member := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
			if m[member] != nil {
				t.Fatalf("stored key %s has a %q member", id, member)
			}
		}
		for _, s := range secrets[id] {
			dec, _ := base64.RawURLEncoding.DecodeString(s)
			if bytes.Contains(b, []byte(s)) || bytes.Contains(b, dec) {
				t.Fatalf("stored key %s holds its private part %.8s…", id, s)
			}
		}
	}
}

// copyFile copies a closed SQLite database: what someone who takes a copy of it holds.
func copyFile(t *testing.T, from string) string {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	to := filepath.Join(t.TempDir(), "copy.db")
	dst, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return to
}

func openFile(t *testing.T, path string) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestSigningKeysSealedAtRest: with a key-encryption key, a copy of the database holds no
// key that signs: no stored key parses as a JWK or holds a private member or the private
// parts, and the copy loads only with the key-encryption key. Keys stored unsealed before
// are sealed by a rewrap, and keep signing, under the same kids.
func TestSigningKeysSealedAtRest(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	path := filepath.Join(t.TempDir(), "r.db")
	s := openFile(t, path)

	// Keys made before there was a key-encryption key: stored unsealed.
	plain := newKeySet(t, s.Authority(), testConfig(c))
	kids := jwksKids(t, plain)
	secrets := privateParts(t, rawKeys(t, s))

	kek := newKEK(t)
	res, err := authority.RewrapSigningKeys(ctx, s.Authority(), kek)
	if err != nil || res != (authority.RewrapResult{Rewrapped: 2}) {
		t.Fatalf("rewrap of the unsealed keys: %+v, %v", res, err)
	}
	wantNoPrivateKey(t, rawKeys(t, s), secrets)

	// New keys made with the key-encryption key are sealed before they are stored.
	cfg := testConfig(c)
	cfg.KEK = kek
	sealed := newKeySet(t, s.Authority(), cfg)
	if _, err := sealed.Rotate(ctx, authority.RS256, true); err != nil {
		t.Fatal(err)
	}
	if _, err := sealed.Rotate(ctx, authority.ES256, true); err != nil {
		t.Fatal(err)
	}
	raw := rawKeys(t, s)
	if len(raw) != 4 {
		t.Fatalf("%d keys stored, want 4", len(raw))
	}
	wantNoPrivateKey(t, raw, secrets)
	for id, b := range raw {
		if k := (authority.SigningKey{PrivateJWK: b}); k.SealedWith() != kek.ID() {
			t.Fatalf("key %s is sealed with %q, want %q", id, k.SealedWith(), kek.ID())
		}
	}
	s.Close()

	// The copy: without the key-encryption key, or with another, no key loads.
	cp := openFile(t, copyFile(t, path))
	for name, k := range map[string]*authority.KeyEncryptionKey{"no key-encryption key": nil, "another key-encryption key": newKEK(t)} {
		cfg := testConfig(c)
		cfg.KEK = k
		ks, err := authority.NewKeySet(ctx, cp.Authority(), cfg)
		if !errors.Is(err, authority.ErrSealed) || ks != nil {
			t.Fatalf("%s: NewKeySet on the copy: %v; want ErrSealed", name, err)
		}
		if !strings.Contains(err.Error(), kek.ID()) {
			t.Fatalf("%s: the error %q does not name the key-encryption key needed", name, err)
		}
	}
	// With it, the keys sign, and what they sign verifies against the JWKS.
	cfg = testConfig(c)
	cfg.KEK = kek
	opened := newKeySet(t, cp.Authority(), cfg)
	for _, alg := range opened.Algorithms() {
		token := sign(t, opened, alg)
		if kid, err := verify(opened.JWKS(), token); err != nil || slices.Contains(kids, kid) {
			t.Fatalf("%s token: kid %s, %v; want a new key that verifies", alg, kid, err)
		}
	}
	if got := jwksKids(t, opened); len(got) != 4 || !slices.Equal(slices.DeleteFunc(slices.Clone(got), func(k string) bool { return !slices.Contains(kids, k) }), kids) {
		t.Fatalf("JWKS kids %v; want the rewrapped %v among them", got, kids)
	}
}

// TestRewrapSigningKeys moves the keys from one key-encryption key to another and back; a
// rewrap given the wrong old key changes nothing.
func TestRewrapSigningKeys(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s := openFile(t, filepath.Join(t.TempDir(), "r.db"))
	a, b := newKEK(t), newKEK(t)
	cfg := testConfig(c)
	cfg.KEK = a
	ks := newKeySet(t, s.Authority(), cfg)
	kids := jwksKids(t, ks)

	res, err := authority.RewrapSigningKeys(ctx, s.Authority(), b, a)
	if err != nil || res != (authority.RewrapResult{Rewrapped: 2}) {
		t.Fatalf("rewrap a → b: %+v, %v", res, err)
	}
	// Done already: nothing to do, and saying so.
	res, err = authority.RewrapSigningKeys(ctx, s.Authority(), b, a)
	if err != nil || res != (authority.RewrapResult{Already: 2}) {
		t.Fatalf("rewrap a → b again: %+v, %v", res, err)
	}

	// The keys open with b only, or with a and b together (instances in the middle of a
	// rewrap), and are the same keys.
	for _, tc := range []struct {
		name      string
		kek, prev *authority.KeyEncryptionKey
		opens     bool
	}{{"a", a, nil, false}, {"b", b, nil, true}, {"b after a", b, a, true}, {"a after b", a, b, true}} {
		cfg := testConfig(c)
		cfg.KEK, cfg.PreviousKEK = tc.kek, tc.prev
		ks, err := authority.NewKeySet(ctx, s.Authority(), cfg)
		if tc.opens != (err == nil) {
			t.Fatalf("%s: NewKeySet: %v; opens: want %v", tc.name, err, tc.opens)
		}
		if err == nil && !slices.Equal(jwksKids(t, ks), kids) {
			t.Fatalf("%s: kids %v, want %v", tc.name, jwksKids(t, ks), kids)
		}
	}

	// The wrong old key: nothing changes.
	before := rawKeys(t, s)
	if _, err := authority.RewrapSigningKeys(ctx, s.Authority(), newKEK(t), a); !errors.Is(err, authority.ErrSealed) {
		t.Fatalf("rewrap with the wrong old key: %v; want ErrSealed", err)
	}
	if after := rawKeys(t, s); !mapsEqual(before, after) {
		t.Fatal("a refused rewrap changed stored keys")
	}

	res, err = authority.RewrapSigningKeys(ctx, s.Authority(), a, b)
	if err != nil || res != (authority.RewrapResult{Rewrapped: 2}) {
		t.Fatalf("rewrap b → a: %+v, %v", res, err)
	}
	cfg = testConfig(c)
	cfg.KEK = a
	back := newKeySet(t, s.Authority(), cfg)
	for _, alg := range back.Algorithms() {
		if kid, err := verify(back.JWKS(), sign(t, back, alg)); err != nil || !slices.Contains(kids, kid) {
			t.Fatalf("%s after the round trip: kid %s, %v", alg, kid, err)
		}
	}
}

func mapsEqual(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !bytes.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// TestSealedKeyBoundToItsRow: a sealed key copied into another key's row does not open, so
// rows cannot be swapped to make the authority sign with a key other than the one its kid
// names.
func TestSealedKeyBoundToItsRow(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s := openFile(t, filepath.Join(t.TempDir(), "r.db"))
	cfg := testConfig(c)
	cfg.KEK = newKEK(t)
	ks := newKeySet(t, s.Authority(), cfg)
	next, err := ks.Rotate(ctx, authority.ES256, false)
	if err != nil {
		t.Fatal(err)
	}
	var first string
	for _, k := range storedKeys(t, s.Authority(), c.Now())[authority.ES256] {
		if k.ID != next.ID {
			first = k.ID
		}
	}
	raw := rawKeys(t, s)
	if err := storedb.DB(s).Exec("UPDATE authority_signing_keys SET private_jwk = ? WHERE id = ?", raw[next.ID], first).Error; err != nil {
		t.Fatal(err)
	}
	_, err = authority.NewKeySet(ctx, s.Authority(), cfg)
	if err == nil || !strings.Contains(err.Error(), "copied from another key's row") || !strings.Contains(err.Error(), first) {
		t.Fatalf("NewKeySet with a swapped row: %v; want a refusal naming the key", err)
	}
}

// TestAuthoritySigningKeysSealedAtRest: an authority whose signing keys are sealed with a
// key-encryption key logs a holder in, the relying party verifies the ID token and signed
// userinfo against the JWKS and the agent the access token, while the database holds no key
// that parses as a JWK or has a private member.
func TestAuthoritySigningKeysSealedAtRest(t *testing.T) {
	kek := newKEK(t)
	e := newAuthEnv(t, envOptions{configureKeys: func(c *authority.KeyConfig) { c.KEK = kek }})
	agent, claims := e.startAgent("alpha")
	h := e.holderFor(agent, "alice.example.test", false)
	claims.Claims["alice.example.test"] = map[string]any{"email": "alice@example.test"}
	for _, alg := range []string{"RS256", "ES256"} {
		rp := e.newRP(map[string]any{"id_token_signed_response_alg": alg, "userinfo_signed_response_alg": alg})
		res := e.login(rp, h, map[string]string{"claims": emailClaims})
		if res.UserinfoType != "application/jwt" || res.Userinfo["sub"] != res.Claims["sub"] {
			t.Fatalf("%s: userinfo %s %v", alg, res.UserinfoType, res.Userinfo)
		}
		if got, err := rp.DistributedClaims(res.Userinfo); err != nil || got["email"] != "alice@example.test" {
			t.Fatalf("%s: the agent's answer %v, %v", alg, got, err)
		}
	}

	raw := rawKeys(t, e.store)
	for id, stored := range raw {
		var jwk jose.JSONWebKey
		if jwk.UnmarshalJSON(stored) == nil || bytes.Contains(stored, []byte(`"d"`)) || !bytes.Contains(stored, []byte(kek.ID())) {
			t.Fatalf("key %s is stored as %.60s…; want it sealed with %s", id, stored, kek.ID())
		}
	}
	if len(raw) != 2 {
		t.Fatalf("%d signing keys stored, want 2", len(raw))
	}
}
