package e2e

import (
	"bufio"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/miekg/dns"

	"github.com/id4me/id4me-registry/internal/oidctest"
	"github.com/id4me/id4me-registry/internal/testenv"
)

// The walkthrough's fixed loopback ports; the runner gives each a free one instead.
var walkthroughPorts = []int{5354, 9443, 8443, 9090, 8444, 8445}

// walkthroughServers are the walkthrough's long-running commands (each in a terminal of its
// own in the text): the runner starts them in the background, on the ports (env) it picked,
// and waits until port listens.
var walkthroughServers = []struct {
	command string
	port    int
	env     []string
}{
	{"dev-dns", 5354, []string{"ID4ME_ADDR=127.0.0.1:5354"}},
	{"serve", 8443, []string{"ID4ME_GRPC_ADDR=127.0.0.1:9443", "ID4ME_HTTP_ADDR=127.0.0.1:8443", "ID4ME_ADMIN_ADDR=127.0.0.1:9090"}},
	{"agent claims-serve", 8444, []string{"ID4ME_CLAIMS_ADDR=127.0.0.1:8444"}},
	{"rp", 8445, []string{"ID4ME_RP_ADDR=127.0.0.1:8445"}},
}

// walkthroughPrelude runs the text's commands with the test's binary: `go run
// ./cmd/id4me-registry` and `id4me-registry` are that binary, `go install` of a client checks that it is
// installed (the test never downloads), and the admin commands' default registry address
// moves with the others.
const walkthroughPrelude = `set -euo pipefail
export ID4ME_ADMIN_REGISTRY=127.0.0.1:9443   # the admin commands' default, on the test's port
# In a subshell (a command in the background, $(…)) the binary takes the subshell's place,
# so that $! is its pid.
registry() { if [ "$BASHPID" != "$$" ]; then exec "$ID4ME_BIN" "$@"; fi; "$ID4ME_BIN" "$@"; }
go() {
  if [ "$1" = run ] && [ "$2" = ./cmd/id4me-registry ]; then shift 2; registry "$@"; return; fi
  if [ "$1" = install ]; then
    local tool=${2%@*}; tool=${tool##*/}
    command -v "$tool" >/dev/null || { echo "$tool is not installed" >&2; return 1; }
    return
  fi
  command go "$@"
}
id4me-registry() { registry "$@"; }
declare -A server_pid   # a long-running command's pid, by its name
command -v uuidgen >/dev/null || uuidgen() { cat /proc/sys/kernel/random/uuid; }
wait_port() {
  for _ in $(seq 1 600); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return
    kill -0 "$3" 2>/dev/null || break
    sleep 0.1
  done
  echo "nothing listens on port $1; its log:" >&2; cat "$2" >&2; return 1
}
printed() {
  for _ in $(seq 1 600); do grep -o "$1[^ ]*" "$2" && return; sleep 0.1; done
  echo "$2 never printed $1" >&2; return 1
}
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
`

// walkthroughReady is what the script prints when every block ran; then it waits, its
// servers running, until the test ends it or writes walkthroughGate to go on with the local
// variant of "For agents" (Knot in dev-dns's place, an agent registering through it).
const walkthroughReady = "== walkthrough: every block ran"

// walkthroughGate is the file the test writes, with the directory of Knot's programs in it,
// for the script to go on with "For agents"; forAgentsReady is what it prints at that end.
const (
	walkthroughGate = "for-agents"
	forAgentsReady  = "== for agents: every command ran"
)

