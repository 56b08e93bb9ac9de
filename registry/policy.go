package registry

import (
	"net/netip"
	"strconv"
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

// lenientLookup is the Lookup profile without the STD3 rules: it maps full-width and other
// compatibility forms of "*", "[", ":" and digits to ASCII instead of refusing them.
var lenientLookup = idna.New(idna.MapForLookup(), idna.StrictDomainName(false))

// Name is a canonical identifier: a domain name ("alice.example"), or an e-mail-form
// identifier ("alice@example"), which relying parties look up as the DNS name
// "<h>.example" (see DNSName).
type Name struct {
	// ASCII is the canonical form, the key everywhere: the lowercase A-label form of a domain,
	// without trailing dot; for an e-mail-form identifier, the local part as typed, "@" and
	// the domain in that form.
	ASCII string
	// Unicode is the form for display: domain labels as U-labels.
	Unicode string
	// DNSName is the name the identifier's records live under (_openid, _acme-challenge): ASCII
	// for a domain, "<h>.<domain>" for an e-mail-form identifier.
	DNSName string
	// Local is the local part of an e-mail-form identifier, as typed; empty for a domain.
	Local string
}

// String returns the canonical form.
func (n Name) String() string { return n.ASCII }

// IsEmail reports whether n is an e-mail-form identifier.
func (n Name) IsEmail() bool { return n.Local != "" }

// ParseIdentifier validates and canonicalises an identifier given in any accepted form:
// A-labels or U-labels, any letter case, with or without one trailing dot; or the e-mail form
// local@domain, whose domain follows the same rules and whose local part follows those of
// policy_email.go. Every refusal is an *Error of KindInvalidArgument whose Reason is one of
// the ReasonIdentifier… or ReasonLocalPart… constants.
//
// The rules for a domain, and why:
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
//
// ParseIdentifier says what an identifier is, not whether it may be registered now: a name
// registered under an older policy must still be found. RegistrationPolicy adds the rules for
// new registrations.
func ParseIdentifier(s string) (Name, error) {
	if s == "" {
		return Name{}, NewError(ReasonIdentifierEmpty, "identifier is empty")
	}
	if len(s) > maxInputLength {
		return Name{}, NewError(ReasonIdentifierTooLong,
			"identifier of %d bytes is too long; the limit is %d octets in A-label form",
			len(s), MaxIdentifierLength)
	}
	if !utf8.ValidString(s) {
		return Name{}, NewError(ReasonIdentifierMalformed,
			"identifier %q is not valid UTF-8", s)
	}
	if r, _ := utf8.DecodeRuneInString(s); unicode.IsSpace(r) {
		return Name{}, NewError(ReasonIdentifierMalformed,
			"identifier %q starts with whitespace", s)
	}
	if r, _ := utf8.DecodeLastRuneInString(s); unicode.IsSpace(r) {
		return Name{}, NewError(ReasonIdentifierMalformed,
			"identifier %q ends with whitespace", s)
	}
	if strings.Contains(s, "@") {
		return parseEmail(s)
	}
	ascii, unicodeForm, err := parseDomain(s, quoteIdentifier(s))
	if err != nil {
		return Name{}, err
	}
	return Name{ASCII: ascii, Unicode: unicodeForm, DNSName: ascii}, nil
}

// quoteIdentifier is how a refusal names the identifier s.
func quoteIdentifier(s string) string { return "identifier " + strconv.Quote(s) }

// parseDomain validates and canonicalises the domain name s and returns its A-label and
// U-label forms; what names s in the refusals ("identifier "…"", or the domain of an e-mail
// form).
func parseDomain(s, what string) (ascii, unicodeForm string, err error) {
	// Checked before IDNA, which would report these only as a disallowed rune.
	if err := checkLiteral(s, what); err != nil {
		return "", "", err
	}

	ascii, err = idna.Lookup.ToASCII(s)
	if err != nil {
		// Lookup reports a wildcard or IP literal written in full-width forms ("＊", "［")
		// only as a disallowed rune; map without the STD3 rules to name the real problem.
		if mapped, merr := lenientLookup.ToASCII(s); merr == nil {
			if err := checkLiteral(mapped, what); err != nil {
				return "", "", err
			}
		}
		e := NewError(ReasonIdentifierMalformed, "%s is not a valid domain name", what)
		e.Err = err
		return "", "", e
	}
	// Checked again after IDNA mapping: full-width forms map to "*", digits and dots.
	if err := checkLiteral(ascii, what); err != nil {
		return "", "", err
	}
	ascii = strings.TrimSuffix(ascii, ".")
	if ascii == "" {
		return "", "", NewError(ReasonIdentifierEmpty, "%s has no labels", what)
	}

	labels := strings.Split(ascii, ".")
	for _, label := range labels {
		if err := checkLabel(label, what); err != nil {
			return "", "", err
		}
	}
	if len(ascii) > MaxIdentifierLength {
		return "", "", NewError(ReasonIdentifierTooLong,
			"%s is %d octets in A-label form; the limit is %d", what, len(ascii), MaxIdentifierLength)
	}
	if len(labels) < 2 {
		return "", "", NewError(ReasonIdentifierTooFewLabels,
			"%s has one label; an identifier needs at least two", what)
	}
	if endsInNumber(labels[len(labels)-1]) {
		return "", "", NewError(ReasonIdentifierIPLiteral,
			"%s ends in the number %q and would be read as an IPv4 address", what, labels[len(labels)-1])
	}
	if suffix, _ := publicsuffix.PublicSuffix(ascii); suffix == ascii {
		return "", "", NewError(ReasonIdentifierPublicSuffix,
			"%s is the public suffix %q; register a name below it", what, ascii)
	}

	unicodeForm, err = idna.Lookup.ToUnicode(ascii)
	if err != nil {
		e := NewError(ReasonIdentifierMalformed, "%s has no valid Unicode form", what)
		e.Err = err
		return "", "", e
	}
	return ascii, unicodeForm, nil
}

// checkLiteral refuses wildcards and IP literals in s, a form of the name what names.
func checkLiteral(s, what string) error {
	if strings.Contains(s, "*") {
		return NewError(ReasonIdentifierWildcard,
			"%s contains %q; wildcards are not identifiers", what, "*")
	}
	if strings.ContainsAny(s, "[]") {
		return NewError(ReasonIdentifierIPLiteral, "%s is a bracketed IP literal", what)
	}
	if _, err := netip.ParseAddr(strings.TrimSuffix(s, ".")); err == nil {
		return NewError(ReasonIdentifierIPLiteral, "%s is an IP address", what)
	}
	return nil
}

// checkLabel checks one label of the A-label form of the name what names.
func checkLabel(label, what string) error {
	if label == "" {
		return NewError(ReasonIdentifierMalformed,
			"%s has an empty label (a leading dot or two dots in a row)", what)
	}
	if len(label) > MaxLabelLength {
		return NewError(ReasonIdentifierLabelTooLong,
			"%s has the label %q of %d octets in A-label form; the limit is %d",
			what, label, len(label), MaxLabelLength)
	}
	for i := 0; i < len(label); i++ {
		c := label[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return NewError(ReasonIdentifierMalformed,
				"%s has the label %q with the character %q; "+
					"only letters, digits and hyphens are allowed", what, label, rune(c))
		}
	}
	if label[0] == '-' || label[len(label)-1] == '-' {
		return NewError(ReasonIdentifierMalformed,
			"%s has the label %q that starts or ends with a hyphen", what, label)
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
