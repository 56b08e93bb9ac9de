package dnsverify

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/miekg/dns"
)

// ErrInvalidOpenIDRecord is wrapped by the errors ParseOpenIDRecord returns.
var ErrInvalidOpenIDRecord = errors.New("invalid _openid record")

// OpenIDRecord is a parsed _openid TXT record: "v=OID1;iss=<authority host>;clp=<agent host>".
type OpenIDRecord struct {
	// Version is the record version, always "OID1" in a parsed record.
	Version string
	// Issuer (iss) is the identity authority, as a host or an https URL.
	Issuer string
	// ClaimsProvider (clp) is the claims provider (the agent) host; it may be empty.
	ClaimsProvider string
}

// ParseOpenIDRecord parses the value of an _openid TXT record. Fields are separated by ';' and
// written key=value; spaces around ';' and '=' are ignored, keys are case-insensitive and unknown
// keys are ignored. v must be OID1 and iss must be present; a known key may appear only once.
func ParseOpenIDRecord(txt string) (OpenIDRecord, error) {
	rec, _, err := parseOpenID(txt)
	return rec, err
}

// parseOpenID also reports whether txt has a v field at all, which tells a broken _openid record
// from an unrelated TXT record at the same name.
func parseOpenID(txt string) (OpenIDRecord, bool, error) {
	var rec OpenIDRecord
	var firstErr error
	seen := map[string]bool{}
	for field := range strings.SplitSeq(txt, ";") {
		field = strings.TrimSpace(field)
		if field == "" {
			continue
		}
		key, value, ok := strings.Cut(field, "=")
		if !ok {
			if firstErr == nil {
				firstErr = fmt.Errorf("%w: field %q is not key=value", ErrInvalidOpenIDRecord, field)
			}
			continue
		}
		key, value = strings.ToLower(strings.TrimSpace(key)), strings.TrimSpace(value)
		var into *string
		switch key {
		case "v":
			into = &rec.Version
		case "iss":
			into = &rec.Issuer
		case "clp":
			into = &rec.ClaimsProvider
		default:
			continue
		}
		if seen[key] && firstErr == nil {
			firstErr = fmt.Errorf("%w: %s appears more than once", ErrInvalidOpenIDRecord, key)
		}
		seen[key] = true
		*into = value
	}
	hasVersion := seen["v"]
	switch {
	case firstErr != nil:
		return OpenIDRecord{}, hasVersion, firstErr
	case !hasVersion:
		return OpenIDRecord{}, false, fmt.Errorf("%w: no v field (want v=OID1)", ErrInvalidOpenIDRecord)
	case !strings.EqualFold(rec.Version, "OID1"):
		return OpenIDRecord{}, true, fmt.Errorf("%w: version %q is not OID1", ErrInvalidOpenIDRecord, rec.Version)
	case rec.Issuer == "":
		return OpenIDRecord{}, true, fmt.Errorf("%w: no iss field", ErrInvalidOpenIDRecord)
	}
	rec.Version = "OID1"
	return rec, true, nil
}

// OpenIDStatus is the outcome of CheckOpenID.
type OpenIDStatus string

// Outcomes of CheckOpenID.
const (
	// OpenIDMatches: enough nameservers (the quorum rule) serve a record whose iss is the issuer.
	OpenIDMatches OpenIDStatus = "MATCHES"
	// OpenIDMissing: the nameservers serve no _openid record (no TXT with a v field).
	OpenIDMissing OpenIDStatus = "MISSING"
	// OpenIDMismatch: a record is served but it names another issuer, is invalid, or too few
	// nameservers serve the matching one.
	OpenIDMismatch OpenIDStatus = "MISMATCH"
	// OpenIDError: the lookup failed (timeouts, errors from every nameserver, no zone, ...).
	OpenIDError OpenIDStatus = "ERROR"
)

// OpenIDCheck is the outcome of CheckOpenID.
type OpenIDCheck struct {
	// Status says whether the record names the issuer.
	Status OpenIDStatus
	// Record is the TXT value the status is about: the matching record, or else the first
	// _openid record found; empty when there is none.
	Record string
	// Parsed is Record parsed; zero when Record is empty or invalid.
	Parsed OpenIDRecord
	// Detail is a sentence a person can act on, naming what each nameserver answered.
	Detail string
	// Queries holds every exchange in order.
	Queries []Query
}

