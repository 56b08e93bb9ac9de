package dnsverify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// errTooLarge marks a response with more answers, or a longer TXT value, than we accept.
var errTooLarge = errors.New("too large")

// errBadResponse marks a response that cannot be the answer to the query sent.
var errBadResponse = errors.New("unusable response")

// outcome is what one server's exchange amounted to.
type outcome int

const (
	outcomeTXT         outcome = iota // NOERROR; the values may be empty (NODATA)
	outcomeNXDomain                   // NXDOMAIN
	outcomeCNAME                      // a CNAME at the name
	outcomeReferral                   // NOERROR without answers or AA, pointing to other nameservers
	outcomeRcode                      // SERVFAIL, REFUSED and other error codes
	outcomeTooLarge                   // more answers or longer values than accepted
	outcomeBadResponse                // a response that does not fit the query
	outcomeTimeout                    // no response in time
	outcomeUnreachable                // the server could not be reached
)

// answered reports whether the server sent a response, whatever it said.
func (o outcome) answered() bool {
	return o < outcomeTimeout
}

// classify sorts an exchange error into an outcome.
func classify(err error) outcome {
	var netErr net.Error
	switch {
	case errors.Is(err, errTooLarge):
		return outcomeTooLarge
	case errors.Is(err, errBadResponse):
		return outcomeBadResponse
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.Is(err, os.ErrDeadlineExceeded):
		return outcomeTimeout
	case errors.As(err, &netErr) && netErr.Timeout():
		return outcomeTimeout
	case errors.As(err, &netErr), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return outcomeUnreachable
	default:
		// Anything else failed while reading the bytes the server sent (malformed message).
		return outcomeBadResponse
	}
}

// trace collects the exchanges of one check.
type trace struct {
	queries []Query
	observe func(Query)
}

func (t *trace) record(q Query) {
	t.queries = append(t.queries, q)
	if t.observe != nil {
		t.observe(q)
	}
}

// fork returns a trace for one goroutine; join appends its queries once the goroutine is done,
// so the log keeps one server's exchanges together and in server order.
func (t *trace) fork() *trace {
	return &trace{observe: t.observe}
}

func (t *trace) join(o *trace) {
	t.queries = append(t.queries, o.queries...)
}

// exchange asks addr one question over UDP with EDNS0 and retries over TCP when the answer is
// truncated. It returns a response only when it fits the question and the size bounds.
func (v *Verifier) exchange(ctx context.Context, tr *trace, nsName, addr, name string, qtype uint16, rd bool) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = rd
	m.SetEdns0(v.cfg.UDPSize, false)
	resp, err := v.exchangeOver(ctx, tr, "udp", nsName, addr, m)
	if err != nil || !resp.Truncated {
		return resp, err
	}
	m.Id = dns.Id()
	return v.exchangeOver(ctx, tr, "tcp", nsName, addr, m)
}

