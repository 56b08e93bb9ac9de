package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/pem"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/id4me/id4me-registry/internal/oidctest"
	"github.com/id4me/id4me-registry/internal/testenv"
)

var claimsEndpointLine = regexp.MustCompile(`claims-serve: claims endpoint (\S+)`)

// startClaimsServe runs `agent claims-serve --dev` for the authority of e with extra flags,
// trusting the authority's certificate, and has e's RPs trust its own; it returns the
// claims endpoint once it listens.
func startClaimsServe(t *testing.T, e *testenv.Env, extra ...string) string {
	t.Helper()
	dir := t.TempDir()
	authorityCA := filepath.Join(dir, "authority.pem")
	writePeerCertificate(t, e.Issuer, authorityCA)
	devCert := filepath.Join(dir, "agent.pem")
	args := []string{"agent", "claims-serve", "--dev", "--addr", "127.0.0.1:0", "--authority", e.Issuer, "--dev-cert-file", devCert}
	if !slices.Contains(extra, "--authority-insecure-skip-verify") {
		args = append(args, "--authority-ca-file", authorityCA)
	}
	args = append(args, extra...)
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, &stdout, &stderr) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("claims-serve: %v\n%s", err, stderr.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := claimsEndpointLine.FindStringSubmatch(stdout.String()); m != nil {
			pemBytes, err := os.ReadFile(devCert)
			if err != nil {
				t.Fatal(err)
			}
			block, _ := pem.Decode(pemBytes)
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			e.RPClient.Transport.(*http.Transport).TLSClientConfig.RootCAs.AddCert(cert)
			return m[1]
		}
		select {
		case err := <-done:
			done <- err
			t.Fatalf("claims-serve ended: %v\n%s", err, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("claims-serve did not start:\n%s\n%s", stdout.String(), stderr.String())
		}
	}
}

// writePeerCertificate writes the certificate the HTTPS server at base presents to path.
func writePeerCertificate(t *testing.T, base, path string) {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", u.Host, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	der := conn.ConnectionState().PeerCertificates[0].Raw
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}

// loginClaims logs the holder of identifier (sponsored by an agent at endpoint) in at a new
// RP asking for email and name, and returns what the RP got from the agent.
func loginClaims(t *testing.T, e *testenv.Env, rp *oidctest.RP, h *oidctest.Holder) (map[string]any, error) {
	t.Helper()
	res := e.Login(rp, h, map[string]string{"claims": testenv.EmailClaims, "prompt": "login"})
	return rp.DistributedClaims(res.Userinfo)
}

