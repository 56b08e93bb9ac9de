package registry

import (
	"errors"
	"testing"

	"github.com/id4me/id4me-registry/id4me"
)

// FuzzParseIdentifier checks that ParseIdentifier never panics, refuses only with an
// invalid-argument *Error, and that an accepted name is a fixed point: both its A-label and its
// U-label form parse back to the same Name. The store keys on Name.ASCII and the UI shows
// Name.Unicode, so either form coming back from a user must find the same identifier. The DNS
// name follows from the canonical form alone (the store and the agent derive it so), and is
// itself a domain identifier: the name relying parties look up.
func FuzzParseIdentifier(f *testing.F) {
	for _, s := range []string{
		"alice.example", "Bücher.example", "xn--bcher-kva.example.", "co.uk", "github.io",
		"*.example", "192.0.2.1", "[::1]", "a_b.example", " alice.example", "alice..example",
		"ａｌｉｃｅ。example", "straße.de", "例子.公司.cn", "alice.0x7f",
		"alice@example.org", "Jürgen.Müller+x@Bücher.example.", "a@b@example.org", "ju\u0308rgen@example.org",
		"\"a\"@example.org", "用户@例子.公司.cn", ".a@example.org", "@example.org",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseIdentifier(s)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Kind != KindInvalidArgument || e.Reason == "" {
				t.Fatalf("ParseIdentifier(%q): error %v is not an invalid-argument *Error with a reason", s, err)
			}
			return
		}
		if n.ASCII == "" || n.Unicode == "" || n.DNSName == "" {
			t.Fatalf("ParseIdentifier(%q) = %+v: empty form", s, n)
		}
		if id4me.DNSName(n.ASCII) != n.DNSName {
			t.Fatalf("ParseIdentifier(%q) = %+v, but id4me.DNSName(%q) = %q", s, n, n.ASCII, id4me.DNSName(n.ASCII))
		}
		if d, err := ParseIdentifier(n.DNSName); err != nil || d.ASCII != n.DNSName || d.IsEmail() {
			t.Fatalf("ParseIdentifier(%q) = %+v, but its DNS name parses as %+v, %v", s, n, d, err)
		}
		for _, form := range []string{n.ASCII, n.Unicode} {
			again, err := ParseIdentifier(form)
			if err != nil {
				t.Fatalf("ParseIdentifier(%q) = %+v, but ParseIdentifier(%q): %v", s, n, form, err)
			}
			if again != n {
				t.Fatalf("ParseIdentifier(%q) = %+v, but ParseIdentifier(%q) = %+v", s, n, form, again)
			}
		}
	})
}
