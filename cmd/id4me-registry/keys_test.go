package main_test

import (
	"path/filepath"
	"regexp"
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
		if len(f) != 7 {
			t.Fatalf("keys list row %q: want kid, alg, state and four times", l)
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
