// Package dnsverify checks DNS records the way a careful ACME CA does: it finds the zone cut of
// a name, asks every authoritative nameserver of that zone directly (recursion off, UDP with
// EDNS0, TCP on truncation), follows a CNAME on the challenge name into other zones, bounds time
// and answer size, and requires the nameservers to agree. Every exchange is kept so that a failed
// check can say what each nameserver answered.
package dnsverify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Reasons a check fails, carried in Problem.Reason.
const (
	// ReasonRecordMissing: the nameservers have no TXT record at the name (NXDOMAIN or NODATA).
	ReasonRecordMissing = "DNS_RECORD_MISSING"
	// ReasonRecordMismatch: TXT records exist at the name but none has the expected value.
	ReasonRecordMismatch = "DNS_RECORD_MISMATCH"
	// ReasonServersDisagree: some nameservers have the value and others do not, or they answer
	// different CNAMEs, and the quorum is not met.
	ReasonServersDisagree = "DNS_SERVERS_DISAGREE"
	// ReasonTimeout: no nameserver (or too few) answered in time.
	ReasonTimeout = "DNS_TIMEOUT"
	// ReasonZoneNotFound: no zone cut (SOA) or no nameservers were found for the name.
	ReasonZoneNotFound = "DNS_ZONE_NOT_FOUND"
	// ReasonError: the nameservers answered only with errors (SERVFAIL, REFUSED, unusable
	// responses) or could not be reached.
	ReasonError = "DNS_ERROR"
	// ReasonResponseTooLarge: a response had more answers than Config.MaxAnswers or a TXT value
	// longer than MaxTXTValueLength.
	ReasonResponseTooLarge = "DNS_RESPONSE_TOO_LARGE"
	// ReasonCNAMELoop: the CNAME chain from the name comes back to a name already visited.
	ReasonCNAMELoop = "DNS_CNAME_LOOP"
	// ReasonCNAMEChainTooLong: the CNAME chain is longer than Config.MaxCNAMEs.
	ReasonCNAMEChainTooLong = "DNS_CNAME_CHAIN_TOO_LONG"
	// ReasonInvalidName: the name to check is not a valid domain name.
	ReasonInvalidName = "DNS_INVALID_NAME"
)

// MaxTXTValueLength is the largest TXT value, in bytes after its strings are concatenated, that
// is accepted; a longer one makes the response count as too large. Challenge values are 43 bytes
// and _openid records a few dozen, so anything near this bound is not meant for us.
const MaxTXTValueLength = 4096

// ErrInvalidConfig is wrapped by the errors New returns for a Config it cannot use.
var ErrInvalidConfig = errors.New("dnsverify: invalid config")

// Config configures a Verifier. The zero value asks the recursive resolvers of /etc/resolv.conf
// to find zones and nameservers, then asks those nameservers on port 53.
type Config struct {
	// Servers pins the nameservers to ask (host:port). When set, they are treated as the
	// authoritative servers of every zone: zone cuts are found by asking them (SOA walk up the
	// labels), and the challenge TXT is asked of each of them. Used by --dns-server, tests, demos.
	Servers []string
	// Resolvers are recursive resolvers (host:port) used, when Servers is empty, to find the zone
	// cut (SOA walk), the zone's NS names and their A/AAAA addresses. Default: /etc/resolv.conf.
	Resolvers []string
	// NameserverPort is the port authoritative servers found through NS records are asked on
	// (default "53").
	NameserverPort string
	// QueryTimeout bounds one exchange with one server (default 2s).
	QueryTimeout time.Duration
	// Timeout bounds a whole check, including zone-cut and NS lookups (default 10s).
	Timeout time.Duration
	// MaxCNAMEs is how many CNAME hops are followed from the name (default 8).
	MaxCNAMEs int
	// Quorum is how many nameservers must have the value. 0 means every nameserver that answers
	// (and at least one must). A quorum larger than the zone's number of nameservers is lowered
	// to that number.
	Quorum int
	// UDPSize is the EDNS0 buffer size advertised (default 1232).
	UDPSize uint16
	// MaxAnswers is how many answer records a response may carry; more makes the response count
	// as too large (default 64).
	MaxAnswers int
	// OnQuery, when set, is called after every exchange (for metrics). Nameservers of a zone are
	// asked in parallel, so it may be called concurrently.
	OnQuery func(Query)
}

// Verifier checks DNS records against authoritative nameservers. It is safe for concurrent use.
type Verifier struct {
	cfg       Config
	pinned    []nameserver
	resolvers []nameserver
}

