package main_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/miekg/dns"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/id4me/id4me-registry/internal/testdb"
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
		addr:  in.addr,
		admin: registryv1.NewAdminServiceClient(connect(t, in.addr)),
		ctx:   bearer(ctx, strings.TrimSpace(out)),
	}
}

// newAgent creates an agent and returns its id and API token.
func (r *agentRegistry) newAgent(t *testing.T, name string) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwk, err := jose.JSONWebKey{Key: &key.PublicKey}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	a, err := r.admin.CreateAgent(r.ctx, &registryv1.CreateAgentRequest{
		DisplayName: name, ClaimsEndpoint: "https://" + name + ".example/claims", Issuer: "https://" + name + ".example", AccountKeyJwk: string(jwk),
	})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := r.admin.CreateAgentToken(r.ctx, &registryv1.CreateAgentTokenRequest{AgentId: a.Id, Description: "cli test"})
	if err != nil {
		t.Fatal(err)
	}
	return a.Id, tok.Secret
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

// TestAgentCLIRegisterAndTransferWithKnot registers an identifier through the CLI with the
// rfc2136 provider against a real Knot primary and secondary (TSIG-signed dynamic updates),
// then transfers it to a second agent the same way; the challenge records are gone from both
// servers afterwards. The first agent sees the transfer in its events; the second lists and
// deletes the identifier.
func TestAgentCLIRegisterAndTransferWithKnot(t *testing.T) {
	z := startKnotZone(t)
	r := startAgentRegistry(t, z)
	alpha, alphaToken := r.newAgent(t, "alpha")
	beta, betaToken := r.newAgent(t, "beta")

	out, stderr, err := cli(t, z.agentEnv(r.addr, alphaToken), "agent", "register", "alice.example.test",
		"--dns-provider", "rfc2136", "--polling-interval", "100ms", "--json")
	if err != nil {
		t.Fatalf("agent register: %v\n%s\n%s", err, out, stderr)
	}
	lines := parseJSONLines(t, out)
	if got, want := stepsDone(lines), []string{"challenge", "publish", "wait", "verify", "register", "cleanup"}; !slices.Equal(got, want) {
		t.Errorf("steps %v, want %v\n%s", got, want, out)
	}
	var lastLook jsonLine
	for _, l := range lines {
		if l.Step == "wait" && len(l.Nameservers) > 0 {
			lastLook = l
		}
	}
	if len(lastLook.Nameservers) != 2 || !lastLook.Nameservers[0].Serving || !lastLook.Nameservers[1].Serving {
		t.Errorf("the wait ended without both Knot servers serving the record: %+v", lastLook.Nameservers)
	}
	last := lines[len(lines)-1]
	var registered registryv1.Identifier
	if err := json.Unmarshal(last.Identifier, &struct {
		Name    *string `json:"name"`
		AgentID *string `json:"agentId"`
	}{&registered.Name, &registered.AgentId}); err != nil || last.Type != "result" {
		t.Fatalf("last line %+v: %v", last, err)
	}
	if registered.Name != "alice.example.test" || registered.AgentId != alpha {
		t.Errorf("registered %q to %q, want alice.example.test to %s", registered.Name, registered.AgentId, alpha)
	}
	if !strings.HasPrefix(last.CredentialLink.URL, "https://") {
		t.Errorf("the result has no credential link for the holder: %+v", last.CredentialLink)
	}
	z.assertNoChallengeRecord(t, "alice.example.test")

	out, stderr, err = cli(t, z.agentEnv(r.addr, betaToken), "agent", "transfer", "alice.example.test",
		"--dns-provider", "rfc2136", "--polling-interval", "100ms")
	if err != nil {
		t.Fatalf("agent transfer: %v\n%s\n%s", err, out, stderr)
	}
	t.Logf("agent transfer:\n%s", out)
	for _, want := range []string{
		"publishing the TXT record through rfc2136", "waiting for the nameservers", "all 2 nameservers serve the record",
		"the registry found the record", "requesting the transfer of alice.example.test", "removing the TXT record",
		fmt.Sprintf("transferred alice.example.test from agent %s to agent %s", alpha, beta),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("transfer output lacks %q:\n%s", want, out)
		}
	}
	z.assertNoChallengeRecord(t, "alice.example.test")
	if got := r.sponsor(t, "alice.example.test"); got != beta {
		t.Errorf("alice.example.test is sponsored by %q, want %s", got, beta)
	}

	// The losing agent's event stream tells of the transfer.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	events := exec.CommandContext(ctx, binary, "agent", "events", "--json", "--ack")
	events.Env = append(os.Environ(), z.agentEnv(r.addr, alphaToken)...)
	pipe, err := events.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := events.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(pipe)
	var seen []string
	for sc.Scan() {
		var ev struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("event line %q: %v", sc.Text(), err)
		}
		seen = append(seen, ev.Type)
		if ev.Type == "TYPE_TRANSFER_COMPLETED_OUT" {
			break
		}
	}
	events.Process.Signal(os.Interrupt)
	go func() {
		for sc.Scan() {
		}
	}()
	if err := events.Wait(); err != nil {
		t.Errorf("agent events ended with %v after an interrupt", err)
	}
	if !slices.Contains(seen, "TYPE_TRANSFER_COMPLETED_OUT") {
		t.Errorf("agent events printed %v, no completed transfer", seen)
	}

	out, _, err = cli(t, z.agentEnv(r.addr, betaToken), "agent", "list")
	if err != nil || !strings.HasPrefix(out, "alice.example.test\tOK\thttps://beta.example/claims") {
		t.Errorf("agent list for the new sponsor: %q, %v", out, err)
	}
	out, stderr, err = cli(t, z.agentEnv(r.addr, alphaToken), "agent", "list", "--json")
	if err != nil || out != "" {
		t.Errorf("agent list for the old sponsor: %q, %v\n%s", out, err, stderr)
	}
	out, stderr, err = cli(t, z.agentEnv(r.addr, betaToken), "agent", "delete", "alice.example.test")
	if err != nil || !strings.Contains(out, "alice.example.test is pending delete") {
		t.Errorf("agent delete: %q, %v\n%s", out, err, stderr)
	}
}

