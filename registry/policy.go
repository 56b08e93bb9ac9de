package registry

import (
	"net/netip"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
)

// Limits on identifiers, in octets of the A-label form (RFC 1035 §2.3.4; 253 is the 255-octet
// wire limit less the length octet of the first label and the root label).
const (
	MaxIdentifierLength = 253
	MaxLabelLength      = 63
)

// maxInputLength bounds the text ParseIdentifier looks at, before any mapping. It is far
// above any U-label form of a 253-octet name (at most 4 UTF-8 bytes per A-label octet), and
// keeps work and error messages small.
const maxInputLength = 4096

// Reasons for refusing an identifier. Each is the Reason of an *Error of KindInvalidArgument.
const (
	ReasonIdentifierEmpty        = "IDENTIFIER_EMPTY"
	ReasonIdentifierMalformed    = "IDENTIFIER_MALFORMED"
	ReasonIdentifierTooLong      = "IDENTIFIER_TOO_LONG"
	ReasonIdentifierLabelTooLong = "IDENTIFIER_LABEL_TOO_LONG"
	ReasonIdentifierTooFewLabels = "IDENTIFIER_TOO_FEW_LABELS"
	ReasonIdentifierPublicSuffix = "IDENTIFIER_PUBLIC_SUFFIX"
	ReasonIdentifierWildcard     = "IDENTIFIER_WILDCARD"
	ReasonIdentifierIPLiteral    = "IDENTIFIER_IP_LITERAL"
)

// lenientLookup is the Lookup profile without the STD3 rules: it maps full-width and other
// compatibility forms of "*", "[", ":" and digits to ASCII instead of refusing them.
var lenientLookup = idna.New(idna.MapForLookup(), idna.StrictDomainName(false))

// Name is a canonical identifier.
type Name struct {
	ASCII   string // canonical lowercase A-label form, no trailing dot: the key everywhere
	Unicode string // U-label form for display
}

// String returns the canonical A-label form.
func (n Name) String() string { return n.ASCII }

// ParseIdentifier validates and canonicalises an identifier given in any accepted form:
// A-labels or U-labels, any letter case, with or without one trailing dot. Every refusal is an
// *Error of KindInvalidArgument whose Reason is one of the ReasonIdentifier… constants.
//
// The rules, and why:
//   - The name goes through the IDNA2008/UTS #46 Lookup profile (what browsers and resolvers
//     do), so "Bücher.EXAMPLE." and "xn--bcher-kva.example" are the same identifier. The result
//     must be letters, digits and hyphens only: "_" is refused, since an identifier is a host
//     name that publishes records beneath it (_openid, _acme-challenge), not a service label.
//   - At least two labels: a bare TLD, known or not, is never an identifier.
//   - Not a public suffix. ICANN suffixes ("com", "co.uk") and private ones ("github.io") are
//     refused alike: under either, the names below belong to unrelated holders, so control of
//     the suffix's zone says nothing about one holder. A name under a TLD the list does not
//     know ("foo.example") is allowed; only the TLD itself is the suffix by the default rule.
//   - No wildcard and no "*" anywhere: an identifier names exactly one holder.
//   - No IP literal, and no name that ends in a number (last label all digits, or 0x and hex):
//     the WHATWG URL parser reads such a host as IPv4, so it could never be an issuer host.
//   - Leading or trailing whitespace is refused rather than trimmed, so what the caller sent is
//     what was checked.
func ParseIdentifier(s string) (Name, error) {
	if s == "" {
		return Name{}, Errorf(KindInvalidArgument, ReasonIdentifierEmpty, "identifier is empty")
	}
	if len(s) > maxInputLength {
		return Name{}, Errorf(KindInvalidArgument, ReasonIdentifierTooLong,
			"identifier of %d bytes is too long; the limit is %d octets in A-label form",
			len(s), MaxIdentifierLength)
	}
	if !utf8.ValidString(s) {
		return Name{}, Errorf(KindInvalidArgument, ReasonIdentifierMalformed,
			"identifier %q is not valid UTF-8", s)
	}
	if r, _ := utf8.DecodeRuneInString(s); unicode.IsSpace(r) {
		return Name{}, Errorf(KindInvalidArgument, ReasonIdentifierMalformed,
			"identifier %q starts with whitespace", s)
	}
	if r, _ := utf8.DecodeLastRuneInString(s); unicode.IsSpace(r) {
		return Name{}, Errorf(KindInvalidArgument, ReasonIdentifierMalformed,
			"identifier %q ends with whitespace", s)
	}
	// Checked before IDNA, which would report these only as a disallowed rune.
	if err := checkLiteral(s, s); err != nil {
		return Name{}, err
	}

	ascii, err := idna.Lookup.ToASCII(s)
	if err != nil {
		// Lookup reports a wildcard or IP literal written in full-width forms ("＊", "［")
		// only as a disallowed rune; map without the STD3 rules to name the real problem.
		if mapped, merr := lenientLookup.ToASCII(s); merr == nil {
			if err := checkLiteral(mapped, s); err != nil {
				return Name{}, err
			}
		}
		e := Errorf(KindInvalidArgument, ReasonIdentifierMalformed,
			"identifier %q is not a valid domain name", s)
		e.Err = err
		return Name{}, e
	}
	// Checked again after IDNA mapping: full-width forms map to "*", digits and dots.
	if err := checkLiteral(ascii, s); err != nil {
		return Name{}, err
	}
	ascii = strings.TrimSuffix(ascii, ".")
	if ascii == "" {
		return Name{}, Errorf(KindInvalidArgument, ReasonIdentifierEmpty,
			"identifier %q has no labels", s)
	}

	labels := strings.Split(ascii, ".")
	for _, label := range labels {
		if err := checkLabel(label, s); err != nil {
			return Name{}, err
		}
	}
	if len(ascii) > MaxIdentifierLength {
		return Name{}, Errorf(KindInvalidArgument, ReasonIdentifierTooLong,
			"identifier %q is %d octets in A-label form; the limit is %d",
			s, len(ascii), MaxIdentifierLength)
	}
	if len(labels) < 2 {
		return Name{}, Errorf(KindInvalidArgument, ReasonIdentifierTooFewLabels,
			"identifier %q has one label; an identifier needs at least two", s)
	}
	if endsInNumber(labels[len(labels)-1]) {
		return Name{}, Errorf(KindInvalidArgument, ReasonIdentifierIPLiteral,
			"identifier %q ends in the number %q and would be read as an IPv4 address",
			s, labels[len(labels)-1])
	}
	if suffix, _ := publicsuffix.PublicSuffix(ascii); suffix == ascii {
		return Name{}, Errorf(KindInvalidArgument, ReasonIdentifierPublicSuffix,
			"identifier %q is the public suffix %q; register a name below it", s, ascii)
	}

	unicodeForm, err := idna.Lookup.ToUnicode(ascii)
	if err != nil {
		e := Errorf(KindInvalidArgument, ReasonIdentifierMalformed,
			"identifier %q has no valid Unicode form", s)
		e.Err = err
		return Name{}, e
	}
	return Name{ASCII: ascii, Unicode: unicodeForm}, nil
}

