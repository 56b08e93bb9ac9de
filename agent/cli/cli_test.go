package cli_test

import (
	"context"
	"errors"
	"flag"
	"strings"
	"testing"

	"github.com/id4me/id4me-registry/agent/cli"
)

// run runs the command line as id4me-agent with args and returns what it printed, stdout and
// stderr, and its error.
func run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr strings.Builder
	err := cli.Command{Program: "id4me-agent"}.Run(context.Background(), args, &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

// TestAgentCLIUsage: the agent commands refuse what they cannot do, saying why.
func TestAgentCLIUsage(t *testing.T) {
	t.Setenv("ID4ME_AGENT_TOKEN", "x")
	t.Setenv("ID4ME_AGENT_PLAINTEXT", "true")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{nil, "a command is required"},
		{[]string{"frobnicate"}, `unknown agent command "frobnicate"`},
		{[]string{"register"}, "NAME is required"},
		{[]string{"register", "a.example", "b.example"}, `unexpected argument "b.example"`},
		{[]string{"register", "a.example"}, "--dns-provider is required: one of exec, httpreq, manual, rfc2136"},
		{[]string{"register", "a.example", "--dns-provider", "route53"}, `unknown --dns-provider "route53"`},
		{[]string{"transfer", "a.example", "--dns-provider", "exec"}, "EXEC_PATH"},
		{[]string{"list", "--registry", "registry.example:443"}, "loopback"},
		{[]string{"events", "--after-id", "x"}, `invalid value "x" for flag -after-id`},
	} {
		_, stderr, err := run(t, tt.args...)
		if err == nil || !strings.Contains(err.Error()+"\n"+stderr, tt.want) {
			t.Errorf("%v: %v, stderr %q; want a refusal saying %q", tt.args, err, stderr, tt.want)
		}
	}
	t.Setenv("ID4ME_AGENT_TOKEN", "")
	if _, _, err := run(t, "list"); err == nil || !strings.Contains(err.Error(), "no credential: set --token (ID4ME_AGENT_TOKEN), or --tls-cert and --tls-key") {
		t.Errorf("list without a credential: %v", err)
	}
	if _, _, err := run(t, "list", "--tls-cert", "c.pem"); err == nil || !strings.Contains(err.Error(), "--tls-cert and --tls-key go together") {
		t.Errorf("list with a certificate and no key: %v", err)
	}
}

// TestAgentCLIHelp: the usage text names the program as it was called, lists the commands
// and the DNS providers, and says how the providers are configured.
func TestAgentCLIHelp(t *testing.T) {
	for _, program := range []string{"id4me-agent", "id4me-registry agent"} {
		var stdout, stderr strings.Builder
		if err := (cli.Command{Program: program}).Run(context.Background(), []string{"help"}, &stdout, &stderr); err != nil {
			t.Fatalf("%s help: %v", program, err)
		}
		out := stdout.String()
		for _, want := range []string{
			"usage: " + program + " <command> [flags]\n", "\n  register NAME ", "\n  events ", "exec, httpreq, manual, rfc2136",
			"RFC2136_TSIG_KEY", "ID4ME_AGENT_TOKEN", `Run "` + program + ` <command> --help"`,
		} {
			if !strings.Contains(out, want) {
				t.Errorf("%s help lacks %q:\n%s", program, want, out)
			}
		}
		if stderr.Len() > 0 {
			t.Errorf("%s help wrote on stderr: %q", program, stderr.String())
		}
	}
	// A command's flags are listed, on stdout, under the program's name.
	stdout, stderr, err := run(t, "register", "-h")
	if !errors.Is(err, flag.ErrHelp) || !strings.Contains(stdout, "usage: id4me-agent register [flags] NAME") ||
		!strings.Contains(stdout, "--dns-provider string") || !strings.Contains(stdout, "ID4ME_AGENT_DNS_PROVIDER") || stderr != "" {
		t.Errorf("register -h: %v\n%s\nstderr: %s", err, stdout, stderr)
	}
}
