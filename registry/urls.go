package registry

import (
	"cmp"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// Relying parties fetch claims from the claims endpoint the registry names, and agents'
// access tokens are addressed to their issuer. An endpoint that points into a private
// network would make every RP that follows it reach into its own network (server-side
// request forgery): cloud metadata services on 169.254.169.254, admin interfaces on
// loopback. So outside dev mode an endpoint or issuer that is an IP literal must be a
// public address. Host names are not resolved here: what they resolve to is the agent's
// DNS, which can change at any time, so RPs have to guard their own fetches anyway.

// nonPublicRange is an address range an endpoint must not point into.
type nonPublicRange struct {
	prefix netip.Prefix
	what   string
}

// nonPublicRanges are the ranges refused outside dev mode. IPv6 addresses that embed an IPv4
// address (IPv4-mapped, IPv4-compatible, NAT64, 6to4) are judged by the embedded address too.
var nonPublicRanges = func() []nonPublicRange {
	var out []nonPublicRange
	for _, r := range [][2]string{
		{"0.0.0.0/8", `"this network", with the unspecified address 0.0.0.0 (RFC 1122)`},
		{"10.0.0.0/8", "private (RFC 1918)"},
		{"100.64.0.0/10", "shared address space of carrier-grade NAT (RFC 6598)"},
		{"127.0.0.0/8", "loopback"},
		{"169.254.0.0/16", "link-local, where cloud metadata services answer (RFC 3927)"},
		{"172.16.0.0/12", "private (RFC 1918)"},
		{"192.0.0.0/24", "IETF protocol assignments (RFC 6890)"},
		{"192.168.0.0/16", "private (RFC 1918)"},
		{"198.18.0.0/15", "benchmarking (RFC 2544)"},
		{"224.0.0.0/4", "multicast"},
		{"240.0.0.0/4", "reserved, with the broadcast address 255.255.255.255"},
		{"::/128", "unspecified"},
		{"::1/128", "loopback"},
		{"64:ff9b:1::/48", "local-use NAT64 (RFC 8215)"},
		{"fc00::/7", "unique local (RFC 4193)"},
		{"fe80::/10", "link-local"},
		{"fec0::/10", "site-local (RFC 3879)"},
		{"ff00::/8", "multicast"},
	} {
		out = append(out, nonPublicRange{netip.MustParsePrefix(r[0]), r[1]})
	}
	return out
}()

// Prefixes of IPv6 addresses whose last 32 bits are an IPv4 address.
var (
	ipv4Compatible = netip.MustParsePrefix("::/96")         // deprecated (RFC 4291)
	nat64          = netip.MustParsePrefix("64:ff9b::/96")  // RFC 6052
	sixToFour      = netip.MustParsePrefix("2002::/16")     // RFC 3056: bits 16–47 are IPv4
	ipv4Mapped     = netip.MustParsePrefix("::ffff:0:0/96") // RFC 4291
)

// nonPublic returns the range a is in when it is not a public address.
func nonPublic(a netip.Addr) (nonPublicRange, bool) {
	if a.Zone() != "" {
		return nonPublicRange{what: "scoped to a network interface of the connecting machine"}, true
	}
	if a.Is6() {
		b := a.As16()
		var v4 netip.Addr
		switch {
		case ipv4Mapped.Contains(a), ipv4Compatible.Contains(a), nat64.Contains(a):
			v4 = netip.AddrFrom4([4]byte(b[12:16]))
		case sixToFour.Contains(a):
			v4 = netip.AddrFrom4([4]byte(b[2:6]))
		}
		if v4.IsValid() {
			if r, bad := nonPublic(v4); bad {
				r.what += ", embedded in an IPv6 address"
				return r, true
			}
		}
	}
	for _, r := range nonPublicRanges {
		if r.prefix.Contains(a) {
			return r, true
		}
	}
	return nonPublicRange{}, false
}

// checkEndpointURL validates an endpoint or issuer URL an agent gives: absolute https with a
// host, no user information, no fragment, a port (if any) from 1 to 65535; outside dev mode
// (Config.AllowLocalEndpoints) its host must not be localhost or an IP literal in a
// non-public range. Each refusal is KindInvalidArgument with a reason that names the field
// and the rule: CLAIMS_ENDPOINT_NOT_HTTPS, ISSUER_PRIVATE_ADDRESS, …
func (s *Service) checkEndpointURL(field, raw string) error {
	reason := func(rule string) string { return strings.ToUpper(field) + "_" + rule }
	if raw == "" {
		return Errorf(KindInvalidArgument, reason("REQUIRED"), "%s is required", field)
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Hostname() == "" || u.Opaque != "" {
		return Errorf(KindInvalidArgument, reason("MALFORMED"), "%s must be an absolute https URL, got %q", field, raw)
	}
	if u.User != nil {
		return Errorf(KindInvalidArgument, reason("USERINFO"), "%s must not carry user information", field)
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return Errorf(KindInvalidArgument, reason("FRAGMENT"), "%s must not have a fragment", field)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return Errorf(KindInvalidArgument, reason("PORT_INVALID"), "%s must name a port from 1 to 65535, got %q", field, p)
		}
	}
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	local := s.cfg.AllowLocalEndpoints
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && local && IsLoopbackHost(host):
	default:
		return Errorf(KindInvalidArgument, reason("NOT_HTTPS"), "%s must use https, got %q", field, raw)
	}
	if local {
		return nil
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return Errorf(KindInvalidArgument, reason("PRIVATE_ADDRESS"), "%s must not point at %s: it is the loopback interface of whoever connects (RFC 6761)", field, host)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if r, bad := nonPublic(a); bad {
			in := ""
			if r.prefix.IsValid() {
				in = " in " + r.prefix.String()
			}
			return Errorf(KindInvalidArgument, reason("PRIVATE_ADDRESS"), "%s must not point at %s%s (%s): relying parties would fetch from their own network", field, a, in, r.what)
		}
		return nil
	}
	if numericHost(host) {
		return Errorf(KindInvalidArgument, reason("MALFORMED"), "%s host %q reads as an IP address in a form resolvers disagree on; write a dotted-quad IPv4 address or a host name", field, host)
	}
	return nil
}

// numericHost reports whether host, not a valid IP literal, still looks like an IPv4 address
// in one of the forms inet_aton accepts (127.1, 0x7f.0.0.1, 2130706433, 0177.0.0.1), which
// many resolvers turn into an address without asking DNS. No top-level domain is numeric.
func numericHost(host string) bool {
	labels := strings.Split(host, ".")
	last := labels[len(labels)-1]
	if last == "" {
		return false
	}
	if h, ok := strings.CutPrefix(last, "0x"); ok {
		_, err := strconv.ParseUint(cmp.Or(h, "0"), 16, 64)
		return err == nil
	}
	return strings.Trim(last, "0123456789") == ""
}

// IsLoopbackHost reports whether h names the loopback interface: localhost or a loopback IP.
func IsLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
