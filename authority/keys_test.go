package authority_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/id4me/id4me-registry/authority"
	"github.com/id4me/id4me-registry/registry"
	"github.com/id4me/id4me-registry/sqlstore"
)

// keyStore is a Store that keeps signing keys in memory; the rest of the interface is nil
// and panics if called.
type keyStore struct {
	authority.Store
	mu   sync.Mutex
	keys []authority.SigningKey
}

func newKeyStore(*testing.T) authority.Store { return &keyStore{} }

func (s *keyStore) SigningKeys(_ context.Context, now time.Time) ([]authority.SigningKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []authority.SigningKey
	for _, k := range s.keys {
		if k.ExpireTime.IsZero() || now.Before(k.ExpireTime) {
			out = append(out, k)
		}
	}
	return out, nil
}

func (s *keyStore) AddSigningKey(_ context.Context, k authority.SigningKey, notAfter time.Time, verifyFor time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.keys {
		if o.Alg == k.Alg && o.CreateTime.After(notAfter) {
			return authority.ErrConflict
		}
	}
	for i, o := range s.keys {
		if o.Alg == k.Alg && o.RetireTime.IsZero() {
			s.keys[i].RetireTime = k.SignTime
			s.keys[i].ExpireTime = k.SignTime.Add(verifyFor)
		}
	}
	s.keys = append(s.keys, k)
	return nil
}

// stores are the Store implementations every key test runs against.
var stores = []struct {
	name string
	open func(*testing.T) authority.Store
}{
	{"memory", newKeyStore},
	{"sqlite", openSQLite},
}

// openSQLite opens the real store on an in-memory SQLite database.
func openSQLite(t *testing.T) authority.Store {
	t.Helper()
	s, err := sqlstore.Open(context.Background(), ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s.Authority()
}

func forEachStore(t *testing.T, test func(t *testing.T, open func(*testing.T) authority.Store)) {
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) { test(t, s.open) })
	}
}

const (
	testLead      = time.Hour
	testVerifyFor = 2 * time.Hour
	testRefresh   = 30 * time.Second
	// testRetention is how long a retired key stays published.
	testRetention = testVerifyFor + testRefresh
)

func testConfig(c *clock) authority.KeyConfig {
	return authority.KeyConfig{
		PublishLead:     testLead,
		VerifyFor:       testVerifyFor,
		RefreshInterval: testRefresh,
		RotationPeriod:  48 * time.Hour,
		Now:             c.Now,
	}
}

func newKeySet(t *testing.T, store authority.Store, cfg authority.KeyConfig) *authority.KeySet {
	t.Helper()
	k, err := authority.NewKeySet(context.Background(), store, cfg)
	if err != nil {
		t.Fatalf("NewKeySet: %v", err)
	}
	return k
}

func storedKeys(t *testing.T, store authority.Store, now time.Time) map[string][]authority.SigningKey {
	t.Helper()
	keys, err := store.SigningKeys(context.Background(), now)
	if err != nil {
		t.Fatal(err)
	}
	byAlg := map[string][]authority.SigningKey{}
	for _, k := range keys {
		byAlg[k.Alg] = append(byAlg[k.Alg], k)
	}
	return byAlg
}

var algs = []jose.SignatureAlgorithm{jose.RS256, jose.ES256}

// verify checks token as a relying party would: parsed with an explicit algorithm list,
// its key looked up by kid in the published JWKS. It returns the kid.
func verify(jwks []byte, token string) (string, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(jwks, &set); err != nil {
		return "", fmt.Errorf("JWKS: %w", err)
	}
	jws, err := jose.ParseSigned(token, algs)
	if err != nil {
		return "", err
	}
	h := jws.Signatures[0].Header
	keys := set.Key(h.KeyID)
	if len(keys) != 1 {
		return h.KeyID, fmt.Errorf("kid %q: %d keys in the JWKS", h.KeyID, len(keys))
	}
	if keys[0].Algorithm != h.Algorithm {
		return h.KeyID, fmt.Errorf("kid %q is a %s key, the token says %s", h.KeyID, keys[0].Algorithm, h.Algorithm)
	}
	if _, err := jws.Verify(keys[0]); err != nil {
		return h.KeyID, err
	}
	return h.KeyID, nil
}

