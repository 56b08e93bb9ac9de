package authority

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/id4me/id4me-registry/internal/publicaddr"
)

// Bounds of fetching a relying party's jwks_uri.
const (
	// DefaultJWKSURITimeout bounds one fetch of a jwks_uri, connection and body included.
	DefaultJWKSURITimeout = 5 * time.Second
	// maxJWKSURIBody bounds a fetched JWK Set.
	maxJWKSURIBody = 64 << 10
	// jwksURIMinAge and jwksURIMaxAge bound how long a fetched set is used, whatever its
	// Cache-Control says; jwksURIDefaultAge is for an answer that says nothing.
	jwksURIMinAge     = time.Minute
	jwksURIMaxAge     = 24 * time.Hour
	jwksURIDefaultAge = time.Hour
	// jwksURIRefetchInterval is the least time between two fetches of a jwks_uri, whether
	// the last one failed, or gave a set that lacks the key a response needs (the relying
	// party may have rotated its keys), so that a client cannot make the authority fetch
	// its jwks_uri at every request.
	jwksURIRefetchInterval = 30 * time.Second
	// maxCachedJWKSURIs bounds the cache; when full, it forgets everything.
	maxCachedJWKSURIs = 1000
)

// jwksFetcher fetches relying parties' JWK Sets from their jwks_uri and caches them: https
// only, bounded in time and size, no redirects, and, unless allowPrivate, never from an
// address that is not public. The address is checked when the connection is made, after
// the name is resolved, so a name that resolves to a public address when it is checked and
// to a private one when it is used (DNS rebinding) gets nowhere. A fetch that fails says
// so without the details of the connection (fetchError).
type jwksFetcher struct {
	client  *http.Client
	timeout time.Duration
	now     func() time.Time

	mu   sync.Mutex
	sets map[string]*cachedJWKS
}

// cachedJWKS is one jwks_uri's set and its last fetch. Its mutex serialises fetches of it.
type cachedJWKS struct {
	mu        sync.Mutex
	keys      []jose.JSONWebKey
	fetched   bool
	expires   time.Time
	lastFetch time.Time
	// lastErr is the failure of the last fetch; nil when it succeeded.
	lastErr error
}

func newJWKSFetcher(allowPrivate bool, roots *x509.CertPool, timeout time.Duration, now func() time.Time) *jwksFetcher {
	return &jwksFetcher{now: now, timeout: timeout, client: outboundClient(allowPrivate, roots, timeout)}
}

// keys returns the set at uri: the cached one while it is fresh and has a key want
// accepts; otherwise it is fetched again, but never twice within jwksURIRefetchInterval,
// whatever came of the last fetch: within it, the set there is serves (fresh or not), or
// the last fetch's failure is returned again. So neither a client whose set lacks a key nor
// one whose jwks_uri fails can make the authority fetch at every request, and concurrent
// requests wait for one fetch. A failed fetch falls back on the cached set if that has the
// key.
func (f *jwksFetcher) keys(ctx context.Context, uri string, want func([]jose.JSONWebKey) bool) ([]jose.JSONWebKey, error) {
	f.mu.Lock()
	c := f.sets[uri]
	if c == nil {
		if f.sets == nil || len(f.sets) >= maxCachedJWKSURIs {
			f.sets = make(map[string]*cachedJWKS)
		}
		c = &cachedJWKS{}
		f.sets[uri] = c
	}
	f.mu.Unlock()

	c.mu.Lock()
	defer c.mu.Unlock()
	now := f.now()
	switch {
	case c.fetched && now.Before(c.expires) && want(c.keys):
		return c.keys, nil
	case !c.lastFetch.IsZero() && now.Sub(c.lastFetch) < jwksURIRefetchInterval:
		if c.fetched && (c.lastErr == nil || want(c.keys)) {
			return c.keys, nil
		}
		return nil, c.lastErr
	}
	prev := c.lastFetch
	c.lastFetch = now
	keys, maxAge, err := f.fetch(ctx, uri)
	if err != nil {
		if ctx.Err() != nil {
			// The request went away: that says nothing of the jwks_uri.
			c.lastFetch = prev
		} else {
			c.lastErr = err
		}
		if c.fetched && want(c.keys) {
			return c.keys, nil
		}
		return nil, err
	}
	c.keys, c.fetched, c.expires, c.lastErr = keys, true, now.Add(maxAge), nil
	return keys, nil
}

