package registry

import (
	"errors"
	"strings"
	"testing"
)

func mustParse(t *testing.T, s string) Name {
	t.Helper()
	n, err := ParseIdentifier(s)
	if err != nil {
		t.Fatalf("ParseIdentifier(%q): %v", s, err)
	}
	return n
}

func wantPolicyRefusal(t *testing.T, err error, reason Reason, mention ...string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindInvalidArgument || Reason(e.Reason) != reason {
		t.Fatalf("Check: %v, want invalid argument %s", err, reason)
	}
	for _, m := range mention {
		if !strings.Contains(e.Message, m) {
			t.Errorf("message %q does not mention %q", e.Message, m)
		}
	}
}

// TestRegistrationPolicyMixedScripts: a label (or a local part) that mixes scripts is refused
// as UTS #39's Highly Restrictive level says, with a message naming the scripts; one script,
// Common and Inherited characters, and the CJK combinations are accepted.
func TestRegistrationPolicyMixedScripts(t *testing.T) {
	p := RegistrationPolicy{}
	refused := []struct {
		name, in string
		scripts  string
	}{
		{"Cyrillic a in a Latin label", "\u0430pple.example.de", "Cyrillic and Latin"},
		{"Cyrillic a in a Latin label, as an A-label", "xn--pple-43d.example.de", "Cyrillic and Latin"},
		{"Cyrillic o inside", "g\u043eogle.example.de", "Cyrillic and Latin"},
		{"Greek omicron in a Latin label", "micr\u03bfsoft.example.de", "Greek and Latin"},
		{"Latin in a Greek label", "\u03b1lpha\u03b2.example.de", "Greek and Latin"},
		{"Armenian in a Latin label", "g\u0585\u0585gle.example.de", "Armenian and Latin"},
		{"Cherokee in a Latin label", "\u13a0bc.example.de", "Cherokee and Latin"},
		{"Cyrillic and Greek", "\u0430\u03b2.example.de", "Cyrillic and Greek"},
		{"Hiragana with Hangul", "\u3072\ud55c.example.de", "Hangul and Hiragana"},
		{"Latin, Cyrillic and Greek", "a\u0431\u03b3.example.de", "Cyrillic, Greek and Latin"},
		{"Cyrillic a in the local part", "\u0430lice@example.de", "Cyrillic and Latin"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			wantPolicyRefusal(t, p.Check(mustParse(t, tt.in)), ReasonIdentifierMixedScript, tt.scripts, "UTS #39")
		})
	}
	for _, in := range []string{
		"alice.example.de", "bücher.example.de", "123-abc.example.de",
		"\u0430\u0431\u0432.example.de",                    // Cyrillic only
		"\u03b1\u03b2\u03b3.example.de",                    // Greek only
		"日本語.example.de",                                   // Han
		"日本語ひらがなカタカナ.example.de",                           // Japanese: Han, Hiragana, Katakana resolve to Jpan
		"abc日本ひらがな.example.de",                             // Latin with Japanese
		"abc中文.example.de",                                 // Latin with Han
		"中文\u3105\u3106.example.de",                        // Han with Bopomofo
		"abc한국어.example.de",                                // Latin with Hangul
		"한국어韓國.example.de",                                 // Han with Hangul resolve to Kore
		"\u0915\u093f\u0924\u093e\u092c.example.de",        // Devanagari with its combining vowel signs
		"\u0430\u0431\u0432.\u03b1\u03b2\u03b3.example.de", // one script per label, two labels
		"иван@example.de", "jürgen@пример.example.de",
	} {
		if err := p.Check(mustParse(t, in)); err != nil {
			t.Errorf("Check(%q): %v", in, err)
		}
	}
}

// TestRegistrationPolicySpecialUse: special-use names are refused, each with the document that
// reserves it, unless the policy allows them (development, tests).
func TestRegistrationPolicySpecialUse(t *testing.T) {
	tests := []struct {
		in, under, by string
	}{
		{"alice.test", `"test"`, "RFC 6761"},
		{"alice.example.test", `"test"`, "RFC 6761"},
		{"alice.example", `"example"`, "RFC 6761"},
		{"alice.example.com", `"example.com"`, "RFC 6761"},
		{"alice@example.com", `"example.com"`, "RFC 6761"},
		{"a.b.example.net", `"example.net"`, "RFC 6761"},
		{"alice.example.org", `"example.org"`, "RFC 6761"},
		{"alice.invalid", `"invalid"`, "RFC 6761"},
		{"alice.localhost", `"localhost"`, "RFC 6761"},
		{"printer.local", `"local"`, "RFC 6762"},
		{"duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzczad.onion", `"onion"`, "RFC 7686"},
		{"alice.alt", `"alt"`, "RFC 9476"},
		{"alice.internal", `"internal"`, "ICANN"},
		{"router.home.arpa", `"home.arpa"`, "RFC 8375"},
		{"ipv4only.arpa", `"ipv4only.arpa"`, "RFC 8880"},
		{"resolver.arpa", `"resolver.arpa"`, "RFC 9462"},
		{"printer.service.arpa", `"service.arpa"`, "RFC 9665"},
		{"join.6tisch.arpa", `"6tisch.arpa"`, "RFC 9031"},
		{"eap-noob.arpa", `"eap-noob.arpa"`, "RFC 9140"},
		{"10.in-addr.arpa", `"in-addr.arpa"`, "RFC 3172"},
		{"8.e.f.ip6.arpa", `"ip6.arpa"`, "RFC 3172"},
		{"alice.arpa", `"arpa"`, "RFC 3172"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			n := mustParse(t, tt.in)
			wantPolicyRefusal(t, RegistrationPolicy{}.Check(n), ReasonIdentifierSpecialUse, tt.under, tt.by)
			if err := (RegistrationPolicy{AllowSpecialUse: true}).Check(n); err != nil {
				t.Errorf("with special-use names allowed: %v", err)
			}
		})
	}
	// Names that only look alike are not special-use.
	for _, in := range []string{"alice.example.de", "test.example.de", "mytest.de", "example.co.uk", "localhost.de",
		"onion.de", "alice.examples.com", "notexample.com", "alice.arpa.de"} {
		if err := (RegistrationPolicy{}).Check(mustParse(t, in)); err != nil {
			t.Errorf("Check(%q): %v", in, err)
		}
	}
	// A mixed-script label is refused even where special-use names are allowed.
	wantPolicyRefusal(t, RegistrationPolicy{AllowSpecialUse: true}.Check(mustParse(t, "\u0430pple.example.test")), ReasonIdentifierMixedScript)
}