func sign(t *testing.T, k *authority.KeySet, alg string) string {
	t.Helper()
	token, err := k.Sign(alg, []byte(`{"sub":"x"}`), "")
	if err != nil {
		t.Fatalf("Sign %s: %v", alg, err)
	}
	return token
}

func kidOf(t *testing.T, token string) string {
	t.Helper()
	jws, err := jose.ParseSigned(token, algs)
	if err != nil {
		t.Fatal(err)
	}
	return jws.Signatures[0].Header.KeyID
}

func jwksKids(t *testing.T, k *authority.KeySet) []string {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(k.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, key := range set.Keys {
		kids = append(kids, key.KeyID)
	}
	slices.Sort(kids)
	return kids
}

func TestKeysFirstStart(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(*testing.T) authority.Store) {
		c := newClock()
		store := open(t)
		k := newKeySet(t, store, testConfig(c))
		byAlg := storedKeys(t, store, c.Now())
		if len(byAlg) != 2 || len(byAlg["RS256"]) != 1 || len(byAlg["ES256"]) != 1 {
			t.Fatalf("stored keys after the first start: %v; want one RS256 and one ES256", byAlg)
		}
		for alg, keys := range byAlg {
			key := keys[0]
			if !key.SignTime.Equal(key.CreateTime) || !key.CreateTime.Equal(c.Now().Truncate(time.Microsecond)) {
				t.Errorf("%s: created %v, signs from %v; want both now (%v)", alg, key.CreateTime, key.SignTime, c.Now())
			}
			if !key.RetireTime.IsZero() || !key.ExpireTime.IsZero() {
				t.Errorf("%s: retires %v, expires %v; want neither", alg, key.RetireTime, key.ExpireTime)
			}
			var jwk jose.JSONWebKey
			if err := jwk.UnmarshalJSON(key.PrivateJWK); err != nil {
				t.Fatal(err)
			}
			switch priv := jwk.Key.(type) {
			case *rsa.PrivateKey:
				if alg != "RS256" || priv.N.BitLen() < 2048 {
					t.Errorf("%s key is RSA of %d bits", alg, priv.N.BitLen())
				}
			case *ecdsa.PrivateKey:
				if alg != "ES256" || priv.Curve != elliptic.P256() {
					t.Errorf("%s key is EC on %s", alg, priv.Curve.Params().Name)
				}
			default:
				t.Errorf("%s key is a %T", alg, jwk.Key)
			}
			token := sign(t, k, alg)
			kid, err := verify(k.JWKS(), token)
			if err != nil || kid != key.ID {
				t.Errorf("%s token: kid %q, %v; want kid %q verified", alg, kid, err, key.ID)
			}
		}
		// A second start finds the keys and makes none.
		newKeySet(t, store, testConfig(c))
		if n := len(storedKeys(t, store, c.Now())); n != 2 {
			t.Errorf("after a second start: keys of %d algorithms", n)
		}
		if got := k.Algorithms(); !slices.Equal(got, []string{"RS256", "ES256"}) {
			t.Errorf("Algorithms() = %v", got)
		}
	})
}

