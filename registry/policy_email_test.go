package registry

import (
	"errors"
	"strings"
	"testing"

	"github.com/id4me/id4me-registry/id4me"
)

// The hashes below were computed apart from the code under test, with coreutils:
// printf '%s' 'alice' | sha256sum | cut -c1-56 (the shell's input is UTF-8 in NFC).
const (
	hAlice          = "2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db"
	hAliceUpper     = "3bc51062973c458d5a6f2d8d64a023246354ad7e064b1e4e009ec8a0" // "Alice"
	hAliceSmithPlus = "42d0feda68886315bce4c8e3768ae05995c214465a4fbca62a41b23e" // "alice.smith+id4me"
	hJurgen         = "19b720a911fced55aecd96bf4ddcada1c69be5a96dc523d5be336b8e" // "jürgen"
	hJurgenMuller   = "4eb94626e2a074e38ee66ce0dc6c367da0d8a69940796015cf023754" // "Jürgen.Müller"
	hChinese        = "0d0e1a86b3aa787709b00329fcd32b5baf036c87067c8d6c27a46667" // "用户"
	hOBrien         = "65b87174be3b1b122e2b0929f0b84888637d31a4a83bb96a860bcff4" // "o'brien"
	hUnderscore     = "9a83c37cf5c998bed5625650fc2d2fb3dc1fdc822d666a710dc14c5f" // "a_b-c"
)

// TestEmailIdentifierDNSName: the DNS name of local@domain is the first 56 hex digits of
// SHA-256 over the local part as typed, then the domain folded as a domain identifier is, so
// the registry checks the records an ID4me relying party looks up.
func TestEmailIdentifierDNSName(t *testing.T) {
	tests := []struct {
		in                              string
		wantASCII, wantUnicode, wantDNS string
		wantLocal                       string
	}{
		{in: "alice@example.org", wantASCII: "alice@example.org", wantUnicode: "alice@example.org",
			wantDNS: hAlice + ".example.org", wantLocal: "alice"},
		{in: "Alice@Example.ORG.", wantASCII: "Alice@example.org", wantUnicode: "Alice@example.org",
			wantDNS: hAliceUpper + ".example.org", wantLocal: "Alice"},
		{in: "alice.smith+id4me@example.org", wantASCII: "alice.smith+id4me@example.org",
			wantUnicode: "alice.smith+id4me@example.org", wantDNS: hAliceSmithPlus + ".example.org", wantLocal: "alice.smith+id4me"},
		{in: "jürgen@Bücher.example", wantASCII: "jürgen@xn--bcher-kva.example", wantUnicode: "jürgen@bücher.example",
			wantDNS: hJurgen + ".xn--bcher-kva.example", wantLocal: "jürgen"},
		{in: "jürgen@xn--bcher-kva.example", wantASCII: "jürgen@xn--bcher-kva.example", wantUnicode: "jürgen@bücher.example",
			wantDNS: hJurgen + ".xn--bcher-kva.example", wantLocal: "jürgen"},
		{in: "Jürgen.Müller@example.de", wantASCII: "Jürgen.Müller@example.de", wantUnicode: "Jürgen.Müller@example.de",
			wantDNS: hJurgenMuller + ".example.de", wantLocal: "Jürgen.Müller"},
		{in: "用户@例子.公司.cn", wantASCII: "用户@xn--fsqu00a.xn--55qx5d.cn", wantUnicode: "用户@例子.公司.cn",
			wantDNS: hChinese + ".xn--fsqu00a.xn--55qx5d.cn", wantLocal: "用户"},
		{in: "o'brien@example.ie", wantASCII: "o'brien@example.ie", wantUnicode: "o'brien@example.ie",
			wantDNS: hOBrien + ".example.ie", wantLocal: "o'brien"},
		{in: "a_b-c@ａｌｉｃｅ。example", wantASCII: "a_b-c@alice.example", wantUnicode: "a_b-c@alice.example",
			wantDNS: hUnderscore + ".alice.example", wantLocal: "a_b-c"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			n, err := ParseIdentifier(tt.in)
			if err != nil {
				t.Fatalf("ParseIdentifier(%q): %v", tt.in, err)
			}
			want := Name{ASCII: tt.wantASCII, Unicode: tt.wantUnicode, DNSName: tt.wantDNS, Local: tt.wantLocal}
			if n != want {
				t.Fatalf("ParseIdentifier(%q) =\n %+v\nwant\n %+v", tt.in, n, want)
			}
			if !n.IsEmail() {
				t.Error("IsEmail() = false")
			}
			if got := id4me.DNSName(n.ASCII); got != tt.wantDNS {
				t.Errorf("id4me.DNSName(%q) = %q, want %q", n.ASCII, got, tt.wantDNS)
			}
			// The DNS name is itself a valid domain identifier: the one an RP looks up.
			d, err := ParseIdentifier(n.DNSName)
			if err != nil || d.ASCII != n.DNSName || d.DNSName != n.DNSName || d.IsEmail() {
				t.Errorf("ParseIdentifier(%q) = %+v, %v; want the domain identifier itself", n.DNSName, d, err)
			}
		})
	}
}

