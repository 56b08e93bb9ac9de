package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/go-jose/go-jose/v4"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/id4me/id4me-registry/internal/devdns"
	"github.com/id4me/id4me-registry/internal/oidctest"
	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
)

// zone is the DNS zone of the benchmark's identifiers, served by a loopback nameserver.
const zone = "bench.test"

// agentIssuer and agentEndpoint name the agent both authorities point userinfo at. Userinfo
// only names the endpoint (distributed claims); nothing calls it during the benchmark.
const (
	agentIssuer   = "https://agent." + zone
	agentEndpoint = agentIssuer + "/claims"
)

// process is a server the benchmark started; stop ends it (SIGTERM, then SIGKILL).
type process struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{}
	log    *bytes.Buffer
}

func (p *process) pid() int { return p.cmd.Process.Pid }

func (p *process) stop() {
	if p == nil || p.cmd.Process == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// start runs cmd, and returns once a line of its standard output matches ready (whose
// result is returned), or fails when it exits first or within a minute.
func start(ctx context.Context, name string, cmd *exec.Cmd, ready func(line string) (string, bool)) (*process, string, error) {
	p := &process{name: name, cmd: cmd, exited: make(chan struct{}), log: &bytes.Buffer{}}
	cmd.Stderr = &lockedWriter{w: p.log}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("starting %s: %w", name, err)
	}
	found := make(chan string, 1)
	var printed strings.Builder
	go func() {
		defer close(p.exited)
		sc := bufio.NewScanner(stdout)
		sent := false
		for sc.Scan() {
			if !sent {
				printed.WriteString(sc.Text() + "\n")
				if v, ok := ready(sc.Text()); ok {
					found <- v
					sent = true
				}
			}
		}
		io.Copy(io.Discard, stdout)
		cmd.Wait()
	}()
	select {
	case v := <-found:
		return p, v, nil
	case <-p.exited:
	case <-ctx.Done():
		p.stop()
		return nil, "", ctx.Err()
	case <-time.After(time.Minute):
		p.stop()
	}
	return nil, "", fmt.Errorf("%s did not start:\n%s%s", name, printed.String(), p.log.String())
}

// lockedWriter keeps at most the last 64 KiB written to a buffer (a server's standard error).
type lockedWriter struct {
	w *bytes.Buffer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	if l.w.Len() > 64<<10 {
		l.w.Reset()
	}
	return l.w.Write(b)
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// writeCertificate makes a self-signed P-256 certificate for 127.0.0.1 and writes it and its
// key as PEM into dir; both servers use it, and the clients trust it alone.
func writeCertificate(dir string) (certPath, keyPath string, pool *x509.CertPool, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:    []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", nil, err
	}
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return "", "", nil, err
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return "", "", nil, err
	}
	return certPath, keyPath, oidctest.Pool(der), nil
}

// moduleDir returns the root of the repository (the module's directory).
func moduleDir() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return "", fmt.Errorf("go list -m: %w (run from inside the repository)", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// startProject builds cmd/id4me-registry into dir and starts `serve --dev` on a fresh SQLite
// database there, on free loopback ports with the given certificate, asking ns for every
// zone; it returns the process, the authority's issuer, the gRPC address and the bootstrap
// operator credential the first start prints.
func startProject(ctx context.Context, dir, certPath, keyPath, ns, alg string) (*process, string, string, string, error) {
	bin := filepath.Join(dir, "id4me-registry")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/id4me/id4me-registry/cmd/id4me-registry")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, "", "", "", fmt.Errorf("go build: %w\n%s", err, out)
	}
	cmd := exec.Command(bin, "serve", "--dev",
		"--db", filepath.Join(dir, "registry.db"),
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--tls-cert", certPath, "--tls-key", keyPath,
		"--dns-server", ns,
		"--agent-token-alg", alg,
		// Load from loopback is all from one address: the per-source limits would refuse it.
		"--agent-rate", "0", "--registration-rate", "off", "--login-rate", "1000000000", "--login-burst", "1000000",
		"--log-level", "warn")
	cmd.Env = cleanEnv()
	var token, grpcAddr, issuer string
	p, _, err := start(ctx, "id4me-registry", cmd, func(line string) (string, bool) {
		line = strings.TrimSpace(line)
		if t, ok := strings.CutPrefix(line, "export ID4ME_ADMIN_TOKEN="); ok {
			token = t
		}
		if rest, ok := strings.CutPrefix(line, "gRPC on "); ok {
			grpcAddr, _, _ = strings.Cut(rest, ",")
		}
		if i, ok := strings.CutPrefix(line, "Identity authority: "); ok {
			issuer = i
			return i, true
		}
		return "", false
	})
	if err != nil {
		return nil, "", "", "", err
	}
	if token == "" || grpcAddr == "" {
		p.stop()
		return nil, "", "", "", errors.New("serve printed no operator credential or gRPC address")
	}
	return p, issuer, grpcAddr, token, nil
}

// cleanEnv is the environment without ID4ME_ variables, which would set serve's flags.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ID4ME_") {
			env = append(env, kv)
		}
	}
	return env
}

