package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/id4me/id4me-registry/internal/testdb"
	"github.com/id4me/id4me-registry/internal/testenv"
	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
)

// knotd returns the path of Knot DNS's server. Without it the test is skipped, except in CI
// (CI=true), where .ci/run installs it and its absence is a failure.
func knotd(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("knotd"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/knotd"); err == nil {
		return "/usr/sbin/knotd"
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("knotd is not installed; .ci/run installs it with apt-get install knot")
	}
	t.Skip("knotd is not installed (apt-get install knot): skipping the tests against a real DNS server")
	return ""
}

// tsigKey is the key the agent's dynamic updates are signed with.
type tsigKey struct {
	name, algorithm, secret string
}

func newTSIGKey(t *testing.T) tsigKey {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return tsigKey{name: "agent-key.", algorithm: "hmac-sha256", secret: base64.StdEncoding.EncodeToString(b)}
}

// knotZone is example.test as the agent's DNS operator runs it: a Knot primary that accepts
// RFC 2136 updates signed with the TSIG key, and a Knot secondary that follows it by NOTIFY
// and IXFR, so a new record reaches the secondary a moment after the primary.
type knotZone struct {
	primary, secondary string // host:port
	key                tsigKey
}

const knotZoneFile = `$ORIGIN example.test.
@   60 IN SOA ns1 hostmaster 1 3600 600 86400 60
@   60 IN NS  ns1
@   60 IN NS  ns2
ns1 60 IN A   127.0.0.1
ns2 60 IN A   127.0.0.1
`

func startKnotZone(t *testing.T) *knotZone {
	t.Helper()
	bin := knotd(t)
	z := &knotZone{primary: freeDNSAddr(t), secondary: freeDNSAddr(t), key: newTSIGKey(t)}
	host, secondaryPort, _ := net.SplitHostPort(z.secondary)
	_, primaryPort, _ := net.SplitHostPort(z.primary)
	startKnot(t, bin, "primary", fmt.Sprintf(`server:
    listen: %s@%s
key:
  - id: %s
    algorithm: %s
    secret: %s
remote:
  - id: secondary
    address: %s@%s
acl:
  - id: update
    key: %s
    action: update
    update-type: TXT
  - id: transfer
    address: 127.0.0.1
    action: transfer
zone:
  - domain: example.test
    file: example.test.zone
    acl: [update, transfer]
    notify: secondary
`, host, primaryPort, z.key.name, z.key.algorithm, z.key.secret, host, secondaryPort, z.key.name), knotZoneFile)
	startKnot(t, bin, "secondary", fmt.Sprintf(`server:
    listen: %s@%s
remote:
  - id: primary
    address: %s@%s
acl:
  - id: notify
    address: 127.0.0.1
    action: notify
zone:
  - domain: example.test
    master: primary
    acl: notify
`, host, secondaryPort, host, primaryPort), "")
	// The secondary serves the zone once its first transfer is done.
	waitFor(t, 15*time.Second, "the secondary to load example.test", func() bool {
		r, err := query(z.secondary, "example.test.", dns.TypeSOA)
		return err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) == 1
	})
	return z
}

// startKnot runs knotd with conf (its zones, keys and ACLs; the rest is added) in a directory
// of its own, with zoneFile as example.test.zone when given, and waits until it answers.
func startKnot(t *testing.T, bin, role, conf, zoneFile string) {
	t.Helper()
	// A short directory: knotd's control socket lives there, and socket paths are short.
	dir, err := os.MkdirTemp("", "knot-"+role)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Mkdir(filepath.Join(dir, "db"), 0o700); err != nil {
		t.Fatal(err)
	}
	if zoneFile != "" {
		if err := os.WriteFile(filepath.Join(dir, "example.test.zone"), []byte(zoneFile), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	conf = strings.Replace(conf, "server:\n", "server:\n    rundir: "+dir+"\n", 1) + fmt.Sprintf(`database:
    storage: %s/db
template:
  - id: default
    storage: %s
    zonefile-sync: -1
log:
  - target: stderr
    any: info
`, dir, dir)
	confPath := filepath.Join(dir, "knot.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", confPath)
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("knotd %s log:\n%s", role, logs.String())
		}
	})
	addr := strings.Fields(strings.SplitN(conf, "listen: ", 2)[1])[0]
	addr = strings.Replace(addr, "@", ":", 1)
	waitFor(t, 15*time.Second, "knotd "+role+" to answer", func() bool {
		select {
		case <-exited:
			t.Fatalf("knotd %s exited:\n%s", role, logs.String())
		default:
		}
		_, err := query(addr, "example.test.", dns.TypeSOA)
		return err == nil
	})
}

// freeDNSAddr returns a loopback address whose port is free for both UDP and TCP.
func freeDNSAddr(t *testing.T) string {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := pc.LocalAddr().String()
		l, err := net.Listen("tcp", addr)
		pc.Close()
		if err == nil {
			l.Close()
			return addr
		}
	}
	t.Fatal("no free loopback port for UDP and TCP")
	return ""
}

// query asks addr one question, without recursion.
func query(addr, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = false
	c := dns.Client{Timeout: time.Second}
	r, _, err := c.Exchange(m, addr)
	return r, err
}

// txt returns the TXT values addr serves at name.
func txt(t *testing.T, addr, name string) []string {
	t.Helper()
	r, err := query(addr, name, dns.TypeTXT)
	if err != nil {
		t.Fatalf("TXT %s at %s: %v", name, addr, err)
	}
	var out []string
	for _, rr := range r.Answer {
		if rr, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(rr.Txt, ""))
		}
	}
	return out
}