// TestDomainIdentifierDNSName: a domain identifier is its own DNS name.
func TestDomainIdentifierDNSName(t *testing.T) {
	n, err := ParseIdentifier("Bücher.Example.")
	if err != nil {
		t.Fatal(err)
	}
	if n.DNSName != "xn--bcher-kva.example" || n.Local != "" || n.IsEmail() || id4me.DNSName(n.ASCII) != n.DNSName {
		t.Fatalf("ParseIdentifier = %+v, DNSName = %q", n, id4me.DNSName(n.ASCII))
	}
}

// TestEmailIdentifierLocalPartKeptAsTyped: RPs hash what was typed, so local parts that differ
// only in case or in a "+tag" are different identifiers with different DNS names.
func TestEmailIdentifierLocalPartKeptAsTyped(t *testing.T) {
	seen := map[string]string{}
	for _, in := range []string{"alice@example.org", "Alice@example.org", "ALICE@example.org", "alice+rp@example.org", "a.lice@example.org"} {
		n, err := ParseIdentifier(in)
		if err != nil {
			t.Fatalf("ParseIdentifier(%q): %v", in, err)
		}
		if other, ok := seen[n.DNSName]; ok {
			t.Errorf("%q and %q have the same DNS name %s", in, other, n.DNSName)
		}
		seen[n.DNSName] = in
	}
}

