package dnsverify

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// nameserver is a server to ask: an authoritative nameserver (by NS name, with the addresses it
// was resolved to) or a pinned server or resolver (named by its one host:port).
type nameserver struct {
	role    string // "ns" or "resolver", for messages
	name    string
	addrs   []string
	addrErr string // why addrs is empty
}

// findZone returns the zone cut for name and the authoritative nameservers to ask. With pinned
// Servers those are the nameservers of every zone; otherwise the resolvers find the zone's NS
// names and addresses. order holds the servers to ask for the zone cut, best first.
func (v *Verifier) findZone(ctx context.Context, tr *trace, order *[]nameserver, name string) (string, []nameserver, *Problem) {
	zone, prob := v.walkSOA(ctx, tr, order, name, len(v.pinned) == 0)
	if prob != nil {
		return zone, nil, prob
	}
	if len(v.pinned) > 0 {
		return zone, v.pinned, nil
	}
	servers, prob := v.zoneNameservers(ctx, tr, order, zone)
	return zone, servers, prob
}

// walkSOA asks for the SOA of name, then of each parent in turn, until a server answers with the
// SOA of exactly that name: that name is the zone cut. rd is set when asking resolvers.
func (v *Verifier) walkSOA(ctx context.Context, tr *trace, order *[]nameserver, name string, rd bool) (string, *Problem) {
	var said []string
	// answered is set once some candidate got an answer, or a refusal from every server, which
	// is an authoritative server's way of saying it serves no such zone.
	answered := false
	for candidate := name; candidate != "."; candidate = parentOf(candidate) {
		a := v.askInOrder(ctx, tr, order, candidate, dns.TypeSOA, rd)
		if a.resp == nil {
			if expired(ctx) || a.timedOut == len(*order) {
				return "", timeoutProblem(ctx, "finding the zone of "+name, a.said)
			}
			said = a.said
			answered = answered || a.refused == len(*order)
			continue
		}
		answered, said = true, nil
		for _, rr := range a.resp.Answer {
			if soa, ok := rr.(*dns.SOA); ok && strings.EqualFold(soa.Hdr.Name, candidate) {
				return candidate, nil
			}
		}
	}
	if !answered {
		return "", &Problem{Reason: ReasonError, Detail: fmt.Sprintf(
			"no server gave a usable answer to the SOA queries for %s: %s.", name, strings.Join(said, "; "))}
	}
	detail := fmt.Sprintf("no zone (SOA record) was found for %s or any of its parents", name)
	if len(said) > 0 {
		detail += " (for the last one tried, " + strings.Join(said, "; ") + ")"
	}
	return "", &Problem{Reason: ReasonZoneNotFound, Detail: detail + "; check that the domain is delegated and served."}
}

// zoneNameservers asks the resolvers for the NS names of zone and their addresses.
func (v *Verifier) zoneNameservers(ctx context.Context, tr *trace, order *[]nameserver, zone string) ([]nameserver, *Problem) {
	a := v.askInOrder(ctx, tr, order, zone, dns.TypeNS, true)
	if a.resp == nil {
		if expired(ctx) || a.timedOut == len(*order) {
			return nil, timeoutProblem(ctx, "finding the nameservers of "+zone, a.said)
		}
		return nil, &Problem{Reason: ReasonError, Detail: fmt.Sprintf(
			"no resolver gave a usable answer for the NS records of %s: %s.", zone, strings.Join(a.said, "; "))}
	}
	var names []string
	for _, rr := range a.resp.Answer {
		if ns, ok := rr.(*dns.NS); ok && strings.EqualFold(ns.Hdr.Name, zone) &&
			!slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(n, ns.Ns) }) {
			names = append(names, ns.Ns)
		}
	}
	if len(names) == 0 {
		return nil, &Problem{Reason: ReasonZoneNotFound, Detail: fmt.Sprintf(
			"the zone %s has no NS records; check its delegation.", zone)}
	}
	servers := make([]nameserver, 0, len(names))
	for _, n := range names {
		servers = append(servers, v.resolveNameserver(ctx, tr, order, n))
	}
	return servers, nil
}

