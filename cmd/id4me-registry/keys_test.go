package main_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

var rotatedLine = regexp.MustCompile(`(?m)^(RS256|ES256) key ([A-Za-z0-9_-]{43}): (.*)$`)

// rotated runs "keys rotate" and returns the kid it printed for each algorithm.
func rotated(t *testing.T, env []string, args ...string) (map[string]string, string) {
	t.Helper()
	out, stderr, err := cli(t, env, append([]string{"keys", "rotate"}, args...)...)
	if err != nil {
		t.Fatalf("keys rotate %v: %v\n%s", args, err, stderr)
	}
	kids := map[string]string{}
	for _, m := range rotatedLine.FindAllStringSubmatch(out, -1) {
		kids[m[1]] = m[2]
	}
	return kids, out
}

// listed runs "keys list" and returns its rows by kid.
func listed(t *testing.T, db string) map[string][]string {
	t.Helper()
	out, stderr, err := cli(t, nil, "keys", "list", "--db", db)
	if err != nil {
		t.Fatalf("keys list: %v\n%s", err, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if !strings.HasPrefix(lines[0], "KID") {
		t.Fatalf("keys list printed no header:\n%s", out)
	}
	rows := map[string][]string{}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != 8 {
			t.Fatalf("keys list row %q: want kid, alg, state, four times and the seal", l)
		}
		rows[f[0]] = f[1:]
	}
	return rows
}

func TestKeysCommand(t *testing.T) {
	db := filepath.Join(t.TempDir(), "r.db")

	// On a new database the first keys are made, signing at once.
	first, out := rotated(t, nil, "--db", db)
	if len(first) != 2 || !strings.Contains(out, "the first") {
		t.Fatalf("first rotate printed:\n%s", out)
	}
	rows := listed(t, db)
	if len(rows) != 2 || rows[first["RS256"]][1] != "signing" || rows[first["ES256"]][1] != "signing" {
		t.Fatalf("keys after the first rotate: %v", rows)
	}

	// A rotation publishes a key that signs after the publish lead (from the environment).
	before := time.Now().UTC().Truncate(time.Second)
	next, out := rotated(t, []string{"ID4ME_DB=" + db, "ID4ME_KEY_PUBLISH_LEAD=2h"}, "--alg", "RS256")
	if len(next) != 1 || next["RS256"] == "" || next["RS256"] == first["RS256"] || !strings.Contains(out, "(in 2h0m0s)") {
		t.Fatalf("rotate --alg RS256 printed:\n%s", out)
	}
	rows = listed(t, db)
	row := rows[next["RS256"]]
	if len(rows) != 3 || row == nil || row[0] != "RS256" || row[1] != "next" {
		t.Fatalf("keys list after the rotation: %v; want the new RS256 key as next", rows)
	}
	signsFrom, err := time.Parse(time.RFC3339, row[3])
	if err != nil || signsFrom.Before(before.Add(2*time.Hour)) || signsFrom.After(time.Now().Add(2*time.Hour)) {
		t.Fatalf("new key signs from %q; want two hours from now", row[3])
	}
	if old := rows[first["RS256"]]; old[1] != "signing" || old[4] != row[3] || old[5] == "-" {
		t.Fatalf("replaced key %v; want it signing until %s, then expiring", old, row[3])
	}

	// --now: the new key signs at once; the replaced one stays published, retired.
	now, out := rotated(t, nil, "--db", db, "--alg", "ES256", "--now")
	if now["ES256"] == "" || !strings.Contains(out, "(now)") {
		t.Fatalf("rotate --now printed:\n%s", out)
	}
	rows = listed(t, db)
	if rows[now["ES256"]][1] != "signing" || rows[first["ES256"]][1] != "retired" {
		t.Fatalf("keys after rotate --now: %v", rows)
	}

	for _, args := range [][]string{
		{"keys"}, {"keys", "frobnicate"}, {"keys", "rotate", "--db", db, "--alg", "HS256"},
		{"keys", "rotate", "--db", db, "--key-rsa-bits", "1024"},
	} {
		if _, stderr, err := cli(t, nil, args...); err == nil || stderr == "" {
			t.Errorf("%v: err %v, stderr %q; want a failure that says why", args, err, stderr)
		}
	}
}

// startServe runs serve on loopback with args until it listens (or exits), then stops it; it
// returns what it printed and how it ended.
func startServe(t *testing.T, env []string, args ...string) (string, string, error) {
	t.Helper()
	return serveBriefly(t, env, append(slices.Clone(loopback), args...)...)
}

// TestKeysSealedWithKEK: keys made with a key-encryption key are sealed; serve starts with it
// and refuses to start without it or with another; a rewrap moves the keys to a new one.
func TestKeysSealedWithKEK(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "r.db")
	kek := func(name string) string {
		t.Helper()
		out, stderr, err := cli(t, nil, "keys", "generate-kek")
		if err != nil || len(out) != 45 {
			t.Fatalf("keys generate-kek: %q, %v\n%s", out, err, stderr)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	a, b := kek("a"), kek("b")

	first, out := rotated(t, []string{"ID4ME_KEY_ENCRYPTION_KEY_FILE=" + a}, "--db", db)
	if len(first) != 2 {
		t.Fatalf("first rotate printed:\n%s", out)
	}
	sealedWith := func(env []string, args ...string) (map[string]string, error) {
		t.Helper()
		out, stderr, err := cli(t, env, append([]string{"keys", "list", "--db", db}, args...)...)
		seals := map[string]string{}
		for _, l := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
			f := strings.Fields(l)
			seals[f[0]] = strings.Join(f[7:], " ")
		}
		if err != nil {
			err = fmt.Errorf("%w: %s", err, stderr)
		}
		return seals, err
	}
	seals, err := sealedWith(nil, "--key-encryption-key-file", a)
	kekA := seals[first["RS256"]]
	if err != nil || len(seals) != 2 || kekA == "-" || kekA == "" || seals[first["ES256"]] != kekA {
		t.Fatalf("keys list: %v, %v; want both keys sealed with one key-encryption key", seals, err)
	}
	if seals, err := sealedWith(nil, "--key-encryption-key-file", b); err == nil || !strings.Contains(err.Error(), kekA) ||
		!strings.Contains(seals[first["RS256"]], "does not open") {
		t.Fatalf("keys list with another key-encryption key: %v, %v; want each key marked and a failure", seals, err)
	}

	// serve: without the key-encryption key, or with another, it does not start, and says
	// which key it needs; with it, it starts.
	for name, args := range map[string][]string{
		"none":    {"--dev", "--db", db},
		"another": {"--dev", "--db", db, "--key-encryption-key-file", b},
	} {
		_, stderr, err := startServe(t, nil, args...)
		if err == nil || !strings.Contains(stderr, "--key-encryption-key-file") || !strings.Contains(stderr, kekA) {
			t.Fatalf("serve with %s key-encryption key: %v\n%s\nwant a refusal naming the key and the flag", name, err, stderr)
		}
	}
	if _, stderr, err := startServe(t, []string{"ID4ME_KEY_ENCRYPTION_KEY_FILE=" + a}, "--dev", "--db", db); err != nil || strings.Contains(stderr, "without the key-encryption key") {
		t.Fatalf("serve with the key-encryption key: %v\n%s", err, stderr)
	}

	// A rewrap to b: a alone opens nothing any more; a and b together (instances during
	// the rewrap) and b alone open every key.
	out, stderr, err := cli(t, nil, "keys", "rewrap", "--db", db, "--key-encryption-key-file", b, "--old-key-encryption-key-file", a)
	if err != nil || !strings.Contains(out, "sealed 2 signing keys") {
		t.Fatalf("keys rewrap: %q, %v\n%s", out, err, stderr)
	}
	seals, err = sealedWith(nil, "--key-encryption-key-file", b)
	if err != nil || seals[first["RS256"]] == kekA || seals[first["RS256"]] != seals[first["ES256"]] {
		t.Fatalf("keys list after the rewrap: %v, %v", seals, err)
	}
	if _, stderr, err := startServe(t, nil, "--dev", "--db", db, "--key-encryption-key-file", a); err == nil {
		t.Fatalf("serve with the replaced key-encryption key started\n%s", stderr)
	}
	for _, args := range [][]string{
		{"--key-encryption-key-file", b},
		{"--key-encryption-key-file", b, "--old-key-encryption-key-file", a},
	} {
		if _, stderr, err := startServe(t, nil, append([]string{"--dev", "--db", db}, args...)...); err != nil {
			t.Fatalf("serve %v after the rewrap: %v\n%s", args, err, stderr)
		}
	}
	out, _, err = cli(t, nil, "keys", "rewrap", "--db", db, "--key-encryption-key-file", b)
	if err != nil || !strings.Contains(out, "sealed 0 signing keys") || !strings.Contains(out, "2 were sealed with it already") {
		t.Fatalf("second rewrap: %q, %v", out, err)
	}

	for _, args := range [][]string{
		{"keys", "rewrap", "--db", db},
		{"keys", "rewrap", "--db", db, "--old-key-encryption-key-file", a},
		{"keys", "rewrap", "--db", db, "--key-encryption-key-file", b, "--old-key-encryption-key-file", b},
		{"keys", "rewrap", "--db", db, "--key-encryption-key-file", filepath.Join(dir, "missing")},
		{"keys", "rewrap", "--db", db, "--key-encryption-key-file", db},
	} {
		if _, stderr, err := cli(t, nil, args...); err == nil || stderr == "" {
			t.Errorf("%v: err %v, stderr %q; want a failure that says why", args, err, stderr)
		}
	}
}

// TestServeWarnsWithoutKEK: outside --dev, serve warns that the signing keys are stored
// unsealed when it has no key-encryption key; in --dev, and with one, it does not.
func TestServeWarnsWithoutKEK(t *testing.T) {
	dir := t.TempDir()
	const warning = "no --key-encryption-key-file"
	_, stderr, err := startServe(t, nil, "--db", filepath.Join(dir, "prod.db"))
	if err != nil || !strings.Contains(stderr, warning) {
		t.Fatalf("serve without a key-encryption key: %v\n%s\nwant a warning", err, stderr)
	}
	_, stderr, err = startServe(t, nil, "--dev", "--db", filepath.Join(dir, "dev.db"))
	if err != nil || strings.Contains(stderr, warning) {
		t.Fatalf("serve --dev: %v\n%s\nwant no warning", err, stderr)
	}
	out, _, err := cli(t, nil, "keys", "generate-kek")
	if err != nil {
		t.Fatal(err)
	}
	kek := filepath.Join(dir, "kek")
	if err := os.WriteFile(kek, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	// An existing database with unsealed keys: served, with a warning that a rewrap seals them.
	_, stderr, err = startServe(t, nil, "--db", filepath.Join(dir, "prod.db"), "--key-encryption-key-file", kek)
	if err != nil || strings.Contains(stderr, warning) || !strings.Contains(stderr, "keys rewrap") {
		t.Fatalf("serve with a key-encryption key over unsealed keys: %v\n%s\nwant a warning to rewrap", err, stderr)
	}
}
