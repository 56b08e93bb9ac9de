package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/id4me/id4me-registry/internal/testenv"
	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
)

// runCLI runs the command line in process with args and returns stdout, stderr and its error.
func runCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr strings.Builder
	err := run(context.Background(), args, &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

// mustRun runs the command line and fails the test if it fails.
func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, stderr, err := runCLI(t, args...)
	if err != nil {
		t.Fatalf("%v: %v\n%s", args, err, stderr)
	}
	return out
}

// adminEnv starts a registry on a real listener and points the admin commands at it with its
// operator credential, through their environment variables.
func adminEnv(t *testing.T) *testenv.Env {
	e := testenv.New(t, testenv.Options{})
	t.Setenv("ID4ME_ADMIN_REGISTRY", e.Addr)
	t.Setenv("ID4ME_ADMIN_PLAINTEXT", "true")
	t.Setenv("ID4ME_ADMIN_TOKEN", e.Operator)
	return e
}

// jsonLines decodes --json output, one object a line.
func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var objs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not a JSON line: %q: %v", line, err)
		}
		objs = append(objs, m)
	}
	return objs
}

const testJWK = `{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}`

// TestAdminAgentsAndTokensCLI: an agent created, listed, shown, renamed, suspended and
// resumed, and its tokens created, listed and revoked with `admin agents|tokens …`, each
// change seen through the API and a revoked token refused.
func TestAdminAgentsAndTokensCLI(t *testing.T) {
	e := adminEnv(t)
	ctx := testenv.As(e.Operator)
	jwkFile := filepath.Join(t.TempDir(), "key.jwk")
	if err := os.WriteFile(jwkFile, []byte(testJWK+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	out, stderr, err := runCLI(t, "admin", "agents", "create", "--display-name", "Example Agent",
		"--claims-endpoint", "https://agent.example/userinfo", "--issuer", "https://agent.example", "--account-key-jwk", "@"+jwkFile)
	if err != nil {
		t.Fatalf("agents create: %v\n%s", err, stderr)
	}
	id := strings.TrimSpace(out)
	a, err := e.AdminAPI.GetAgent(ctx, &registryv1.GetAgentRequest{Id: id})
	if err != nil || a.DisplayName != "Example Agent" || a.Issuer != "https://agent.example" || a.AccountKeyThumbprint == "" {
		t.Fatalf("agents create printed %q; the registry has %v, %v", out, a, err)
	}
	if !strings.Contains(stderr, "created agent "+id) {
		t.Errorf("agents create said %q", stderr)
	}

	out = mustRun(t, "admin", "agents", "list")
	if !regexp.MustCompile(`(?m)^ID +STATE +NAME`).MatchString(out) || !regexp.MustCompile(`(?m)^`+id+` +ACTIVE +Example Agent +https://agent.example `).MatchString(out) {
		t.Errorf("agents list:\n%s", out)
	}
	got := jsonLines(t, mustRun(t, "admin", "agents", "get", id, "--json"))
	if len(got) != 1 || got[0]["id"] != id || got[0]["state"] != "STATE_ACTIVE" || got[0]["claimsEndpoint"] != "https://agent.example/userinfo" {
		t.Errorf("agents get --json: %v", got)
	}

	out = mustRun(t, "admin", "agents", "update", id, "--display-name", "Renamed Agent")
	if !regexp.MustCompile(`(?m)^NAME +Renamed Agent$`).MatchString(out) || !regexp.MustCompile(`(?m)^ISSUER +https://agent.example$`).MatchString(out) {
		t.Errorf("agents update kept the fields not given? \n%s", out)
	}
	if _, _, err := runCLI(t, "admin", "agents", "update", id); err == nil || !strings.Contains(err.Error(), "nothing to change") {
		t.Errorf("agents update without a field: %v", err)
	}

	if out := mustRun(t, "admin", "agents", "suspend", id); !strings.Contains(out, "is suspended") {
		t.Errorf("agents suspend: %q", out)
	}
	if a, _ := e.AdminAPI.GetAgent(ctx, &registryv1.GetAgentRequest{Id: id}); a.GetState() != registryv1.Agent_STATE_SUSPENDED {
		t.Errorf("after suspend the agent is %v", a.GetState())
	}
	if out := mustRun(t, "admin", "agents", "resume", id); !strings.Contains(out, "is active") {
		t.Errorf("agents resume: %q", out)
	}

	out, stderr, err = runCLI(t, "admin", "tokens", "create", id, "--description", "ci")
	if err != nil {
		t.Fatalf("tokens create: %v\n%s", err, stderr)
	}
	secret := strings.TrimSpace(out)
	agentCtx := testenv.As(secret)
	if _, err := e.RegistryAPI.ListIdentifiers(agentCtx, &registryv1.ListIdentifiersRequest{}); err != nil {
		t.Fatalf("the new token %q does not work: %v", secret, err)
	}
	tokens := jsonLines(t, mustRun(t, "admin", "tokens", "list", id, "--json"))
	if len(tokens) != 1 || tokens[0]["description"] != "ci" || tokens[0]["secret"] != nil {
		t.Fatalf("tokens list --json: %v", tokens)
	}
	tokenID := tokens[0]["id"].(string)
	if !strings.Contains(stderr, tokenID) {
		t.Errorf("tokens create said %q, want the token's id %s", stderr, tokenID)
	}
	if out := mustRun(t, "admin", "tokens", "revoke", id, tokenID); !strings.Contains(out, tokenID+" of agent "+id+" is revoked") {
		t.Errorf("tokens revoke: %q", out)
	}
	if _, err := e.RegistryAPI.ListIdentifiers(agentCtx, &registryv1.ListIdentifiersRequest{}); err == nil {
		t.Error("the revoked token still works")
	}
	if out := mustRun(t, "admin", "tokens", "list", id); !regexp.MustCompile(`(?m)^` + tokenID + ` .* revoked `).MatchString(out) {
		t.Errorf("tokens list after the revocation:\n%s", out)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"agents", "get"}, "ID is required"},
		{[]string{"tokens", "revoke", id}, "TOKEN is required"},
		{[]string{"agents", "get", "ag_nope"}, "NotFound"},
		{[]string{"agents", "create", "--account-key-jwk", "@/nonexistent.jwk"}, "--account-key-jwk"},
	} {
		if _, _, err := runCLI(t, append([]string{"admin"}, tc.args...)...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("admin %v: %v; want it to say %q", tc.args, err, tc.want)
		}
	}
}

