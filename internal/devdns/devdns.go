// Package devdns is a small authoritative DNS server for tests and demos: it serves zones held
// in memory (or loaded from a zone file) over UDP and TCP on one loopback port, and can be
// told to misbehave (stay silent, truncate UDP answers, fail a name with an rcode) to exercise
// a verifier's edges.
//
// It answers like an authoritative server: the records at the name (a CNAME there answers any
// other type, and is not chased), else NODATA (NOERROR) or NXDOMAIN with the zone's SOA in the
// authority section; an empty non-terminal is NODATA. NS records below a zone's apex are a zone
// cut: questions at or below it get a referral (the NS records in the authority section, glue
// addresses in the additional section, AA clear). Names outside every zone are REFUSED. UDP
// answers larger than the client's EDNS0 buffer (512 bytes without EDNS0) are truncated with the
// TC bit set.
package devdns

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// Server is an authoritative DNS server on one address, UDP and TCP.
type Server struct {
	// Addr is the host:port both transports listen on.
	Addr string

	udp, tcp *dns.Server

	mu       sync.RWMutex
	zones    map[string]bool
	records  map[string][]dns.RR // by lowercase owner name
	rcodes   map[string]int      // forced response codes, by lowercase name
	silent   bool
	truncate bool
	queries  []Query
}

// Query is a question the server was asked.
type Query struct {
	Name, Type, Transport string
	// RecursionDesired is the RD bit of the question.
	RecursionDesired bool
}

// Start serves on addr ("127.0.0.1:0" picks a free port for both transports).
func Start(addr string) (*Server, error) {
	s := &Server{zones: map[string]bool{}, records: map[string][]dns.RR{}, rcodes: map[string]int{}}
	var lastErr error
	for try := 0; try < 10; try++ {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, fmt.Errorf("devdns: udp: %w", err)
		}
		l, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			pc.Close()
			lastErr = err
			continue
		}
		s.Addr = pc.LocalAddr().String()
		s.udp = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.handle("udp"))}
		s.tcp = &dns.Server{Listener: l, Handler: dns.HandlerFunc(s.handle("tcp"))}
		udpUp, tcpUp := make(chan struct{}), make(chan struct{})
		s.udp.NotifyStartedFunc = func() { close(udpUp) }
		s.tcp.NotifyStartedFunc = func() { close(tcpUp) }
		go s.udp.ActivateAndServe()
		go s.tcp.ActivateAndServe()
		<-udpUp
		<-tcpUp
		return s, nil
	}
	return nil, fmt.Errorf("devdns: no port free on both udp and tcp: %w", lastErr)
}

// Close stops the server.
func (s *Server) Close() error {
	return errors.Join(s.udp.Shutdown(), s.tcp.Shutdown())
}

// AddZone makes the server authoritative for zone, with an SOA and an NS record
// (ns1.<zone>, pointing at 127.0.0.1).
func (s *Server) AddZone(zone string) {
	zone = dns.Fqdn(strings.ToLower(zone))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.zones[zone] = true
	soa, _ := dns.NewRR(fmt.Sprintf("%s 60 IN SOA ns1.%s hostmaster.%s 1 3600 600 86400 60", zone, zone, zone))
	ns, _ := dns.NewRR(fmt.Sprintf("%s 60 IN NS ns1.%s", zone, zone))
	a, _ := dns.NewRR(fmt.Sprintf("ns1.%s 60 IN A 127.0.0.1", zone))
	s.records[zone] = append(s.records[zone], soa, ns)
	s.records["ns1."+zone] = append(s.records["ns1."+zone], a)
}

// Add adds records given in presentation format, e.g.
// `_acme-challenge.alice.example. 60 IN TXT "value"`. As in a zone file, an SOA record makes
// its owner a zone, and NS records below a zone's apex delegate the name (see the package doc).
// It stops at the first record that does not parse, keeping those before it.
func (s *Server) Add(rrs ...string) error {
	for _, text := range rrs {
		rr, err := dns.NewRR(text)
		if err != nil {
			return fmt.Errorf("devdns: %q: %w", text, err)
		}
		if rr == nil {
			continue
		}
		s.mu.Lock()
		name := strings.ToLower(rr.Header().Name)
		if rr.Header().Rrtype == dns.TypeSOA {
			s.zones[name] = true
		}
		s.records[name] = append(s.records[name], rr)
		s.mu.Unlock()
	}
	return nil
}

// SetTXT replaces the TXT records at name with one record per value.
func (s *Server) SetTXT(name string, values ...string) {
	name = dns.Fqdn(strings.ToLower(name))
	s.Remove(name, dns.TypeTXT)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range values {
		s.records[name] = append(s.records[name], &dns.TXT{
			Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
			Txt: splitTXT(v),
		})
	}
}

// splitTXT cuts a value into the 255-octet strings a TXT record is made of.
func splitTXT(v string) []string {
	var out []string
	for len(v) > 255 {
		out = append(out, v[:255])
		v = v[255:]
	}
	return append(out, v)
}

// Remove drops the records of type qtype at name (dns.TypeANY for all).
func (s *Server) Remove(name string, qtype uint16) {
	name = dns.Fqdn(strings.ToLower(name))
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := s.records[name][:0]
	for _, rr := range s.records[name] {
		if qtype != dns.TypeANY && rr.Header().Rrtype != qtype {
			kept = append(kept, rr)
		}
	}
	s.records[name] = kept
}

