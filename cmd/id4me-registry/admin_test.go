package main_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/id4me/id4me-registry/internal/testdb"
)

// TestAdminOperatorsCLI: `admin operators create|list|revoke` against a running registry, with
// the credential in ID4ME_ADMIN_TOKEN or --token: a new operator credential is printed once,
// listed without its secret, works, is revoked and then refused; the last one is kept.
func TestAdminOperatorsCLI(t *testing.T) {
	db := testdb.SQLite(t)
	out, stderr, err := cli(t, nil, "admin", "bootstrap", "--db", db)
	if err != nil {
		t.Fatalf("bootstrap: %v\n%s", err, stderr)
	}
	boot := strings.TrimSpace(out)
	bootID, _, _ := strings.Cut(boot, ".")
	in := startInstance(t, db)
	env := []string{"ID4ME_ADMIN_REGISTRY=" + in.Addr, "ID4ME_ADMIN_PLAINTEXT=true", "ID4ME_ADMIN_TOKEN=" + boot}

	out, stderr, err = cli(t, env, "admin", "operators", "create", "--description", "ci")
	if err != nil {
		t.Fatalf("operators create: %v\n%s", err, stderr)
	}
	secret := strings.TrimSpace(out)
	if !bearerPattern.MatchString(secret) {
		t.Fatalf("operators create printed %q, want only the credential", out)
	}
	id, _, _ := strings.Cut(secret, ".")
	if !strings.Contains(stderr, id) {
		t.Errorf("operators create said %q, want the credential's id", stderr)
	}

	// The new credential works, given by flag over the environment's.
	out, stderr, err = cli(t, env, "admin", "operators", "list", "--json", "--token", secret)
	if err != nil {
		t.Fatalf("operators list with the new credential: %v\n%s", err, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"id":"`+bootID+`"`) || !strings.Contains(lines[1], `"id":"`+id+`"`) ||
		!strings.Contains(lines[1], `"description":"ci"`) || strings.Contains(out, "secret") {
		t.Fatalf("operators list --json:\n%s\nwant %s and %s, without secrets", out, bootID, id)
	}

	out, stderr, err = cli(t, env, "admin", "operators", "revoke", id)
	if err != nil || !strings.Contains(out, id+" is revoked") {
		t.Fatalf("operators revoke: %q, %v\n%s", out, err, stderr)
	}
	_, stderr, err = cli(t, env, "admin", "operators", "list", "--token", secret)
	if err == nil || !strings.Contains(stderr, "revoked") {
		t.Fatalf("list with the revoked credential: err %v, stderr %q; want a refusal", err, stderr)
	}
	out, _, err = cli(t, env, "admin", "operators", "list")
	if err != nil || !regexp.MustCompile(`(?m)^`+id+` .* revoked `).MatchString(out) || !regexp.MustCompile(`(?m)^`+bootID+` .* active `).MatchString(out) {
		t.Fatalf("operators list after the revocation: %q, %v", out, err)
	}
	_, stderr, err = cli(t, env, "admin", "operators", "revoke", bootID)
	if err == nil || !strings.Contains(stderr, "last operator credential") {
		t.Fatalf("revoking the last credential: err %v, stderr %q; want a refusal", err, stderr)
	}

	for _, tc := range []struct {
		env  []string
		args []string
		want string
	}{
		{[]string{"ID4ME_ADMIN_REGISTRY=" + in.Addr, "ID4ME_ADMIN_PLAINTEXT=true"}, []string{"list"}, "ID4ME_ADMIN_TOKEN"},
		{env, []string{"revoke"}, "ID is required"},
		{env, []string{"rotate"}, `unknown command "rotate" of id4me-registry admin operators`},
		{env, []string{}, "needs a command"},
		{[]string{"ID4ME_ADMIN_TOKEN=" + boot}, []string{"list", "--plaintext", "--registry", "registry.example:9443"}, "loopback"},
	} {
		if _, stderr, err := cli(t, tc.env, append([]string{"admin", "operators"}, tc.args...)...); err == nil || !strings.Contains(stderr, tc.want) {
			t.Errorf("admin operators %v: err %v, stderr %q; want it to say %q", tc.args, err, stderr, tc.want)
		}
	}
}
