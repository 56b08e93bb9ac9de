package dnsverify

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// TXTAnswer is what the authoritative nameservers of a name's zone answered for TXT at the name.
type TXTAnswer struct {
	// Name is the name finally asked (after following CNAMEs).
	Name string
	// Zone is the zone cut used for Name.
	Zone string
	// Servers holds one entry per authoritative nameserver of Zone, in order.
	Servers []ServerAnswer
	// Queries holds every exchange in order, including zone-cut and NS lookups.
	Queries []Query
}

// ServerAnswer is what one authoritative nameserver answered for TXT at a name.
type ServerAnswer struct {
	// Nameserver is the server's NS name, or its host:port when servers are pinned.
	Nameserver string
	// Address is the host:port last asked; empty when the server has no address.
	Address string
	// Answered reports that the server sent a response (of any kind). Servers that did not
	// answer do not count towards agreement.
	Answered bool
	// Rcode is the response code, empty when the server did not answer.
	Rcode string
	// Values are the TXT values at the name, each the strings of one record concatenated.
	Values []string
	// CNAME is the target when the server answered a CNAME at the name; a CNAME that was
	// followed shows as a later Name instead, so this is set only when it was not (the
	// nameservers did not agree enough on it, or the chain looped or was too long).
	CNAME string
	// Err says what went wrong, empty when the answer was usable.
	Err string

	outcome outcome
}

// LookupTXT asks every authoritative nameserver of name's zone for TXT at name, following a
// CNAME chain as CheckTXT does, and returns the values per server with the query log. The error,
// a *Problem, is set when the zone or the chain could not be resolved or when no server gave a
// usable answer; the answer then still holds what is known.
func (v *Verifier) LookupTXT(ctx context.Context, name string) (TXTAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, v.cfg.Timeout)
	defer cancel()
	tr := &trace{observe: v.cfg.OnQuery}
	ans, prob := v.lookup(ctx, tr, name)
	if prob == nil {
		prob = unusableProblem(ans, name)
	}
	ans.Queries = tr.queries
	if prob != nil {
		return ans, prob
	}
	return ans, nil
}

// unusableProblem explains why no server gave an answer with data, or returns nil if one did.
func unusableProblem(ans TXTAnswer, asked string) *Problem {
	var silent, timedOut int
	tooLarge := false
	for _, s := range ans.Servers {
		switch s.outcome {
		case outcomeTXT, outcomeNXDomain, outcomeCNAME, outcomeReferral:
			return nil
		case outcomeTimeout:
			silent++
			timedOut++
		case outcomeUnreachable:
			silent++
		case outcomeTooLarge:
			tooLarge = true
		}
	}
	where := describeName(ans.Name, asked, ans.Zone)
	switch {
	case silent == len(ans.Servers):
		return noAnswerProblem(ans, where, timedOut, silent)
	case tooLarge:
		return &Problem{Reason: ReasonResponseTooLarge, Detail: fmt.Sprintf(
			"the answers for TXT at %s are too large to check: %s.", where, describeServers(ans.Servers))}
	default:
		return &Problem{Reason: ReasonError, Detail: fmt.Sprintf(
			"no nameserver gave a usable answer for TXT at %s: %s.", where, describeServers(ans.Servers))}
	}
}

// lookup follows the CNAME chain from name, zone by zone, and returns what the authoritative
// nameservers of the last name's zone answered.
func (v *Verifier) lookup(ctx context.Context, tr *trace, name string) (TXTAnswer, *Problem) {
	name = dns.Fqdn(name)
	if _, ok := dns.IsDomainName(name); !ok || name == "." {
		return TXTAnswer{Name: name}, &Problem{Reason: ReasonInvalidName, Detail: fmt.Sprintf(
			"%q is not a domain name that can be checked.", name)}
	}
	// order is shared by the whole lookup so that a server that failed is asked last afterwards.
	order := slices.Clone(v.pinned)
	if len(order) == 0 {
		order = slices.Clone(v.resolvers)
	}
	seen := map[string]bool{dns.CanonicalName(name): true}
	chain := []string{name}
	for hops := 0; ; hops++ {
		zone, servers, prob := v.findZone(ctx, tr, &order, name)
		ans := TXTAnswer{Name: name, Zone: zone}
		if prob != nil {
			return ans, prob
		}
		ans.Servers = v.askAll(ctx, tr, servers, name)
		target, prob := v.cnameToFollow(ans, chain[0])
		if prob != nil || target == "" {
			return ans, prob
		}
		chain = append(chain, target)
		switch {
		case seen[dns.CanonicalName(target)]:
			return ans, &Problem{Reason: ReasonCNAMELoop, Detail: fmt.Sprintf(
				"the CNAME chain from %s loops: %s; point the CNAME at a name that holds the TXT record.",
				chain[0], strings.Join(chain, " → "))}
		case hops >= v.cfg.MaxCNAMEs:
			return ans, &Problem{Reason: ReasonCNAMEChainTooLong, Detail: fmt.Sprintf(
				"the CNAME chain from %s has more than the %d CNAMEs followed: %s; shorten it.",
				chain[0], v.cfg.MaxCNAMEs, strings.Join(chain, " → "))}
		}
		seen[dns.CanonicalName(target)] = true
		name = target
	}
}