// TestREADMEWalkthrough runs the README's walkthrough from its text: every ```sh block of
// the section, in order, in one shell in a directory of its own, on free loopback ports
// rather than the text's fixed ones. The commands a terminal of their own runs (dev-dns,
// serve, agent claims-serve, rp) run in the background, and so does one that follows
// (--follow); the operator credential serve prints is exported as the text says to; a command
// the text says fails (# NotFound) must fail, and one it says fails at times
// (# NotFound while …) may.
// Then step 10's login runs in headless Chromium: the holder sets a password through the
// link step 10 printed, logs in at the debugging RP with the identifier, and the RP's page
// shows the claims of the file step 10 wrote, answered by the agent's claims endpoint.
// Last, in the same shell, the local variant of "For agents": dev-dns stops, Knot serves
// demo.zone in its place with the text's knot.conf, and `agent register` registers an
// identifier through it with a TSIG-signed update (skipped without Knot, except in CI).
func TestREADMEWalkthrough(t *testing.T) {
	long(t, "the README walkthrough")
	for _, tool := range []string{"grpcurl", "gojq"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is not installed: .ci/run installs it", tool)
			}
			t.Skipf("%s is not installed (the walkthrough's first block says how)", tool)
		}
	}
	chromium := findChromium(t)
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	ports := map[int]int{}
	for _, p := range walkthroughPorts {
		ports[p] = freePort(t)
	}
	// The DNS server's port (dev-dns's, then Knot's) is free for UDP as well.
	_, dnsPort, _ := net.SplitHostPort(freeDNSAddr(t))
	ports[5354], _ = strconv.Atoi(dnsPort)
	script, err := walkthroughScript(string(readme), ports)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	w := startWalkthrough(t, dir, script)
	out := w.until(t, walkthroughReady, 5*time.Minute)

	// Step 10 printed a credential link (the last one); the holder sets a password there.
	authority := fmt.Sprintf("127.0.0.1:%d", ports[8443])
	rpURL := fmt.Sprintf("https://127.0.0.1:%d", ports[8445])
	linkRe := regexp.MustCompile(`^https://` + regexp.QuoteMeta(authority) + `/credential/\S+$`)
	var link string
	for _, l := range out {
		if linkRe.MatchString(l) {
			link = l
		}
	}
	if link == "" {
		t.Fatalf("step 10 printed no credential link:\n%s", strings.Join(out, "\n"))
	}
	authorityCert := peerCertificate(t, authority)
	roots := x509.NewCertPool()
	roots.AddCert(authorityCert)
	const identifier = "alice.example.test"
	h := &oidctest.Holder{Client: oidctest.HTTPClient(roots, true), Identifier: identifier, Password: "walkthrough password " + t.Name()}
	if p, err := h.SetCredentials(link, false, nil); err != nil || p.Title() != "Your credentials are set" {
		t.Fatalf("setting the password through %s: %v; page %d %q %q", link, err, p.Status, p.Title(), p.Alert())
	}

	// The claims the agent serves are those of the file step 10 wrote.
	var claimsFile map[string]map[string]any
	if b, err := os.ReadFile(filepath.Join(dir, "claims.json")); err != nil || json.Unmarshal(b, &claimsFile) != nil {
		t.Fatalf("claims.json of step 10: %v", err)
	}
	want := claimsFile[identifier]
	if want["email"] == nil || want["name"] == nil {
		t.Fatalf("claims.json has no email and name for %s: %v", identifier, claimsFile)
	}

	// The login, as step 10 tells it, in a browser that trusts the authority's and the RP's
	// dev certificates by their keys.
	rpCert := peerCertificate(t, strings.TrimPrefix(rpURL, "https://"))
	b := newBrowser(t, &testenv.Env{Issuer: "https://" + authority, Roots: roots}, chromium, spkiOf(rpCert))
	b.navigate(rpURL + "/")
	b.expectTitle("Log in with ID4me")
	b.fill("identifier", identifier)
	b.shot("rp-start")
	b.submit("button[type=submit]")
	b.expectTitle("Ready to log in")
	wantRecord := fmt.Sprintf("v=OID1;iss=%s;clp=127.0.0.1:%d", authority, ports[8444])
	if got := b.text("pre.record"); got != wantRecord {
		t.Fatalf("the RP shows the record %q, want %q", got, wantRecord)
	}
	b.shot("rp-ready")
	b.submit("#login")
	b.expectTitle("Log in with your ID4me identifier")
	b.fill("password", h.Password)
	b.submit("button[type=submit]")
	b.expectTitle("Share your data?")
	b.shot("consent")
	b.submit(`button[name=decision][value=allow]`)
	b.expectTitle("Logged in as " + identifier)
	b.shot("rp-result")
	rows := b.tableRows()
	got := map[string]string{}
	for _, r := range rows {
		got[r[0]] = r[1]
	}
	if got["email"] != want["email"] || got["name"] != want["name"] {
		t.Fatalf("the RP shows the claims %q, want email %v and name %v from claims.json", rows, want["email"], want["name"])
	}
	failed := run(b, chromedp.Evaluate[[]string](`[...document.querySelectorAll(".bad")].map(x => x.closest("section").querySelector("h3").textContent + ": " + x.parentElement.textContent.trim())`))
	if len(failed) > 0 {
		t.Fatalf("checks failed on the RP's page: %q", failed)
	}

	t.Run("for agents with Knot", func(t *testing.T) {
		bin := knotd(t)
		if err := os.WriteFile(filepath.Join(dir, walkthroughGate), []byte(filepath.Dir(bin)), 0o644); err != nil {
			t.Fatal(err)
		}
		out := w.until(t, forAgentsReady, 2*time.Minute)
		registered := false
		for _, l := range out {
			registered = registered || strings.HasPrefix(l, "registered carol.example.test to agent ")
		}
		if !registered {
			t.Fatalf("agent register printed no registration:\n%s", strings.Join(out, "\n"))
		}
		// Knot serves the zone, without the challenge record the agent removed.
		knot := fmt.Sprintf("127.0.0.1:%d", ports[5354])
		if r, err := query(knot, "example.test.", dns.TypeSOA); err != nil || len(r.Answer) != 1 {
			t.Fatalf("Knot on %s does not serve example.test: %v %v", knot, r, err)
		}
		if v := txt(t, knot, "_acme-challenge.carol.example.test."); len(v) > 0 {
			t.Errorf("Knot still serves the challenge record %q", v)
		}
	})
}