// New returns a Verifier for cfg with defaults applied to zero fields. It reads /etc/resolv.conf
// only when neither Servers nor Resolvers is set.
func New(cfg Config) (*Verifier, error) {
	if cfg.NameserverPort == "" {
		cfg.NameserverPort = "53"
	}
	if cfg.QueryTimeout == 0 {
		cfg.QueryTimeout = 2 * time.Second
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.MaxCNAMEs == 0 {
		cfg.MaxCNAMEs = 8
	}
	if cfg.UDPSize == 0 {
		cfg.UDPSize = 1232
	}
	if cfg.MaxAnswers == 0 {
		cfg.MaxAnswers = 64
	}
	switch {
	case cfg.QueryTimeout < 0, cfg.Timeout < 0:
		return nil, fmt.Errorf("%w: timeouts must not be negative", ErrInvalidConfig)
	case cfg.MaxCNAMEs < 0, cfg.Quorum < 0, cfg.MaxAnswers < 0:
		return nil, fmt.Errorf("%w: MaxCNAMEs, Quorum and MaxAnswers must not be negative", ErrInvalidConfig)
	case cfg.UDPSize < dns.MinMsgSize:
		return nil, fmt.Errorf("%w: UDPSize %d is below the DNS minimum of %d", ErrInvalidConfig, cfg.UDPSize, dns.MinMsgSize)
	}
	if port, err := strconv.ParseUint(cfg.NameserverPort, 10, 16); err != nil || port == 0 {
		return nil, fmt.Errorf("%w: NameserverPort %q is not a port number", ErrInvalidConfig, cfg.NameserverPort)
	}
	cfg.Servers = slices.Clone(cfg.Servers)
	cfg.Resolvers = slices.Clone(cfg.Resolvers)
	if len(cfg.Servers) == 0 && len(cfg.Resolvers) == 0 {
		cc, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil {
			return nil, fmt.Errorf("%w: no Servers or Resolvers given and /etc/resolv.conf is unusable: %w", ErrInvalidConfig, err)
		}
		for _, s := range cc.Servers {
			cfg.Resolvers = append(cfg.Resolvers, net.JoinHostPort(s, cc.Port))
		}
		if len(cfg.Resolvers) == 0 {
			return nil, fmt.Errorf("%w: no Servers or Resolvers given and /etc/resolv.conf lists no nameserver", ErrInvalidConfig)
		}
	}
	v := &Verifier{cfg: cfg}
	for _, list := range []struct {
		field, role string
		addrs       []string
		into        *[]nameserver
	}{{"Servers", "ns", cfg.Servers, &v.pinned}, {"Resolvers", "resolver", cfg.Resolvers, &v.resolvers}} {
		for _, addr := range list.addrs {
			if _, _, err := net.SplitHostPort(addr); err != nil {
				return nil, fmt.Errorf("%w: %s entry %q is not host:port: %w", ErrInvalidConfig, list.field, addr, err)
			}
			*list.into = append(*list.into, nameserver{role: list.role, name: addr, addrs: []string{addr}})
		}
	}
	return v, nil
}

// Query records one exchange with one server.
type Query struct {
	// Nameserver is the server's NS name, or its host:port when servers are pinned or the server
	// is a resolver.
	Nameserver string
	// Address is the host:port the query was sent to.
	Address string
	// Name and Type are the question asked.
	Name, Type string
	// Transport is "udp" or "tcp".
	Transport string
	// Rcode is the response code, empty when there was no response.
	Rcode string
	// Answers are the answer records in presentation format.
	Answers []string
	// Truncated reports that the response had the TC bit (a UDP answer is then retried over TCP).
	Truncated bool
	// Err says what went wrong with the exchange, empty when it went well.
	Err string
	// Duration is how long the exchange took.
	Duration time.Duration
}

// Problem explains why a check failed.
type Problem struct {
	// Reason is one of the Reason constants (UPPER_SNAKE).
	Reason string
	// Detail is a sentence a person can act on, naming what each nameserver answered.
	Detail string
}

// Error returns the reason and the detail, so a Problem can be returned as an error.
func (p *Problem) Error() string {
	return p.Reason + ": " + p.Detail
}

// Result is the outcome of CheckTXT.
type Result struct {
	// Name is the name finally asked (after following CNAMEs).
	Name string
	// Zone is the zone cut used for Name.
	Zone string
	// OK reports that the expected value was found on enough nameservers.
	OK bool
	// Problem explains the failure; nil when OK.
	Problem *Problem
	// Queries holds every exchange in order, including zone-cut and NS lookups.
	Queries []Query
}

// CheckTXT reports whether the authoritative nameservers of name's zone serve a TXT record whose
// value (the strings of one record concatenated) equals want. name is a domain name with or
// without the trailing dot; a CNAME at it (or along its chain) is followed. An empty want never
// matches. The check is bounded by Config.Timeout and ctx.
func (v *Verifier) CheckTXT(ctx context.Context, name, want string) Result {
	ctx, cancel := context.WithTimeout(ctx, v.cfg.Timeout)
	defer cancel()
	tr := &trace{observe: v.cfg.OnQuery}
	ans, prob := v.lookup(ctx, tr, name)
	if prob == nil {
		prob = v.decide(ans, name, want)
	}
	return Result{Name: ans.Name, Zone: ans.Zone, OK: prob == nil, Problem: prob, Queries: tr.queries}
}

// decide applies the quorum rule to what the nameservers of the final name answered.
func (v *Verifier) decide(ans TXTAnswer, asked, want string) *Problem {
	var answering, have, silent, timedOut int
	var anyValues, anyCNAME, anyData, anyTooLarge bool
	for _, s := range ans.Servers {
		if !s.outcome.answered() {
			silent++
			if s.outcome == outcomeTimeout {
				timedOut++
			}
			continue
		}
		answering++
		switch {
		case want != "" && slices.Contains(s.Values, want):
			have++
		case len(s.Values) > 0:
			anyValues = true
		}
		switch s.outcome {
		case outcomeCNAME:
			anyCNAME = true
			anyData = true
		case outcomeTXT, outcomeNXDomain, outcomeReferral:
			anyData = true
		case outcomeTooLarge:
			anyTooLarge = true
		}
	}
	where := describeName(ans.Name, asked, ans.Zone)
	servers := describeServers(ans.Servers)
	if answering == 0 {
		return noAnswerProblem(ans, where, timedOut, silent)
	}
	required := v.required(answering, len(ans.Servers))
	if have > 0 && have >= required {
		return nil
	}
	if have == answering {
		// Every server that answered has the value; the quorum fails only for want of answers.
		reason := ReasonError
		if timedOut > 0 {
			reason = ReasonTimeout
		}
		return &Problem{Reason: reason, Detail: fmt.Sprintf(
			"only %d of the %d nameservers required answered for TXT at %s: %s.", answering, required, where, servers)}
	}
	switch {
	case have > 0:
		return &Problem{Reason: ReasonServersDisagree, Detail: fmt.Sprintf(
			"nameservers disagree about TXT at %s (%d of them serve %s, %d required): %s; wait until every nameserver serves the record.",
			where, have, quoteValue(want), required, servers)}
	case anyCNAME:
		return &Problem{Reason: ReasonServersDisagree, Detail: fmt.Sprintf(
			"nameservers disagree about the CNAME at %s: %s; wait until every nameserver serves the same records.", where, servers)}
	case anyValues:
		return &Problem{Reason: ReasonRecordMismatch, Detail: fmt.Sprintf(
			"no TXT record at %s has the expected value %s: %s; publish the expected value.", where, quoteValue(want), servers)}
	case anyData:
		return &Problem{Reason: ReasonRecordMissing, Detail: fmt.Sprintf(
			"no TXT record at %s: %s; publish the TXT record on the zone's nameservers.", where, servers)}
	case anyTooLarge:
		return &Problem{Reason: ReasonResponseTooLarge, Detail: fmt.Sprintf(
			"the answers for TXT at %s are too large to check: %s.", where, servers)}
	default:
		return &Problem{Reason: ReasonError, Detail: fmt.Sprintf(
			"no nameserver gave a usable answer for TXT at %s: %s.", where, servers)}
	}
}

// required is how many servers must have the value, given how many answered and how many the
// zone has.
func (v *Verifier) required(answering, servers int) int {
	if v.cfg.Quorum == 0 {
		return answering
	}
	return min(v.cfg.Quorum, servers)
}

// noAnswerProblem explains that no server answered at all.
func noAnswerProblem(ans TXTAnswer, where string, timedOut, silent int) *Problem {
	reason := ReasonError
	if timedOut > 0 && timedOut == silent {
		reason = ReasonTimeout
	}
	return &Problem{Reason: reason, Detail: fmt.Sprintf(
		"no nameserver answered for TXT at %s: %s.", where, describeServers(ans.Servers))}
}

// describeName names the final name, its zone and, when a CNAME was followed, where it came from.
func describeName(final, asked, zone string) string {
	var notes []string
	if zone != "" {
		notes = append(notes, "zone "+zone)
	}
	if !strings.EqualFold(dns.Fqdn(asked), final) {
		notes = append(notes, "reached through a CNAME from "+dns.Fqdn(asked))
	}
	if len(notes) == 0 {
		return final
	}
	return final + " (" + strings.Join(notes, "; ") + ")"
}