func TestKeysConcurrentFirstStart(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(*testing.T) authority.Store) {
		c := newClock()
		store := open(t)
		const instances = 4
		sets := make([]*authority.KeySet, instances)
		errs := make([]error, instances)
		var wg sync.WaitGroup
		for i := range sets {
			wg.Go(func() { sets[i], errs[i] = authority.NewKeySet(context.Background(), store, testConfig(c)) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		byAlg := storedKeys(t, store, c.Now())
		if len(byAlg["RS256"]) != 1 || len(byAlg["ES256"]) != 1 {
			t.Fatalf("%d instances starting together made %d RS256 and %d ES256 keys; want one each",
				instances, len(byAlg["RS256"]), len(byAlg["ES256"]))
		}
		for _, k := range sets {
			for alg, keys := range byAlg {
				if kid := kidOf(t, sign(t, k, alg)); kid != keys[0].ID {
					t.Errorf("an instance signs %s with %q, want %q", alg, kid, keys[0].ID)
				}
			}
		}
	})
}

// TestKeysRotationLifecycle follows a rotated key through its life: published before it
// signs, then signing, while the old key stays published until what it signed has expired.
func TestKeysRotationLifecycle(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(*testing.T) authority.Store) {
		c := newClock()
		store := open(t)
		k := newKeySet(t, store, testConfig(c))
		ctx := context.Background()
		for _, alg := range k.Algorithms() {
			t.Run(alg, func(t *testing.T) {
				other := "ES256"
				if alg == other {
					other = "RS256"
				}
				oldKid := kidOf(t, sign(t, k, alg))
				otherKid := kidOf(t, sign(t, k, other))
				c.Advance(time.Hour)
				rotated := c.Now().Truncate(time.Microsecond)
				nk, err := k.Rotate(ctx, alg, false)
				if err != nil {
					t.Fatal(err)
				}
				if nk.ID == oldKid || !nk.CreateTime.Equal(rotated) || !nk.SignTime.Equal(rotated.Add(testLead)) {
					t.Fatalf("new key %q created %v signs from %v; want a new kid, created %v, signing from %v",
						nk.ID, nk.CreateTime, nk.SignTime, rotated, rotated.Add(testLead))
				}
				wantBoth := []string{oldKid, nk.ID, otherKid}
				slices.Sort(wantBoth)

				// Published at once; the old key signs until the publish lead has passed.
				var oldTokens []string
				for _, at := range []time.Duration{0, testLead / 2, testLead - time.Microsecond} {
					c.Set(rotated.Add(at))
					if got := jwksKids(t, k); !slices.Equal(got, wantBoth) {
						t.Fatalf("JWKS at rotation+%v: %v; want %v", at, got, wantBoth)
					}
					token := sign(t, k, alg)
					if kid := kidOf(t, token); kid != oldKid {
						t.Fatalf("at rotation+%v %s signs with %q; want the old key %q", at, alg, kid, oldKid)
					}
					oldTokens = append(oldTokens, token)
				}
				// The other algorithm is not touched.
				if kid := kidOf(t, sign(t, k, other)); kid != otherKid {
					t.Fatalf("rotating %s changed the %s key", alg, other)
				}

				// From the new key's SignTime it signs; the old one stays published for
				// VerifyFor (plus the refresh interval) and every token it signed verifies.
				byAlg := storedKeys(t, store, c.Now())
				for _, key := range byAlg[alg] {
					if key.ID == oldKid && (!key.RetireTime.Equal(nk.SignTime) || !key.ExpireTime.Equal(nk.SignTime.Add(testRetention))) {
						t.Fatalf("old key retires %v, expires %v; want %v and %v",
							key.RetireTime, key.ExpireTime, nk.SignTime, nk.SignTime.Add(testRetention))
					}
				}
				var newToken string
				for _, at := range []time.Duration{0, time.Minute, testVerifyFor, testRetention - time.Microsecond} {
					c.Set(nk.SignTime.Add(at))
					if err := k.Refresh(ctx); err != nil {
						t.Fatal(err)
					}
					token := sign(t, k, alg)
					if kid := kidOf(t, token); kid != nk.ID {
						t.Fatalf("at SignTime+%v %s signs with %q; want the new key %q", at, alg, kid, nk.ID)
					}
					if at == 0 {
						newToken = token
					}
					if got := jwksKids(t, k); !slices.Equal(got, wantBoth) {
						t.Fatalf("JWKS at SignTime+%v: %v; want %v", at, got, wantBoth)
					}
					for _, old := range oldTokens {
						if _, err := verify(k.JWKS(), old); err != nil {
							t.Fatalf("at SignTime+%v a token of the old key does not verify: %v", at, err)
						}
					}
				}

				// Then it is gone, from the KeySet's JWKS before any refresh, and from the store.
				c.Set(nk.SignTime.Add(testRetention))
				want := []string{nk.ID, otherKid}
				slices.Sort(want)
				if got := jwksKids(t, k); !slices.Equal(got, want) {
					t.Fatalf("JWKS once the old key expired: %v; want %v", got, want)
				}
				if kid, err := verify(k.JWKS(), oldTokens[0]); err == nil {
					t.Fatalf("a token of the expired key %q still verifies", kid)
				}
				if _, err := verify(k.JWKS(), newToken); err != nil {
					t.Fatal(err)
				}
				if err := k.Refresh(ctx); err != nil {
					t.Fatal(err)
				}
				if got := jwksKids(t, k); !slices.Equal(got, want) {
					t.Fatalf("JWKS after a refresh: %v; want %v", got, want)
				}
			})
		}
	})
}