// exchangeOver makes one exchange over one transport, bounded by QueryTimeout, and records it.
func (v *Verifier) exchangeOver(ctx context.Context, tr *trace, transport, nsName, addr string, m *dns.Msg) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, v.cfg.QueryTimeout)
	defer cancel()
	c := dns.Client{Net: transport, UDPSize: v.cfg.UDPSize, Timeout: v.cfg.QueryTimeout}
	q := m.Question[0]
	start := time.Now()
	resp, _, err := c.ExchangeContext(ctx, m, addr)
	if err == nil {
		err = v.check(m, resp, transport)
	}
	rec := Query{
		Nameserver: nsName,
		Address:    addr,
		Name:       q.Name,
		Type:       typeString(q.Qtype),
		Transport:  transport,
		Duration:   time.Since(start),
	}
	if err == nil || errors.Is(err, errTooLarge) || errors.Is(err, errBadResponse) {
		rec.Rcode = rcodeString(resp.Rcode)
		rec.Answers = v.presentAnswers(resp.Answer)
		rec.Truncated = resp.Truncated
	}
	if err != nil {
		rec.Err = err.Error()
	}
	tr.record(rec)
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// check verifies that resp answers m and stays within the answer bound. A truncated UDP answer is
// only checked for being a response, since it is retried over TCP.
func (v *Verifier) check(m, resp *dns.Msg, transport string) error {
	if !resp.Response {
		return fmt.Errorf("%w: the message is not a response", errBadResponse)
	}
	if len(resp.Question) > 1 {
		return fmt.Errorf("%w: %d questions in the response", errBadResponse, len(resp.Question))
	}
	if len(resp.Question) == 1 {
		want, got := m.Question[0], resp.Question[0]
		if !strings.EqualFold(got.Name, want.Name) || got.Qtype != want.Qtype || got.Qclass != want.Qclass {
			return fmt.Errorf("%w: the response is for %s %s, not %s %s",
				errBadResponse, got.Name, typeString(got.Qtype), want.Name, typeString(want.Qtype))
		}
	}
	if resp.Truncated && transport == "udp" {
		return nil
	}
	if len(resp.Answer) > v.cfg.MaxAnswers {
		return fmt.Errorf("%w: %d answers, more than the %d accepted", errTooLarge, len(resp.Answer), v.cfg.MaxAnswers)
	}
	return nil
}

// presentAnswers renders answer records for the query log, bounded like the answers themselves.
func (v *Verifier) presentAnswers(rrs []dns.RR) []string {
	var out []string
	for i, rr := range rrs {
		if i == v.cfg.MaxAnswers {
			out = append(out, fmt.Sprintf("(%d more)", len(rrs)-i))
			break
		}
		out = append(out, strings.ReplaceAll(rr.String(), "\t", " "))
	}
	return out
}

// readTXT returns the CNAME target at name, or else the TXT values at name, from an answer
// section. Records for other names (such as a chased CNAME target) are ignored: targets are asked
// of their own zone's nameservers.
func readTXT(resp *dns.Msg, name string) (cname string, values []string, err error) {
	for _, rr := range resp.Answer {
		h := rr.Header()
		if h.Class != dns.ClassINET || !strings.EqualFold(h.Name, name) {
			continue
		}
		switch rr := rr.(type) {
		case *dns.CNAME:
			if cname != "" && !strings.EqualFold(cname, rr.Target) {
				return "", nil, fmt.Errorf("%w: several CNAMEs at %s", errBadResponse, name)
			}
			cname = rr.Target
		case *dns.TXT:
			value, err := txtValue(rr.Txt)
			if err != nil {
				return "", nil, err
			}
			values = append(values, value)
		}
	}
	if cname != "" {
		// A CNAME cannot coexist with other data; the CNAME is what resolvers would follow.
		return cname, nil, nil
	}
	return "", values, nil
}

// txtValue concatenates the strings of one TXT record, undoing miekg/dns's presentation escapes.
func txtValue(strs []string) (string, error) {
	var b strings.Builder
	for _, s := range strs {
		b.WriteString(unescapeTXT(s))
		if b.Len() > MaxTXTValueLength {
			return "", fmt.Errorf("%w: a TXT value is longer than %d bytes", errTooLarge, MaxTXTValueLength)
		}
	}
	return b.String(), nil
}

// unescapeTXT turns a character-string as miekg/dns unpacks it (`\"`, `\\`, `\DDD`) back into
// the bytes on the wire.
func unescapeTXT(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		if i+3 < len(s) && isDigit(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]) {
			if n := int(s[i+1]-'0')*100 + int(s[i+2]-'0')*10 + int(s[i+3]-'0'); n <= 255 {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i+1])
		i++
	}
	return b.String()
}

func isDigit(c byte) bool {
	return c >= '0' && c <= '9'
}

func typeString(t uint16) string {
	if s, ok := dns.TypeToString[t]; ok {
		return s
	}
	return "TYPE" + strconv.Itoa(int(t))
}

func rcodeString(rc int) string {
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return "RCODE" + strconv.Itoa(rc)
}