// checkLiteral refuses wildcards and IP literals in s, a form of the identifier original.
func checkLiteral(s, original string) error {
	if strings.Contains(s, "*") {
		return Errorf(KindInvalidArgument, ReasonIdentifierWildcard,
			"identifier %q contains %q; wildcards are not identifiers", original, "*")
	}
	if strings.ContainsAny(s, "[]") {
		return Errorf(KindInvalidArgument, ReasonIdentifierIPLiteral,
			"identifier %q is a bracketed IP literal", original)
	}
	if _, err := netip.ParseAddr(strings.TrimSuffix(s, ".")); err == nil {
		return Errorf(KindInvalidArgument, ReasonIdentifierIPLiteral,
			"identifier %q is an IP address", original)
	}
	return nil
}

// checkLabel checks one label of the A-label form of the identifier original.
func checkLabel(label, original string) error {
	if label == "" {
		return Errorf(KindInvalidArgument, ReasonIdentifierMalformed,
			"identifier %q has an empty label (a leading dot or two dots in a row)", original)
	}
	if len(label) > MaxLabelLength {
		return Errorf(KindInvalidArgument, ReasonIdentifierLabelTooLong,
			"identifier %q has the label %q of %d octets in A-label form; the limit is %d",
			original, label, len(label), MaxLabelLength)
	}
	for i := 0; i < len(label); i++ {
		c := label[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return Errorf(KindInvalidArgument, ReasonIdentifierMalformed,
				"identifier %q has the label %q with the character %q; "+
					"only letters, digits and hyphens are allowed", original, label, rune(c))
		}
	}
	if label[0] == '-' || label[len(label)-1] == '-' {
		return Errorf(KindInvalidArgument, ReasonIdentifierMalformed,
			"identifier %q has the label %q that starts or ends with a hyphen", original, label)
	}
	return nil
}

// endsInNumber reports whether the last label reads as a number to the WHATWG URL host
// parser: all decimal digits, or "0x" followed by hex digits.
func endsInNumber(label string) bool {
	if strings.HasPrefix(label, "0x") {
		return strings.Trim(label[2:], "0123456789abcdef") == ""
	}
	return strings.Trim(label, "0123456789") == ""
}
