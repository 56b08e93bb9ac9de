package cmdline_test

import (
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/id4me/id4me-registry/internal/cmdline"
)

// TestParseCommandFlags: positional arguments stand anywhere among the flags; a flag not on
// the command line comes from its environment variable, a list's split at commas; the
// command line wins; a bad value in the environment is refused, naming the variable.
func TestParseCommandFlags(t *testing.T) {
	env := cmdline.EnvName("ID4ME_TEST_")
	if got := env("dns-server"); got != "ID4ME_TEST_DNS_SERVER" {
		t.Fatalf("EnvName: %s", got)
	}
	type flags struct {
		servers cmdline.StringList
		wait    time.Duration
		token   string
	}
	parse := func(args ...string) (flags, []string, error) {
		var f flags
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		fs.Var(&f.servers, "dns-server", "")
		fs.DurationVar(&f.wait, "wait", time.Second, "")
		fs.StringVar(&f.token, "token", "", "")
		pos, err := cmdline.ParseCommandFlags(fs, args, env, "NAME", "OTHER")
		return f, pos, err
	}

	t.Setenv("ID4ME_TEST_DNS_SERVER", " a:53, ,b:53")
	t.Setenv("ID4ME_TEST_TOKEN", "from-env")
	f, pos, err := parse("x", "--wait", "2s", "y")
	if err != nil || !slices.Equal(pos, []string{"x", "y"}) {
		t.Fatalf("positional arguments %v, %v", pos, err)
	}
	if !slices.Equal(f.servers, cmdline.StringList{"a:53", "b:53"}) || f.wait != 2*time.Second || f.token != "from-env" {
		t.Errorf("flags %+v; want the list and the token from the environment, the wait from the command line", f)
	}
	f, _, err = parse("x", "y", "--dns-server", "c:53", "--token", "given")
	if err != nil || !slices.Equal(f.servers, cmdline.StringList{"c:53"}) || f.token != "given" {
		t.Errorf("flags %+v, %v; want the command line's over the environment's", f, err)
	}

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"x"}, "OTHER is required"},
		{[]string{"x", "y", "z"}, `unexpected argument "z"`},
		{[]string{"x", "y", "--nope"}, "flag provided but not defined: -nope"},
	} {
		if _, _, err := parse(tt.args...); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: %v; want %q", tt.args, err, tt.want)
		}
	}
	t.Setenv("ID4ME_TEST_WAIT", "soon")
	if _, _, err := parse("x", "y"); err == nil || !strings.Contains(err.Error(), `ID4ME_TEST_WAIT="soon"`) {
		t.Errorf("a bad duration in the environment: %v", err)
	}
}

// TestNoCredential names --token's environment variable and the other ways to give one.
func TestNoCredential(t *testing.T) {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	f := cmdline.AddConnFlags(fs, cmdline.EnvName("ID4ME_TEST_"), "a token")
	want := "no credential: set --token (ID4ME_TEST_TOKEN), or --tls-cert and --tls-key"
	if err := f.NoCredential("--tls-cert and --tls-key"); err == nil || err.Error() != want {
		t.Errorf("NoCredential: %v; want %q", err, want)
	}
	if f.Registry != "127.0.0.1:9443" {
		t.Errorf("--registry defaults to %q", f.Registry)
	}
}
