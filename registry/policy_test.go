package registry

import (
	"errors"
	"strings"
	"testing"
)

func TestParseIdentifierAccepts(t *testing.T) {
	label63 := strings.Repeat("a", 63)
	// 3×(63+1) + 56 + 1 + 4 = 253 octets.
	name253 := label63 + "." + label63 + "." + label63 + "." + strings.Repeat("b", 56) + ".test"

	tests := []struct {
		name        string
		in          string
		wantASCII   string
		wantUnicode string
	}{
		{"plain", "alice.example", "alice.example", "alice.example"},
		{"uppercase", "Alice.EXAMPLE", "alice.example", "alice.example"},
		{"trailing dot", "alice.example.", "alice.example", "alice.example"},
		{"U-label", "Bücher.example", "xn--bcher-kva.example", "bücher.example"},
		{"A-label", "xn--bcher-kva.example", "xn--bcher-kva.example", "bücher.example"},
		{"uppercase A-label", "XN--BCHER-KVA.Example.", "xn--bcher-kva.example", "bücher.example"},
		{"full-width forms and ideographic dot", "ａｌｉｃｅ。example", "alice.example", "alice.example"},
		{"eszett is kept (non-transitional)", "straße.de", "xn--strae-oqa.de", "straße.de"},
		{"below an ICANN suffix", "alice.co.uk", "alice.co.uk", "alice.co.uk"},
		{"below a private suffix", "alice.github.io", "alice.github.io", "alice.github.io"},
		{"below an IDN suffix", "例子.公司.cn", "xn--fsqu00a.xn--55qx5d.cn", "例子.公司.cn"},
		{"unknown TLD", "foo.example", "foo.example", "foo.example"},
		{"PSL exception rule", "www.ck", "www.ck", "www.ck"},
		{"digits and hyphens", "a-1.b2.example", "a-1.b2.example", "a-1.b2.example"},
		{"all-digit label not last", "123.example", "123.example", "123.example"},
		{"63-octet label", label63 + ".example", label63 + ".example", label63 + ".example"},
		{"253 octets", name253, name253, name253},
		{"253 octets and a trailing dot", name253 + ".", name253, name253},
		{"U-label of 63 octets in A-label form", strings.Repeat("ü", 57) + ".example",
			"xn--tda" + strings.Repeat("a", 56) + ".example", strings.Repeat("ü", 57) + ".example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := ParseIdentifier(tt.in)
			if err != nil {
				t.Fatalf("ParseIdentifier(%q): %v", tt.in, err)
			}
			if n.ASCII != tt.wantASCII || n.Unicode != tt.wantUnicode {
				t.Errorf("ParseIdentifier(%q) = %+v, want {ASCII:%s Unicode:%s}",
					tt.in, n, tt.wantASCII, tt.wantUnicode)
			}
		})
	}
}