func TestKeysImmediateRotation(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(*testing.T) authority.Store) {
		c := newClock()
		k := newKeySet(t, open(t), testConfig(c))
		old := sign(t, k, "ES256")
		c.Advance(time.Minute)
		nk, err := k.Rotate(context.Background(), "ES256", true)
		if err != nil {
			t.Fatal(err)
		}
		if kid := kidOf(t, sign(t, k, "ES256")); kid != nk.ID {
			t.Fatalf("after an immediate rotation ES256 signs with %q; want %q", kid, nk.ID)
		}
		if _, err := verify(k.JWKS(), old); err != nil {
			t.Fatalf("a token of the replaced key: %v", err)
		}
		if _, err := k.Rotate(context.Background(), "HS256", true); err == nil {
			t.Fatal("Rotate HS256: no error")
		}
	})
}

// TestKeysPendingKeyReplaced: a rotation while another key waits to sign replaces that one
// too; the newest key wins.
func TestKeysPendingKeyReplaced(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(*testing.T) authority.Store) {
		c := newClock()
		k := newKeySet(t, open(t), testConfig(c))
		ctx := context.Background()
		first, err := k.Rotate(ctx, "RS256", false)
		if err != nil {
			t.Fatal(err)
		}
		c.Advance(time.Minute)
		second, err := k.Rotate(ctx, "RS256", true)
		if err != nil {
			t.Fatal(err)
		}
		c.Advance(2 * testLead)
		if kid := kidOf(t, sign(t, k, "RS256")); kid != second.ID {
			t.Fatalf("signs with %q; want the newest key %q (not %q)", kid, second.ID, first.ID)
		}
	})
}

