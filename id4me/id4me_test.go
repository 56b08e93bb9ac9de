package id4me

import (
	"strings"
	"testing"
)

func TestDNSName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"example.com", "example.com"},
		{"xn--bcher-kva.example", "xn--bcher-kva.example"},
		// SHA-256("alice") = 2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db186d6e90
		{"alice@example.com", "2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db.example.com"},
	} {
		if got := DNSName(tc.in); got != tc.want {
			t.Errorf("DNSName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// The local part is hashed as typed: case and Unicode are kept apart.
	if DNSName("Alice@example.com") == DNSName("alice@example.com") {
		t.Error("local parts differing in case share a DNS name")
	}
	if l, _, _ := strings.Cut(DNSName("jürgen@example.com"), "."); len(l) != LocalPartLabelLength {
		t.Errorf("label %q has %d characters, want %d", l, len(l), LocalPartLabelLength)
	}
}