// CheckOpenID looks up TXT at _openid.<dnsName> on the authoritative nameservers of its zone
// and reports whether a record names issuerHost as iss. dnsName is the name relying parties
// look an identifier up under: the identifier itself for a domain, "<h>.<domain>" for an
// e-mail-form identifier. iss and issuerHost may each be a host or https://host; hosts are
// compared case-insensitively. Nameservers must agree as for CheckTXT.
func (v *Verifier) CheckOpenID(ctx context.Context, dnsName, issuerHost string) OpenIDCheck {
	ctx, cancel := context.WithTimeout(ctx, v.cfg.Timeout)
	defer cancel()
	tr := &trace{observe: v.cfg.OnQuery}
	name := "_openid." + dns.Fqdn(dnsName)
	ans, prob := v.lookup(ctx, tr, name)
	if prob == nil {
		prob = unusableProblem(ans, name)
	}
	check := v.judgeOpenID(ans, name, issuerHost, prob)
	check.Queries = tr.queries
	return check
}

// judgeOpenID applies the quorum rule to the _openid records the nameservers answered.
func (v *Verifier) judgeOpenID(ans TXTAnswer, asked, issuer string, prob *Problem) OpenIDCheck {
	if prob != nil {
		return OpenIDCheck{Status: OpenIDError, Detail: prob.Error()}
	}
	want := normalizeIssuer(issuer)
	var answering, matching int
	var match, other string
	for _, s := range ans.Servers {
		if !s.outcome.answered() {
			continue
		}
		answering++
		matched := false
		for _, val := range s.Values {
			rec, hasVersion, err := parseOpenID(val)
			switch {
			case !hasVersion:
				continue
			case err == nil && want != "" && normalizeIssuer(rec.Issuer) == want:
				matched = true
				if match == "" {
					match = val
				}
			case other == "":
				other = val
			}
		}
		if matched {
			matching++
		}
	}
	where := describeName(ans.Name, asked, ans.Zone)
	servers := describeServers(ans.Servers)
	required := v.required(answering, len(ans.Servers))
	switch {
	case matching > 0 && matching >= required:
		parsed, _ := ParseOpenIDRecord(match)
		return OpenIDCheck{Status: OpenIDMatches, Record: match, Parsed: parsed, Detail: fmt.Sprintf(
			"the _openid record at %s names %s as iss: %s.", where, issuer, servers)}
	case match == "" && other == "":
		return OpenIDCheck{Status: OpenIDMissing, Detail: fmt.Sprintf(
			"no _openid record (v=OID1) at %s: %s; publish \"v=OID1;iss=%s\".", where, servers, issuer)}
	case matching > 0:
		parsed, _ := ParseOpenIDRecord(match)
		return OpenIDCheck{Status: OpenIDMismatch, Record: match, Parsed: parsed, Detail: fmt.Sprintf(
			"nameservers disagree about the _openid record at %s (%d name %s as iss, %d required): %s; wait until every nameserver serves it.",
			where, matching, issuer, required, servers)}
	}
	parsed, err := ParseOpenIDRecord(other)
	if err != nil {
		return OpenIDCheck{Status: OpenIDMismatch, Record: other, Detail: fmt.Sprintf(
			"the _openid record %s at %s is not valid (%v): %s; publish \"v=OID1;iss=%s\".",
			quoteValue(other), where, err, servers, issuer)}
	}
	return OpenIDCheck{Status: OpenIDMismatch, Record: other, Parsed: parsed, Detail: fmt.Sprintf(
		"the _openid record at %s names %s as iss, not %s: %s.", where, parsed.Issuer, issuer, servers)}
}

// normalizeIssuer reduces an iss value (host or https://host) to a lower-case host.
func normalizeIssuer(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= len("https://") && strings.EqualFold(s[:len("https://")], "https://") {
		s = s[len("https://"):]
	}
	s = strings.TrimSuffix(s, "/")
	s = strings.TrimSuffix(s, ".")
	return strings.ToLower(s)
}
