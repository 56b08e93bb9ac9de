package registry

import (
	"fmt"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"

	"github.com/id4me/id4me-registry/id4me"
)

// E-mail-form identifiers.
//
// ID4me relying-party libraries accept an identifier written like an e-mail address,
// local@domain, and look it up as the DNS name "<h>.<domain>", where <h> is the first 56
// lowercase hex digits of SHA-256 over the local part's UTF-8 bytes as typed (the way RFC 7929
// names OPENPGPKEY records); discovery is then at _openid.<h>.<domain>. They hash what the user
// typed, with no normalisation of any kind, and refuse an identifier with a second "@". So
// "Alice@example" and "alice@example" are two DNS names and two identifiers (RFC 5321 keeps
// local parts case-sensitive too): the registry keeps the local part exactly as given and
// folds only the domain, as it folds domain identifiers.
//
// A local part is refused where two relying parties, or one holder on two devices, could hash
// different bytes for what a person reads as the same address, or where e-mail itself would
// not take it unquoted. ReasonLocalPartEmpty: it is empty. ReasonLocalPartTooLong: it is over
// 64 octets (RFC 5321 §4.5.3.1.1). ReasonLocalPartNotNFC: it is not in Unicode NFC, and
// keyboards and input methods write NFC, so a decomposed "u" + U+0308 would never match the
// "ü" the holder types at login. ReasonLocalPartMalformed, with a message naming the character
// and the rule, for the rest:
//   - a second "@" (the libraries refuse it), a quote or a backslash: quoted local parts
//     (RFC 5322 §3.4.1) are written with and without their quotes by different software, so
//     relying parties would hash other bytes;
//   - in ASCII, anything but RFC 5322 atext (letters, digits and !#$%&'*+-/=?^_`{|}~) and
//     the dot: controls, the space, and the specials ( ) < > [ ] : ; ,
//   - a dot first, last, or next to another one (RFC 5322 dot-atom);
//   - outside ASCII (RFC 6531 allows UTF-8 there), anything but letters, combining marks and
//     digits: controls, whitespace, invisible format characters (zero-width joiners, bidi
//     controls, soft hyphens), variation selectors, private-use and unassigned code points,
//     punctuation and symbols (autocorrection writes ’ for ', emoji come with and without a
//     variation selector);
//   - a combining mark at the start of the local part or of one of its dot-separated parts;
//   - compatibility characters, which NFKC changes (full-width forms, ligatures,
//     superscripts): input methods type the plain form.
//
// Everything real addresses use is kept: letters and digits of any script in NFC, ".", "+",
// "-", "_" and the other atext symbols, upper and lower case as typed.

const (
	// MaxLocalPartLength is the longest local part, in octets of UTF-8 (RFC 5321 §4.5.3.1.1).
	MaxLocalPartLength = 64
	// maxEmailLength bounds the canonical e-mail form: a forward path is at most 256 octets
	// with its angle brackets (RFC 5321 §4.5.3.1.3).
	maxEmailLength = 254
)

// parseEmail validates and canonicalises the e-mail-form identifier s, which holds an "@".
func parseEmail(s string) (Name, error) {
	what := quoteIdentifier(s)
	local, domain, _ := strings.Cut(s, "@")
	if strings.Contains(domain, "@") {
		return Name{}, NewError(ReasonLocalPartMalformed,
			"%s has more than one %q; quoted local parts are not accepted", what, "@")
	}
	if err := checkLocalPart(local, what); err != nil {
		return Name{}, err
	}
	if domain == "" {
		return Name{}, NewError(ReasonIdentifierMalformed, "%s has no domain after %q", what, "@")
	}
	ascii, unicodeForm, err := parseDomain(domain, fmt.Sprintf("the domain %q of %s", domain, what))
	if err != nil {
		return Name{}, err
	}
	n := Name{ASCII: local + "@" + ascii, Unicode: local + "@" + unicodeForm, DNSName: id4me.DNSName(local + "@" + ascii), Local: local}
	if len(n.DNSName) > MaxIdentifierLength {
		return Name{}, NewError(ReasonIdentifierTooLong,
			"%s has the DNS name %s of %d octets; the limit is %d, so the domain may have at most %d octets in A-label form",
			what, n.DNSName, len(n.DNSName), MaxIdentifierLength, MaxIdentifierLength-id4me.LocalPartLabelLength-1)
	}
	if len(n.ASCII) > maxEmailLength {
		return Name{}, NewError(ReasonIdentifierTooLong,
			"%s is %d octets with its domain in A-label form; an address has at most %d (RFC 5321 §4.5.3.1.3)",
			what, len(n.ASCII), maxEmailLength)
	}
	return n, nil
}

