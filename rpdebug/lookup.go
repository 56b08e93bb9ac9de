package rpdebug

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/idna"

	"github.com/id4me/id4me-registry/dnsverify"
	"github.com/id4me/id4me-registry/id4me"
)

// TXTResolver looks up the TXT records at a name.
type TXTResolver interface {
	// LookupTXT returns the TXT values at name and a description of the exchange (the
	// server asked, the answer as text) for the page.
	LookupTXT(ctx context.Context, name string) (values []string, transcript string, err error)
}

// DNSServer asks one DNS server (host:port) with miekg/dns, over UDP and over TCP when the
// answer is truncated: the agent's nameserver in a demo, or a resolver of one's choice.
type DNSServer struct {
	Addr    string
	Timeout time.Duration
}

// LookupTXT implements TXTResolver.
func (s DNSServer) LookupTXT(ctx context.Context, name string) ([]string, string, error) {
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
	q.SetEdns0(4096, false)
	timeout := s.Timeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	c := &dns.Client{Net: "udp", Timeout: timeout}
	ans, _, err := c.ExchangeContext(ctx, q, s.Addr)
	if err == nil && ans.Truncated {
		c.Net = "tcp"
		ans, _, err = c.ExchangeContext(ctx, q, s.Addr)
	}
	if err != nil {
		return nil, "", fmt.Errorf("asking %s for TXT %s: %w", s.Addr, name, err)
	}
	transcript := fmt.Sprintf("server %s (%s)\n%s", s.Addr, c.Net, ans.String())
	if ans.Rcode != dns.RcodeSuccess {
		return nil, transcript, fmt.Errorf("%s answered %s for TXT %s", s.Addr, dns.RcodeToString[ans.Rcode], name)
	}
	var out []string
	for _, rr := range ans.Answer {
		if t, ok := rr.(*dns.TXT); ok && strings.EqualFold(t.Hdr.Name, dns.Fqdn(name)) {
			out = append(out, strings.Join(t.Txt, ""))
		}
	}
	return out, transcript, nil
}

// SystemResolver asks the system's resolver.
type SystemResolver struct{}

// LookupTXT implements TXTResolver.
func (SystemResolver) LookupTXT(ctx context.Context, name string) ([]string, string, error) {
	v, err := net.DefaultResolver.LookupTXT(ctx, name)
	if err != nil {
		return nil, "", fmt.Errorf("looking up TXT %s: %w", name, err)
	}
	return v, "the system's resolver answered:\n" + strings.Join(v, "\n"), nil
}

// Discovery is what the _openid lookup of an identifier found.
type Discovery struct {
	Identifier string
	// Name is where the record was looked up: _openid.<DNS name of the identifier>.
	Name       string
	Records    []string
	Transcript string
	// Record is the ID4me record among Records, parsed.
	Record dnsverify.OpenIDRecord
	// Issuer is the authority's issuer URL from the record's iss.
	Issuer string
}

// errNoRecord is wrapped when no _openid record names an authority.
var errNoRecord = errors.New("no usable _openid record")

// Canonical returns identifier as the RP looks it up: trimmed, lower case, its domain as an
// A-label (an e-mail form keeps its local part as typed, in lower case).
func Canonical(identifier string) (string, error) {
	id := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(identifier)), ".")
	local, domain, email := strings.Cut(id, "@")
	if !email {
		local, domain = "", id
	}
	ascii, err := idna.Lookup.ToASCII(domain)
	if err != nil || !strings.Contains(ascii, ".") {
		return "", fmt.Errorf("%q is not an identifier: a domain (alice.example) or local@domain", identifier)
	}
	if email {
		if local == "" {
			return "", fmt.Errorf("%q has an empty local part", identifier)
		}
		return local + "@" + ascii, nil
	}
	return ascii, nil
}

// discover looks up the _openid record of identifier and picks the authority from it.
func discover(ctx context.Context, r TXTResolver, identifier string) (Discovery, error) {
	d := Discovery{Identifier: identifier, Name: "_openid." + id4me.DNSName(identifier)}
	values, transcript, err := r.LookupTXT(ctx, d.Name)
	d.Records, d.Transcript = values, transcript
	if err != nil {
		return d, err
	}
	var firstErr error
	for _, v := range values {
		rec, err := dnsverify.ParseOpenIDRecord(v)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		d.Record = rec
		d.Issuer = rec.Issuer
		if !strings.HasPrefix(d.Issuer, "https://") {
			d.Issuer = "https://" + d.Issuer
		}
		return d, nil
	}
	if firstErr != nil {
		return d, fmt.Errorf("%w at %s: %w", errNoRecord, d.Name, firstErr)
	}
	return d, fmt.Errorf("%w at %s: no TXT record with v=OID1", errNoRecord, d.Name)
}
