package main_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/id4me/id4me-registry/internal/testenv"
	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "id4me-cli")
	if err != nil {
		panic(err)
	}
	if binary, err = testenv.BuildBinary(dir); err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cli runs the binary with args and extra environment and returns stdout, stderr.
func cli(t *testing.T, env []string, args ...string) (string, string, error) {
	t.Helper()
	return testenv.CLI(binary, env, args...)
}

// startInstance runs `serve --dev` of the binary on dsn with extra flags and waits until it
// listens.
func startInstance(t *testing.T, dsn string, flags ...string) *testenv.Instance {
	t.Helper()
	return testenv.StartInstance(t, binary, dsn, flags...)
}

var bearerPattern = regexp.MustCompile(`^op_[a-z2-7]{26}\.[A-Za-z0-9_-]{43}$`)

func TestBootstrapPrintsOnlyTheSecret(t *testing.T) {
	db := filepath.Join(t.TempDir(), "r.db")
	out, stderr, err := cli(t, nil, "admin", "bootstrap", "--db", db)
	if err != nil {
		t.Fatalf("bootstrap: %v\n%s", err, stderr)
	}
	if !bearerPattern.MatchString(strings.TrimSpace(out)) || strings.Count(out, "\n") != 1 {
		t.Fatalf("bootstrap printed %q, want only the credential", out)
	}
	_, stderr, err = cli(t, nil, "admin", "bootstrap", "--db", db)
	if err == nil || !strings.Contains(stderr, "--force") {
		t.Fatalf("second bootstrap: err %v, stderr %q; want a refusal naming --force", err, stderr)
	}
	// The database can also come from the environment.
	out, stderr, err = cli(t, []string{"ID4ME_DB=" + db}, "admin", "bootstrap", "--force")
	if err != nil || !bearerPattern.MatchString(strings.TrimSpace(out)) {
		t.Fatalf("bootstrap --force via ID4ME_DB: %q, %v\n%s", out, err, stderr)
	}
}

func TestMigrate(t *testing.T) {
	db := filepath.Join(t.TempDir(), "r.db")
	out, stderr, err := cli(t, nil, "migrate", "--db", db)
	if err != nil || !strings.Contains(out, "migrated from schema version 0 to") {
		t.Fatalf("migrate: %q, %v\n%s", out, err, stderr)
	}
	out, _, err = cli(t, nil, "migrate", "--db", db)
	if err != nil || !strings.Contains(out, "nothing to do") {
		t.Fatalf("second migrate: %q, %v", out, err)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{}, {"frobnicate"}, {"serve", "--no-such-flag"}, {"serve", "--dev", "--grpc-addr", "0.0.0.0:0"},
		{"serve", "--redemption-period", "0"}, {"serve", "--transfer-pending-period", "-1h"},
		{"serve", "--sweep-interval", "0s"}, {"serve", "--event-poll-interval", "-1s"},
		{"serve", "--request-id-retention", "0s"},
		{"serve", "--registration", "closed"}, {"serve", "--registration-rate", "fast"},
		{"serve", "--registration-rate", "5/day"}, {"serve", "--registration-rate", "-1/s"},
		{"serve", "--client-secret-ttl", "-1h"}, {"serve", "--op-policy-uri", "http://id.example/privacy"},
		{"serve", "--service-documentation", "docs"},
		{"serve", "--dev", "--admin-addr", "0.0.0.0:0"}, {"serve", "--grpc-max-conns", "0"}, {"serve", "--max-inflight-dns", "0"},
	} {
		if _, stderr, err := cli(t, nil, args...); err == nil || stderr == "" {
			t.Errorf("%v: err %v, stderr %q; want a failure that says why", args, err, stderr)
		}
	}
	// Environment variables are checked as flags are.
	if _, stderr, err := cli(t, []string{"ID4ME_REDEMPTION_PERIOD=-5m"}, "serve"); err == nil || !strings.Contains(stderr, "--redemption-period") {
		t.Errorf("ID4ME_REDEMPTION_PERIOD=-5m: err %v, stderr %q; want a refusal naming the flag", err, stderr)
	}
	// Removed flags say what replaced them, given as flags or in the environment.
	if _, stderr, err := cli(t, nil, "serve", "--login-lock-after", "5"); err == nil || !strings.Contains(stderr, "--login-backoff-after") {
		t.Errorf("--login-lock-after: err %v, stderr %q; want a refusal naming its replacement", err, stderr)
	}
	if _, stderr, err := cli(t, []string{"ID4ME_LOGIN_LOCK_FOR=15m"}, "serve"); err == nil || !strings.Contains(stderr, "--login-backoff-max") {
		t.Errorf("ID4ME_LOGIN_LOCK_FOR: err %v, stderr %q; want a refusal naming its replacement", err, stderr)
	}
	out, _, err := cli(t, nil, "version")
	if err != nil || !strings.HasPrefix(out, "id4me-registry ") {
		t.Fatalf("version: %q, %v", out, err)
	}
}

