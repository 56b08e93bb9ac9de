package registry

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// RegistrationPolicy decides which identifiers, valid as ParseIdentifier says, may be
// registered anew. It is checked when a register challenge is made and again when it is used,
// never on lookups: a name registered before a rule existed keeps resolving, transferring and
// logging in.
type RegistrationPolicy struct {
	// AllowSpecialUse accepts special-use names (.test, .example, .localhost, …): for
	// development and tests, which use them for want of names of their own.
	AllowSpecialUse bool
}

// Check returns why n may not be registered anew, or nil. The rules:
//   - No label, and no local part, mixes scripts beyond what UTS #39 calls Highly Restrictive
//     (ReasonIdentifierMixedScript); see mixedScripts.
//   - No special-use name (ReasonIdentifierSpecialUse), unless AllowSpecialUse; see
//     specialUseNames.
func (p RegistrationPolicy) Check(n Name) error {
	what := quoteIdentifier(n.Unicode)
	if scripts := mixedScripts(n.Local); scripts != nil {
		return mixedScriptError(what, "a local part", scripts)
	}
	domain := n.Unicode
	if n.IsEmail() {
		_, domain, _ = strings.Cut(n.Unicode, "@")
	}
	for label := range strings.SplitSeq(domain, ".") {
		if scripts := mixedScripts(label); scripts != nil {
			return mixedScriptError(what, fmt.Sprintf("the label %q", label), scripts)
		}
	}
	if p.AllowSpecialUse {
		return nil
	}
	if su, ok := specialUse(n.DNSName); ok {
		return NewError(ReasonIdentifierSpecialUse,
			"%s is under %q, which %s reserves for %s: it cannot be registered", what, su.suffix, su.reservedBy, su.purpose)
	}
	return nil
}

func mixedScriptError(what, part string, scripts []string) error {
	return NewError(ReasonIdentifierMixedScript,
		"%s has %s that mixes the scripts %s: look-alike letters of two scripts make a name pass for another, "+
			"so a label keeps to one script, or to Latin with Han and Hiragana/Katakana, Bopomofo or Hangul "+
			"(UTS #39, highly restrictive)", what, part, joinNames(scripts))
}

// joinNames joins names as prose: "A", "A and B", "A, B and C".
func joinNames(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// Mixed scripts (UTS #39 §5).
//
// The level is Highly Restrictive, the one Chromium requires before it shows a name in Unicode
// rather than as xn--…: a label is in one script (resolved script set not empty), or uses only
// Latin, Han, Hiragana and Katakana (Japanese), Latin, Han and Bopomofo (Chinese), or Latin,
// Han and Hangul (Korean). Moderately Restrictive, Firefox's level, would also admit Latin
// with any one other recommended script but Cyrillic and Greek, such as Latin with Armenian,
// whose "օ" and "ս" pass for "o" and "u"; an identifier is something people read and trust,
// and a name Chromium would show as xn--… serves its holder badly.
//
// Scripts are the Unicode Script property from Go's unicode tables. Common and Inherited
// characters (digits, "-", combining marks shared by scripts) belong to every script, as
// UTS #39 says. Go has no Script_Extensions table, so a character whose extensions name
// several scripts counts for its Script value alone: e.g. Arabic-Indic digits (Script Arabic,
// extensions Arabic and Thaana) are refused in a Thaana label. Characters outside IDNA2008's
// repertoire never get this far, so the Identifier_Status filter of UTS #39 adds nothing.

// augmentedScripts are the CJK writing systems each CJK script is part of (UTS #39 §5.1):
// Hanb is Han with Bopomofo, Jpan is Han with Hiragana and Katakana, Kore is Han with Hangul.
var augmentedScripts = map[string][]string{
	"Han":      {"Han", "Hanb", "Jpan", "Kore"},
	"Hiragana": {"Hiragana", "Jpan"},
	"Katakana": {"Katakana", "Jpan"},
	"Hangul":   {"Hangul", "Kore"},
	"Bopomofo": {"Bopomofo", "Hanb"},
}

// highlyRestrictive are the sets of scripts a label of several scripts may be covered by.
var highlyRestrictive = [][]string{
	{"Latin", "Han", "Hiragana", "Katakana"},
	{"Latin", "Han", "Bopomofo"},
	{"Latin", "Han", "Hangul"},
}

// mixedScripts returns the scripts of s, sorted, when s mixes them beyond the Highly
// Restrictive level, and nil when it does not.
func mixedScripts(s string) []string {
	var resolved map[string]bool // nil: every script, so far
	used := map[string]bool{}
	for _, r := range s {
		sc := scriptOf(r)
		if sc == "Common" || sc == "Inherited" {
			continue
		}
		used[sc] = true
		aug := augmentedScripts[sc]
		if aug == nil {
			aug = []string{sc}
		}
		if resolved == nil {
			resolved = make(map[string]bool, len(aug))
			for _, a := range aug {
				resolved[a] = true
			}
			continue
		}
		maps.DeleteFunc(resolved, func(k string, _ bool) bool { return !slices.Contains(aug, k) })
	}
	if resolved == nil || len(resolved) > 0 {
		return nil
	}
	for _, allowed := range highlyRestrictive {
		covered := true
		for sc := range used {
			covered = covered && slices.Contains(allowed, sc)
		}
		if covered {
			return nil
		}
	}
	return slices.Sorted(maps.Keys(used))
}

// scriptOf returns the Unicode Script of r by the name Go's unicode.Scripts uses, "Unknown"
// for an unassigned code point.
func scriptOf(r rune) string {
	if r < utf8.RuneSelf {
		if 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' {
			return "Latin"
		}
		return "Common"
	}
	for _, sc := range []string{"Latin", "Common", "Inherited", "Cyrillic", "Greek"} {
		if unicode.Is(unicode.Scripts[sc], r) {
			return sc
		}
	}
	for sc, t := range unicode.Scripts {
		if unicode.Is(t, r) {
			return sc
		}
	}
	return "Unknown"
}