func TestParseIdentifierRefuses(t *testing.T) {
	label63 := strings.Repeat("a", 63)
	name254 := label63 + "." + label63 + "." + label63 + "." + strings.Repeat("b", 57) + ".test"

	tests := []struct {
		name   string
		in     string
		reason Reason
	}{
		{"empty", "", ReasonIdentifierEmpty},
		{"only a dot", ".", ReasonIdentifierEmpty},
		{"leading space", " alice.example", ReasonIdentifierMalformed},
		{"trailing space", "alice.example ", ReasonIdentifierMalformed},
		{"trailing newline", "alice.example\n", ReasonIdentifierMalformed},
		{"leading no-break space", "\u00a0alice.example", ReasonIdentifierMalformed},
		{"inner space", "al ice.example", ReasonIdentifierMalformed},
		{"two trailing dots", "alice.example..", ReasonIdentifierMalformed},
		{"double dot", "alice..example", ReasonIdentifierMalformed},
		{"leading dot", ".alice.example", ReasonIdentifierMalformed},
		{"underscore", "_openid.alice.example", ReasonIdentifierMalformed},
		{"underscore inside", "al_ice.example", ReasonIdentifierMalformed},
		{"leading hyphen", "-alice.example", ReasonIdentifierMalformed},
		{"trailing hyphen", "alice-.example", ReasonIdentifierMalformed},
		{"hyphens in positions 3 and 4", "ab--cd.example", ReasonIdentifierMalformed},
		{"bad punycode", "xn--abc.example", ReasonIdentifierMalformed},
		{"empty punycode", "xn--.example", ReasonIdentifierMalformed},
		{"slash", "alice.example/", ReasonIdentifierMalformed},
		{"full-width at sign", "bob＠alice.example", ReasonIdentifierMalformed},
		{"invalid UTF-8", "alice\xff.example", ReasonIdentifierMalformed},
		{"NUL", "alice.example\x00", ReasonIdentifierMalformed},
		{"64-octet label", strings.Repeat("a", 64) + ".example", ReasonIdentifierLabelTooLong},
		{"64-octet A-label from a shorter U-label",
			strings.Repeat("ü", 58) + ".example", ReasonIdentifierLabelTooLong},
		{"254 octets", name254, ReasonIdentifierTooLong},
		{"254 octets and a trailing dot", name254 + ".", ReasonIdentifierTooLong},
		{"huge input", strings.Repeat("a.", 100000) + "example", ReasonIdentifierTooLong},
		{"full-width bracketed IPv6", "［2001:db8::1］", ReasonIdentifierIPLiteral},
		{"one label", "example", ReasonIdentifierTooFewLabels},
		{"one label with dot", "alice.", ReasonIdentifierTooFewLabels},
		{"ICANN TLD", "com", ReasonIdentifierTooFewLabels},
		{"ICANN two-label suffix", "co.uk", ReasonIdentifierPublicSuffix},
		{"ICANN two-label suffix, uppercase, trailing dot", "CO.UK.", ReasonIdentifierPublicSuffix},
		{"ICANN IDN suffix", "公司.cn", ReasonIdentifierPublicSuffix},
		{"PSL wildcard rule", "anything.ck", ReasonIdentifierPublicSuffix},
		{"private suffix", "github.io", ReasonIdentifierPublicSuffix},
		{"wildcard label", "*.alice.example", ReasonIdentifierWildcard},
		{"star inside a label", "a*b.example", ReasonIdentifierWildcard},
		{"full-width star", "＊.alice.example", ReasonIdentifierWildcard},
		{"IPv4", "192.0.2.1", ReasonIdentifierIPLiteral},
		{"IPv4 with trailing dot", "192.0.2.1.", ReasonIdentifierIPLiteral},
		{"IPv4 in full-width digits", "１９２.０.２.１", ReasonIdentifierIPLiteral},
		{"short IPv4 form", "127.1", ReasonIdentifierIPLiteral},
		{"hex last label", "alice.0x7f", ReasonIdentifierIPLiteral},
		{"all-digit TLD", "alice.123", ReasonIdentifierIPLiteral},
		{"IPv6", "2001:db8::1", ReasonIdentifierIPLiteral},
		{"bracketed IPv6", "[2001:db8::1]", ReasonIdentifierIPLiteral},
		{"IPv4-mapped IPv6", "::ffff:192.0.2.1", ReasonIdentifierIPLiteral},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := ParseIdentifier(tt.in)
			if err == nil {
				t.Fatalf("ParseIdentifier(%q) = %+v, want refusal %s", tt.in, n, tt.reason)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("ParseIdentifier(%q) error %T %v is not an *Error", tt.in, err, err)
			}
			if e.Kind != KindInvalidArgument || Reason(e.Reason) != tt.reason {
				t.Errorf("ParseIdentifier(%q): kind %v reason %s (%v), want %v %s",
					tt.in, e.Kind, e.Reason, err, KindInvalidArgument, tt.reason)
			}
			if !errors.Is(err, ErrInvalidArgument) {
				t.Errorf("errors.Is(%v, ErrInvalidArgument) = false", err)
			}
			if e.Message == "" {
				t.Error("empty message")
			}
		})
	}
}

// TestParseIdentifierMessagesNameThePart checks that a refusal tells the caller what to fix.
func TestParseIdentifierMessagesNameThePart(t *testing.T) {
	long := strings.Repeat("x", 64)
	tests := []struct {
		in   string
		want []string
	}{
		{long + ".example", []string{long, "64", "63"}},
		{"al_ice.example", []string{"U+005F"}},
		{"co.uk", []string{"co.uk", "public suffix"}},
		{"*.alice.example", []string{`"*"`}},
		{"alice..example", []string{"empty label"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := ParseIdentifier(tt.in)
			if err == nil {
				t.Fatalf("ParseIdentifier(%q) accepted", tt.in)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("message %q does not mention %q", err.Error(), w)
				}
			}
		})
	}
}
