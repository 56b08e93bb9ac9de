package authority

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

func TestIsPublicAddress(t *testing.T) {
	for addr, want := range map[string]bool{
		"93.184.215.14":            true,
		"8.8.8.8":                  true,
		"2606:4700:4700::1111":     true,
		"64:ff9b::5db8:d70e":       true, // NAT64 of a public address
		"2002:5db8:d70e::1":        true, // 6to4 of a public address
		"127.0.0.1":                false,
		"127.1.2.3":                false,
		"::1":                      false,
		"10.0.0.1":                 false,
		"172.16.5.4":               false,
		"192.168.1.1":              false,
		"fd00::1":                  false,
		"169.254.169.254":          false,
		"fe80::1":                  false,
		"fe80::1%eth0":             false,
		"224.0.0.1":                false,
		"ff02::1":                  false,
		"239.255.255.250":          false,
		"0.0.0.0":                  false,
		"::":                       false,
		"0.1.2.3":                  false,
		"100.64.0.1":               false,
		"192.0.0.8":                false,
		"198.18.0.1":               false,
		"192.0.2.1":                false,
		"240.0.0.1":                false,
		"255.255.255.255":          false,
		"::ffff:127.0.0.1":         false,
		"::ffff:10.1.2.3":          false,
		"::ffff:93.184.215.14":     true,
		"64:ff9b::7f00:1":          false, // NAT64 of loopback
		"64:ff9b::a9fe:a9fe":       false, // NAT64 of 169.254.169.254
		"2002:7f00:1::1":           false, // 6to4 of loopback
		"2001:db8::1":              false,
		"fec0::1":                  false,
		"64:ff9b:1::a00:1":         false,
		"100::1":                   false,
		"::ffff:169.254.169.254":   false,
		"2a00:1450:4001:82b::200e": true,
	} {
		if got := isPublicAddress(netip.MustParseAddr(addr)); got != want {
			t.Errorf("isPublicAddress(%s) = %v, want %v", addr, got, want)
		}
	}
}

func TestCacheAge(t *testing.T) {
	for header, want := range map[string]time.Duration{
		"":                             jwksURIDefaultAge,
		"public, max-age=600":          10 * time.Minute,
		`max-age="900"`:                15 * time.Minute,
		"max-age=5":                    jwksURIMinAge,
		"max-age=0, must-revalidate":   jwksURIMinAge,
		"no-store":                     jwksURIMinAge,
		"private, no-cache":            jwksURIMinAge,
		"max-age=31536000":             jwksURIMaxAge,
		"max-age=99999999999999999999": jwksURIDefaultAge,
		"max-age=-5":                   jwksURIMinAge,
	} {
		if got := cacheAge(header); got != want {
			t.Errorf("cacheAge(%q) = %v, want %v", header, got, want)
		}
	}
}

// testClock is a settable clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// jwksServer serves whatever set holds, counting requests.
type jwksServer struct {
	srv  *httptest.Server
	hits atomic.Int64
	mu   sync.Mutex
	set  []byte
	down bool
}

func newJWKSServer(t *testing.T) *jwksServer {
	s := &jwksServer{}
	s.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.down {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Cache-Control", "max-age=300")
		w.Write(s.set)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *jwksServer) serve(keys ...jose.JSONWebKey) {
	b, _ := json.Marshal(jose.JSONWebKeySet{Keys: keys})
	s.mu.Lock()
	s.set, s.down = b, false
	s.mu.Unlock()
}

func (s *jwksServer) fail() {
	s.mu.Lock()
	s.down = true
	s.mu.Unlock()
}

func (s *jwksServer) roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(s.srv.Certificate())
	return p
}

func ecKey(t *testing.T, kid string) jose.JSONWebKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid, Use: "enc"}
}

// TestJWKSFetcherCache: a fetched set is used until its max-age; a set without the key
// wanted is fetched again, at most every jwksURIRefetchInterval; a failed fetch falls back
// on a cached set that has the key.
func TestJWKSFetcherCache(t *testing.T) {
	ctx := context.Background()
	srv := newJWKSServer(t)
	clk := &testClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	f := newJWKSFetcher(true, srv.roots(), 5*time.Second, clk.now)
	uri := srv.srv.URL + "/jwks"
	has := func(kid string) func([]jose.JSONWebKey) bool {
		return func(keys []jose.JSONWebKey) bool {
			for _, k := range keys {
				if k.KeyID == kid {
					return true
				}
			}
			return false
		}
	}
	get := func(want string, wantHits int64) {
		t.Helper()
		keys, err := f.keys(ctx, uri, has(want))
		if err != nil {
			t.Fatal(err)
		}
		if n := srv.hits.Load(); n != wantHits {
			t.Fatalf("after asking for %s: %d fetches, want %d", want, n, wantHits)
		}
		if !has(want)(keys) && want != "missing" {
			t.Fatalf("keys %v lack %s", keys, want)
		}
	}

	srv.serve(ecKey(t, "one"))
	get("one", 1)
	clk.advance(4 * time.Minute)
	get("one", 1) // within max-age=300

	// The relying party rotates: a kid not in the cached set is fetched, once per interval.
	srv.serve(ecKey(t, "one"), ecKey(t, "two"))
	get("two", 2)
	get("missing", 2)
	get("missing", 2)
	clk.advance(jwksURIRefetchInterval)
	get("missing", 3)

	// At max-age the set is fetched again; when that fails, the set it has serves.
	clk.advance(5 * time.Minute)
	srv.fail()
	get("two", 4)
	if _, err := f.keys(ctx, uri, has("missing")); err == nil {
		t.Fatal("a failed fetch without the key wanted gave no error")
	}
}

// TestJWKSFetcherRefusesNonPublicAtConnect: the dialer refuses a connection to an address
// that is not public once the name is resolved, so a name that resolves to loopback (as a
// rebinding name would) reaches nothing; allowed, the same server answers.
func TestJWKSFetcherRefusesNonPublicAtConnect(t *testing.T) {
	ctx := context.Background()
	srv := newJWKSServer(t)
	srv.serve(ecKey(t, "one"))
	_, port, _ := net.SplitHostPort(srv.srv.Listener.Addr().String())
	anyKey := func([]jose.JSONWebKey) bool { return true }

	f := newJWKSFetcher(false, srv.roots(), 5*time.Second, time.Now)
	for _, uri := range []string{srv.srv.URL + "/jwks", "https://localhost:" + port + "/jwks"} {
		_, err := f.keys(ctx, uri, anyKey)
		var np *nonPublicAddressError
		if !errors.As(err, &np) || !np.addr.IsLoopback() {
			t.Fatalf("%s: %v; want a refusal of the loopback address", uri, err)
		}
	}
	if n := srv.hits.Load(); n != 0 {
		t.Fatalf("the server got %d requests, want none", n)
	}
	if _, err := f.keys(ctx, "http://example.test/jwks", anyKey); err == nil {
		t.Fatal("an http jwks_uri was fetched")
	}

	dev := newJWKSFetcher(true, srv.roots(), 5*time.Second, time.Now)
	keys, err := dev.keys(ctx, srv.srv.URL+"/jwks", anyKey)
	if err != nil || len(keys) != 1 || srv.hits.Load() != 1 {
		t.Fatalf("allowed: %v, %v, %d requests", keys, err, srv.hits.Load())
	}
}
