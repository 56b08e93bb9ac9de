package devdns

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// start serves on a free loopback port until the test ends.
func start(t *testing.T) *Server {
	t.Helper()
	s, err := Start("127.0.0.1:0")
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// exchange asks s one question over transport ("udp" or "tcp"), with an EDNS0 buffer of
// udpSize bytes when udpSize is not 0.
func exchange(t *testing.T, s *Server, transport, name string, qtype, udpSize uint16) (*dns.Msg, error) {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = false
	if udpSize != 0 {
		m.SetEdns0(udpSize, false)
	}
	c := dns.Client{Net: transport, Timeout: 300 * time.Millisecond}
	resp, _, err := c.Exchange(m, s.Addr)
	return resp, err
}

// ask is exchange over UDP without EDNS0, failing the test when there is no response.
func ask(t *testing.T, s *Server, name string, qtype uint16) *dns.Msg {
	t.Helper()
	resp, err := exchange(t, s, "udp", name, qtype, 0)
	if err != nil {
		t.Fatalf("%s %s: %v", name, dns.TypeToString[qtype], err)
	}
	return resp
}

// summary is what a test expects of a response.
type summary struct {
	rcode     int
	aa        bool
	answer    []string // the answer section, one "TYPE data" per record
	authority []string // the authority section, likewise
	extra     []string // the additional section, likewise
}

func summarize(m *dns.Msg) summary {
	brief := func(rrs []dns.RR) []string {
		var out []string
		for _, rr := range rrs {
			h := rr.Header()
			out = append(out, dns.TypeToString[h.Rrtype]+" "+strings.TrimPrefix(rr.String(), h.String()))
		}
		return out
	}
	return summary{rcode: m.Rcode, aa: m.Authoritative, answer: brief(m.Answer), authority: brief(m.Ns), extra: brief(m.Extra)}
}

func (s summary) equal(o summary) bool {
	return s.rcode == o.rcode && s.aa == o.aa &&
		slices.Equal(s.answer, o.answer) && slices.Equal(s.authority, o.authority) && slices.Equal(s.extra, o.extra)
}

const exampleSOA = "SOA ns1.example. hostmaster.example. 1 3600 600 86400 60"

func TestAnswers(t *testing.T) {
	s := start(t)
	s.AddZone("Example.")
	s.SetTXT("_acme-challenge.alice.example", "value")
	if err := s.Add(
		"www.example. 60 IN A 192.0.2.1",
		"alias.example. 60 IN CNAME www.example.",
		"a.b.c.example. 60 IN A 192.0.2.2",
		"cut.example. 60 IN NS ns.elsewhere.test.",
		"cut.example. 60 IN NS ns.cut.example.",
		"ns.cut.example. 60 IN A 192.0.2.53",
		"sub.cut.example. 60 IN NS ns.sub.test.", // occluded by the cut above it
		"other.test. 60 IN SOA ns.other.test. hostmaster.other.test. 1 3600 600 86400 60",
		"old.other.test. 60 IN TXT \"a\"",
		"old.other.test. 60 IN A 192.0.2.3",
	); err != nil {
		t.Fatalf("Add: %v", err)
	}
	s.Remove("old.other.test.", dns.TypeTXT)
	noData := summary{aa: true, authority: []string{exampleSOA}}
	tests := []struct {
		name  string
		qname string
		qtype uint16
		want  summary
	}{
		{"TXT", "_acme-challenge.alice.example.", dns.TypeTXT, summary{aa: true, answer: []string{`TXT "value"`}}},
		{"names are case-insensitive", "WWW.example.", dns.TypeA, summary{aa: true, answer: []string{"A 192.0.2.1"}}},
		{"AddZone serves SOA, NS and the nameserver's address", "example.", dns.TypeNS, summary{aa: true, answer: []string{"NS ns1.example."}}},
		{"nameserver address", "ns1.example.", dns.TypeA, summary{aa: true, answer: []string{"A 127.0.0.1"}}},
		{"a CNAME answers other types, unchased", "alias.example.", dns.TypeTXT, summary{aa: true, answer: []string{"CNAME www.example."}}},
		{"NXDOMAIN", "nobody.example.", dns.TypeTXT, summary{rcode: dns.RcodeNameError, aa: true, authority: []string{exampleSOA}}},
		{"NODATA: the name has other types", "www.example.", dns.TypeTXT, noData},
		{"NODATA: empty non-terminal", "b.c.example.", dns.TypeA, noData},
		{"NODATA: empty non-terminal left by SetTXT", "alice.example.", dns.TypeTXT, noData},
		{"outside every zone", "example.org.", dns.TypeA, summary{rcode: dns.RcodeRefused}},
		{
			"referral at a zone cut, with glue", "cut.example.", dns.TypeA,
			summary{authority: []string{"NS ns.elsewhere.test.", "NS ns.cut.example."}, extra: []string{"A 192.0.2.53"}},
		},
		{
			"referral below a zone cut, to the cut nearest the apex", "deep.sub.cut.example.", dns.TypeTXT,
			summary{authority: []string{"NS ns.elsewhere.test.", "NS ns.cut.example."}, extra: []string{"A 192.0.2.53"}},
		},
		{"an SOA added makes a zone", "other.test.", dns.TypeSOA, summary{aa: true, answer: []string{"SOA ns.other.test. hostmaster.other.test. 1 3600 600 86400 60"}}},
		{"Remove drops one type", "old.other.test.", dns.TypeTXT, summary{aa: true, authority: []string{"SOA ns.other.test. hostmaster.other.test. 1 3600 600 86400 60"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := summarize(ask(t, s, tt.qname, tt.qtype)); !got.equal(tt.want) {
				t.Errorf("%s %s = %+v; want %+v", tt.qname, dns.TypeToString[tt.qtype], got, tt.want)
			}
		})
	}
}

func TestSetTXTSplitsLongValues(t *testing.T) {
	s := start(t)
	s.AddZone("example.")
	long := strings.Repeat("x", 300)
	s.SetTXT("t.example.", "old")
	s.SetTXT("t.example.", long)

	resp, err := exchange(t, s, "tcp", "t.example.", dns.TypeTXT, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Answer) != 1 || !slices.Equal(resp.Answer[0].(*dns.TXT).Txt, []string{long[:255], long[255:]}) {
		t.Errorf("Answer = %v; want one TXT of a 255- and a 45-byte string", resp.Answer)
	}
}

func TestRootZone(t *testing.T) {
	s := start(t)
	if err := s.Add(". 60 IN SOA a.root. b.root. 1 3600 600 86400 60", "tld. 60 IN NS ns.tld."); err != nil {
		t.Fatal(err)
	}
	if got := ask(t, s, "nowhere.", dns.TypeA); got.Rcode != dns.RcodeNameError || !got.Authoritative || len(got.Ns) != 1 {
		t.Errorf("nowhere. = %v; want an authoritative NXDOMAIN with the root SOA", got)
	}
	if got := ask(t, s, "x.tld.", dns.TypeA); got.Authoritative || len(got.Ns) != 1 || got.Ns[0].(*dns.NS).Ns != "ns.tld." {
		t.Errorf("x.tld. = %v; want a referral to ns.tld.", got)
	}
}

func TestSetRcode(t *testing.T) {
	s := start(t)
	s.AddZone("example.")
	s.SetTXT("t.example.", "v")
	s.SetRcode("T.example", dns.RcodeServerFailure)
	s.SetRcode("outside.test.", dns.RcodeNotAuth)

	for _, transport := range []string{"udp", "tcp"} {
		resp, err := exchange(t, s, transport, "t.example.", dns.TypeTXT, 1232)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Rcode != dns.RcodeServerFailure || resp.Authoritative || len(resp.Answer)+len(resp.Ns) != 0 {
			t.Errorf("over %s: %v; want a bare SERVFAIL", transport, resp)
		}
	}
	if got := ask(t, s, "outside.test.", dns.TypeA); got.Rcode != dns.RcodeNotAuth {
		t.Errorf("outside.test. rcode = %s; want NOTAUTH", dns.RcodeToString[got.Rcode])
	}
	if got := ask(t, s, "x.t.example.", dns.TypeTXT); got.Rcode != dns.RcodeNameError {
		t.Errorf("a name below answered %s; want NXDOMAIN (the override is for the name only)", dns.RcodeToString[got.Rcode])
	}

	s.SetRcode("t.example.", -1)
	if got := ask(t, s, "t.example.", dns.TypeTXT); got.Rcode != dns.RcodeSuccess || len(got.Answer) != 1 {
		t.Errorf("after clearing: %v; want the TXT answer", got)
	}
}

func TestTruncation(t *testing.T) {
	s := start(t)
	s.AddZone("example.")
	s.SetTXT("small.example.", "v")
	var values []string
	for i := range 20 {
		values = append(values, strings.Repeat("x", 40+i))
	}
	s.SetTXT("big.example.", values...) // about 1.1 kB

	t.Run("by size", func(t *testing.T) {
		tests := []struct {
			transport     string
			udpSize       uint16
			wantTruncated bool
		}{
			{"udp", 0, true},     // 512 bytes without EDNS0
			{"udp", 600, true},   // too small a buffer
			{"udp", 4096, false}, // large enough
			{"tcp", 0, false},    // TCP is never truncated
			{"tcp", 512, false},  // whatever the buffer
		}
		for _, tt := range tests {
			resp, err := exchange(t, s, tt.transport, "big.example.", dns.TypeTXT, tt.udpSize)
			if err != nil {
				t.Fatalf("%s, EDNS0 %d: %v", tt.transport, tt.udpSize, err)
			}
			if resp.Truncated != tt.wantTruncated || (!tt.wantTruncated && len(resp.Answer) != len(values)) {
				t.Errorf("%s, EDNS0 %d: TC=%v with %d answers; want TC=%v", tt.transport, tt.udpSize, resp.Truncated, len(resp.Answer), tt.wantTruncated)
			}
		}
	})

	t.Run("forced", func(t *testing.T) {
		s.SetTruncate(true)
		defer s.SetTruncate(false)
		udp, err := exchange(t, s, "udp", "small.example.", dns.TypeTXT, 1232)
		if err != nil {
			t.Fatal(err)
		}
		if !udp.Truncated || len(udp.Answer)+len(udp.Ns)+len(udp.Extra) != 0 {
			t.Errorf("UDP answer %v; want an empty one with TC", udp)
		}
		tcp, err := exchange(t, s, "tcp", "small.example.", dns.TypeTXT, 1232)
		if err != nil {
			t.Fatal(err)
		}
		if tcp.Truncated || len(tcp.Answer) != 1 {
			t.Errorf("TCP answer %v; want the TXT record", tcp)
		}
	})
}

func TestSilent(t *testing.T) {
	s := start(t)
	s.AddZone("example.")
	s.SetSilent(true)
	_, err := exchange(t, s, "udp", "example.", dns.TypeSOA, 0)
	var netErr net.Error
	if !errors.As(err, &netErr) || !netErr.Timeout() {
		t.Fatalf("silent server: err = %v; want a timeout", err)
	}
	s.SetSilent(false)
	if got := ask(t, s, "example.", dns.TypeSOA); len(got.Answer) != 1 {
		t.Errorf("after SetSilent(false): %v; want the SOA", got)
	}
	if q := s.Queries(); len(q) != 2 {
		t.Errorf("Queries = %+v; want both questions, the unanswered one too", q)
	}
}

func TestQueries(t *testing.T) {
	s := start(t)
	s.AddZone("example.")
	m := new(dns.Msg)
	m.SetQuestion("Www.example.", dns.TypeAAAA) // RD set
	if _, _, err := (&dns.Client{Net: "tcp"}).Exchange(m, s.Addr); err != nil {
		t.Fatal(err)
	}
	ask(t, s, "example.", dns.TypeTXT)

	want := []Query{
		{Name: "Www.example.", Type: "AAAA", Transport: "tcp", RecursionDesired: true},
		{Name: "example.", Type: "TXT", Transport: "udp"},
	}
	if got := s.Queries(); !slices.Equal(got, want) {
		t.Errorf("Queries = %+v; want %+v", got, want)
	}
}

func TestLoadZoneFile(t *testing.T) {
	s := start(t)
	s.AddZone("before.test.")
	path := filepath.Join(t.TempDir(), "zone")
	zone := `$ORIGIN example.
$TTL 60
@       IN SOA ns1 hostmaster 1 3600 600 86400 60
        IN NS  ns1
ns1     IN A   127.0.0.1
_openid.alice IN TXT "v=OID1;iss=id.example"
`
	if err := os.WriteFile(path, []byte(zone), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.LoadZoneFile(path); err != nil {
		t.Fatalf("LoadZoneFile: %v", err)
	}

	if got := ask(t, s, "_openid.alice.example.", dns.TypeTXT); len(got.Answer) != 1 || !got.Authoritative {
		t.Errorf("_openid TXT = %v; want the record from the file", got)
	}
	if got := ask(t, s, "bob.example.", dns.TypeTXT); got.Rcode != dns.RcodeNameError {
		t.Errorf("bob.example. answered %s; want NXDOMAIN", dns.RcodeToString[got.Rcode])
	}
	if got := ask(t, s, "before.test.", dns.TypeSOA); got.Rcode != dns.RcodeRefused {
		t.Errorf("a zone added before answered %s; want REFUSED (the file replaces everything)", dns.RcodeToString[got.Rcode])
	}

	if err := os.WriteFile(path, []byte("@ IN SOA broken"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.LoadZoneFile(path); err == nil {
		t.Error("LoadZoneFile accepted a broken file")
	}
	if got := ask(t, s, "_openid.alice.example.", dns.TypeTXT); len(got.Answer) != 1 {
		t.Errorf("after a failed load: %v; want the zone loaded before", got)
	}
}

func TestAddRejectsBadRecords(t *testing.T) {
	s := start(t)
	if err := s.Add("example. 60 IN A not-an-address"); err == nil {
		t.Error("Add accepted a bad record")
	}
}
