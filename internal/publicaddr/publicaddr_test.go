package publicaddr

import (
	"net/netip"
	"strings"
	"testing"
)

// TestNonPublic is the one table of which addresses the registry's endpoint checks and the
// authority's jwks_uri fetches take for public: both ask NonPublic.
func TestNonPublic(t *testing.T) {
	for _, tc := range []struct {
		addr string
		// prefix is the range a refused address is in ("" for a zone); what, a word of why.
		prefix, what string
	}{
		{addr: "93.184.215.14"},
		{addr: "8.8.8.8"},
		{addr: "1.1.1.1"},
		{addr: "2606:4700:4700::1111"},
		{addr: "2a00:1450:4001:82b::200e"},
		{addr: "2001:4860:4860::8888"},
		{addr: "::ffff:8.8.8.8"},
		{addr: "::ffff:93.184.215.14"},
		{addr: "64:ff9b::5db8:d70e"}, // NAT64 of a public address
		{addr: "2002:5db8:d70e::1"},  // 6to4 of a public address
		{addr: "192.0.3.1"},          // just past the documentation range
		{addr: "2001:200::1"},        // just past the IETF protocol assignments

		{"0.0.0.0", "0.0.0.0/8", "this network"},
		{"0.1.2.3", "0.0.0.0/8", "this network"},
		{"10.0.0.1", "10.0.0.0/8", "private"},
		{"100.64.0.1", "100.64.0.0/10", "carrier-grade NAT"},
		{"127.0.0.1", "127.0.0.0/8", "loopback"},
		{"127.1.2.3", "127.0.0.0/8", "loopback"},
		{"169.254.169.254", "169.254.0.0/16", "metadata"},
		{"172.16.5.4", "172.16.0.0/12", "private"},
		{"192.0.0.8", "192.0.0.0/24", "IETF"},
		{"192.0.2.1", "192.0.2.0/24", "documentation"},
		{"192.168.1.1", "192.168.0.0/16", "private"},
		{"198.18.0.1", "198.18.0.0/15", "benchmarking"},
		{"198.51.100.7", "198.51.100.0/24", "documentation"},
		{"203.0.113.9", "203.0.113.0/24", "documentation"},
		{"224.0.0.1", "224.0.0.0/4", "multicast"},
		{"239.255.255.250", "224.0.0.0/4", "multicast"},
		{"240.0.0.1", "240.0.0.0/4", "reserved"},
		{"255.255.255.255", "240.0.0.0/4", "broadcast"},
		{"::", "::/128", "unspecified"},
		{"::1", "::1/128", "loopback"},
		{"::7f00:1", "::/96", "IPv4-compatible"},
		{"::808:808", "::/96", "IPv4-compatible"},
		{"::ffff:127.0.0.1", "127.0.0.0/8", "embedded"},
		{"::ffff:10.1.2.3", "10.0.0.0/8", "embedded"},
		{"::ffff:169.254.169.254", "169.254.0.0/16", "embedded"},
		{"64:ff9b::7f00:1", "127.0.0.0/8", "embedded"},       // NAT64 of loopback
		{"64:ff9b::a9fe:a9fe", "169.254.0.0/16", "embedded"}, // NAT64 of the metadata service
		{"64:ff9b::a00:1", "10.0.0.0/8", "embedded"},
		{"2002:7f00:1::1", "127.0.0.0/8", "embedded"}, // 6to4 of loopback
		{"2002:c0a8:101::1", "192.168.0.0/16", "embedded"},
		{"64:ff9b:1::a00:1", "64:ff9b:1::/48", "NAT64"},
		{"100::1", "100::/64", "discard"},
		{"2001::1", "2001::/23", "Teredo"},
		{"2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001::/23", "Teredo"},
		{"2001:db8::1", "2001:db8::/32", "documentation"},
		{"3fff::1", "3fff::/20", "documentation"},
		{"fd00::1", "fc00::/7", "unique local"},
		{"fe80::1", "fe80::/10", "link-local"},
		{"fe80::1%eth0", "", "network interface"},
		{"fec0::1", "fec0::/10", "site-local"},
		{"ff02::1", "ff00::/8", "multicast"},
	} {
		r, bad := NonPublic(netip.MustParseAddr(tc.addr))
		switch {
		case tc.what == "" && bad:
			t.Errorf("NonPublic(%s) = %v %q, want public", tc.addr, r.Prefix, r.What)
		case tc.what == "":
		case !bad:
			t.Errorf("NonPublic(%s): public, want %s (%s)", tc.addr, tc.prefix, tc.what)
		case (tc.prefix == "" && r.Prefix.IsValid()) || (tc.prefix != "" && r.Prefix != netip.MustParsePrefix(tc.prefix)) || !strings.Contains(r.What, tc.what):
			t.Errorf("NonPublic(%s) = %v %q, want %s (%s)", tc.addr, r.Prefix, r.What, tc.prefix, tc.what)
		}
	}
	if _, bad := NonPublic(netip.Addr{}); !bad {
		t.Error("the zero Addr is public")
	}
}
