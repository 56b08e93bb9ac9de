package authority

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"time"
)

// outboundClient is the client of the authority's calls to addresses a relying party gave
// (its jwks_uri, its backchannel_logout_uri): never through a proxy, so the address checked
// is the one connected to; only public addresses unless allowPrivate (refuseNonPublic runs
// once the name is resolved); roots to trust (nil: the system's); timeout for every step;
// small response headers; redirects not followed.
func outboundClient(allowPrivate bool, roots *x509.CertPool, timeout time.Duration) *http.Client {
	dialer := &net.Dialer{Timeout: timeout}
	if !allowPrivate {
		dialer.Control = refuseNonPublic
	}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:                  nil,
			DialContext:            dialer.DialContext,
			TLSClientConfig:        &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout:    timeout,
			ResponseHeaderTimeout:  timeout,
			MaxResponseHeaderBytes: 16 << 10,
			ForceAttemptHTTP2:      true,
			MaxIdleConns:           16,
			IdleConnTimeout:        30 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
