package main_test

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/id4me/id4me-registry/internal/testenv"
)

// authorityClient reaches a dev instance's authority (self-signed certificate).
var authorityClient = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}

// postRegistration registers a relying party at in's authority, with an initial access
// token when token is not empty, and returns the status and the JSON answer.
func postRegistration(t *testing.T, in *testenv.Instance, token string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "https://"+in.HTTPAddr+"/register",
		strings.NewReader(`{"application_type":"native","redirect_uris":["https://rp.test/cb"],"token_endpoint_auth_method":"client_secret_basic"}`))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := authorityClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

var tokenLine = regexp.MustCompile(`^[A-Za-z0-9_-]{43}\n$`)

// createToken runs "registration-tokens create" and returns the token it printed and the ID
// it reported.
func createToken(t *testing.T, db string, args ...string) (string, string) {
	t.Helper()
	out, stderr, err := cli(t, nil, append([]string{"registration-tokens", "create", "--db", db}, args...)...)
	if err != nil || !tokenLine.MatchString(out) {
		t.Fatalf("create %v: %q, %v\n%s", args, out, err, stderr)
	}
	m := regexp.MustCompile(`initial access token (\S+): `).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("create %v said %q, no ID", args, stderr)
	}
	return strings.TrimSpace(out), m[1]
}

// listTokens runs "registration-tokens list" and returns its rows by ID.
func listTokens(t *testing.T, db string) map[string][]string {
	t.Helper()
	out, stderr, err := cli(t, nil, "registration-tokens", "list", "--db", db)
	if err != nil {
		t.Fatalf("list: %v\n%s", err, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if !strings.HasPrefix(lines[0], "ID") {
		t.Fatalf("list printed no header:\n%s", out)
	}
	rows := map[string][]string{}
	for _, l := range lines[1:] {
		f := regexp.MustCompile(`\s{2,}`).Split(strings.TrimSpace(l), -1)
		rows[f[0]] = f[1:]
	}
	return rows
}

// TestRegistrationTokensCommand: with --registration token (here from the environment) the
// authority registers only with an initial access token made by the CLI, for as many uses
// as it allows and until it is revoked; --registration-rate and --registration-burst limit
// registrations per source, and the discovery flags show in discovery.
func TestRegistrationTokensCommand(t *testing.T) {
	db := filepath.Join(t.TempDir(), "r.db")
	once, onceID := createToken(t, db, "--description", "shop", "--max-uses", "1")
	many, manyID := createToken(t, db, "--expires-in", "24h")
	rows := listTokens(t, db)
	if fmt.Sprint(rows[onceID][:2]) != "[active 0/1]" || rows[onceID][len(rows[onceID])-1] != "shop" ||
		fmt.Sprint(rows[manyID][:2]) != "[active 0/-]" || rows[manyID][3] == "-" {
		t.Fatalf("list after create: %v", rows)
	}

	t.Setenv("ID4ME_REGISTRATION", "token")
	in := startInstance(t, db, "--registration-rate", "1/h", "--registration-burst", "5",
		"--op-policy-uri", "https://id.example/privacy", "--op-tos-uri", "https://id.example/terms",
		"--service-documentation", "https://id.example/developers")
	resp, err := authorityClient.Get("https://" + in.HTTPAddr + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var d map[string]any
	err = json.NewDecoder(resp.Body).Decode(&d)
	resp.Body.Close()
	if err != nil || d["op_policy_uri"] != "https://id.example/privacy" || d["op_tos_uri"] != "https://id.example/terms" ||
		d["service_documentation"] != "https://id.example/developers" ||
		fmt.Sprint(d["token_endpoint_auth_methods_supported"]) != "[client_secret_basic client_secret_post none]" {
		t.Fatalf("discovery: %v, %v", d, err)
	}

	if status, m := postRegistration(t, in, ""); status != http.StatusUnauthorized || m["error"] != "invalid_token" {
		t.Fatalf("without a token: %d %v", status, m)
	}
	if status, m := postRegistration(t, in, once); status != http.StatusCreated || m["client_secret"] == nil {
		t.Fatalf("with a token: %d %v", status, m)
	}
	if status, m := postRegistration(t, in, once); status != http.StatusUnauthorized || !strings.Contains(fmt.Sprint(m["error_description"]), "used up") {
		t.Fatalf("with a used up token: %d %v", status, m)
	}
	if out, stderr, err := cli(t, nil, "registration-tokens", "revoke", "--db", db, "--id", manyID); err != nil || !strings.Contains(out, "revoked") {
		t.Fatalf("revoke: %q, %v\n%s", out, err, stderr)
	}
	if status, m := postRegistration(t, in, many); status != http.StatusUnauthorized || !strings.Contains(fmt.Sprint(m["error_description"]), "revoked") {
		t.Fatalf("with a revoked token: %d %v", status, m)
	}
	// Five attempts were the burst; the sixth waits for the rate (one an hour).
	if status, m := postRegistration(t, in, once); status != http.StatusUnauthorized {
		t.Fatalf("fifth attempt: %d %v", status, m)
	}
	if status, m := postRegistration(t, in, once); status != http.StatusTooManyRequests {
		t.Fatalf("sixth attempt: %d %v, want 429", status, m)
	}
	rows = listTokens(t, db)
	if fmt.Sprint(rows[onceID][:2]) != "[used up 1/1]" || rows[manyID][0] != "revoked" {
		t.Fatalf("list after the registrations: %v", rows)
	}

	for _, args := range [][]string{
		{"registration-tokens"}, {"registration-tokens", "frobnicate"},
		{"registration-tokens", "revoke", "--db", db},
		{"registration-tokens", "revoke", "--db", db, "--id", "no-such-token"},
		{"registration-tokens", "create", "--db", db, "--max-uses", "-1"},
	} {
		if _, stderr, err := cli(t, nil, args...); err == nil || stderr == "" {
			t.Errorf("%v: err %v, stderr %q; want a failure that says why", args, err, stderr)
		}
	}
}

// TestRegistrationRateOff: --registration-rate off lets one source register past the burst.
func TestRegistrationRateOff(t *testing.T) {
	in := startInstance(t, filepath.Join(t.TempDir(), "r.db"), "--registration-rate", "off", "--registration-burst", "1")
	for k := range 15 {
		if status, m := postRegistration(t, in, ""); status != http.StatusCreated {
			t.Fatalf("registration %d: %d %v", k+1, status, m)
		}
	}
}
