package authority

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	jose "github.com/go-jose/go-jose/v4"
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
	// jwksURIRefetchInterval is the least time between two fetches of a set that lacks the
	// key a response needs (the relying party may have rotated its keys), so that a client
	// cannot make the authority fetch its jwks_uri at every request.
	jwksURIRefetchInterval = 30 * time.Second
	// maxCachedJWKSURIs bounds the cache; when full, it forgets everything.
	maxCachedJWKSURIs = 1000
)

// jwksFetcher fetches relying parties' JWK Sets from their jwks_uri and caches them: https
// only, bounded in time and size, no redirects, and, unless allowPrivate, never from an
// address that is not public. The address is checked when the connection is made, after
// the name is resolved, so a name that resolves to a public address when it is checked and
// to a private one when it is used (DNS rebinding) gets nowhere.
type jwksFetcher struct {
	client *http.Client
	now    func() time.Time

	mu   sync.Mutex
	sets map[string]*cachedJWKS
}

// cachedJWKS is one jwks_uri's set. Its mutex serialises fetches of it.
type cachedJWKS struct {
	mu        sync.Mutex
	keys      []jose.JSONWebKey
	fetched   bool
	expires   time.Time
	lastFetch time.Time
}

func newJWKSFetcher(allowPrivate bool, roots *x509.CertPool, timeout time.Duration, now func() time.Time) *jwksFetcher {
	dialer := &net.Dialer{Timeout: timeout}
	if !allowPrivate {
		dialer.Control = refuseNonPublic
	}
	transport := &http.Transport{
		// Never through a proxy: the address checked must be the one the set comes from.
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		TLSClientConfig:        &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    timeout,
		ResponseHeaderTimeout:  timeout,
		MaxResponseHeaderBytes: 16 << 10,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           16,
		IdleConnTimeout:        30 * time.Second,
	}
	return &jwksFetcher{
		now: now,
		client: &http.Client{
			Transport: transport,
			Timeout:   timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
	}
}

// keys returns the set at uri: the cached one while it is fresh and has a key want
// accepts; otherwise it is fetched again, at most once per jwksURIRefetchInterval when it
// lacks the key. A failed fetch falls back on the cached set if that has the key.
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
	fresh := c.fetched && now.Before(c.expires)
	switch {
	case fresh && want(c.keys):
		return c.keys, nil
	case fresh && now.Sub(c.lastFetch) < jwksURIRefetchInterval:
		return c.keys, nil
	}
	c.lastFetch = now
	keys, maxAge, err := f.fetch(ctx, uri)
	if err != nil {
		if c.fetched && want(c.keys) {
			return c.keys, nil
		}
		return nil, err
	}
	c.keys, c.fetched, c.expires = keys, true, now.Add(maxAge)
	return keys, nil
}

// fetch gets the set at uri and how long it may be used.
func (f *jwksFetcher) fetch(ctx context.Context, uri string) ([]jose.JSONWebKey, time.Duration, error) {
	if !strings.HasPrefix(uri, "https://") {
		return nil, 0, fmt.Errorf("jwks_uri %s is not https", uri)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("fetching jwks_uri: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("jwks_uri answered %s; it must serve the JWK Set itself", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSURIBody+1))
	if err != nil {
		return nil, 0, fmt.Errorf("reading jwks_uri: %w", err)
	}
	if len(body) > maxJWKSURIBody {
		return nil, 0, fmt.Errorf("the JWK Set at jwks_uri is larger than %d KiB", maxJWKSURIBody>>10)
	}
	keys, err := parseClientJWKS(body)
	if err != nil {
		return nil, 0, fmt.Errorf("jwks_uri: %w", err)
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
	if !isPublicAddress(ap.Addr()) {
		return &nonPublicAddressError{addr: ap.Addr().Unmap()}
	}
	return nil
}

// nonPublicPrefixes are the special-purpose ranges (RFC 6890 and the IANA registries) that
// netip.Addr's predicates do not name: nothing a relying party's keys are served from.
var nonPublicPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // shared address space (carrier-grade NAT)
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and the limited broadcast address
	netip.MustParsePrefix("100::/64"),        // discard
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("fec0::/10"),       // site-local (deprecated)
}

// nat64 and sixToFour embed an IPv4 address, which is then what counts.
var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// isPublicAddress reports whether a is an address a relying party's keys may be fetched
// from: not loopback, private (RFC 1918, RFC 4193), link-local, multicast, unspecified,
// nor another special-purpose range; an IPv4 address mapped or embedded in IPv6 is judged
// as itself.
func isPublicAddress(a netip.Addr) bool {
	a = a.Unmap()
	switch {
	case !a.IsValid(), a.Zone() != "", a.IsUnspecified(), a.IsLoopback(), a.IsPrivate(),
		a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast(), a.IsInterfaceLocalMulticast(), a.IsMulticast():
		return false
	case nat64.Contains(a):
		b := a.As16()
		return isPublicAddress(netip.AddrFrom4([4]byte(b[12:])))
	case sixToFour.Contains(a):
		b := a.As16()
		return isPublicAddress(netip.AddrFrom4([4]byte(b[2:6])))
	}
	for _, p := range nonPublicPrefixes {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// checkJWKSURIHost refuses, before any connection, a jwks_uri whose host is an address that
// is not public; a name is checked when it is connected to, whatever it resolves to then.
func checkJWKSURIHost(host string) error {
	if a, err := netip.ParseAddr(host); err == nil && !isPublicAddress(a) {
		return &nonPublicAddressError{addr: a.Unmap()}
	}
	return nil
}
