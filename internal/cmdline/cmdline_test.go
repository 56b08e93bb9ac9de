package cmdline_test

import (
	"errors"
	"flag"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/id4me/id4me-registry/internal/cmdline"
)

// TestFlagsParse: positional arguments stand anywhere among the flags; a flag not on the
// command line comes from its environment variable, a list's split at commas; the command
// line wins; a bad value in the environment is refused, naming the variable and, for a
// duration, its format; a wrong flag points to --help; --help prints the help on stdout.
func TestFlagsParse(t *testing.T) {
	env := cmdline.EnvName("ID4ME_TEST_")
	if got := env("dns-server"); got != "ID4ME_TEST_DNS_SERVER" {
		t.Fatalf("EnvName: %s", got)
	}
	type flags struct {
		servers cmdline.StringList
		wait    time.Duration
		token   string
	}
	var help strings.Builder
	parse := func(args ...string) (flags, []string, error) {
		var f flags
		help.Reset()
		fs := cmdline.NewFlags("prog test", "test the flags", env, &help)
		fs.Var(&f.servers, "dns-server", "a nameserver")
		fs.DurationVar(&f.wait, "wait", time.Second, "how long to wait")
		fs.StringVar(&f.token, "token", "", "a token")
		pos, err := fs.Parse(args, "NAME", "OTHER")
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
		{[]string{"x", "y", "--nope"}, "flag provided but not defined: -nope; see prog test --help"},
		{[]string{"x", "y", "--wait", "5"}, `invalid value "5" for flag -wait: parse error (want a duration such as 90s`},
	} {
		if _, _, err := parse(tt.args...); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: %v; want %q", tt.args, err, tt.want)
		}
	}
	if _, _, err := parse("x", "--help"); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("--help: %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"Test the flags.\n\nusage: prog test [flags] NAME OTHER\n", "--wait duration", "(env ID4ME_TEST_WAIT, default 1s)\n        how long to wait\n", "(env ID4ME_TEST_DNS_SERVER)"} {
		if !strings.Contains(help.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, help.String())
		}
	}
	t.Setenv("ID4ME_TEST_WAIT", "soon")
	if _, _, err := parse("x", "y"); err == nil || !strings.Contains(err.Error(), `ID4ME_TEST_WAIT="soon"`) || !strings.Contains(err.Error(), "1h30m") {
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

// TestConnHint: a gRPC status reads as its message, code and reason, and is still a status;
// an untrusted certificate names the flags that fix it.
func TestConnHint(t *testing.T) {
	st, err := status.New(codes.FailedPrecondition, "the last operator credential is kept").
		WithDetails(&errdetails.ErrorInfo{Reason: "LAST_OPERATOR_CREDENTIAL", Domain: "id4me.org"})
	if err != nil {
		t.Fatal(err)
	}
	got := cmdline.ConnHint(st.Err())
	if got.Error() != "the last operator credential is kept (FailedPrecondition, LAST_OPERATOR_CREDENTIAL)" || status.Code(got) != codes.FailedPrecondition {
		t.Errorf("ConnHint: %q, code %v", got, status.Code(got))
	}
	tlsErr := status.Error(codes.Unavailable, `connection error: desc = "transport: authentication handshake failed: tls: failed to verify certificate: x509: certificate signed by unknown authority"`)
	if got := cmdline.ConnHint(tlsErr).Error(); !strings.Contains(got, "--ca-file") || !strings.Contains(got, "--insecure-skip-verify") {
		t.Errorf("ConnHint of a TLS failure: %q", got)
	}
	if cmdline.ConnHint(nil) != nil {
		t.Error("ConnHint(nil) is not nil")
	}
}