// setupProject makes, over the registry's gRPC API as an operator and then as the agent, an
// agent and one identifier per user (challenge, TXT record on ns, verification,
// registration), and sets each user's password through the credential link the registration
// returns, on the authority's real pages.
func setupProject(ctx context.Context, t *target, grpcAddr, operator string, ns *devdns.Server) error {
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	opCtx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+operator)
	admin := registryv1.NewAdminServiceClient(conn)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	jwk, err := jose.JSONWebKey{Key: &key.PublicKey}.MarshalJSON()
	if err != nil {
		return err
	}
	agent, err := admin.CreateAgent(opCtx, &registryv1.CreateAgentRequest{
		DisplayName: "bench agent", ClaimsEndpoint: agentEndpoint, Issuer: agentIssuer, AccountKeyJwk: string(jwk),
	})
	if err != nil {
		return fmt.Errorf("CreateAgent: %w", err)
	}
	tok, err := admin.CreateAgentToken(opCtx, &registryv1.CreateAgentTokenRequest{AgentId: agent.Id, Description: "bench"})
	if err != nil {
		return fmt.Errorf("CreateAgentToken: %w", err)
	}
	agCtx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok.Secret)
	api := registryv1.NewRegistryServiceClient(conn)
	for _, u := range t.users {
		c, err := api.CreateChallenge(agCtx, &registryv1.CreateChallengeRequest{Identifier: u.identifier, Purpose: registryv1.Purpose_PURPOSE_REGISTER})
		if err != nil {
			return fmt.Errorf("CreateChallenge(%s): %w", u.identifier, err)
		}
		ns.SetTXT(c.RecordName, c.RecordValue)
		v, err := api.VerifyChallenge(agCtx, &registryv1.VerifyChallengeRequest{Id: c.Id})
		if err != nil {
			return fmt.Errorf("VerifyChallenge(%s): %w", u.identifier, err)
		}
		if v.Status != registryv1.Challenge_STATUS_VALID {
			return fmt.Errorf("VerifyChallenge(%s): %v %v", u.identifier, v.Status, v.Problem)
		}
		r, err := api.RegisterIdentifier(agCtx, &registryv1.RegisterIdentifierRequest{ChallengeId: c.Id})
		if err != nil {
			return fmt.Errorf("RegisterIdentifier(%s): %w", u.identifier, err)
		}
		if r.CredentialLink.GetUrl() == "" {
			return fmt.Errorf("RegisterIdentifier(%s) returned no credential link", u.identifier)
		}
		h := &oidctest.Holder{Client: oidctest.HTTPClient(t.roots, true), Identifier: u.identifier, Password: u.password}
		p, err := h.SetCredentials(r.CredentialLink.Url, false, nil)
		h.Client.CloseIdleConnections()
		if err != nil || p.Title() != "Your credentials are set" {
			return fmt.Errorf("setting the password of %s: %v; page %d %q %q", u.identifier, err, p.Status, p.Title(), p.Alert())
		}
	}
	return nil
}

// defaultPeerVersion is the oidc-provider the benchmark installs: the newest release that
// supports Node.js 20 (9.x wants Node.js 22 and warns "Unsupported runtime" on 20).
const defaultPeerVersion = "8.8.1"

// installPeer installs oidc-provider at version into work with npm, unless it is there
// already, and copies the provider program from src there.
func installPeer(ctx context.Context, src, work, version string) error {
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	prog, err := os.ReadFile(filepath.Join(src, "provider.mjs"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(work, "provider.mjs"), prog, 0o644); err != nil {
		return err
	}
	pkg, _ := json.MarshalIndent(map[string]any{
		"name": "id4me-registry-bench-peer", "private": true, "type": "module",
		"dependencies": map[string]string{"oidc-provider": version},
	}, "", "  ")
	old, _ := os.ReadFile(filepath.Join(work, "package.json"))
	if peerVersion(work) == version && bytes.Equal(old, pkg) {
		return nil
	}
	if err := os.WriteFile(filepath.Join(work, "package.json"), pkg, 0o644); err != nil {
		return err
	}
	npm := exec.CommandContext(ctx, "npm", "install", "--no-audit", "--no-fund", "--no-package-lock")
	npm.Dir = work
	if out, err := npm.CombinedOutput(); err != nil {
		return fmt.Errorf("npm install oidc-provider@%s in %s: %w\n%s", version, work, err, out)
	}
	if v := peerVersion(work); v != version {
		return fmt.Errorf("npm installed oidc-provider %s, want %s", v, version)
	}
	return nil
}

// peerVersion returns the installed oidc-provider's version.
func peerVersion(work string) string {
	b, err := os.ReadFile(filepath.Join(work, "node_modules", "oidc-provider", "package.json"))
	if err != nil {
		return "?"
	}
	var v struct{ Version string }
	json.Unmarshal(b, &v)
	return v.Version
}

// startPeer starts the provider in work with node, on a free loopback port, with the users'
// passwords (hashed by the provider at start) and the agent-token variant mode ("plain" or
// "jwt"); it returns the process and the issuer.
func startPeer(ctx context.Context, work, certPath, keyPath, mode, alg string, users []user) (*process, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	type account struct {
		ID       string `json:"id"`
		Password string `json:"password"`
	}
	cfg := map[string]any{
		"port": port, "cert": certPath, "key": keyPath,
		"agentIssuer": agentIssuer, "agentEndpoint": agentEndpoint,
		"agentToken": mode, "agentTokenAlg": alg,
	}
	var accounts []account
	for _, u := range users {
		accounts = append(accounts, account{u.identifier, u.password})
	}
	cfg["accounts"] = accounts
	b, _ := json.Marshal(cfg)
	cmd := exec.Command("node", "provider.mjs")
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "PEER_CONFIG="+string(b), "NODE_ENV=production")
	p, _, err := start(ctx, "oidc-provider ("+mode+")", cmd, func(line string) (string, bool) {
		return line, strings.HasPrefix(line, "listening on ")
	})
	if err != nil {
		return nil, "", err
	}
	return p, fmt.Sprintf("https://127.0.0.1:%d", port), nil
}