func TestKeysRotateDue(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(*testing.T) authority.Store) {
		c := newClock()
		start := c.Now().Truncate(time.Microsecond)
		store := open(t)
		cfg := testConfig(c)
		a, b := newKeySet(t, store, cfg), newKeySet(t, store, cfg)
		ctx := context.Background()

		c.Set(start.Add(cfg.RotationPeriod - time.Second))
		if err := a.RotateDue(ctx); err != nil {
			t.Fatal(err)
		}
		if byAlg := storedKeys(t, store, c.Now()); len(byAlg["RS256"]) != 1 || len(byAlg["ES256"]) != 1 {
			t.Fatalf("RotateDue before the rotation period passed: %v", byAlg)
		}

		// Both instances find the keys due at once; one new key per algorithm is made.
		c.Set(start.Add(cfg.RotationPeriod + time.Second))
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, k := range []*authority.KeySet{a, b} {
			wg.Go(func() { errs[i] = k.RotateDue(ctx) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		byAlg := storedKeys(t, store, c.Now())
		if len(byAlg["RS256"]) != 2 || len(byAlg["ES256"]) != 2 {
			t.Fatalf("two instances rotating at once: %d RS256 and %d ES256 keys; want 2 each",
				len(byAlg["RS256"]), len(byAlg["ES256"]))
		}
		for _, k := range []*authority.KeySet{a, b} {
			want := []string{}
			for _, keys := range byAlg {
				for _, key := range keys {
					want = append(want, key.ID)
				}
			}
			slices.Sort(want)
			if got := jwksKids(t, k); !slices.Equal(got, want) {
				t.Errorf("an instance publishes %v; want %v", got, want)
			}
		}

		// Nothing more is due until the new keys are RotationPeriod old (by when the keys
		// they replaced have expired).
		newest := func() []string {
			var ids []string
			for _, keys := range storedKeys(t, store, c.Now()) {
				for _, key := range keys {
					ids = append(ids, key.ID)
				}
			}
			slices.Sort(ids)
			return ids
		}
		c.Advance(cfg.RotationPeriod - 2*time.Second)
		current := newest()
		if len(current) != 2 {
			t.Fatalf("%d keys once the replaced ones expired; want 2", len(current))
		}
		if err := a.RotateDue(ctx); err != nil {
			t.Fatal(err)
		}
		if got := newest(); !slices.Equal(got, current) {
			t.Fatalf("RotateDue rotated again too early: keys %v, were %v", got, current)
		}

		// Scheduled rotation can be off.
		cfg.RotationPeriod = -1
		off := newKeySet(t, store, cfg)
		c.Advance(10 * 365 * 24 * time.Hour)
		if err := off.RotateDue(ctx); err != nil {
			t.Fatal(err)
		}
		if got := newest(); !slices.Equal(got, current) {
			t.Fatalf("RotateDue with rotation off rotated: keys %v, were %v", got, current)
		}
	})
}

// TestKeysRunSeesOtherInstances: Run re-reads the store, so a rotation made by another
// instance (or the CLI) is published here within the refresh interval.
func TestKeysRunSeesOtherInstances(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(*testing.T) authority.Store) {
		c := newClock()
		store := open(t)
		cfg := testConfig(c)
		cfg.RefreshInterval = 10 * time.Millisecond
		a, b := newKeySet(t, store, cfg), newKeySet(t, store, cfg)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { b.Run(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })

		nk, err := a.Rotate(ctx, "ES256", false)
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for !slices.Contains(jwksKids(t, b), nk.ID) {
			if time.Now().After(deadline) {
				t.Fatalf("the other instance did not publish %q", nk.ID)
			}
			time.Sleep(5 * time.Millisecond)
		}
		c.Set(nk.SignTime)
		if kid := kidOf(t, sign(t, b, "ES256")); kid != nk.ID {
			t.Fatalf("the other instance signs with %q; want %q", kid, nk.ID)
		}
	})
}

func TestKeysJWKSHasNoPrivateMembers(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(*testing.T) authority.Store) {
		c := newClock()
		k := newKeySet(t, open(t), testConfig(c))
		if _, err := k.Rotate(context.Background(), "RS256", false); err != nil {
			t.Fatal(err)
		}
		var set struct {
			Keys []map[string]any `json:"keys"`
		}
		if err := json.Unmarshal(k.JWKS(), &set); err != nil {
			t.Fatal(err)
		}
		if len(set.Keys) != 3 {
			t.Fatalf("%d keys in the JWKS; want 3", len(set.Keys))
		}
		for _, key := range set.Keys {
			for _, m := range []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"} {
				if _, ok := key[m]; ok {
					t.Errorf("key %v has the private member %q", key["kid"], m)
				}
			}
			want := map[string]string{"RS256": "RSA", "ES256": "EC"}[fmt.Sprint(key["alg"])]
			if key["kty"] != want || want == "" || key["use"] != "sig" || key["kid"] == "" {
				t.Errorf("JWK kty %v, alg %v, use %v, kid %v", key["kty"], key["alg"], key["use"], key["kid"])
			}
		}
		// The bytes returned are the caller's.
		b := k.JWKS()
		clear(b)
		if err := json.Unmarshal(k.JWKS(), &set); err != nil {
			t.Fatal("JWKS changed by a caller:", err)
		}
	})
}

