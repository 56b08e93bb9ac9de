package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// writeFile writes content to name in a new temporary directory and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// setting returns the line of key in print-config's output.
func setting(t *testing.T, out, key string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + `: .*$`).FindString(out)
	if m == "" {
		t.Errorf("print-config has no %s:\n%s", key, out)
	}
	return m
}

// TestServeConfigFile: serve --config takes YAML and TOML files keyed by the flags' names; a
// flag wins over its variable, which wins over the file, which wins over the default;
// --print-config shows the result, where each setting came from, and no password.
func TestServeConfigFile(t *testing.T) {
	yaml := writeFile(t, "registry.yaml", `
db: postgres://registry:s3cret@db.example/registry?sslmode=require
grpc-addr: 127.0.0.1:19443
http-addr: 127.0.0.1:18443
log-level: warn
dns-server: [127.0.0.1:5354, 127.0.0.1:5355]
sweep-interval: 30s
worker: false
`)
	toml := writeFile(t, "registry.toml", `
grpc-addr = "127.0.0.1:29443"
dns-server = ["127.0.0.1:6354"]
transfer-pending-period = "120h"
agent-rate = 5.5
`)
	t.Setenv("ID4ME_HTTP_ADDR", "127.0.0.1:28443")
	t.Setenv("ID4ME_LOG_LEVEL", "info")
	out := mustRun(t, "serve", "--config", yaml, "--print-config", "--log-level", "debug")
	for key, want := range map[string]string{
		"grpc-addr":      "grpc-addr: 127.0.0.1:19443 .*# --config " + regexp.QuoteMeta(yaml),
		"http-addr":      "http-addr: 127.0.0.1:28443 .*# ID4ME_HTTP_ADDR",
		"log-level":      "log-level: debug .*# flag --log-level",
		"dns-server":     `dns-server: \[127.0.0.1:5354, 127.0.0.1:5355\] .*# --config`,
		"sweep-interval": "sweep-interval: 30s ",
		"worker":         "worker: false ",
		"admin-addr":     "admin-addr: 127.0.0.1:9090$",
		"db":             "db: postgres://registry:xxxxx@db.example/registry\\?sslmode=require ",
	} {
		if line := setting(t, out, key); !regexp.MustCompile(want).MatchString(line) {
			t.Errorf("print-config: %q; want %q", line, want)
		}
	}
	if strings.Contains(out, "s3cret") {
		t.Errorf("print-config shows the database password:\n%s", out)
	}

	// What print-config prints is a configuration file that gives the same configuration.
	again := writeFile(t, "again.yaml", out)
	os.Unsetenv("ID4ME_HTTP_ADDR")
	os.Unsetenv("ID4ME_LOG_LEVEL")
	out2 := mustRun(t, "serve", "--config", again, "--print-config")
	strip := regexp.MustCompile(` *#.*`)
	if a, b := strip.ReplaceAllString(out, ""), strip.ReplaceAllString(out2, ""); a != b {
		t.Errorf("print-config's output read back gives another configuration:\n%s\n---\n%s", a, b)
	}

	out = mustRun(t, "serve", "--config", toml, "--print-config", "--dns-server", "127.0.0.1:7354")
	for key, want := range map[string]string{
		"grpc-addr":               "grpc-addr: 127.0.0.1:29443 ",
		"dns-server":              `dns-server: \[127.0.0.1:7354\] .*# flag`,
		"transfer-pending-period": "transfer-pending-period: 120h0m0s ",
		"agent-rate":              "agent-rate: 5.5 ",
	} {
		if line := setting(t, out, key); !regexp.MustCompile(want).MatchString(line) {
			t.Errorf("print-config (TOML): %q; want %q", line, want)
		}
	}

	t.Setenv("ID4ME_CONFIG", toml)
	if line := setting(t, mustRun(t, "serve", "--print-config"), "grpc-addr"); !strings.HasPrefix(line, "grpc-addr: 127.0.0.1:29443 ") {
		t.Errorf("the file named by ID4ME_CONFIG: %q", line)
	}
	os.Unsetenv("ID4ME_CONFIG")

	for _, tc := range []struct {
		file, want string
	}{
		{writeFile(t, "bad.yaml", "grpc_addr: 127.0.0.1:1\n"), `unknown key "grpc_addr"`},
		{writeFile(t, "nested.yaml", "grpc:\n  addr: 127.0.0.1:1\n"), `unknown key "grpc.addr"`},
		{writeFile(t, "bad.toml", "grpc-addr = \n"), "TOML"},
		{writeFile(t, "registry.conf", "grpc-addr: 127.0.0.1:1\n"), "want a .yaml, .yml or .toml file"},
		{writeFile(t, "check.yaml", "subject-type: secret\n"), "--subject-type must be pairwise or public"},
		{filepath.Join(t.TempDir(), "missing.yaml"), "no such file"},
	} {
		if _, _, err := runCLI(t, "serve", "--config", tc.file, "--print-config"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--config %s: %v; want %q", filepath.Base(tc.file), err, tc.want)
		}
	}
}