// TestClaimsServeFile: claims-serve answers a relying party, through the real authority,
// the consented claims of a YAML file as a signed JWT, and reads the file again when it
// changes.
func TestClaimsServeFile(t *testing.T) {
	if testing.Short() {
		t.Skip("a login through the registry, the authority and claims-serve: skipped under -short")
	}
	e := testenv.New(t, testenv.Options{Authority: true})
	file := filepath.Join(t.TempDir(), "claims.yaml")
	write := func(email string) {
		yaml := "alice.example.test:\n  email: " + email + "\n  name: Alice\n  phone_number: \"+49 1\"\n"
		if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("alice@example.test")
	keyFile := filepath.Join(t.TempDir(), "agent-keys.json")
	endpoint := startClaimsServe(t, e, "--claims-file", file, "--key-file", keyFile, "--alg", "ES256")
	issuer := strings.TrimSuffix(endpoint, "/claims")
	agent := e.NewAgentAt("alpha", issuer, endpoint)
	h := e.HolderFor(agent, "alice.example.test", false)
	rp := e.NewRP(nil)

	got, err := loginClaims(t, e, rp, h)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["email"] != "alice@example.test" || got["name"] != "Alice" {
		t.Fatalf("claims %v, want email and name from the file", got)
	}
	if st, err := os.Stat(keyFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v", st, err)
	}

	write("alice@new.example.test")
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err = loginClaims(t, e, rp, h)
		if err != nil {
			t.Fatal(err)
		}
		if got["email"] == "alice@new.example.test" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("claims %v: the changed file was not read again", got)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestClaimsServeSQLite: claims-serve answers from a SQLite table, a JSON value or plain text
// a row, and refuses the token of an identifier the table lacks; it reaches a --dev authority
// on loopback without its certificate.
func TestClaimsServeSQLite(t *testing.T) {
	if testing.Short() {
		t.Skip("a login through the registry, the authority and claims-serve: skipped under -short")
	}
	e := testenv.New(t, testenv.Options{Authority: true})
	path := filepath.Join(t.TempDir(), "agent.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE holder_claims (identifier TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (identifier, name))`,
		`INSERT INTO holder_claims VALUES ('alice.example.test', 'email', '"alice@example.test"'), ('alice.example.test', 'name', 'Alice'),
			('alice.example.test', 'email_verified', 'true'), ('alice.example.test', 'phone_number', '"+49 1"')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	endpoint := startClaimsServe(t, e, "--sqlite", path, "--sqlite-table", "holder_claims", "--authority-insecure-skip-verify")
	agent := e.NewAgentAt("alpha", strings.TrimSuffix(endpoint, "/claims"), endpoint)
	h := e.HolderFor(agent, "alice.example.test", false)
	rp := e.NewRP(nil)
	got, err := loginClaims(t, e, rp, h)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["email"] != "alice@example.test" || got["name"] != "Alice" {
		t.Fatalf("claims %v, want email and name from the table", got)
	}

	bob := e.HolderFor(agent, "bob.example.test", false)
	_, err = loginClaims(t, e, rp, bob)
	var herr *oidctest.HTTPError
	if !errors.As(err, &herr) || herr.Status != http.StatusUnauthorized || !strings.Contains(herr.WWWAuthenticate, `error="invalid_token"`) {
		t.Fatalf("claims of an identifier the table lacks: %v, want 401 invalid_token", err)
	}
}

func TestClaimsServeUsageErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "claims.yaml")
	if err := os.WriteFile(file, []byte("alice.example.test: {email: a@example.test}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("- a list\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--dev", "--claims-file", file}, "--authority is required"},
		{[]string{"--dev", "--authority", "https://id.example.test"}, "exactly one of --claims-file and --sqlite"},
		{[]string{"--dev", "--authority", "https://id.example.test", "--claims-file", file, "--sqlite", "x.db"}, "exactly one"},
		{[]string{"--authority", "https://id.example.test", "--claims-file", file}, "--tls-cert and --tls-key, or --dev"},
		{[]string{"--dev", "--addr", "0.0.0.0:0", "--authority", "https://id.example.test", "--claims-file", file}, "loopback"},
		{[]string{"--dev", "--addr", "127.0.0.1:0", "--authority", "https://id.example.test", "--claims-file", bad}, "--claims-file"},
		{[]string{"--dev", "--addr", "127.0.0.1:0", "--authority", "https://id.example.test", "--sqlite", filepath.Join(dir, "none.db")}, "--sqlite"},
		{[]string{"--dev", "--addr", "127.0.0.1:0", "--authority", "https://id.example.test", "--claims-file", file, "--alg", "HS256"}, "RS256 or ES256"},
		{[]string{"--dev", "--addr", "127.0.0.1:0", "--authority", "http://id.example.test", "--claims-file", file}, "https URL"},
		{[]string{"--dev", "--addr", "127.0.0.1:0", "--authority", "https://id.example.test", "--claims-file", file, "--authority-insecure-skip-verify"}, "an authority on loopback"},
		{[]string{"--tls-cert", "c.pem", "--tls-key", "k.pem", "--authority", "https://127.0.0.1:8443", "--claims-file", file, "--authority-insecure-skip-verify"}, "goes with --dev"},
		{[]string{"--dev", "--addr", "127.0.0.1:0", "--authority", "https://id.example.test", "--claims-file", file, "--issuer", "http://agent.example.test"}, "https URL"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), append([]string{"agent", "claims-serve"}, tc.args...), &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
	t.Run("environment", func(t *testing.T) {
		t.Setenv("ID4ME_CLAIMS_AUTHORITY", "https://id.example.test")
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), []string{"agent", "claims-serve", "--dev", "--addr", "127.0.0.1:0"}, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), "exactly one") {
			t.Fatalf("with ID4ME_CLAIMS_AUTHORITY: %v, want the source missing", err)
		}
	})
}
