package registry

import (
	"net"
	"net/url"
	"strings"
)

// checkEndpointURL validates an endpoint or issuer URL an agent gives: absolute https with a
// host, no user info, no fragment; http is accepted on loopback hosts when allowLoopbackHTTP.
func checkEndpointURL(field, raw string, allowLoopbackHTTP bool) error {
	if raw == "" {
		return Errorf(KindInvalidArgument, "URL_REQUIRED", "%s is required", field)
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return Errorf(KindInvalidArgument, "URL_MALFORMED", "%s must be an absolute https URL, got %q", field, raw)
	}
	if u.User != nil {
		return Errorf(KindInvalidArgument, "URL_MALFORMED", "%s must not carry user information", field)
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return Errorf(KindInvalidArgument, "URL_MALFORMED", "%s must not have a fragment", field)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if allowLoopbackHTTP && IsLoopbackHost(u.Hostname()) {
			return nil
		}
	}
	return Errorf(KindInvalidArgument, "URL_NOT_HTTPS", "%s must use https, got %q", field, raw)
}

// IsLoopbackHost reports whether h names the loopback interface: localhost or a loopback IP.
func IsLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
