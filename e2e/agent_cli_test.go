package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/id4me/id4me-registry/internal/testenv"
	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
)

// agentProgram is a way to run the agent's command line: "id4me-registry agent …" or
// "id4me-agent …", the same command.
type agentProgram struct {
	bin  string
	args []string // before the command's own
}

func registryAgent(t *testing.T) agentProgram {
	return agentProgram{testenv.Binary(t), []string{"agent"}}
}

func standaloneAgent(t *testing.T) agentProgram {
	return agentProgram{testenv.AgentBinary(t), nil}
}

// command returns the command that runs the agent's command line with args.
func (p agentProgram) command(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, p.bin, append(slices.Clone(p.args), args...)...)
}

// run runs the agent's command line with args and extra environment, and returns stdout and
// stderr.
func (p agentProgram) run(env []string, args ...string) (string, string, error) {
	return testenv.CLI(p.bin, env, append(slices.Clone(p.args), args...)...)
}

// TestAgentCLIRegisterAndTransferWithKnot registers an identifier through the CLI with the
// rfc2136 provider against a real Knot primary and secondary (TSIG-signed dynamic updates),
// then transfers it to a second agent the same way; the challenge records are gone from both
// servers afterwards. The first agent sees the transfer in its events; the second lists and
// deletes the identifier. The first agent runs "id4me-registry agent", the second id4me-agent.
func TestAgentCLIRegisterAndTransferWithKnot(t *testing.T) {
	long(t, "the agent CLI registering and transferring through Knot")
	z := startKnotZone(t)
	r := startAgentRegistry(t, z)
	alpha, alphaToken := r.newAgent(t, "alpha")
	beta, betaToken := r.newAgent(t, "beta")
	alphaCLI, betaCLI := registryAgent(t), standaloneAgent(t)

	out, stderr, err := alphaCLI.run(z.agentEnv(r.addr, alphaToken), "register", "alice.example.test",
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

	out, stderr, err = betaCLI.run(z.agentEnv(r.addr, betaToken), "transfer", "alice.example.test",
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
	events := alphaCLI.command(ctx, "events", "--json", "--ack")
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

	out, _, err = betaCLI.run(z.agentEnv(r.addr, betaToken), "list")
	if err != nil || !strings.HasPrefix(out, "alice.example.test\tOK\thttps://beta.example/claims") {
		t.Errorf("agent list for the new sponsor: %q, %v", out, err)
	}
	out, stderr, err = alphaCLI.run(z.agentEnv(r.addr, alphaToken), "list", "--json")
	if err != nil || out != "" {
		t.Errorf("agent list for the old sponsor: %q, %v\n%s", out, err, stderr)
	}
	out, stderr, err = betaCLI.run(z.agentEnv(r.addr, betaToken), "delete", "alice.example.test")
	if err != nil || !strings.Contains(out, "alice.example.test is pending delete") {
		t.Errorf("agent delete: %q, %v\n%s", out, err, stderr)
	}
}

// TestAgentCLIFailuresWithKnot: each failure names the step and the cause, registers or
// transfers nothing, leaves no challenge record behind, and ends by itself.
func TestAgentCLIFailuresWithKnot(t *testing.T) {
	long(t, "the agent CLI failing against Knot")
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
		cmd := exec.CommandContext(ctx, testenv.Binary(t), args...)
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

// TestAgentCLIManualProvider: the manual provider prompts on standard error and goes on when
// Enter is pressed; the record it asked for is what the registry checks. The test plays the
// person, publishing the record on the Knot primary with a TSIG-signed update of its own. It
// runs id4me-agent.
func TestAgentCLIManualProvider(t *testing.T) {
	long(t, "the agent CLI with the manual provider and Knot")
	z := startKnotZone(t)
	r := startAgentRegistry(t, z)
	_, token := r.newAgent(t, "alpha")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := standaloneAgent(t).command(ctx, "register", "manual.example.test", "--dns-provider", "manual",
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

// TestAgentCLIExecProviderWithKnot registers through the exec provider: lego runs a script
// with "present" or "cleanup", the record's name and its value, and the script updates the
// Knot primary with knsupdate and the TSIG key.
func TestAgentCLIExecProviderWithKnot(t *testing.T) {
	long(t, "the agent CLI with the exec provider and Knot")
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
