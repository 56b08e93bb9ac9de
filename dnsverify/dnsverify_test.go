package dnsverify

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/id4me/id4me-registry/internal/devdns"
)

// challengeValue is what an agent publishes for a dns-01 challenge (base64url SHA-256).
const challengeValue = "LPsIwTo7o8BoG0-vjCyGQGBWSVIPxI-i_X336eUOQZo"

const challengeName = "_acme-challenge.alice.example."

// newVerifier builds a Verifier with test-sized timeouts unless cfg sets them.
func newVerifier(t *testing.T, cfg Config) *Verifier {
	t.Helper()
	if cfg.QueryTimeout == 0 {
		cfg.QueryTimeout = 500 * time.Millisecond
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	v, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return v
}

// newAuthority starts an authoritative devdns server on loopback holding records (zone-file
// lines; an SOA makes its owner a zone) and stops it at cleanup.
func newAuthority(t *testing.T, records ...string) *devdns.Server {
	t.Helper()
	s, err := devdns.Start("127.0.0.1:0")
	if err != nil {
		t.Fatalf("devdns: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Add(records...); err != nil {
		t.Fatalf("bad test record: %v", err)
	}
	return s
}

// pinned starts one authority per record set and returns them with their addresses.
func pinned(t *testing.T, recordSets ...[]string) ([]*devdns.Server, []string) {
	t.Helper()
	var fs []*devdns.Server
	var addrs []string
	for _, records := range recordSets {
		f := newAuthority(t, records...)
		fs = append(fs, f)
		addrs = append(addrs, f.Addr)
	}
	return fs, addrs
}

// soa returns a zone-file line making zone a zone.
func soa(zone string) string {
	return zone + " 300 IN SOA ns1." + zone + " hostmaster." + zone + " 1 7200 3600 1209600 300"
}

// alice returns the alice.example. zone with extra records.
func alice(extra ...string) []string {
	return append([]string{soa("alice.example.")}, extra...)
}

func txt(name, value string) string {
	return name + " 300 IN TXT \"" + value + "\""
}

func TestCheckTXT(t *testing.T) {
	validation := soa("validation.example.net.")
	tests := []struct {
		name       string
		servers    [][]string // records of each pinned server
		setup      func(t *testing.T, fs []*devdns.Server)
		quorum     int
		maxCNAMEs  int
		check      string
		wantReason string // empty: OK
		wantName   string
		wantZone   string
		wantDetail []string
	}{
		{
			name:     "two servers have it",
			servers:  [][]string{alice(txt(challengeName, challengeValue)), alice(txt(challengeName, challengeValue))},
			wantName: challengeName, wantZone: "alice.example.",
		},
		{
			name:     "name without trailing dot",
			servers:  [][]string{alice(txt(challengeName, challengeValue))},
			check:    "_acme-challenge.alice.example",
			wantName: challengeName, wantZone: "alice.example.",
		},
		{
			name:     "one of several values",
			servers:  [][]string{alice(txt(challengeName, "old"), txt(challengeName, challengeValue))},
			wantName: challengeName, wantZone: "alice.example.",
		},
		{
			name:     "multi-string TXT is concatenated",
			servers:  [][]string{alice(challengeName + ` 300 IN TXT "LPsIwTo7o8BoG0-vjCyGQ" "GBWSVIPxI-i_X336eUOQZo"`)},
			wantName: challengeName, wantZone: "alice.example.",
		},
		{
			name:       "record missing",
			servers:    [][]string{alice(), alice()},
			wantReason: ReasonRecordMissing,
			wantDetail: []string{"answered NXDOMAIN", "publish"},
		},
		{
			name:       "name exists without TXT",
			servers:    [][]string{alice(challengeName + " 300 IN A 192.0.2.1")},
			wantReason: ReasonRecordMissing,
			wantDetail: []string{"answered NOERROR with no TXT record"},
		},
		{
			name:       "wrong value",
			servers:    [][]string{alice(txt(challengeName, "abc"))},
			wantReason: ReasonRecordMismatch,
			wantDetail: []string{`answered NOERROR with TXT "abc"`, challengeValue},
		},
		{
			name:       "servers disagree, quorum 0",
			servers:    [][]string{alice(txt(challengeName, challengeValue)), alice(txt(challengeName, "stale"))},
			wantReason: ReasonServersDisagree,
			wantDetail: []string{`"stale"`, `"` + challengeValue + `"`},
		},
		{
			name:     "servers disagree, quorum 1",
			servers:  [][]string{alice(txt(challengeName, challengeValue)), alice(txt(challengeName, "stale"))},
			quorum:   1,
			wantName: challengeName, wantZone: "alice.example.",
		},
		{
			name:       "one server lacks it, quorum 0",
			servers:    [][]string{alice(txt(challengeName, challengeValue)), alice()},
			wantReason: ReasonServersDisagree,
			wantDetail: []string{"NXDOMAIN"},
		},
		{
			name:       "quorum above the number of servers is lowered",
			servers:    [][]string{alice(txt(challengeName, challengeValue))},
			quorum:     3,
			wantName:   challengeName,
			wantZone:   "alice.example.",
			wantReason: "",
		},
		{
			name: "CNAME delegates the challenge to another zone",
			servers: [][]string{
				alice(challengeName+" 300 IN CNAME alice.validation.example.net.", validation, txt("alice.validation.example.net.", challengeValue)),
				alice(challengeName+" 300 IN CNAME alice.validation.example.net.", validation, txt("alice.validation.example.net.", challengeValue)),
			},
			wantName: "alice.validation.example.net.", wantZone: "validation.example.net.",
		},
		{
			name: "CNAME chain within the limit",
			servers: [][]string{alice(
				challengeName+" 300 IN CNAME a.alice.example.",
				"a.alice.example. 300 IN CNAME b.validation.example.net.",
				validation, txt("b.validation.example.net.", challengeValue))},
			maxCNAMEs: 2,
			wantName:  "b.validation.example.net.", wantZone: "validation.example.net.",
		},
		{
			name: "CNAME to a name without TXT",
			servers: [][]string{alice(
				challengeName+" 300 IN CNAME alice.validation.example.net.", validation)},
			wantReason: ReasonRecordMissing,
			wantDetail: []string{"reached through a CNAME from " + challengeName},
		},
		{
			name: "CNAME loop",
			servers: [][]string{alice(
				challengeName+" 300 IN CNAME a.alice.example.",
				"a.alice.example. 300 IN CNAME "+challengeName)},
			wantReason: ReasonCNAMELoop,
			wantDetail: []string{challengeName + " → a.alice.example. → " + challengeName},
		},
		{
			name: "CNAME chain too long",
			servers: [][]string{alice(
				challengeName+" 300 IN CNAME a.alice.example.",
				"a.alice.example. 300 IN CNAME b.alice.example.",
				txt("b.alice.example.", challengeValue))},
			maxCNAMEs:  1,
			wantReason: ReasonCNAMEChainTooLong,
		},
		{
			name: "servers answer different CNAMEs",
			servers: [][]string{
				alice(challengeName+" 300 IN CNAME a.alice.example.", txt("a.alice.example.", challengeValue)),
				alice(challengeName+" 300 IN CNAME b.alice.example.", txt("b.alice.example.", challengeValue)),
			},
			wantReason: ReasonServersDisagree,
			wantDetail: []string{"different CNAMEs"},
		},
		{
			name:    "SERVFAIL from every server",
			servers: [][]string{alice(), alice()},
			setup: func(t *testing.T, fs []*devdns.Server) {
				for _, f := range fs {
					f.SetRcode(challengeName, dns.RcodeServerFailure)
				}
			},
			wantReason: ReasonError,
			wantDetail: []string{"answered SERVFAIL"},
		},
		{
			name:       "too many answers",
			servers:    [][]string{alice(manyTXT(challengeName, 70)...)},
			wantReason: ReasonResponseTooLarge,
			wantDetail: []string{"70 answers"},
		},
		{
			name:       "TXT value too long",
			servers:    [][]string{alice(challengeName + " 300 IN TXT " + strings.Repeat(`"`+strings.Repeat("a", 255)+`" `, 17))},
			wantReason: ReasonResponseTooLarge,
		},
		{
			name:       "no zone for the name",
			servers:    [][]string{{". 300 IN SOA a.root. b.root. 1 7200 3600 1209600 300"}},
			wantReason: ReasonZoneNotFound,
		},
		{
			name:       "servers refuse the zone",
			servers:    [][]string{{soa("other.example.")}},
			wantReason: ReasonZoneNotFound,
			wantDetail: []string{"REFUSED"},
		},
		{
			name:       "server only delegates the zone",
			servers:    [][]string{{soa("example."), "alice.example. 300 IN NS ns.elsewhere.example."}},
			wantReason: ReasonRecordMissing,
			wantDetail: []string{"referral to ns.elsewhere.example.", "not authoritative"},
		},
		{
			name:       "invalid name",
			servers:    [][]string{alice()},
			check:      "bad..name",
			wantReason: ReasonInvalidName,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, addrs := pinned(t, tt.servers...)
			if tt.setup != nil {
				tt.setup(t, fs)
			}
			v := newVerifier(t, Config{Servers: addrs, Quorum: tt.quorum, MaxCNAMEs: tt.maxCNAMEs})
			check := tt.check
			if check == "" {
				check = challengeName
			}
			res := v.CheckTXT(context.Background(), check, challengeValue)
			assertResult(t, res, tt.wantReason, tt.wantDetail...)
			if tt.wantReason == "" && (res.Name != tt.wantName || res.Zone != tt.wantZone) {
				t.Errorf("Name, Zone = %q, %q; want %q, %q", res.Name, res.Zone, tt.wantName, tt.wantZone)
			}
			if len(res.Queries) == 0 && tt.wantReason != ReasonInvalidName {
				t.Error("no queries recorded")
			}
		})
	}
}

func manyTXT(name string, n int) []string {
	var out []string
	for i := range n {
		out = append(out, txt(name, strings.Repeat("x", i+1)))
	}
	return out
}

// assertResult checks a Result's outcome and that its Detail mentions each of details.
func assertResult(t *testing.T, res Result, wantReason string, details ...string) {
	t.Helper()
	if wantReason == "" {
		if !res.OK || res.Problem != nil {
			t.Fatalf("CheckTXT failed: %+v", res.Problem)
		}
		return
	}
	if res.OK || res.Problem == nil {
		t.Fatalf("CheckTXT succeeded; want %s", wantReason)
	}
	t.Logf("%s: %s", res.Problem.Reason, res.Problem.Detail)
	if res.Problem.Reason != wantReason {
		t.Fatalf("Reason = %s (%s); want %s", res.Problem.Reason, res.Problem.Detail, wantReason)
	}
	for _, d := range details {
		if !strings.Contains(res.Problem.Detail, d) {
			t.Errorf("Detail %q does not mention %q", res.Problem.Detail, d)
		}
	}
}

func TestCheckTXTTruncatedUDPIsRetriedOverTCP(t *testing.T) {
	fs, addrs := pinned(t, alice(txt(challengeName, challengeValue)))
	fs[0].SetTruncate(true)
	v := newVerifier(t, Config{Servers: addrs})

	res := v.CheckTXT(context.Background(), challengeName, challengeValue)

	assertResult(t, res, "")
	var txtQueries []Query
	for _, q := range res.Queries {
		if q.Type == "TXT" {
			txtQueries = append(txtQueries, q)
		}
	}
	if len(txtQueries) != 2 || txtQueries[0].Transport != "udp" || !txtQueries[0].Truncated ||
		txtQueries[1].Transport != "tcp" || len(txtQueries[1].Answers) != 1 {
		t.Fatalf("TXT queries = %+v; want a truncated UDP one then a TCP one with the answer", txtQueries)
	}
	if !slices.ContainsFunc(fs[0].Queries(), func(q devdns.Query) bool { return q.Transport == "tcp" && q.Type == "TXT" }) {
		t.Error("the server got no TCP query")
	}
}

func TestCheckTXTUnansweredServers(t *testing.T) {
	tests := []struct {
		name         string
		silent       []bool // per server, in order
		quorum       int
		queryTimeout time.Duration
		timeout      time.Duration
		wantReason   string
		wantDetail   []string
	}{
		{name: "one of two silent, the other has it", silent: []bool{true, false}},
		{name: "second of two silent, the first has it", silent: []bool{false, true}},
		{
			name: "one of two silent, quorum 2", silent: []bool{false, true}, quorum: 2,
			wantReason: ReasonTimeout, wantDetail: []string{"only 1 of the 2", "timed out"},
		},
		{
			name: "every server silent", silent: []bool{true, true},
			wantReason: ReasonTimeout, wantDetail: []string{"timed out"},
		},
		{
			// The per-query timeout alone would wait a minute; the check's Timeout ends it.
			name: "check timeout bounds a long query timeout", silent: []bool{true},
			queryTimeout: time.Minute, timeout: 300 * time.Millisecond,
			wantReason: ReasonTimeout, wantDetail: []string{"ran out of time"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recordSets := make([][]string, len(tt.silent))
			for i := range recordSets {
				recordSets[i] = alice(txt(challengeName, challengeValue))
			}
			fs, addrs := pinned(t, recordSets...)
			for i, silent := range tt.silent {
				fs[i].SetSilent(silent)
			}
			qt := tt.queryTimeout
			if qt == 0 {
				qt = 200 * time.Millisecond
			}
			v := newVerifier(t, Config{Servers: addrs, Quorum: tt.quorum, QueryTimeout: qt, Timeout: tt.timeout})

			res := v.CheckTXT(context.Background(), challengeName, challengeValue)

			assertResult(t, res, tt.wantReason, tt.wantDetail...)
		})
	}
}

func TestCheckTXTUnreachableServers(t *testing.T) {
	tests := []struct {
		name       string
		withGood   bool
		wantReason string
	}{
		{name: "only server unreachable", wantReason: ReasonError},
		{name: "one unreachable, one has it", withGood: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addrs := []string{closedPort(t)}
			if tt.withGood {
				good := newAuthority(t, alice(txt(challengeName, challengeValue))...)
				addrs = append(addrs, good.Addr)
			}
			v := newVerifier(t, Config{Servers: addrs})

			assertResult(t, v.CheckTXT(context.Background(), challengeName, challengeValue), tt.wantReason)
		})
	}
}