// fetchError is a jwks_uri that could not be fetched. Its message is what the relying party
// is told: whether an HTTPS server answered in time, its status, or what is wrong with the
// set it served, and nothing of the connection (refused, reset, no route, a TLS alert),
// which would let anyone probe hosts and ports through the authority. The cause is for the
// log.
type fetchError struct {
	msg string
	err error
}

func (e *fetchError) Error() string { return e.msg }
func (e *fetchError) Unwrap() error { return e.err }

// fetch gets the set at uri and how long it may be used.
func (f *jwksFetcher) fetch(ctx context.Context, uri string) ([]jose.JSONWebKey, time.Duration, error) {
	if !strings.HasPrefix(uri, "https://") {
		return nil, 0, fmt.Errorf("jwks_uri %s is not https", uri)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, 0, &fetchError{msg: "the jwks_uri is not a URL that can be fetched", err: err}
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	noAnswer := fmt.Sprintf("the jwks_uri could not be fetched: no HTTPS answer from it within %v", f.timeout)
	resp, err := f.client.Do(req)
	if err != nil {
		if _, ok := errors.AsType[*nonPublicAddressError](err); ok {
			return nil, 0, &fetchError{msg: "the jwks_uri could not be fetched: its host is not a public address; the authority fetches jwks_uri only from public addresses", err: err}
		}
		return nil, 0, &fetchError{msg: noAnswer, err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, &fetchError{msg: fmt.Sprintf("the jwks_uri could not be fetched: it answered HTTP status %d; it must serve the JWK Set itself", resp.StatusCode)}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSURIBody+1))
	if err != nil {
		return nil, 0, &fetchError{msg: noAnswer, err: err}
	}
	if len(body) > maxJWKSURIBody {
		return nil, 0, &fetchError{msg: fmt.Sprintf("the jwks_uri did not serve a usable JWK Set: it is larger than %d KiB", maxJWKSURIBody>>10)}
	}
	keys, err := parseClientJWKS(body)
	if err != nil {
		return nil, 0, &fetchError{msg: "the jwks_uri did not serve a usable JWK Set: " + err.Error(), err: err}
	}
	return keys, cacheAge(resp.Header.Get("Cache-Control")), nil
}

// cacheAge is how long a set may be used by its Cache-Control, within bounds.
func cacheAge(cacheControl string) time.Duration {
	age := jwksURIDefaultAge
	for _, d := range strings.Split(cacheControl, ",") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), "=")
		switch strings.ToLower(name) {
		case "no-store", "no-cache":
			return jwksURIMinAge
		case "max-age":
			if n, err := strconv.ParseInt(strings.Trim(value, `"`), 10, 64); err == nil {
				age = time.Duration(min(n, int64(jwksURIMaxAge/time.Second))) * time.Second
			}
		}
	}
	return min(max(age, jwksURIMinAge), jwksURIMaxAge)
}

// nonPublicAddressError is a connection refused because of where it would go.
type nonPublicAddressError struct {
	addr netip.Addr
}

func (e *nonPublicAddressError) Error() string {
	return fmt.Sprintf("%s is not a public address; the authority fetches jwks_uri only from public addresses", e.addr)
}

// refuseNonPublic is the fetcher's dialer's Control: it runs once the address is resolved,
// before the connection is made.
func refuseNonPublic(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("jwks_uri: unexpected address %q: %w", address, err)
	}
	if _, bad := publicaddr.NonPublic(ap.Addr()); bad {
		return &nonPublicAddressError{addr: ap.Addr().Unmap()}
	}
	return nil
}

// checkJWKSURIHost refuses, before any connection, a jwks_uri whose host is an address that
// is not public; a name is checked when it is connected to, whatever it resolves to then.
func checkJWKSURIHost(host string) error {
	if a, err := netip.ParseAddr(host); err == nil {
		if _, bad := publicaddr.NonPublic(a); bad {
			return &nonPublicAddressError{addr: a.Unmap()}
		}
	}
	return nil
}