// Special-use names.
//
// specialUseNames is the IANA Special-Use Domain Names registry (RFC 6761 §7), as it stood in
// 2025: .alt, .example, example.com, example.net, example.org, .invalid, .local, .localhost,
// .onion, .test, and under .arpa: 6tisch, eap-noob, home, ipv4only, resolver, service, and the
// reverse zones of private and link-local addresses in in-addr.arpa and ip6.arpa. Two more
// are refused whole: .arpa, the infrastructure domain (RFC 3172), whose names are no one's
// identity, and .internal, which ICANN reserved for private networks in 2024 (it is not in the
// IANA registry, being ICANN's rather than the IETF's). A name matches an entry that is the
// name or one of its parent domains; the longest match names the reason.
var specialUseNames = []specialUseName{
	{"alt", "RFC 9476", "names outside the DNS"},
	{"example", "RFC 6761", "documentation"},
	{"example.com", "RFC 6761", "documentation"},
	{"example.net", "RFC 6761", "documentation"},
	{"example.org", "RFC 6761", "documentation"},
	{"invalid", "RFC 6761", "names that never resolve"},
	{"local", "RFC 6762", "multicast DNS on the local link"},
	{"localhost", "RFC 6761", "the local host"},
	{"onion", "RFC 7686", "Tor onion services"},
	{"test", "RFC 6761", "testing"},
	{"internal", "ICANN (board resolution 2024.07.29.06)", "private networks"},
	{"arpa", "RFC 3172", "the Internet's infrastructure"},
	{"in-addr.arpa", "RFC 3172", "reverse mapping of IPv4 addresses (the private and link-local ranges by RFC 6761 and RFC 6762)"},
	{"ip6.arpa", "RFC 3172", "reverse mapping of IPv6 addresses (the link-local range by RFC 6762)"},
	{"6tisch.arpa", "RFC 9031", "6TiSCH networks"},
	{"eap-noob.arpa", "RFC 9140", "EAP-NOOB authentication"},
	{"home.arpa", "RFC 8375", "home networks"},
	{"ipv4only.arpa", "RFC 8880", "NAT64 prefix discovery"},
	{"resolver.arpa", "RFC 9462", "discovery of designated resolvers"},
	{"service.arpa", "RFC 9665", "service registration on local networks"},
}

// specialUseName is an entry of the special-use names: a domain, the document that reserves
// it and for what.
type specialUseName struct{ suffix, reservedBy, purpose string }

// specialUse returns the most specific special-use entry the DNS name is at or under.
func specialUse(dnsName string) (specialUseName, bool) {
	var best specialUseName
	for _, su := range specialUseNames {
		if (dnsName == su.suffix || strings.HasSuffix(dnsName, "."+su.suffix)) && len(su.suffix) > len(best.suffix) {
			best = su
		}
	}
	return best, best.suffix != ""
}