// TestAgentCLIFailuresWithKnot: each failure names the step and the cause, registers or
// transfers nothing, leaves no challenge record behind, and ends by itself.
func TestAgentCLIFailuresWithKnot(t *testing.T) {
	z := startKnotZone(t)
	r := startAgentRegistry(t, z)
	alpha, alphaToken := r.newAgent(t, "alpha")
	_, betaToken := r.newAgent(t, "beta")
	closed := freeDNSAddr(t) // nothing listens there

	// run runs the CLI with a bound it must end well within by itself.
	run := func(t *testing.T, env []string, args ...string) (string, string, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, binary, args...)
		cmd.Env = append(os.Environ(), env...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if ctx.Err() != nil {
			t.Fatalf("%v did not end by itself:\n%s\n%s", args, stdout.String(), stderr.String())
		}
		return stdout.String(), stderr.String(), err
	}

	t.Run("wrong TSIG key", func(t *testing.T) {
		wrong := newTSIGKey(t)
		env := append(z.agentEnv(r.addr, alphaToken), "RFC2136_TSIG_SECRET="+wrong.secret)
		out, stderr, err := run(t, env, "agent", "register", "bad-key.example.test", "--dns-provider", "rfc2136")
		if err == nil {
			t.Fatalf("register with a wrong TSIG key succeeded:\n%s", out)
		}
		if !strings.Contains(stderr, "publishing the TXT record: dnsupdate: failed to insert: DNS update failed: dns: bad authentication") {
			t.Errorf("stderr %q; want the publish step and the TSIG refusal", stderr)
		}
		if got := r.sponsor(t, "bad-key.example.test"); got != "" {
			t.Errorf("bad-key.example.test registered to %s", got)
		}
		z.assertNoChallengeRecord(t, "bad-key.example.test")
	})

	t.Run("registry refuses after publishing", func(t *testing.T) {
		out, stderr, err := run(t, z.agentEnv(r.addr, alphaToken), "agent", "register", "locked.example.test",
			"--dns-provider", "rfc2136", "--polling-interval", "100ms")
		if err != nil {
			t.Fatalf("register: %v\n%s\n%s", err, out, stderr)
		}
		if _, err := r.admin.SetServerStatus(r.ctx, &registryv1.SetServerStatusRequest{
			Identifier: "locked.example.test", Reason: "test",
			Statuses: []registryv1.IdentifierStatus{registryv1.IdentifierStatus_IDENTIFIER_STATUS_SERVER_TRANSFER_PROHIBITED},
		}); err != nil {
			t.Fatal(err)
		}
		out, stderr, err = run(t, z.agentEnv(r.addr, betaToken), "agent", "transfer", "locked.example.test",
			"--dns-provider", "rfc2136", "--polling-interval", "100ms", "--json")
		if err == nil {
			t.Fatalf("transfer of a transfer-prohibited identifier succeeded:\n%s", out)
		}
		lines := parseJSONLines(t, out)
		if got, want := stepsDone(lines), []string{"challenge", "publish", "wait", "verify", "transfer!", "cleanup"}; !slices.Equal(got, want) {
			t.Errorf("steps %v, want %v", got, want)
		}
		last := lines[len(lines)-1]
		if last.Type != "error" || last.Step != "transfer" || last.Problem.Reason != "IDENTIFIER_TRANSFER_PROHIBITED" {
			t.Errorf("last line %+v; want the transfer step's error with the registry's reason", last)
		}
		if !strings.Contains(stderr, "requesting the transfer: identifier locked.example.test has status") {
			t.Errorf("stderr %q does not say which step failed and why", stderr)
		}
		z.assertNoChallengeRecord(t, "locked.example.test")
		if got := r.sponsor(t, "locked.example.test"); got != alpha {
			t.Errorf("locked.example.test is sponsored by %q, want %s", got, alpha)
		}
	})

	t.Run("update server unreachable", func(t *testing.T) {
		env := append(z.agentEnv(r.addr, alphaToken), "RFC2136_NAMESERVER="+closed, "RFC2136_DNS_TIMEOUT=2")
		_, stderr, err := run(t, env, "agent", "register", "unreachable.example.test", "--dns-provider", "rfc2136")
		if err == nil || !strings.Contains(stderr, "publishing the TXT record: dnsupdate:") || !strings.Contains(stderr, closed) {
			t.Errorf("register: %v, stderr %q; want the publish step naming %s", err, stderr, closed)
		}
		if got := r.sponsor(t, "unreachable.example.test"); got != "" {
			t.Errorf("unreachable.example.test registered to %s", got)
		}
	})

	t.Run("nameserver unreachable while waiting", func(t *testing.T) {
		env := append(z.agentEnv(r.addr, alphaToken), "ID4ME_AGENT_DNS_SERVER="+z.primary+","+closed)
		_, stderr, err := run(t, env, "agent", "register", "silent.example.test", "--dns-provider", "rfc2136",
			"--propagation-timeout", "1s", "--polling-interval", "100ms")
		if err == nil || !strings.Contains(stderr, "waiting for the nameservers: not every authoritative nameserver serves the record within 1s") ||
			!strings.Contains(stderr, closed) {
			t.Errorf("register: %v, stderr %q; want a bounded wait naming %s", err, stderr, closed)
		}
		z.assertNoChallengeRecord(t, "silent.example.test")
		if got := r.sponsor(t, "silent.example.test"); got != "" {
			t.Errorf("silent.example.test registered to %s", got)
		}
	})
}

