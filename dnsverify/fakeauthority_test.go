package dnsverify

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// fakeAuthority is an in-process DNS server on 127.0.0.1 (UDP and TCP on one port) that answers
// authoritatively from a set of records. SOA records define its zones. It can be told to stay
// silent, to truncate UDP answers for a name, or to fail a name with an rcode, and it remembers
// every query it got.
type fakeAuthority struct {
	Addr string
	Port string

	mu       sync.Mutex
	zones    map[string]bool
	rrs      map[string][]dns.RR
	silent   bool
	truncate map[string]bool
	rcodes   map[string]int
	seen     []seenQuery
}

// seenQuery is a query as the fake server received it.
type seenQuery struct {
	Name      string
	Type      uint16
	RD        bool
	Transport string
}

// newFakeAuthority starts a server holding records (zone-file lines) and stops it at cleanup.
func newFakeAuthority(t *testing.T, records ...string) *fakeAuthority {
	t.Helper()
	f := &fakeAuthority{
		zones:    map[string]bool{},
		rrs:      map[string][]dns.RR{},
		truncate: map[string]bool{},
		rcodes:   map[string]int{},
	}
	f.add(t, records...)
	f.start(t)
	return f
}

// soa returns a zone-file line making zone a zone.
func soa(zone string) string {
	return zone + " 300 IN SOA ns1." + zone + " hostmaster." + zone + " 1 7200 3600 1209600 300"
}

func (f *fakeAuthority) add(t *testing.T, records ...string) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, line := range records {
		rr, err := dns.NewRR(line)
		if err != nil || rr == nil {
			t.Fatalf("bad test record %q: %v", line, err)
		}
		owner := dns.CanonicalName(rr.Header().Name)
		if rr.Header().Rrtype == dns.TypeSOA {
			f.zones[owner] = true
		}
		f.rrs[owner] = append(f.rrs[owner], rr)
	}
}

func (f *fakeAuthority) setSilent(silent bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.silent = silent
}

func (f *fakeAuthority) truncateUDP(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.truncate[dns.CanonicalName(name)] = true
}

func (f *fakeAuthority) failWith(name string, rcode int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rcodes[dns.CanonicalName(name)] = rcode
}

func (f *fakeAuthority) queries() []seenQuery {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seenQuery(nil), f.seen...)
}

func (f *fakeAuthority) start(t *testing.T) {
	t.Helper()
	// UDP and TCP must share the port, so retry until a free UDP port is free for TCP too.
	var pc net.PacketConn
	var l net.Listener
	for attempt := 0; ; attempt++ {
		var err error
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen udp: %v", err)
		}
		l, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
		if attempt == 20 {
			t.Fatalf("listen tcp: %v", err)
		}
	}
	f.Addr = pc.LocalAddr().String()
	_, f.Port, _ = net.SplitHostPort(f.Addr)
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: f}, {Listener: l, Handler: f}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() { _ = srv.ActivateAndServe() }()
		<-started
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = srv.ShutdownContext(ctx)
		})
	}
}

// ServeDNS answers like an authoritative server: the records at the name (or its CNAME), else
// NODATA or NXDOMAIN with the zone's SOA; a referral below a delegation (NS records under the
// apex); REFUSED outside its zones.
func (f *fakeAuthority) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	f.mu.Lock()
	defer f.mu.Unlock()
	transport := w.RemoteAddr().Network()
	if len(r.Question) != 1 {
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeFormatError)
		_ = w.WriteMsg(m)
		return
	}
	q := r.Question[0]
	f.seen = append(f.seen, seenQuery{Name: q.Name, Type: q.Qtype, RD: r.RecursionDesired, Transport: transport})
	if f.silent {
		return
	}
	name := dns.CanonicalName(q.Name)
	m := new(dns.Msg)
	m.SetReply(r)
	if rc, ok := f.rcodes[name]; ok {
		m.Rcode = rc
		_ = w.WriteMsg(m)
		return
	}
	zone := f.zoneOf(name)
	if zone == "" {
		m.Rcode = dns.RcodeRefused
		_ = w.WriteMsg(m)
		return
	}
	if cut := f.delegation(name, zone); cut != nil {
		m.Ns = cut
		_ = w.WriteMsg(m)
		return
	}
	m.Authoritative = true
	if transport == "udp" && f.truncate[name] {
		m.Truncated = true
		_ = w.WriteMsg(m)
		return
	}
	for _, rr := range f.rrs[name] {
		t := rr.Header().Rrtype
		if t == q.Qtype || (t == dns.TypeCNAME && q.Qtype != dns.TypeCNAME) {
			m.Answer = append(m.Answer, dns.Copy(rr))
		}
	}
	if len(m.Answer) == 0 {
		if !f.exists(name) {
			m.Rcode = dns.RcodeNameError
		}
		for _, rr := range f.rrs[zone] {
			if rr.Header().Rrtype == dns.TypeSOA {
				m.Ns = append(m.Ns, dns.Copy(rr))
			}
		}
	}
	if transport == "udp" {
		size := dns.MinMsgSize
		if opt := r.IsEdns0(); opt != nil {
			size = int(opt.UDPSize())
		}
		m.Truncate(size)
	}
	_ = w.WriteMsg(m)
}

// zoneOf returns the closest zone holding name, "" when none does.
func (f *fakeAuthority) zoneOf(name string) string {
	for n := name; ; n = parentOf(n) {
		if f.zones[n] {
			return n
		}
		if n == "." {
			return ""
		}
	}
}

// delegation returns the NS records of a zone cut between zone and name (name included), which
// make the answer a referral.
func (f *fakeAuthority) delegation(name, zone string) []dns.RR {
	for n := name; n != zone && n != "."; n = parentOf(n) {
		var ns []dns.RR
		for _, rr := range f.rrs[n] {
			if rr.Header().Rrtype == dns.TypeNS {
				ns = append(ns, dns.Copy(rr))
			}
		}
		if len(ns) > 0 {
			return ns
		}
	}
	return nil
}

// exists reports whether name owns records or is an empty non-terminal.
func (f *fakeAuthority) exists(name string) bool {
	for owner := range f.rrs {
		if owner == name || strings.HasSuffix(owner, "."+name) {
			return true
		}
	}
	return false
}