// TestKeysSignedJWS checks the JWS as a relying party sees it.
func TestKeysSignedJWS(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(*testing.T) authority.Store) {
		k := newKeySet(t, open(t), testConfig(newClock()))
		for _, alg := range k.Algorithms() {
			token, err := k.Sign(alg, []byte(`{"iss":"https://id.example"}`), "at+jwt")
			if err != nil {
				t.Fatal(err)
			}
			jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
			if err != nil {
				t.Fatalf("%s: %v", alg, err)
			}
			h := jws.Signatures[0].Header
			if h.Algorithm != alg || h.ExtraHeaders["typ"] != "at+jwt" || h.KeyID == "" {
				t.Errorf("%s header: alg %q, typ %v, kid %q", alg, h.Algorithm, h.ExtraHeaders["typ"], h.KeyID)
			}
			if _, err := verify(k.JWKS(), token); err != nil {
				t.Errorf("%s: %v", alg, err)
			}
			if strings.Count(token, ".") != 2 {
				t.Errorf("%s: not a compact JWS: %q", alg, token)
			}
			// A verifier that accepts only the other algorithm refuses it.
			only := jose.ES256
			if alg == "ES256" {
				only = jose.RS256
			}
			if _, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{only}); err == nil {
				t.Errorf("a %s token parsed with only %s allowed", alg, only)
			}
		}
		token := sign(t, k, "RS256")
		jws, _ := jose.ParseSigned(token, algs)
		if typ := jws.Signatures[0].Header.ExtraHeaders["typ"]; typ != "JWT" {
			t.Errorf("default typ %v; want JWT", typ)
		}
		if _, err := k.Sign("HS256", nil, ""); !errors.Is(err, authority.ErrNoSigningKey) {
			t.Errorf("Sign HS256: %v; want ErrNoSigningKey", err)
		}
	})
}

func TestKeysRefuseBadStoredKeys(t *testing.T) {
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	rsa2048, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	jwk := func(key any, kid string) []byte {
		b, err := jose.JSONWebKey{Key: key, KeyID: kid}.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name, alg string
		jwk       []byte
		want      string
	}{
		{"RS256 with an EC key", "RS256", jwk(p256, "bad"), "EC key"},
		{"ES256 with an RSA key", "ES256", jwk(rsa2048, "bad"), "RSA key"},
		{"RSA of 1024 bits", "RS256", jwk(rsa1024, "bad"), "1024 bits"},
		{"ES256 on P-384", "ES256", jwk(p384, "bad"), "P-384"},
		{"a public key", "ES256", jwk(p256.Public(), "bad"), "not a private"},
		{"kid mismatch", "ES256", jwk(p256, "other"), `kid is "other"`},
		{"not JSON", "ES256", []byte("{"), "not a JWK"},
		{"HS256", "HS256", jwk([]byte("0123456789abcdef0123456789abcdef"), "bad"), "not a private"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			store := &keyStore{keys: []authority.SigningKey{{
				ID: "bad", Alg: tc.alg, PrivateJWK: tc.jwk, CreateTime: c.Now(), SignTime: c.Now(),
			}}}
			_, err := authority.NewKeySet(context.Background(), store, testConfig(c))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `"bad"`) {
				t.Fatalf("NewKeySet: %v; want a refusal naming the key and saying %q", err, tc.want)
			}
		})
	}
}

func TestKeysConfigRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  authority.KeyConfig
	}{
		{"RSA 1024", authority.KeyConfig{RSABits: 1024}},
		{"rotation within the lead", authority.KeyConfig{PublishLead: 2 * time.Hour, RotationPeriod: time.Hour}},
		{"negative lead", authority.KeyConfig{PublishLead: -time.Hour}},
		{"negative verify-for", authority.KeyConfig{VerifyFor: -time.Hour}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := authority.NewKeySet(context.Background(), &keyStore{}, tc.cfg); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// TestKeysConcurrentSignAndRotate runs signing, JWKS reads, refreshes and rotations at once
// (for the race detector).
func TestKeysConcurrentSignAndRotate(t *testing.T) {
	c := newClock()
	k := newKeySet(t, &keyStore{}, testConfig(c))
	ctx := context.Background()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, alg := range k.Algorithms() {
					token, err := k.Sign(alg, []byte(`{}`), "")
					if err != nil {
						t.Error(err)
						return
					}
					if _, err := verify(k.JWKS(), token); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	for range 3 {
		if _, err := k.Rotate(ctx, "ES256", true); err != nil {
			t.Error(err)
		}
		if err := k.Refresh(ctx); err != nil {
			t.Error(err)
		}
	}
	close(stop)
	wg.Wait()
}

// BenchmarkSign measures signing throughput per algorithm, from all processors at once.
func BenchmarkSign(b *testing.B) {
	k, err := authority.NewKeySet(context.Background(), &keyStore{}, authority.KeyConfig{})
	if err != nil {
		b.Fatal(err)
	}
	payload := []byte(`{"iss":"https://id.example","sub":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",` +
		`"aud":"https://agent.example","id4me.identifier":"alice.example","clm":["email","name"],` +
		`"scope":["openid","email","profile"],"client_id":"c_0123456789","iat":1900000000,"exp":1900000600,"jti":"j_0123456789"}`)
	for _, alg := range k.Algorithms() {
		b.Run(alg, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := k.Sign(alg, payload, "at+jwt"); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "signatures/s")
		})
	}
}

// outageStore is a Store whose SigningKeys fails while down is set, as during a database
// outage, and counts its calls.
type outageStore struct {
	authority.Store
	down  atomic.Bool
	calls atomic.Int64
}

func (s *outageStore) SigningKeys(ctx context.Context, now time.Time) ([]authority.SigningKey, error) {
	s.calls.Add(1)
	if s.down.Load() {
		return nil, registry.NewError(registry.ReasonDatabaseUnavailable, "the database is unreachable; try again shortly")
	}
	return s.Store.SigningKeys(ctx, now)
}

// TestKeysRunLogsAnOutageOnce: while the store fails, Run logs the failure of reading the
// keys once, not at every interval, and once more when it works again.
func TestKeysRunLogsAnOutageOnce(t *testing.T) {
	store := &outageStore{Store: newKeyStore(t)}
	var logs logBuffer
	cfg := testConfig(newClock())
	cfg.RefreshInterval = time.Millisecond
	cfg.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	k := newKeySet(t, store, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { k.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitCalls := func(n int64) {
		t.Helper()
		want := store.calls.Load() + n
		deadline := time.Now().Add(10 * time.Second)
		for store.calls.Load() < want {
			if time.Now().After(deadline) {
				t.Fatalf("Run read the keys %d times, want %d more", store.calls.Load(), n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	store.down.Store(true)
	waitCalls(20)
	store.down.Store(false)
	waitCalls(5)
	cancel()
	<-done
	if n := logs.count("reading the signing keys failed; logged once until it works again"); n != 1 {
		t.Fatalf("%d log lines for 20 failed reads, want 1:\n%s", n, logs.String())
	}
	if n := logs.count("reading the signing keys works again"); n != 1 {
		t.Fatalf("%d log lines say reading works again, want 1:\n%s", n, logs.String())
	}
}

// blockingKeyStore holds the key rotator in a store call from the moment it is armed until
// released, and records that the call has returned.
type blockingKeyStore struct {
	authority.Store
	armed    atomic.Bool
	entered  chan struct{}
	release  chan struct{}
	returned atomic.Bool
}

func (s *blockingKeyStore) SigningKeys(ctx context.Context, now time.Time) ([]authority.SigningKey, error) {
	if s.armed.CompareAndSwap(true, false) {
		close(s.entered)
		<-s.release
		defer s.returned.Store(true)
	}
	return s.Store.SigningKeys(ctx, now)
}

// TestRunWaitsForTheKeyRotator: Authority.Run returns only once the key rotator it started
// has stopped, so that no store call of the authority's outlives a shutdown (which closes
// the database after Run returns).
func TestRunWaitsForTheKeyRotator(t *testing.T) {
	store := &blockingKeyStore{Store: newKeyStore(t), entered: make(chan struct{}), release: make(chan struct{})}
	cfg := testConfig(newClock())
	cfg.RefreshInterval = time.Millisecond
	keys := newKeySet(t, store, cfg)
	a, err := authority.New(authority.Config{
		Issuer: "https://id.example.test", Store: store, Keys: keys, Resolver: struct{ authority.Resolver }{},
	})
	if err != nil {
		t.Fatal(err)
	}
	store.armed.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx, time.Hour); close(done) }()
	<-store.entered
	cancel()
	select {
	case <-done:
		t.Fatal("Run returned while the key rotator was still in a store call")
	case <-time.After(100 * time.Millisecond):
	}
	close(store.release)
	<-done
	if !store.returned.Load() {
		t.Fatal("Run returned before the key rotator's store call did")
	}
}