// walkthrough is the walkthrough's script running in bash, its stdout read line by line.
type walkthrough struct {
	script  string
	lines   chan string
	exited  chan struct{}
	exitErr error
	stderr  lockedBuffer
}

// startWalkthrough runs script in dir with the test's binary, in a process group the test's
// end stops.
func startWalkthrough(t *testing.T, dir, script string) *walkthrough {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "walkthrough.sh"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	w := &walkthrough{script: script, lines: make(chan string), exited: make(chan struct{})}
	cmd := exec.Command("bash", "walkthrough.sh")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "ID4ME_BIN="+testenv.Binary(t))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = &w.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			w.lines <- sc.Text()
		}
		close(w.lines)
		w.exitErr = cmd.Wait()
		close(w.exited)
	}()
	t.Cleanup(func() {
		go func() {
			for range w.lines {
			}
		}()
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-w.exited:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-w.exited
		}
	})
	return w
}

// until returns the lines the script prints before marker, failing t if it stops first or
// takes longer than limit.
func (w *walkthrough) until(t *testing.T, marker string, limit time.Duration) []string {
	t.Helper()
	var out []string
	deadline := time.After(limit)
	for {
		select {
		case l, ok := <-w.lines:
			if !ok {
				<-w.exited
				t.Fatalf("the walkthrough stopped before %q: %v\nstdout:\n%s\nstderr:\n%s\nscript:\n%s", marker, w.exitErr, strings.Join(out, "\n"), w.stderr.String(), w.script)
			}
			if l == marker {
				return out
			}
			out = append(out, l)
		case <-deadline:
			t.Fatalf("the walkthrough did not reach %q within %v\nstdout:\n%s\nstderr:\n%s", marker, limit, strings.Join(out, "\n"), w.stderr.String())
		}
	}
}