// waitFor polls cond every 50ms until it holds, failing the test after limit.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting %v for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// assertNoChallengeRecord checks that neither nameserver serves a challenge record for name
// (the secondary once it has caught up with the primary).
func (z *knotZone) assertNoChallengeRecord(t *testing.T, name string) {
	t.Helper()
	owner := "_acme-challenge." + name + "."
	if v := txt(t, z.primary, owner); len(v) > 0 {
		t.Errorf("the primary still serves %s TXT %q", owner, v)
	}
	waitFor(t, 15*time.Second, "the secondary to drop "+owner, func() bool { return len(txt(t, z.secondary, owner)) == 0 })
}

// agentEnv is the environment of an agent's CLI: its registry and token, and the rfc2136
// provider configured the lego way for the zone.
func (z *knotZone) agentEnv(registry, token string) []string {
	return []string{
		"ID4ME_AGENT_REGISTRY=" + registry,
		"ID4ME_AGENT_TOKEN=" + token,
		"ID4ME_AGENT_PLAINTEXT=true",
		"ID4ME_AGENT_DNS_SERVER=" + z.primary + "," + z.secondary,
		"RFC2136_NAMESERVER=" + z.primary,
		"RFC2136_TSIG_KEY=" + z.key.name,
		"RFC2136_TSIG_SECRET=" + z.key.secret,
		"RFC2136_TSIG_ALGORITHM=" + z.key.algorithm + ".",
		"RFC2136_PROPAGATION_TIMEOUT=30",
	}
}

// agentRegistry is a `serve --dev` instance that checks challenges on the Knot servers, with
// the operator API.
type agentRegistry struct {
	addr  string
	admin registryv1.AdminServiceClient
	ctx   context.Context // carries the operator credential
}

func startAgentRegistry(t *testing.T, z *knotZone) *agentRegistry {
	t.Helper()
	db := testdb.SQLite(t)
	out, stderr, err := cli(t, nil, "admin", "bootstrap", "--db", db)
	if err != nil {
		t.Fatalf("bootstrap: %v\n%s", err, stderr)
	}
	in := startInstance(t, db, "--dns-server", z.primary, "--dns-server", z.secondary)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return &agentRegistry{
		addr:  in.Addr,
		admin: registryv1.NewAdminServiceClient(testenv.Connect(t, in.Addr)),
		ctx:   testenv.Bearer(ctx, strings.TrimSpace(out)),
	}
}

// newAgent creates an agent and returns its id and API token.
func (r *agentRegistry) newAgent(t *testing.T, name string) (string, string) {
	t.Helper()
	a := testenv.CreateAgent(t, r.admin, r.ctx, name, "https://"+name+".example", "https://"+name+".example/claims")
	return a.Agent.Id, a.Token
}

// sponsor returns the agent an identifier is registered to, "" when it is not registered.
func (r *agentRegistry) sponsor(t *testing.T, name string) string {
	t.Helper()
	i, err := r.admin.GetIdentifier(r.ctx, &registryv1.GetIdentifierRequest{Identifier: name})
	if status.Code(err) == codes.NotFound {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return i.AgentId
}

// jsonLine is a line of `agent register/transfer --json` output.
type jsonLine struct {
	Type        string `json:"type"`
	Step        string `json:"step"`
	Done        bool   `json:"done"`
	Error       string `json:"error"`
	Nameservers []struct {
		Nameserver string `json:"nameserver"`
		Serving    bool   `json:"serving"`
		Said       string `json:"said"`
	} `json:"nameservers"`
	Identifier     json.RawMessage `json:"identifier"`
	CredentialLink struct {
		URL string `json:"url"`
	} `json:"credentialLink"`
	Transfer struct {
		Status         string `json:"status"`
		GainingAgentID string `json:"gainingAgentId"`
	} `json:"transfer"`
	Problem struct {
		Reason string `json:"reason"`
	} `json:"problem"`
}

func parseJSONLines(t *testing.T, out string) []jsonLine {
	t.Helper()
	var lines []jsonLine
	for _, text := range strings.Split(strings.TrimSpace(out), "\n") {
		var l jsonLine
		if err := json.Unmarshal([]byte(text), &l); err != nil {
			t.Fatalf("output line %q is not JSON: %v", text, err)
		}
		lines = append(lines, l)
	}
	return lines
}

// stepsDone lists the steps that ended, "step!" for a failed one.
func stepsDone(lines []jsonLine) []string {
	var out []string
	for _, l := range lines {
		if l.Type == "progress" && l.Done {
			s := l.Step
			if l.Error != "" {
				s += "!"
			}
			out = append(out, s)
		}
	}
	return out
}

// update adds a TXT record on the Knot primary with a TSIG-signed RFC 2136 update.
func update(t *testing.T, z *knotZone, name, value string) {
	t.Helper()
	m := new(dns.Msg)
	m.SetUpdate("example.test.")
	m.Insert([]dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{value}}})
	m.SetTsig(z.key.name, dns.Fqdn(z.key.algorithm), 300, time.Now().Unix())
	c := dns.Client{TsigSecret: map[string]string{z.key.name: z.key.secret}, Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, z.primary)
	if err == nil && r.Rcode != dns.RcodeSuccess {
		err = errors.New(dns.RcodeToString[r.Rcode])
	}
	if err != nil {
		t.Fatalf("update %s TXT at %s: %v", name, z.primary, err)
	}
}