// resolveNameserver asks the resolvers for the A and AAAA addresses of an NS name.
func (v *Verifier) resolveNameserver(ctx context.Context, tr *trace, order *[]nameserver, name string) nameserver {
	ns := nameserver{role: "ns", name: name}
	var said []string
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		a := v.askInOrder(ctx, tr, order, name, qtype, true)
		if a.resp == nil {
			said = append(said, a.said...)
			continue
		}
		for _, ip := range addressesIn(a.resp, name) {
			ns.addrs = append(ns.addrs, net.JoinHostPort(ip, v.cfg.NameserverPort))
		}
	}
	if len(ns.addrs) == 0 {
		ns.addrErr = "no A or AAAA address was found for it"
		if len(said) > 0 {
			ns.addrErr += ": " + strings.Join(said, "; ")
		}
	}
	return ns
}

// addressesIn returns the A and AAAA addresses of name in an answer section, following CNAMEs
// listed in it.
func addressesIn(resp *dns.Msg, name string) []string {
	var ips []string
	owner := name
	for _, rr := range resp.Answer {
		if !strings.EqualFold(rr.Header().Name, owner) {
			continue
		}
		switch rr := rr.(type) {
		case *dns.CNAME:
			owner = rr.Target
		case *dns.A:
			ips = append(ips, rr.A.String())
		case *dns.AAAA:
			ips = append(ips, rr.AAAA.String())
		}
	}
	return ips
}

// attempt is the outcome of asking servers in turn until one answers.
type attempt struct {
	resp     *dns.Msg // the first NOERROR or NXDOMAIN response; nil when none
	said     []string // what the servers that failed said
	timedOut int      // how many servers timed out
	refused  int      // how many servers answered REFUSED
}

// askInOrder asks the servers of order in turn until one answers NOERROR or NXDOMAIN. Servers
// that fail move to the back of order, so later questions in the same lookup go to one that
// works first.
func (v *Verifier) askInOrder(ctx context.Context, tr *trace, order *[]nameserver, name string, qtype uint16, rd bool) attempt {
	var a attempt
	list := *order
	for i, ns := range list {
		if expired(ctx) {
			break
		}
		resp, err := v.exchange(ctx, tr, ns.name, ns.addrs[0], name, qtype, rd)
		switch {
		case err != nil:
			o := classify(err)
			if o == outcomeTimeout {
				a.timedOut++
			}
			a.said = append(a.said, ns.role+" "+ns.name+" "+ServerAnswer{outcome: o, Err: err.Error()}.said())
		case resp.Rcode != dns.RcodeSuccess && resp.Rcode != dns.RcodeNameError:
			if resp.Rcode == dns.RcodeRefused {
				a.refused++
			}
			a.said = append(a.said, ns.role+" "+ns.name+" answered "+rcodeString(resp.Rcode))
		default:
			a.resp = resp
			*order = append(slices.Clone(list[i:]), list[:i]...)
			return a
		}
	}
	return a
}

// timeoutProblem explains that the servers, or the whole check, ran out of time.
func timeoutProblem(ctx context.Context, doing string, said []string) *Problem {
	detail := "no server answered in time while " + doing
	if expired(ctx) {
		detail = "the check ran out of time while " + doing
	}
	if len(said) > 0 {
		detail += ": " + strings.Join(said, "; ")
	}
	return &Problem{Reason: ReasonTimeout, Detail: detail + "."}
}

// expired reports whether ctx is done. Its deadline is checked too: a read that timed out at the
// deadline can return before the context's own timer marks it done.
func expired(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	deadline, ok := ctx.Deadline()
	return ok && !time.Now().Before(deadline)
}

// parentOf returns the parent of an FQDN, "." for a top-level name.
func parentOf(name string) string {
	i, end := dns.NextLabel(name, 0)
	if end || i >= len(name) {
		return "."
	}
	return name[i:]
}
