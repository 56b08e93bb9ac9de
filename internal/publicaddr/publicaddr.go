// Package publicaddr says whether an IP address is public: one the registry and the
// authority may send relying parties to, or fetch from, without reaching into somebody's
// own network (server-side request forgery). The registry checks agents' endpoints with it,
// the authority the addresses it connects to for relying parties' jwks_uri; one list keeps
// them agreeing.
package publicaddr

import (
	"net"
	"net/netip"
)

// Range is a special-purpose address range, and what it is for.
type Range struct {
	// Prefix is the range; it is not valid for an address refused for its zone.
	Prefix netip.Prefix
	What   string
}

// ranges are the special-purpose ranges (RFC 6890 and the IANA special-purpose address
// registries) that are not public, the addresses IPv6 embeds an IPv4 address in excepted:
// NonPublic judges those by the embedded address.
var ranges = func() []Range {
	var out []Range
	for _, r := range [][2]string{
		{"0.0.0.0/8", `"this network", with the unspecified address 0.0.0.0 (RFC 1122)`},
		{"10.0.0.0/8", "private (RFC 1918)"},
		{"100.64.0.0/10", "shared address space of carrier-grade NAT (RFC 6598)"},
		{"127.0.0.0/8", "loopback"},
		{"169.254.0.0/16", "link-local, where cloud metadata services answer (RFC 3927)"},
		{"172.16.0.0/12", "private (RFC 1918)"},
		{"192.0.0.0/24", "IETF protocol assignments (RFC 6890)"},
		{"192.0.2.0/24", "documentation (RFC 5737)"},
		{"192.168.0.0/16", "private (RFC 1918)"},
		{"198.18.0.0/15", "benchmarking (RFC 2544)"},
		{"198.51.100.0/24", "documentation (RFC 5737)"},
		{"203.0.113.0/24", "documentation (RFC 5737)"},
		{"224.0.0.0/4", "multicast"},
		{"240.0.0.0/4", "reserved, with the broadcast address 255.255.255.255"},
		{"::/128", "unspecified"},
		{"::1/128", "loopback"},
		{"::/96", "IPv4-compatible, deprecated (RFC 4291)"},
		{"64:ff9b:1::/48", "local-use NAT64 (RFC 8215)"},
		{"100::/64", "discard-only (RFC 6666)"},
		{"2001::/23", "IETF protocol assignments, Teredo tunnels among them (RFC 2928, RFC 4380)"},
		{"2001:db8::/32", "documentation (RFC 3849)"},
		{"3fff::/20", "documentation (RFC 9637)"},
		{"fc00::/7", "unique local (RFC 4193)"},
		{"fe80::/10", "link-local"},
		{"fec0::/10", "site-local (RFC 3879)"},
		{"ff00::/8", "multicast"},
	} {
		out = append(out, Range{netip.MustParsePrefix(r[0]), r[1]})
	}
	return out
}()

// Prefixes of IPv6 addresses that embed an IPv4 address, which is then what counts.
var (
	ipv4Mapped = netip.MustParsePrefix("::ffff:0:0/96") // RFC 4291: the last 32 bits
	nat64      = netip.MustParsePrefix("64:ff9b::/96")  // RFC 6052: the last 32 bits
	sixToFour  = netip.MustParsePrefix("2002::/16")     // RFC 3056: bits 16–47
)

// NonPublic returns the range a is in when a is not a public address: loopback, private,
// link-local, multicast, unspecified, documentation or another special-purpose range, or
// scoped to a network interface (a zone). An IPv6 address that embeds an IPv4 address
// (IPv4-mapped, NAT64, 6to4) is not public when the embedded address is not; What then
// says so.
func NonPublic(a netip.Addr) (Range, bool) {
	if !a.IsValid() {
		return Range{What: "not an IP address"}, true
	}
	if a.Zone() != "" {
		return Range{What: "scoped to a network interface of the connecting machine"}, true
	}
	if a.Is6() {
		b := a.As16()
		var v4 netip.Addr
		switch {
		case ipv4Mapped.Contains(a), nat64.Contains(a):
			v4 = netip.AddrFrom4([4]byte(b[12:16]))
		case sixToFour.Contains(a):
			v4 = netip.AddrFrom4([4]byte(b[2:6]))
		}
		if v4.IsValid() {
			if r, bad := NonPublic(v4); bad {
				r.What += ", embedded in an IPv6 address"
				return r, true
			}
			return Range{}, false
		}
	}
	for _, r := range ranges {
		if r.Prefix.Contains(a) {
			return r, true
		}
	}
	return Range{}, false
}

// IsLoopbackHost reports whether h, a URL's host without port, names the loopback
// interface: "localhost" or a loopback IP address.
func IsLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