// checkLocalPart applies the rules above to the local part of the identifier what names.
func checkLocalPart(local, what string) error {
	if local == "" {
		return NewError(ReasonLocalPartEmpty, "%s has nothing before %q: its local part is empty", what, "@")
	}
	if len(local) > MaxLocalPartLength {
		return NewError(ReasonLocalPartTooLong,
			"%s has a local part of %d octets; the limit is %d (RFC 5321 §4.5.3.1.1)", what, len(local), MaxLocalPartLength)
	}
	malformed := func(format string, args ...any) error {
		return NewError(ReasonLocalPartMalformed, "%s "+format, append([]any{what}, args...)...)
	}
	switch {
	case strings.HasPrefix(local, ".") || strings.HasSuffix(local, "."):
		return malformed("has a local part that starts or ends with a dot, which e-mail does not allow unquoted (RFC 5322 dot-atom)")
	case strings.Contains(local, ".."):
		return malformed("has two dots in a row in its local part, which e-mail does not allow unquoted (RFC 5322 dot-atom)")
	}
	partStart := true
	for _, r := range local {
		switch {
		case r == '.':
			partStart = true
			continue
		case r == '"' || r == '\\':
			return malformed("has %q in its local part; quoted local parts are not accepted: "+
				"software writes them with and without their quotes, and relying parties would hash other bytes", r)
		case r < 0x80 && isAtext(r):
		case r < 0x20 || r == 0x7f:
			return malformed("has the control character U+%04X in its local part", r)
		case r == ' ':
			return malformed("has a space in its local part")
		case r < 0x80:
			return malformed("has %q in its local part, which e-mail allows only in a quoted local part; "+
				"quoted local parts are not accepted", r)
		default:
			if kind, why := nonASCIIProblem(r); kind != "" {
				return malformed("has %s U+%04X in its local part: %s", kind, r, why)
			}
			if partStart && unicode.Is(unicode.M, r) {
				return malformed("has a local part (or a part of it between dots) that starts with the combining mark U+%04X", r)
			}
		}
		partStart = false
	}
	if !norm.NFC.IsNormalString(local) {
		return NewError(ReasonLocalPartNotNFC,
			"%s has a local part that is not in Unicode NFC: relying parties hash it as typed, and keyboards type NFC; write it as %q",
			what, norm.NFC.String(local))
	}
	for _, r := range local {
		if plain := norm.NFKC.String(string(r)); plain != string(r) {
			return malformed("has the compatibility character %q (U+%04X) in its local part: input methods type it as %q, "+
				"so relying parties would hash other bytes; write the local part as %q", r, r, plain, norm.NFKC.String(local))
		}
	}
	return nil
}

// isAtext reports whether the ASCII rune r is RFC 5322 atext.
func isAtext(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("!#$%&'*+-/=?^_`{|}~", r)
}

// nonASCIIProblem names the kind of the non-ASCII rune r and why a local part may not have it,
// or returns "" when it may.
func nonASCIIProblem(r rune) (kind, why string) {
	switch {
	case unicode.Is(unicode.Cc, r):
		return "the control character", "it cannot be typed into a login form"
	case unicode.IsSpace(r) || unicode.Is(unicode.Z, r):
		return "the whitespace", "it cannot be told from other whitespace, or from none"
	case unicode.Is(unicode.Cf, r):
		return "the invisible format character", "it is invisible, so the holder cannot tell whether it was typed"
	case unicode.Is(unicode.Variation_Selector, r):
		return "the variation selector", "input methods add or leave out variation selectors, and relying parties would hash other bytes"
	case unicode.Is(unicode.Co, r):
		return "the private-use character", "its meaning is private to some fonts and input methods"
	case !unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S):
		return "the unassigned code point", "Unicode has not assigned it, so its normalisation is not fixed"
	case unicode.In(r, unicode.P, unicode.S):
		return "the punctuation or symbol", "outside ASCII a local part takes letters, combining marks and digits only: " +
			"keyboards and autocorrection write punctuation and symbols in more than one way"
	}
	return "", ""
}