func TestEmailIdentifierRefuses(t *testing.T) {
	long := strings.Repeat("a", MaxLocalPartLength+1)
	// 196 octets is the longest domain whose DNS name (56 + 1 + 196) fits in 253.
	domain196 := strings.Repeat("d", 63) + "." + strings.Repeat("d", 63) + "." + strings.Repeat("d", 60) + ".example"
	domain197 := strings.Repeat("d", 63) + "." + strings.Repeat("d", 63) + "." + strings.Repeat("d", 61) + ".example"
	tests := []struct {
		name   string
		in     string
		reason Reason
		// mention is a part of the message that tells what to fix.
		mention string
	}{
		{"empty local part", "@example.org", ReasonLocalPartEmpty, "local part is empty"},
		{"65-octet local part", long + "@example.org", ReasonLocalPartTooLong, "65 octets"},
		{"33 two-octet letters are 66 octets", strings.Repeat("ü", 33) + "@example.org", ReasonLocalPartTooLong, "66 octets"},
		{"not NFC", "ju\u0308rgen@example.org", ReasonLocalPartNotNFC, `"jürgen"`},
		{"not NFC, Hangul jamo", "\u1100\u1161@example.org", ReasonLocalPartNotNFC, "NFC"},
		{"second at sign", "a@b@example.org", ReasonLocalPartMalformed, `more than one "@"`},
		{"quoted local part", `"alice"@example.org`, ReasonLocalPartMalformed, "quoted"},
		{"quoted local part with an at sign", `"a@b"@example.org`, ReasonLocalPartMalformed, `more than one "@"`},
		{"backslash", `a\b@example.org`, ReasonLocalPartMalformed, "quoted"},
		{"leading dot", ".alice@example.org", ReasonLocalPartMalformed, "starts or ends with a dot"},
		{"trailing dot", "alice.@example.org", ReasonLocalPartMalformed, "starts or ends with a dot"},
		{"two dots", "al..ice@example.org", ReasonLocalPartMalformed, "two dots"},
		{"space", "al ice@example.org", ReasonLocalPartMalformed, "space"},
		{"tab", "al\tice@example.org", ReasonLocalPartMalformed, "U+0009"},
		{"DEL", "al\x7fice@example.org", ReasonLocalPartMalformed, "U+007F"},
		{"comma", "al,ice@example.org", ReasonLocalPartMalformed, "quoted local part"},
		{"parenthesis (RFC 5322 comment)", "alice(x)@example.org", ReasonLocalPartMalformed, "quoted local part"},
		{"colon", "a:b@example.org", ReasonLocalPartMalformed, "quoted local part"},
		{"no-break space", "al\u00a0ice@example.org", ReasonLocalPartMalformed, "whitespace"},
		{"ideographic space", "al\u3000ice@example.org", ReasonLocalPartMalformed, "whitespace"},
		{"zero-width joiner", "al\u200dice@example.org", ReasonLocalPartMalformed, "invisible"},
		{"zero-width space", "al\u200bice@example.org", ReasonLocalPartMalformed, "U+200B"},
		{"soft hyphen", "al\u00adice@example.org", ReasonLocalPartMalformed, "invisible"},
		{"right-to-left override", "al\u202eice@example.org", ReasonLocalPartMalformed, "invisible"},
		{"byte order mark", "\ufeffalice@example.org", ReasonLocalPartMalformed, "invisible"},
		{"variation selector", "alice\ufe0f@example.org", ReasonLocalPartMalformed, "variation selector"},
		{"emoji", "\U0001F600@example.org", ReasonLocalPartMalformed, "punctuation or symbol"},
		{"curly apostrophe", "o\u2019brien@example.org", ReasonLocalPartMalformed, "U+2019"},
		{"private use", "alice\ue000@example.org", ReasonLocalPartMalformed, "private-use"},
		{"unassigned", "alice\U000E0080@example.org", ReasonLocalPartMalformed, "unassigned"},
		{"C1 control", "alice\u0085@example.org", ReasonLocalPartMalformed, "control"},
		{"leading combining mark", "\u0301alice@example.org", ReasonLocalPartMalformed, "combining mark"},
		{"combining mark after a dot", "alice.\u0301bob@example.org", ReasonLocalPartMalformed, "combining mark"},
		{"full-width letters", "ａｌｉｃｅ@example.org", ReasonLocalPartMalformed, `"alice"`},
		{"ligature", "\ufb01sh@example.org", ReasonLocalPartMalformed, "compatibility"},
		{"superscript digit", "alice\u00b2@example.org", ReasonLocalPartMalformed, "compatibility"},
		{"no domain", "alice@", ReasonIdentifierMalformed, "no domain"},
		{"domain is a public suffix", "alice@co.uk", ReasonIdentifierPublicSuffix, `domain "co.uk"`},
		{"domain of one label", "alice@org", ReasonIdentifierTooFewLabels, `domain "org"`},
		{"domain with an underscore", "alice@_openid.example.org", ReasonIdentifierMalformed, `domain "_openid.example.org"`},
		{"domain is an IP address", "alice@192.0.2.1", ReasonIdentifierIPLiteral, "IP address"},
		{"domain is a bracketed IP literal", "alice@[192.0.2.1]", ReasonIdentifierIPLiteral, "bracketed"},
		{"wildcard domain", "alice@*.example.org", ReasonIdentifierWildcard, `"*"`},
		{"space after the at sign", "alice@ example.org", ReasonIdentifierMalformed, "domain"},
		{"DNS name over 253 octets", "a@" + domain197, ReasonIdentifierTooLong, "at most 196 octets"},
		{"address over 254 octets", strings.Repeat("a", 64) + "@" + domain196, ReasonIdentifierTooLong, "RFC 5321"},
		{"trailing space", "alice@example.org ", ReasonIdentifierMalformed, "whitespace"},
		{"leading space", " alice@example.org", ReasonIdentifierMalformed, "whitespace"},
		{"invalid UTF-8 in the local part", "al\xffice@example.org", ReasonIdentifierMalformed, "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := ParseIdentifier(tt.in)
			if err == nil {
				t.Fatalf("ParseIdentifier(%q) = %+v, want refusal %s", tt.in, n, tt.reason)
			}
			var e *Error
			if !errors.As(err, &e) || e.Kind != KindInvalidArgument || Reason(e.Reason) != tt.reason {
				t.Fatalf("ParseIdentifier(%q): %v (%T), want invalid argument %s", tt.in, err, err, tt.reason)
			}
			if !strings.Contains(e.Message, tt.mention) {
				t.Errorf("message %q does not mention %q", e.Message, tt.mention)
			}
		})
	}
	// The limits themselves are accepted.
	for _, in := range []string{strings.Repeat("a", MaxLocalPartLength) + "@example.org", "a@" + domain196,
		strings.Repeat("ü", 32) + "@example.org"} {
		if _, err := ParseIdentifier(in); err != nil {
			t.Errorf("ParseIdentifier(%q): %v", in, err)
		}
	}
}

// TestEmailIdentifierAcceptsWhatAddressesUse: the characters real addresses use are kept.
func TestEmailIdentifierAcceptsWhatAddressesUse(t *testing.T) {
	for _, local := range []string{
		"alice", "Alice.Smith", "alice+id4me", "alice-smith", "alice_smith", "a.b.c", "1234",
		"!#$%&'*+-/=?^_`{|}~", "jürgen", "Ærøskøbing", "иван", "δοκιμή", "用户", "ユーザー",
		"사용자", "संपर्क", "مستخدم", "ชื่อ", "o'brien",
	} {
		in := local + "@example.org"
		n, err := ParseIdentifier(in)
		if err != nil {
			t.Errorf("ParseIdentifier(%q): %v", in, err)
			continue
		}
		if n.Local != local || n.ASCII != in {
			t.Errorf("ParseIdentifier(%q) = %+v: the local part changed", in, n)
		}
	}
}