// TestAdminIdentifiersAndJournalCLI: an operator shows an identifier, holds it and forbids
// its transfer with a reason, releases it, and reads what happened in the journal, filtered,
// and followed as it is written.
func TestAdminIdentifiersAndJournalCLI(t *testing.T) {
	e := adminEnv(t)
	agent := e.NewAgent("alpha")
	e.Register(agent, "alice.example.test")

	out := mustRun(t, "admin", "identifiers", "get", "Alice.Example.Test.")
	if !regexp.MustCompile(`(?m)^NAME +alice.example.test$`).MatchString(out) || !regexp.MustCompile(`(?m)^AGENT +`+agent.Agent.Id+`$`).MatchString(out) {
		t.Errorf("identifiers get:\n%s", out)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--reason", "x"}, "--status is required"},
		{[]string{"--status", "hold"}, "--reason is required"},
		{[]string{"--status", "hold,frozen", "--reason", "x"}, `--status "frozen"`},
		{[]string{"--status", "none,hold", "--reason", "x"}, "goes alone"},
	} {
		if _, _, err := runCLI(t, append([]string{"admin", "identifiers", "set-status", "alice.example.test"}, tc.args...)...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("set-status %v: %v; want it to say %q", tc.args, err, tc.want)
		}
	}
	out = mustRun(t, "admin", "identifiers", "set-status", "alice.example.test", "--status", "hold", "--status", "transfer-prohibited", "--reason", "abuse report #42")
	if !strings.Contains(out, "SERVER_HOLD") || !strings.Contains(out, "SERVER_TRANSFER_PROHIBITED") {
		t.Errorf("set-status: %q", out)
	}
	i, err := e.AdminAPI.GetIdentifier(testenv.As(e.Operator), &registryv1.GetIdentifierRequest{Identifier: "alice.example.test"})
	if err != nil || !slices.Contains(i.Statuses, registryv1.IdentifierStatus_IDENTIFIER_STATUS_SERVER_HOLD) {
		t.Fatalf("after set-status: %v, %v", i.GetStatuses(), err)
	}
	if _, _, err := runCLI(t, "admin", "identifiers", "resolve", "alice.example.test"); err == nil || !strings.Contains(err.Error(), "NotFound") {
		t.Errorf("resolve of a held identifier: %v", err)
	}
	mustRun(t, "admin", "identifiers", "set-status", "alice.example.test", "--status", "none", "--reason", "resolved")
	if out := mustRun(t, "admin", "identifiers", "resolve", "alice.example.test"); !regexp.MustCompile(`(?m)^AGENT +` + agent.Agent.Id + `$`).MatchString(out) {
		t.Errorf("resolve after the release:\n%s", out)
	}

	entries := jsonLines(t, mustRun(t, "admin", "journal", "--identifier", "alice.example.test", "--json"))
	var actions []string
	for _, e := range entries {
		if e["objectId"] != "alice.example.test" {
			t.Errorf("journal --identifier gave an entry about %v", e["objectId"])
		}
		actions = append(actions, e["action"].(string))
	}
	if len(actions) < 3 || actions[0] != "identifier.register" {
		t.Errorf("journal of alice.example.test: %v; want the registration and both status changes", actions)
	}
	out = mustRun(t, "admin", "journal", "--agent", agent.Agent.Id, "--limit", "1")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], "ID ") || !strings.Contains(lines[1], "agent.create") {
		t.Errorf("journal --agent --limit 1:\n%s", out)
	}
	filtered := jsonLines(t, mustRun(t, "admin", "journal", "--action", "agent_token.", "--json"))
	for _, e := range filtered {
		if !strings.HasPrefix(e["action"].(string), "agent_token.") {
			t.Errorf("journal --action agent_token. gave %v", e["action"])
		}
	}
	if len(filtered) == 0 {
		t.Error("journal --action agent_token. gave nothing; the agent's token was journaled")
	}
	if _, _, err := runCLI(t, "admin", "journal", "--identifier", "a.example.test", "--agent", "ag_x"); err == nil || !strings.Contains(err.Error(), "one filter") {
		t.Errorf("two filters: %v", err)
	}

	// --follow prints what is there, then each new entry once, until interrupted.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var buf syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"admin", "journal", "--follow", "--interval", "20ms", "--json"}, &buf, &buf)
	}()
	waitFor(t, &buf, "identifier.register")
	beta := e.NewAgent("beta")
	waitFor(t, &buf, beta.Agent.Id)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("journal --follow ended with %v", err)
	}
	seen := map[any]bool{}
	for _, e := range jsonLines(t, buf.String()) {
		if seen[e["id"]] {
			t.Errorf("journal --follow printed entry %v twice", e["id"])
		}
		seen[e["id"]] = true
	}
}