func TestServeDevAndGracefulStop(t *testing.T) {
	db := filepath.Join(t.TempDir(), "r.db")
	cmd := exec.Command(binary, "serve", "--dev", "--db", db, "--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--sweep-interval", "20ms")
	cmd.Env = append(os.Environ(), "ID4ME_GRPC_ADDR=127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })

	var token, grpcAddr, adminAddr string
	addrLine := regexp.MustCompile(`^gRPC on (\S+), HTTPS on \S+, operator HTTP on (\S+) `)
	sc := bufio.NewScanner(stdout)
	for grpcAddr == "" && sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "export ID4ME_ADMIN_TOKEN="); ok {
			token = v
		}
		if m := addrLine.FindStringSubmatch(line); m != nil {
			grpcAddr, adminAddr = m[1], m[2]
		}
	}
	if !bearerPattern.MatchString(token) || grpcAddr == "" {
		t.Fatalf("serve --dev printed no credential or address; stderr:\n%s", stderr.String())
	}
	go func() {
		for sc.Scan() {
		}
	}()

	// Plaintext from loopback works in dev mode; so does TLS.
	plain, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if resp, err := healthpb.NewHealthClient(plain).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health over plaintext: %v, %v", resp, err)
	}
	secure, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{InsecureSkipVerify: true})))
	if err != nil {
		t.Fatal(err)
	}
	defer secure.Close()
	actx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	if _, err := registryv1.NewAdminServiceClient(secure).ListAgents(actx, &registryv1.ListAgentsRequest{}); err != nil {
		t.Fatalf("ListAgents over TLS with the printed credential: %v", err)
	}

	// The background sweeps run (every 20ms here) and are counted on the operator's listener.
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + adminAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), `id4me_job_sweep_duration_seconds_count{job="challenges"}`) &&
			strings.Contains(string(body), `id4me_job_errors_total{job="purges"} 0`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no sweep in the metrics within 10s:\n%s", body)
		}
		time.Sleep(20 * time.Millisecond)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve exited with %v after SIGTERM\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop within 30s of SIGTERM")
	}
	if !strings.Contains(stderr.String(), "stopped") {
		t.Fatalf("no orderly stop in the log:\n%s", stderr.String())
	}
	// A second start on the same database keeps the first credential and prints none.
	out, stderrText, err := serveBriefly(t, nil, append([]string{"--dev", "--db", db}, loopback...)...)
	if err != nil || strings.Contains(out, "ID4ME_ADMIN_TOKEN") || !strings.Contains(out, "exists already") {
		t.Fatalf("restart printed %q (err %v)\n%s", out, err, stderrText)
	}
}

// loopback are serve's three listeners, on free loopback ports.
var loopback = []string{"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"}

// serveBriefly runs `serve args...` with extra environment until it says it listens (or
// exits), then stops it with SIGTERM; it returns what it printed on stdout and stderr and
// how it ended.
func serveBriefly(t *testing.T, env []string, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"serve"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if strings.HasPrefix(sc.Text(), "gRPC on ") {
			cmd.Process.Signal(syscall.SIGTERM)
			break
		}
	}
	go func() {
		for sc.Scan() {
		}
	}()
	err = cmd.Wait()
	return out.String(), stderr.String(), err
}
