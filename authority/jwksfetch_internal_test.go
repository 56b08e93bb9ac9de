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
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/id4me/id4me-registry/internal/fakeclock"
)

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
	clk := fakeclock.New(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	f := newJWKSFetcher(true, srv.roots(), 5*time.Second, clk.Now)
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
	clk.Advance(4 * time.Minute)
	get("one", 1) // within max-age=300

	// The relying party rotates: a kid not in the cached set is fetched, once per interval.
	srv.serve(ecKey(t, "one"), ecKey(t, "two"))
	get("two", 2)
	get("missing", 2)
	get("missing", 2)
	clk.Advance(jwksURIRefetchInterval)
	get("missing", 3)

	// At max-age the set is fetched again; when that fails, the set it has serves.
	clk.Advance(5 * time.Minute)
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

// TestJWKSFetcherFailuresAreNotFetchedAgainAtOnce: a jwks_uri that fails is fetched again
// only after jwksURIRefetchInterval, whether a set was fetched from it before (which then
// serves, expired or not, if it has the key) or not (the last failure is returned again);
// concurrent requests wait for one fetch.
func TestJWKSFetcherFailuresAreNotFetchedAgainAtOnce(t *testing.T) {
	ctx := context.Background()
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
	concurrently := func(f *jwksFetcher, uri, kid string) []error {
		errs := make([]error, 20)
		var wg sync.WaitGroup
		for i := range errs {
			wg.Go(func() { _, errs[i] = f.keys(ctx, uri, has(kid)) })
		}
		wg.Wait()
		return errs
	}

	t.Run("expired set", func(t *testing.T) {
		srv := newJWKSServer(t)
		clk := fakeclock.New(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
		f := newJWKSFetcher(true, srv.roots(), 5*time.Second, clk.Now)
		uri := srv.srv.URL + "/jwks"
		srv.serve(ecKey(t, "one"))
		if _, err := f.keys(ctx, uri, has("one")); err != nil {
			t.Fatal(err)
		}
		clk.Advance(10 * time.Minute) // past max-age=300
		srv.fail()
		for i, err := range concurrently(f, uri, "one") {
			if err != nil {
				t.Fatalf("request %d: %v; want the expired set, which has the key", i, err)
			}
		}
		if n := srv.hits.Load(); n != 2 {
			t.Fatalf("%d fetches, want 2: the first, and one for 20 concurrent requests after expiry", n)
		}
		for i, err := range concurrently(f, uri, "missing") {
			if err == nil || !strings.Contains(err.Error(), "HTTP status 503") {
				t.Fatalf("request %d for a key the set lacks: %v; want the last fetch's failure", i, err)
			}
		}
		if n := srv.hits.Load(); n != 2 {
			t.Fatalf("%d fetches within the interval after a failure, want none more", n-2)
		}
		clk.Advance(jwksURIRefetchInterval)
		f.keys(ctx, uri, has("one"))
		if n := srv.hits.Load(); n != 3 {
			t.Fatalf("%d fetches once the interval passed, want one more", n-2)
		}
	})

	t.Run("never fetched", func(t *testing.T) {
		srv := newJWKSServer(t)
		clk := fakeclock.New(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
		f := newJWKSFetcher(true, srv.roots(), 5*time.Second, clk.Now)
		uri := srv.srv.URL + "/jwks"
		srv.fail()
		for i, err := range concurrently(f, uri, "one") {
			if err == nil {
				t.Fatalf("request %d got keys from a failing jwks_uri", i)
			}
		}
		if n := srv.hits.Load(); n != 1 {
			t.Fatalf("20 concurrent requests for a failing jwks_uri made %d fetches, want 1", n)
		}
		srv.serve(ecKey(t, "one"))
		clk.Advance(jwksURIRefetchInterval - time.Second)
		if _, err := f.keys(ctx, uri, has("one")); err == nil || srv.hits.Load() != 1 {
			t.Fatalf("within the interval: %v after %d fetches; want the failure again, unfetched", err, srv.hits.Load())
		}
		clk.Advance(time.Second)
		if _, err := f.keys(ctx, uri, has("one")); err != nil || srv.hits.Load() != 2 {
			t.Fatalf("after the interval: %v after %d fetches; want the set, fetched again", err, srv.hits.Load())
		}
	})
}

// TestJWKSFetcherErrorsSayNothingOfConnections: whatever stops a connection (a closed port,
// a server that does not speak TLS, one that does not answer in time), the error says only
// that no HTTPS answer came, so that the authority cannot be used to probe hosts and ports.
func TestJWKSFetcherErrorsSayNothingOfConnections(t *testing.T) {
	ctx := context.Background()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()
	plain := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(plain.Close)
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	f := newJWKSFetcher(true, x509.NewCertPool(), 200*time.Millisecond, time.Now)
	const want = "the jwks_uri could not be fetched: no HTTPS answer from it within 200ms"
	for name, uri := range map[string]string{
		"closed port": "https://" + closedAddr + "/jwks",
		"not TLS":     "https://" + strings.TrimPrefix(plain.URL, "http://") + "/jwks",
		"no answer":   "https://" + silent.Addr().String() + "/jwks",
		"unknown CA":  newJWKSServer(t).srv.URL + "/jwks",
	} {
		_, err := f.keys(ctx, uri, func([]jose.JSONWebKey) bool { return true })
		if err == nil || err.Error() != want {
			t.Errorf("%s: %v; want %q", name, err, want)
		}
		if fe, ok := errors.AsType[*fetchError](err); !ok || fe.err == nil {
			t.Errorf("%s: the cause is not kept for the log", name)
		}
	}
}