// closedPort returns a loopback address nothing listens on (UDP queries to it are refused).
func closedPort(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}

func TestCheckTXTHonoursCallerContext(t *testing.T) {
	fs, addrs := pinned(t, alice(txt(challengeName, challengeValue)))
	fs[0].SetSilent(true)
	v := newVerifier(t, Config{Servers: addrs, QueryTimeout: time.Minute, Timeout: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	t.Cleanup(cancel)

	res := v.CheckTXT(ctx, challengeName, challengeValue)

	assertResult(t, res, ReasonTimeout)
}

func TestQueriesToAuthoritativeServersAreNotRecursive(t *testing.T) {
	fs, addrs := pinned(t,
		alice(txt(challengeName, challengeValue)),
		alice(txt(challengeName, challengeValue)))
	v := newVerifier(t, Config{Servers: addrs})

	assertResult(t, v.CheckTXT(context.Background(), challengeName, challengeValue), "")

	for _, f := range fs {
		seen := f.Queries()
		if !slices.ContainsFunc(seen, func(q devdns.Query) bool { return q.Type == "TXT" }) {
			t.Errorf("%s was not asked for TXT: %+v", f.Addr, seen)
		}
		for _, q := range seen {
			if q.RecursionDesired {
				t.Errorf("%s got %s %s with RD set", f.Addr, q.Name, q.Type)
			}
		}
	}
}

func TestCheckTXTDiscoversNameservers(t *testing.T) {
	auth := newAuthority(t, alice(txt(challengeName, challengeValue))...)
	_, authPort, err := net.SplitHostPort(auth.Addr)
	if err != nil {
		t.Fatal(err)
	}
	resolver := newAuthority(t, alice(
		"alice.example. 300 IN NS ns1.alice.example.",
		"alice.example. 300 IN NS ns2.alice.example.",
		"ns1.alice.example. 300 IN A 127.0.0.1",
		"ns2.alice.example. 300 IN A 127.0.0.1",
	)...)
	v := newVerifier(t, Config{Resolvers: []string{resolver.Addr}, NameserverPort: authPort})

	res := v.CheckTXT(context.Background(), challengeName, challengeValue)

	assertResult(t, res, "")
	if res.Zone != "alice.example." {
		t.Errorf("Zone = %q; want alice.example.", res.Zone)
	}
	var asked []string
	for _, q := range res.Queries {
		if q.Type == "TXT" {
			asked = append(asked, q.Nameserver+" "+q.Address)
		}
	}
	wantAsked := []string{"ns1.alice.example. " + auth.Addr, "ns2.alice.example. " + auth.Addr}
	if !slices.Equal(asked, wantAsked) {
		t.Errorf("TXT asked of %q; want %q", asked, wantAsked)
	}
	for _, q := range resolver.Queries() {
		if !q.RecursionDesired || q.Type == "TXT" {
			t.Errorf("resolver got %+v; want only recursive SOA/NS/A/AAAA queries", q)
		}
	}
	for _, q := range auth.Queries() {
		if q.RecursionDesired || q.Type != "TXT" {
			t.Errorf("authoritative server got %+v; want only non-recursive TXT queries", q)
		}
	}
}

func TestCheckTXTDiscoveryFailures(t *testing.T) {
	tests := []struct {
		name       string
		resolver   []string
		wantReason string
		wantDetail []string
	}{
		{name: "zone without NS records", resolver: alice(), wantReason: ReasonZoneNotFound, wantDetail: []string{"no NS records"}},
		{
			name:       "nameserver without address",
			resolver:   alice("alice.example. 300 IN NS ns1.alice.example."),
			wantReason: ReasonError,
			wantDetail: []string{"ns ns1.alice.example. could not be reached (no A or AAAA address"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resolver := newAuthority(t, tt.resolver...)
			v := newVerifier(t, Config{Resolvers: []string{resolver.Addr}})

			assertResult(t, v.CheckTXT(context.Background(), challengeName, challengeValue), tt.wantReason, tt.wantDetail...)
		})
	}
}

func TestOnQueryObservesEveryExchange(t *testing.T) {
	_, addrs := pinned(t, alice(txt(challengeName, challengeValue)), alice(txt(challengeName, challengeValue)))
	var mu sync.Mutex
	var observed []Query
	v := newVerifier(t, Config{Servers: addrs, OnQuery: func(q Query) {
		mu.Lock()
		defer mu.Unlock()
		observed = append(observed, q)
	}})

	res := v.CheckTXT(context.Background(), challengeName, challengeValue)

	mu.Lock()
	defer mu.Unlock()
	if len(observed) != len(res.Queries) || len(observed) == 0 {
		t.Fatalf("observed %d queries; Result has %d", len(observed), len(res.Queries))
	}
}

func TestLookupTXT(t *testing.T) {
	t.Run("values per server", func(t *testing.T) {
		_, addrs := pinned(t,
			alice(txt(challengeName, "a"), challengeName+` 300 IN TXT "b" "c"`),
			alice(challengeName+` 300 IN TXT "q\"uote\\"`))
		v := newVerifier(t, Config{Servers: addrs})

		ans, err := v.LookupTXT(context.Background(), challengeName)
		if err != nil {
			t.Fatalf("LookupTXT: %v", err)
		}
		if len(ans.Servers) != 2 {
			t.Fatalf("Servers = %+v; want 2", ans.Servers)
		}
		got0, got1 := slices.Sorted(slices.Values(ans.Servers[0].Values)), ans.Servers[1].Values
		if !slices.Equal(got0, []string{"a", "bc"}) || !slices.Equal(got1, []string{`q"uote\`}) {
			t.Errorf("Values = %q, %q", got0, got1)
		}
		for _, s := range ans.Servers {
			if !s.Answered || s.Rcode != "NOERROR" || s.Nameserver != s.Address {
				t.Errorf("server answer %+v", s)
			}
		}
		if ans.Zone != "alice.example." || len(ans.Queries) == 0 {
			t.Errorf("Zone = %q, %d queries", ans.Zone, len(ans.Queries))
		}
	})
	t.Run("no server answers", func(t *testing.T) {
		fs, addrs := pinned(t, alice())
		fs[0].SetSilent(true)
		v := newVerifier(t, Config{Servers: addrs, QueryTimeout: 100 * time.Millisecond})

		_, err := v.LookupTXT(context.Background(), challengeName)

		var p *Problem
		if !errors.As(err, &p) || p.Reason != ReasonTimeout {
			t.Fatalf("err = %v; want a %s Problem", err, ReasonTimeout)
		}
	})
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"server without port", Config{Servers: []string{"127.0.0.1"}}},
		{"resolver without port", Config{Resolvers: []string{"localhost"}}},
		{"bad nameserver port", Config{Servers: []string{"127.0.0.1:53"}, NameserverPort: "dns"}},
		{"negative quorum", Config{Servers: []string{"127.0.0.1:53"}, Quorum: -1}},
		{"tiny UDP size", Config{Servers: []string{"127.0.0.1:53"}, UDPSize: 100}},
		{"negative timeout", Config{Servers: []string{"127.0.0.1:53"}, Timeout: -time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("New = %v; want ErrInvalidConfig", err)
			}
		})
	}
}

func TestUnescapeTXT(t *testing.T) {
	tests := map[string]string{
		`plain`:       "plain",
		`q\"uote`:     `q"uote`,
		`back\\slash`: `back\slash`,
		`nul\000end`:  "nul\x00end",
		`hi\255`:      "hi\xff",
		`trailing\`:   `trailing\`,
		`\256`:        "256",
	}
	for in, want := range tests {
		if got := unescapeTXT(in); got != want {
			t.Errorf("unescapeTXT(%q) = %q; want %q", in, got, want)
		}
	}
}