// TestAgentCLIUsage: the agent commands refuse what they cannot do, saying why.
func TestAgentCLIUsage(t *testing.T) {
	env := []string{"ID4ME_AGENT_TOKEN=x", "ID4ME_AGENT_PLAINTEXT=true"}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"agent"}, "needs a command"},
		{[]string{"agent", "frobnicate"}, "unknown agent command"},
		{[]string{"agent", "register"}, "NAME is required"},
		{[]string{"agent", "register", "a.example", "b.example"}, `unexpected argument "b.example"`},
		{[]string{"agent", "register", "a.example"}, "--dns-provider is required: one of exec, httpreq, manual, rfc2136"},
		{[]string{"agent", "register", "a.example", "--dns-provider", "route53"}, `unknown --dns-provider "route53"`},
		{[]string{"agent", "transfer", "a.example", "--dns-provider", "exec"}, "EXEC_PATH"},
		{[]string{"agent", "list", "--registry", "registry.example:443"}, "loopback"},
	} {
		_, stderr, err := cli(t, env, tt.args...)
		if err == nil || !strings.Contains(stderr, tt.want) {
			t.Errorf("%v: %v, stderr %q; want a refusal saying %q", tt.args, err, stderr, tt.want)
		}
	}
	if _, stderr, err := cli(t, []string{"ID4ME_AGENT_TOKEN="}, "agent", "list"); err == nil || !strings.Contains(stderr, "no credential") {
		t.Errorf("agent list without a credential: %v, %q", err, stderr)
	}
	out, _, err := cli(t, nil, "agent", "help")
	if err != nil || !strings.Contains(out, "RFC2136_TSIG_KEY") {
		t.Errorf("agent help: %v\n%s", err, out)
	}
}