// TestAdminTLSErrorSuggestsFlags: a registry whose certificate is not trusted gets an error
// that names --ca-file and --insecure-skip-verify; with the latter the command works.
func TestAdminTLSErrorSuggestsFlags(t *testing.T) {
	adminEnv(t)
	t.Setenv("ID4ME_ADMIN_PLAINTEXT", "false")
	_, _, err := runCLI(t, "admin", "agents", "list")
	if err == nil || !strings.Contains(err.Error(), "--ca-file") || !strings.Contains(err.Error(), "--insecure-skip-verify") {
		t.Fatalf("an untrusted certificate: %v; want a hint naming --ca-file and --insecure-skip-verify", err)
	}
	mustRun(t, "admin", "agents", "list", "--insecure-skip-verify")
}

// syncBuffer is a strings.Builder that a command writes to while the test reads it (the
// command tests of this package share it).
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor waits until buf holds want.
func waitFor(t *testing.T, buf *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(buf.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q within 10s:\n%s", want, buf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAdminCredentialLinkCLI: an operator makes a reset link for a holder's support case; the
// URL is stdout's one line and works at the authority, the journal has the reason, and a
// missing reason or an unknown purpose is refused before any call.
func TestAdminCredentialLinkCLI(t *testing.T) {
	e := testenv.New(t, testenv.Options{Authority: true})
	t.Setenv("ID4ME_ADMIN_REGISTRY", e.Addr)
	t.Setenv("ID4ME_ADMIN_PLAINTEXT", "true")
	t.Setenv("ID4ME_ADMIN_TOKEN", e.Operator)
	agent := e.NewAgent("alpha")
	e.Register(agent, "bob.example.test")

	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "--reason is required"},
		{[]string{"--purpose", "login", "--reason", "x"}, `--purpose "login"`},
	} {
		if _, _, err := runCLI(t, append([]string{"admin", "identifiers", "credential-link", "bob.example.test"}, tc.args...)...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("credential-link %v: %v; want it to say %q", tc.args, err, tc.want)
		}
	}
	out, stderr, err := runCLI(t, "admin", "identifiers", "credential-link", "Bob.Example.Test", "--reason", "ticket 99: locked out")
	if err != nil {
		t.Fatalf("credential-link: %v\n%s", err, stderr)
	}
	url := strings.TrimSpace(out)
	if !strings.HasPrefix(url, e.Issuer+"/credential/") || strings.Contains(url, "\n") || !strings.Contains(stderr, "RESET link for the holder of bob.example.test") {
		t.Fatalf("credential-link printed %q and said %q", out, stderr)
	}
	resp, err := e.RPClient.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET of the link: %s", resp.Status)
	}
	entries := jsonLines(t, mustRun(t, "admin", "journal", "--identifier", "bob.example.test", "--action", "credential_link.", "--json"))
	last := entries[len(entries)-1]
	if !strings.HasPrefix(last["actor"].(string), "operator:") || !strings.Contains(fmt.Sprint(last["after"]), "ticket 99: locked out") {
		t.Fatalf("the journal's last credential link entry %v, want the operator's with the reason", last)
	}
}
