package registry

import (
	"errors"
	"testing"
)

// FuzzParseIdentifier checks that ParseIdentifier never panics, refuses only with an
// invalid-argument *Error, and that an accepted name is a fixed point: both its A-label and its
// U-label form parse back to the same Name. The store keys on Name.ASCII and the UI shows
// Name.Unicode, so either form coming back from a user must find the same identifier.
func FuzzParseIdentifier(f *testing.F) {
	for _, s := range []string{
		"alice.example", "Bücher.example", "xn--bcher-kva.example.", "co.uk", "github.io",
		"*.example", "192.0.2.1", "[::1]", "a_b.example", " alice.example", "alice..example",
		"ａｌｉｃｅ。example", "straße.de", "例子.公司.cn", "alice.0x7f",
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
		if n.ASCII == "" || n.Unicode == "" {
			t.Fatalf("ParseIdentifier(%q) = %+v: empty form", s, n)
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