// TestAgentCLIManualProvider: the manual provider prompts on standard error and goes on when
// Enter is pressed; the record it asked for is what the registry checks. The test plays the
// person, publishing the record on the Knot primary with a TSIG-signed update of its own.
func TestAgentCLIManualProvider(t *testing.T) {
	z := startKnotZone(t)
	r := startAgentRegistry(t, z)
	_, token := r.newAgent(t, "alpha")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "agent", "register", "manual.example.test", "--dns-provider", "manual",
		"--polling-interval", "100ms")
	cmd.Env = append(os.Environ(), z.agentEnv(r.addr, token)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderrPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stdout strings.Builder
	cmd.Stdout = &stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderrPipe)
	var record []string
	var said strings.Builder
	for record == nil && sc.Scan() {
		said.WriteString(sc.Text() + "\n")
		if f := strings.Fields(sc.Text()); len(f) == 5 && f[3] == "TXT" {
			record = f
		}
	}
	if record == nil {
		t.Fatalf("the manual provider asked for no record:\n%s", said.String())
	}
	value, err := strconv.Unquote(record[4])
	if err != nil || record[0] != "_acme-challenge.manual.example.test." {
		t.Fatalf("asked for %v", record)
	}
	update(t, z, record[0], value)
	stdin.Write([]byte("\n"))
	go func() {
		for sc.Scan() {
			said.WriteString(sc.Text() + "\n")
		}
	}()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("agent register --dns-provider manual: %v\n%s\n%s", err, stdout.String(), said.String())
	}
	if !strings.Contains(stdout.String(), "registered manual.example.test") {
		t.Errorf("output:\n%s", stdout.String())
	}
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

// TestAgentCLIExecProviderWithKnot registers through the exec provider: lego runs a script
// with "present" or "cleanup", the record's name and its value, and the script updates the
// Knot primary with knsupdate and the TSIG key.
func TestAgentCLIExecProviderWithKnot(t *testing.T) {
	knsupdate, err := exec.LookPath("knsupdate")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("knsupdate is not installed; .ci/run installs it with apt-get install knot-dnsutils")
		}
		t.Skip("knsupdate is not installed (apt-get install knot-dnsutils)")
	}
	z := startKnotZone(t)
	r := startAgentRegistry(t, z)
	agentID, token := r.newAgent(t, "alpha")
	host, port, _ := net.SplitHostPort(z.primary)
	script := filepath.Join(t.TempDir(), "dns-hook")
	body := fmt.Sprintf(`#!/bin/sh
# $1: present or cleanup; $2: the record's name; $3: its value
set -e
case "$1" in present) op=add ;; cleanup) op=delete ;; *) exit 2 ;; esac
printf 'server %s %s\nzone example.test.\nupdate %%s %%s 60 TXT "%%s"\nsend\n' "$op" "$2" "$3" |
  %s -y %s:%s:%s
`, host, port, knsupdate, z.key.algorithm, z.key.name, z.key.secret)
	if err := os.WriteFile(script, []byte(body), 0o700); err != nil {
		t.Fatal(err)
	}
	env := append(z.agentEnv(r.addr, token), "EXEC_PATH="+script, "EXEC_PROPAGATION_TIMEOUT=30", "EXEC_POLLING_INTERVAL=1")
	out, stderr, err := cli(t, env, "agent", "register", "exec.example.test", "--dns-provider", "exec")
	if err != nil {
		t.Fatalf("agent register --dns-provider exec: %v\n%s\n%s", err, out, stderr)
	}
	if !strings.Contains(out, "waiting for the nameservers to serve it (up to 30s, every 1s)") ||
		!strings.Contains(out, "registered exec.example.test to agent "+agentID) ||
		!strings.Contains(out, "send the holder to set their credentials (one use, until") {
		t.Errorf("output:\n%s", out)
	}
	z.assertNoChallengeRecord(t, "exec.example.test")
}
