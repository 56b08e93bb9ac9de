package main_test

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestHelpAndWrongFlagsOfTheBinary: --help exits 0 with the help on stdout alone; a wrong
// flag exits 2 with one line on stderr that points to --help.
func TestHelpAndWrongFlagsOfTheBinary(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"admin", "--help"}, {"admin", "journal", "--help"}, {"serve", "-h"}, {"agent", "register", "--help"}} {
		out, stderr, err := cli(t, nil, args...)
		if err != nil || stderr != "" || !strings.Contains(out, "usage: id4me-registry") {
			t.Errorf("%v: %v, stderr %q, stdout:\n%s", args, err, stderr, out)
		}
	}
	for _, args := range [][]string{{"serve", "--no-such-flag"}, {"admin", "agents", "list", "--nope"}, {"keys", "list", "--db"}} {
		out, stderr, err := cli(t, nil, args...)
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 || out != "" || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, " --help") {
			t.Errorf("%v: %v, stdout %q, stderr %q; want one line pointing to --help", args, err, out, stderr)
		}
	}
}

// TestDatabaseErrors: a --db that cannot work is refused with what is wrong, and the commands
// that only read a database never create one.
func TestDatabaseErrors(t *testing.T) {
	dir := t.TempDir()
	unwritable := filepath.Join(dir, "ro")
	if err := os.Mkdir(unwritable, 0o500); err != nil {
		t.Fatal(err)
	}
	if f, err := os.CreateTemp(unwritable, "probe"); err == nil {
		// root writes anywhere; /sys refuses even root.
		f.Close()
		unwritable = "/sys"
		if f, err := os.CreateTemp(unwritable, "probe"); err == nil {
			f.Close()
			os.Remove(f.Name())
			unwritable = ""
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"migrate", "--db", "mysql://user:pw@db.example/registry"}, `unknown database scheme "mysql://"`},
		{[]string{"serve", "--db", "sqlite3://r.db"}, `unknown database scheme "sqlite3://"`},
		{[]string{"migrate", "--db", dir}, "is a directory: give the database file's path"},
		{[]string{"admin", "bootstrap", "--db", filepath.Join(dir, "missing", "r.db")}, "the directory " + filepath.Join(dir, "missing") + " does not exist"},
		{[]string{"keys", "list", "--db", filepath.Join(dir, "none.db")}, "no such database file"},
		{[]string{"registration-tokens", "list", "--db", filepath.Join(dir, "none.db")}, "no such database file"},
	} {
		_, stderr, err := cli(t, nil, tc.args...)
		if err == nil || !strings.Contains(stderr, tc.want) || strings.Contains(stderr, "(14)") {
			t.Errorf("%v: %v, stderr %q; want it to say %q", tc.args, err, stderr, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "none.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a read-only command created the database: %v", err)
	}
	if unwritable == "" {
		t.Log("no unwritable directory on this machine: that case is not checked")
		return
	}
	if _, stderr, err := cli(t, nil, "migrate", "--db", filepath.Join(unwritable, "r.db")); err == nil || !strings.Contains(stderr, "cannot write to the directory "+unwritable) {
		t.Errorf("an unwritable directory: %v, %q", err, stderr)
	}
}

// TestDurationErrorsShowTheFormat: a duration that does not parse, in a flag, an ID4ME_*
// variable or a --config file, is refused with how a duration is written.
func TestDurationErrorsShowTheFormat(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(conf, []byte("sweep-interval: 10\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		env  []string
		args []string
		want string
	}{
		{[]string{"ID4ME_SWEEP_INTERVAL=10"}, []string{"serve"}, `ID4ME_SWEEP_INTERVAL="10" is not a duration`},
		{[]string{"ID4ME_ADMIN_INTERVAL=2 seconds"}, []string{"admin", "journal"}, `ID4ME_ADMIN_INTERVAL="2 seconds" is not a duration`},
		{nil, []string{"serve", "--dns-timeout", "5"}, `invalid value "5" for flag -dns-timeout`},
		{nil, []string{"serve", "--config", conf}, `sweep-interval: "10"`},
	} {
		_, stderr, err := cli(t, tc.env, tc.args...)
		if err == nil || !strings.Contains(stderr, tc.want) || !strings.Contains(stderr, "90s, 15m, 1h30m") {
			t.Errorf("%v %v: %v, stderr %q; want %q and the format", tc.env, tc.args, err, stderr, tc.want)
		}
	}
}

// TestPortInUseNamesTheFlag: a listener whose address is taken names the flag that moves it.
func TestPortInUseNamesTheFlag(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	db := filepath.Join(t.TempDir(), "r.db")
	for _, flag := range []string{"--grpc-addr", "--http-addr", "--admin-addr"} {
		args := []string{"serve", "--dev", "--db", db, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", flag, taken.Addr().String()}
		_, stderr, err := cli(t, nil, args...)
		if err == nil || !strings.Contains(stderr, "address already in use") || !strings.Contains(stderr, "choose another address with "+flag) {
			t.Errorf("%s taken: %v, stderr %q", flag, err, stderr)
		}
	}
}

// TestServeWithoutOperatorSaysHowToMakeOne: serve without --dev on a database without an
// operator credential logs the command that makes the first.
func TestServeWithoutOperatorSaysHowToMakeOne(t *testing.T) {
	db := filepath.Join(t.TempDir(), "r.db")
	_, stderr, err := serveBriefly(t, nil, append([]string{"--db", db}, loopback...)...)
	if err != nil {
		t.Fatalf("serve: %v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "no operator credential") || !strings.Contains(stderr, "id4me-registry admin bootstrap --db "+db) {
		t.Errorf("serve without an operator logged:\n%s", stderr)
	}
}

// TestServeRunsFromAConfigFile: the settings of a --config file, --dev among them, are those
// the registry runs with.
func TestServeRunsFromAConfigFile(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "registry.yaml")
	content := "dev: true\ndb: " + filepath.Join(dir, "r.db") + "\ngrpc-addr: 127.0.0.1:0\nhttp-addr: 127.0.0.1:0\nadmin-addr: 127.0.0.1:0\n"
	if err := os.WriteFile(conf, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	out, stderr, err := serveBriefly(t, nil, "--config", conf)
	if err != nil {
		t.Fatalf("serve --config: %v\n%s", err, stderr)
	}
	if !strings.Contains(out, "export ID4ME_ADMIN_TOKEN=") || !strings.Contains(out, "gRPC on 127.0.0.1:") {
		t.Errorf("serve --config with dev: true printed:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "r.db")); err != nil {
		t.Errorf("the database the file names: %v", err)
	}
}