// LoadZoneFile replaces everything served with the zones and records of a zone file
// (RFC 1035 master format). Each SOA record makes its owner a zone.
func (s *Server) LoadZoneFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("devdns: %w", err)
	}
	defer f.Close()
	zones, records := map[string]bool{}, map[string][]dns.RR{}
	zp := dns.NewZoneParser(f, "", path)
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		name := strings.ToLower(rr.Header().Name)
		if rr.Header().Rrtype == dns.TypeSOA {
			zones[name] = true
		}
		records[name] = append(records[name], rr)
	}
	if err := zp.Err(); err != nil {
		return fmt.Errorf("devdns: %s: %w", path, err)
	}
	s.mu.Lock()
	s.zones, s.records = zones, records
	s.mu.Unlock()
	return nil
}

// SetRcode makes every question for name (any type, either transport) be answered with
// rcode alone: empty sections, AA clear, whether or not the server holds the name. A
// negative rcode removes the override. For example SetRcode(name, dns.RcodeServerFailure).
func (s *Server) SetRcode(name string, rcode int) {
	name = dns.Fqdn(strings.ToLower(name))
	s.mu.Lock()
	defer s.mu.Unlock()
	if rcode < 0 {
		delete(s.rcodes, name)
		return
	}
	s.rcodes[name] = rcode
}

// SetSilent makes the server drop every query (true) or answer again (false).
func (s *Server) SetSilent(silent bool) {
	s.mu.Lock()
	s.silent = silent
	s.mu.Unlock()
}

// SetTruncate makes every UDP answer empty with the TC bit set, so clients retry over TCP.
func (s *Server) SetTruncate(truncate bool) {
	s.mu.Lock()
	s.truncate = truncate
	s.mu.Unlock()
}

// Queries returns the questions asked so far.
func (s *Server) Queries() []Query {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return append([]Query(nil), s.queries...)
}

func (s *Server) handle(transport string) func(dns.ResponseWriter, *dns.Msg) {
	return func(w dns.ResponseWriter, req *dns.Msg) {
		if len(req.Question) != 1 {
			m := new(dns.Msg)
			m.SetRcode(req, dns.RcodeFormatError)
			w.WriteMsg(m)
			return
		}
		q := req.Question[0]
		s.mu.Lock()
		s.queries = append(s.queries, Query{Name: q.Name, Type: dns.TypeToString[q.Qtype], Transport: transport, RecursionDesired: req.RecursionDesired})
		silent, truncate := s.silent, s.truncate
		s.mu.Unlock()
		if silent {
			return
		}
		m := s.answer(req, q)
		if transport == "udp" {
			if truncate {
				m.Answer, m.Ns, m.Extra = nil, nil, nil
				m.Truncated = true
			}
			size := dns.MinMsgSize
			if opt := req.IsEdns0(); opt != nil {
				size = int(opt.UDPSize())
			}
			m.Truncate(size)
		}
		w.WriteMsg(m)
	}
}

func (s *Server) answer(req *dns.Msg, q dns.Question) *dns.Msg {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m := new(dns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = false
	name := strings.ToLower(q.Name)
	if rcode, ok := s.rcodes[name]; ok {
		m.Rcode = rcode
		return m
	}
	zone := s.zoneOf(name)
	if zone == "" {
		m.Rcode = dns.RcodeRefused
		return m
	}
	if cut := s.delegation(name, zone); cut != nil {
		m.Ns = cut
		m.Extra = s.glue(cut)
		return m
	}
	m.Authoritative = true
	rrs, exists := s.records[name]
	for _, rr := range rrs {
		if rr.Header().Rrtype == q.Qtype || (rr.Header().Rrtype == dns.TypeCNAME && q.Qtype != dns.TypeCNAME) {
			m.Answer = append(m.Answer, dns.Copy(rr))
		}
	}
	if len(m.Answer) > 0 {
		return m
	}
	if !exists || len(rrs) == 0 {
		if !s.hasDescendant(name) {
			m.Rcode = dns.RcodeNameError
		}
	}
	for _, rr := range s.records[zone] {
		if rr.Header().Rrtype == dns.TypeSOA {
			m.Ns = append(m.Ns, dns.Copy(rr))
		}
	}
	return m
}

// zoneOf returns the closest enclosing zone of name the server is authoritative for (the root
// zone included), "" when there is none.
func (s *Server) zoneOf(name string) string {
	for _, i := range append(dns.Split(name), len(name)-1) { // name, its parents, then the root
		if s.zones[name[i:]] {
			return name[i:]
		}
	}
	return ""
}

// delegation returns copies of the NS records of the zone cut between zone's apex (excluded)
// and name (included) nearest the apex, as the zone's data ends there; nil when name is not
// delegated.
func (s *Server) delegation(name, zone string) []dns.RR {
	var cut []dns.RR
	for _, i := range dns.Split(name) { // name, then its parents
		n := name[i:]
		if n == zone {
			break
		}
		var ns []dns.RR
		for _, rr := range s.records[n] {
			if rr.Header().Rrtype == dns.TypeNS {
				ns = append(ns, dns.Copy(rr))
			}
		}
		if ns != nil {
			cut = ns
		}
	}
	return cut
}

// glue returns copies of the A and AAAA records held for the targets of NS records.
func (s *Server) glue(ns []dns.RR) []dns.RR {
	var out []dns.RR
	for _, rr := range ns {
		for _, addr := range s.records[strings.ToLower(rr.(*dns.NS).Ns)] {
			if t := addr.Header().Rrtype; t == dns.TypeA || t == dns.TypeAAAA {
				out = append(out, dns.Copy(addr))
			}
		}
	}
	return out
}

// hasDescendant reports whether some record lives below name (an empty non-terminal
// answers NODATA, not NXDOMAIN).
func (s *Server) hasDescendant(name string) bool {
	suffix := "." + name
	if name == "." {
		suffix = "."
	}
	for owner, rrs := range s.records {
		if len(rrs) > 0 && owner != name && strings.HasSuffix(owner, suffix) {
			return true
		}
	}
	return false
}