// walkthroughScript turns the README's walkthrough section into one bash script, on the
// given ports (the text's → the test's).
func walkthroughScript(readme string, ports map[int]int) (string, error) {
	_, section, ok := strings.Cut(readme, "\n## Walkthrough")
	if !ok {
		return "", fmt.Errorf("README.md has no Walkthrough section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	if !strings.Contains(section, "**10.") {
		return "", fmt.Errorf("the walkthrough has no step 10")
	}
	blocks := regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(section, -1)
	var b strings.Builder
	b.WriteString(walkthroughPrelude)
	started := map[string]bool{}
	for i, m := range blocks {
		fmt.Fprintf(&b, "\n# block %d\necho '== block %d' >&2\n", i+1, i+1)
		for _, cmd := range logicalLines(m[1]) {
			b.WriteString(walkthroughCommand(cmd, started) + "\n")
		}
	}
	for _, s := range walkthroughServers {
		if !started[s.command] {
			return "", fmt.Errorf("the walkthrough never starts %q", s.command)
		}
	}
	agents, err := forAgentsCommands(readme)
	if err != nil {
		return "", err
	}
	b.WriteString("echo '" + walkthroughReady + "'\n")
	fmt.Fprintf(&b, "until [ -s %[1]s ]; do sleep 0.2; done   # the test says go on\nexport PATH=\"$PATH:$(cat %[1]s)\"\n", walkthroughGate)
	b.WriteString(agents)
	b.WriteString("echo '" + forAgentsReady + "'\nwait\n")
	script := b.String()
	for from, to := range ports {
		script = strings.ReplaceAll(script, "127.0.0.1:"+strconv.Itoa(from), "127.0.0.1:"+strconv.Itoa(to))
		script = strings.ReplaceAll(script, "127.0.0.1@"+strconv.Itoa(from), "127.0.0.1@"+strconv.Itoa(to)) // Knot's listen
		script = strings.ReplaceAll(script, "wait_port "+strconv.Itoa(from)+" ", "wait_port "+strconv.Itoa(to)+" ")
	}
	return script, nil
}

// forAgentsCommands is the local variant of "For agents" (its sh block that starts knotd) as
// the script runs it, after the walkthrough: dev-dns stops as the text says to, knotd runs in
// the background (in dev-dns's terminal in the text) until it has loaded the zone, and the
// agent's commands run as written.
func forAgentsCommands(readme string) (string, error) {
	_, section, ok := strings.Cut(readme, "\n## For agents\n")
	if !ok {
		return "", fmt.Errorf("README.md has no For agents section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var block string
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(section, -1) {
		if strings.Contains(m[1], "knotd -c knot.conf") {
			block = m[1]
		}
	}
	if block == "" {
		return "", fmt.Errorf("For agents has no sh block that starts knotd -c knot.conf")
	}
	var b strings.Builder
	b.WriteString("\n# For agents, on one machine\necho '== for agents' >&2\n")
	b.WriteString(`kill "${server_pid[dev-dns]}"; wait "${server_pid[dev-dns]}" || true   # stop dev-dns` + "\n")
	started := map[string]bool{}
	for _, cmd := range logicalLines(block) {
		line := walkthroughCommand(cmd, started)
		if code, _ := withoutComments(line); strings.Contains(code, "knotd -c knot.conf") {
			line = strings.Replace(code, "knotd -c knot.conf", "{ knotd -c knot.conf > knotd.log 2>&1 & }", 1) +
				"\nprinted 'loaded, serial' knotd.log >&2 || { cat knotd.log >&2; exit 1; }"
		}
		b.WriteString(line + "\n")
	}
	if !strings.Contains(b.String(), "agent register ") {
		return "", fmt.Errorf("For agents' local variant runs no agent register")
	}
	return b.String(), nil
}

// logicalLines splits a block into commands: lines continued with a backslash, a quoted
// string or a here-document stay together.
func logicalLines(block string) []string {
	heredocRe := regexp.MustCompile(`<<-?'?(\w+)'?`)
	var out []string
	var cur strings.Builder
	heredoc := ""
	for _, line := range strings.Split(strings.TrimRight(block, "\n"), "\n") {
		cur.WriteString(line + "\n")
		if heredoc != "" {
			if strings.TrimSpace(line) != heredoc {
				continue
			}
			heredoc = ""
		} else if m := heredocRe.FindStringSubmatch(line); m != nil {
			heredoc = m[1]
			continue
		} else if code, open := withoutComments(cur.String()); open || strings.HasSuffix(strings.TrimRight(code, " \t\n"), "\\") {
			continue
		}
		out = append(out, strings.TrimRight(cur.String(), "\n"))
		cur.Reset()
	}
	if cur.Len() > 0 {
		out = append(out, strings.TrimRight(cur.String(), "\n"))
	}
	return out
}

// withoutComments returns shell text without its comments (a # that starts a word outside
// quotes, to the end of its line), and whether a quote is left open at its end.
func withoutComments(text string) (string, bool) {
	var b strings.Builder
	var quote rune
	comment, escaped := false, false
	prev := '\n'
	for _, r := range text {
		switch {
		case comment:
			if r == '\n' {
				comment = false
				b.WriteRune(r)
			}
		case escaped:
			escaped = false
			b.WriteRune(r)
		case quote != 0:
			if r == quote {
				quote = 0
			} else if r == '\\' && quote == '"' {
				escaped = true
			}
			b.WriteRune(r)
		case r == '\\':
			escaped = true
			b.WriteRune(r)
		case r == '\'' || r == '"':
			quote = r
			b.WriteRune(r)
		case r == '#' && (prev == ' ' || prev == '\t' || prev == '\n'):
			comment = true
		default:
			b.WriteRune(r)
		}
		prev = r
	}
	return b.String(), quote != 0
}

// walkthroughCommand is one command of the text as the script runs it.
func walkthroughCommand(cmd string, started map[string]bool) string {
	code, _ := withoutComments(cmd)
	code = strings.TrimRight(regexp.MustCompile(`[ \t]+\n`).ReplaceAllString(code, "\n"), " \t\n")
	trimmed := strings.TrimSpace(code)
	switch {
	case trimmed == "" || strings.HasPrefix(trimmed, "#"):
		return cmd
	case strings.HasPrefix(trimmed, "export ID4ME_ADMIN_TOKEN=") && strings.Contains(trimmed, "…"):
		// "Copy the export line serve prints into the shell."
		return `eval "$(printed 'export ID4ME_ADMIN_TOKEN=' serve.log)"`
	case strings.Contains(code, "…"):
		return "# a placeholder to fill in, not run: " + strings.ReplaceAll(cmd, "\n", "\n# ")
	}
	if rest, ok := strings.CutPrefix(trimmed, "go run ./cmd/id4me-registry "); ok {
		for _, s := range walkthroughServers {
			if strings.HasPrefix(rest, s.command+" ") || rest == s.command {
				started[s.command] = true
				name := strings.ReplaceAll(s.command, " ", "-")
				line := strings.ReplaceAll(code, "\\\n", " ")
				return fmt.Sprintf("%s %s > %s.log 2>&1 &\nserver_pid[%s]=$!\nwait_port %d %s.log $!", strings.Join(s.env, " "), line, name, name, s.port, name)
			}
		}
	}
	if strings.Contains(code, " --follow") {
		// It follows until interrupted: it runs on in the background, its output kept.
		return fmt.Sprintf("%s > follow-%d.log 2>&1 &", code, len(started))
	}
	switch {
	case regexp.MustCompile(`#\s*NotFound while`).MatchString(cmd):
		// The text says when this call fails, which may not be now.
		return code + " || true"
	case regexp.MustCompile(`#\s*NotFound`).MatchString(cmd):
		// The text says this call fails: it must.
		return code + " && { echo 'a call the README says fails succeeded' >&2; exit 97; } || true"
	}
	return cmd
}

// freePort returns a loopback TCP port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// peerCertificate returns the certificate a dev server on addr presents. It is self-signed;
// the test trusts the one it was shown, as a person accepting it in a browser does.
func peerCertificate(t *testing.T, addr string) *x509.Certificate {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("TLS to %s: %v", addr, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

func spkiOf(c *x509.Certificate) string {
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// lockedBuffer collects a process's output from another goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestWalkthroughCommands checks how the runner turns the text's commands into the script's.
func TestWalkthroughCommands(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"go run ./cmd/id4me-registry admin journal --follow    # new entries", "go run ./cmd/id4me-registry admin journal --follow > follow-0.log 2>&1 &"},
		{"go run ./cmd/id4me-registry admin identifiers resolve a.test   # NotFound while pending delete", "go run ./cmd/id4me-registry admin identifiers resolve a.test || true"},
		{"grpcurl x \\\n  $R Resolve   # NotFound, reason R", "grpcurl x \\\n  $R Resolve && { echo 'a call the README says fails succeeded' >&2; exit 97; } || true"},
		{"go run ./cmd/id4me-registry admin operators revoke op_… # refused", "# a placeholder to fill in, not run: go run ./cmd/id4me-registry admin operators revoke op_… # refused"},
		{"go run ./cmd/id4me-registry rp --dns-server 127.0.0.1:5354   # https://127.0.0.1:8445", "ID4ME_RP_ADDR=127.0.0.1:8445 go run ./cmd/id4me-registry rp --dns-server 127.0.0.1:5354 > rp.log 2>&1 &\nserver_pid[rp]=$!\nwait_port 8445 rp.log $!"},
		{"echo 'a # b' >> demo.zone", "echo 'a # b' >> demo.zone"},
		{"go run ./cmd/id4me-registry admin identifiers get a.test   # any agent's identifier", "go run ./cmd/id4me-registry admin identifiers get a.test   # any agent's identifier"},
	} {
		if got := walkthroughCommand(tc.in, map[string]bool{}); got != tc.want {
			t.Errorf("%q\ngot  %q\nwant %q", tc.in, got, tc.want)
		}
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	agents, err := forAgentsCommands(string(readme))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`kill "${server_pid[dev-dns]}"`, "{ knotd -c knot.conf > knotd.log 2>&1 & }\nprinted 'loaded, serial' knotd.log", "\nid4me-registry agent register carol.example.test "} {
		if !strings.Contains(agents, want) {
			t.Errorf("For agents' commands have no %q:\n%s", want, agents)
		}
	}
	got := logicalLines("a \\\n  b\ncat > f <<'X'\n\"odd\nX\nc -d '{\n}' d # it's\ne \"x\\\"y\"\nf")
	want := []string{"a \\\n  b", "cat > f <<'X'\n\"odd\nX", "c -d '{\n}' d # it's", "e \"x\\\"y\"", "f"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("logical lines %q, want %q", got, want)
	}
}