// cnameToFollow returns the CNAME target to follow from ans, or "" when the name is to be decided
// on its own TXT records. A CNAME is followed when enough servers (the quorum rule) answer the
// same one; when servers answer different CNAMEs the lookup fails.
func (v *Verifier) cnameToFollow(ans TXTAnswer, asked string) (string, *Problem) {
	var target string
	var answering, pointing int
	for _, s := range ans.Servers {
		if !s.outcome.answered() {
			continue
		}
		answering++
		if s.outcome != outcomeCNAME {
			continue
		}
		if target != "" && !strings.EqualFold(target, s.CNAME) {
			return "", &Problem{Reason: ReasonServersDisagree, Detail: fmt.Sprintf(
				"nameservers answer different CNAMEs at %s: %s; wait until every nameserver serves the same CNAME.",
				describeName(ans.Name, asked, ans.Zone), describeServers(ans.Servers))}
		}
		target = s.CNAME
		pointing++
	}
	if pointing == 0 || pointing < v.required(answering, len(ans.Servers)) {
		return "", nil
	}
	return target, nil
}

// askAll asks every server, in parallel, for TXT at name.
func (v *Verifier) askAll(ctx context.Context, tr *trace, servers []nameserver, name string) []ServerAnswer {
	out := make([]ServerAnswer, len(servers))
	traces := make([]*trace, len(servers))
	var wg sync.WaitGroup
	for i, ns := range servers {
		traces[i] = tr.fork()
		wg.Go(func() { out[i] = v.askServer(ctx, traces[i], ns, name) })
	}
	wg.Wait()
	for _, t := range traces {
		tr.join(t)
	}
	return out
}

// askServer asks one server for TXT at name, trying its addresses in turn until one answers.
func (v *Verifier) askServer(ctx context.Context, tr *trace, ns nameserver, name string) ServerAnswer {
	sa := ServerAnswer{Nameserver: ns.name, outcome: outcomeUnreachable, Err: ns.addrErr}
	if len(ns.addrs) == 0 && sa.Err == "" {
		sa.Err = "it has no address"
	}
	for _, addr := range ns.addrs {
		sa.Address = addr
		resp, err := v.exchange(ctx, tr, ns.name, addr, name, dns.TypeTXT, false)
		if err != nil {
			sa.outcome, sa.Err = classify(err), err.Error()
			if sa.outcome.answered() || expired(ctx) {
				break
			}
			continue
		}
		sa = readServerAnswer(sa, resp, name)
		break
	}
	sa.Answered = sa.outcome.answered()
	return sa
}

// readServerAnswer fills sa from a response to a TXT query for name.
func readServerAnswer(sa ServerAnswer, resp *dns.Msg, name string) ServerAnswer {
	sa.Rcode, sa.Err = rcodeString(resp.Rcode), ""
	if resp.Rcode != dns.RcodeSuccess && resp.Rcode != dns.RcodeNameError {
		sa.outcome = outcomeRcode
		return sa
	}
	cname, values, err := readTXT(resp, name)
	switch {
	case err != nil:
		sa.outcome, sa.Err = classify(err), err.Error()
	case cname != "":
		sa.outcome, sa.CNAME = outcomeCNAME, cname
	case resp.Rcode == dns.RcodeNameError:
		sa.outcome = outcomeNXDomain
	case len(values) == 0 && !resp.Authoritative && referral(resp) != "":
		sa.outcome, sa.Err = outcomeReferral, "referral to "+referral(resp)
	default:
		sa.outcome, sa.Values = outcomeTXT, values
	}
	return sa
}

// referral returns the nameservers a response without answers points to, if any.
func referral(resp *dns.Msg) string {
	var names []string
	for _, rr := range resp.Ns {
		if ns, ok := rr.(*dns.NS); ok {
			names = append(names, ns.Ns)
		}
	}
	return strings.Join(names, ", ")
}

// describeServers says what each server answered, for a Problem's Detail.
func describeServers(servers []ServerAnswer) string {
	if len(servers) == 0 {
		return "no nameserver was asked"
	}
	parts := make([]string, len(servers))
	for i, s := range servers {
		parts[i] = describeServer(s)
	}
	return strings.Join(parts, "; ")
}

func describeServer(s ServerAnswer) string {
	label := "ns " + s.Nameserver
	if s.Address != "" && s.Address != s.Nameserver {
		label += " (" + s.Address + ")"
	}
	return label + " " + s.said()
}

// said says what the server answered, as the predicate of a sentence.
func (s ServerAnswer) said() string {
	switch s.outcome {
	case outcomeTXT:
		if len(s.Values) == 0 {
			return "answered NOERROR with no TXT record"
		}
		return "answered NOERROR with TXT " + quoteValues(s.Values)
	case outcomeNXDomain:
		return "answered NXDOMAIN (no such name)"
	case outcomeCNAME:
		return "answered CNAME " + s.CNAME
	case outcomeReferral:
		return "answered with a " + s.Err + " (it is not authoritative for the zone)"
	case outcomeRcode:
		return "answered " + s.Rcode
	case outcomeTooLarge:
		return "sent a response too large to check (" + s.Err + ")"
	case outcomeBadResponse:
		return "sent an unusable response (" + s.Err + ")"
	case outcomeTimeout:
		return "timed out"
	default:
		return "could not be reached (" + s.Err + ")"
	}
}

// maxValuesShown and maxValueShown keep a Detail readable when a server answers many or long values.
const (
	maxValuesShown = 5
	maxValueShown  = 100
)

func quoteValues(values []string) string {
	parts := make([]string, 0, maxValuesShown+1)
	for i, val := range values {
		if i == maxValuesShown {
			parts = append(parts, "and "+strconv.Itoa(len(values)-i)+" more")
			break
		}
		parts = append(parts, quoteValue(val))
	}
	return strings.Join(parts, ", ")
}

func quoteValue(val string) string {
	if len(val) > maxValueShown {
		return strconv.Quote(val[:maxValueShown]) + "…"
	}
	return strconv.Quote(val)
}
