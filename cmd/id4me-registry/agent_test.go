package main_test

import (
	"strings"
	"testing"
)

// TestAgentCLIUsage: the agent commands refuse what they cannot do, saying why.
func TestAgentCLIUsage(t *testing.T) {
	env := []string{"ID4ME_AGENT_TOKEN=x", "ID4ME_AGENT_PLAINTEXT=true"}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"agent"}, "needs a command"},
		{[]string{"agent", "frobnicate"}, "unknown agent command"},
		{[]string{"agent", "register"}, "NAME is required"},
		{[]string{"agent", "register", "a.example", "b.example"}, `unexpected argument "b.example"`},
		{[]string{"agent", "register", "a.example"}, "--dns-provider is required: one of exec, httpreq, manual, rfc2136"},
		{[]string{"agent", "register", "a.example", "--dns-provider", "route53"}, `unknown --dns-provider "route53"`},
		{[]string{"agent", "transfer", "a.example", "--dns-provider", "exec"}, "EXEC_PATH"},
		{[]string{"agent", "list", "--registry", "registry.example:443"}, "loopback"},
	} {
		_, stderr, err := cli(t, env, tt.args...)
		if err == nil || !strings.Contains(stderr, tt.want) {
			t.Errorf("%v: %v, stderr %q; want a refusal saying %q", tt.args, err, stderr, tt.want)
		}
	}
	if _, stderr, err := cli(t, []string{"ID4ME_AGENT_TOKEN="}, "agent", "list"); err == nil || !strings.Contains(stderr, "no credential") {
		t.Errorf("agent list without a credential: %v, %q", err, stderr)
	}
	out, _, err := cli(t, nil, "agent", "help")
	if err != nil || !strings.Contains(out, "RFC2136_TSIG_KEY") {
		t.Errorf("agent help: %v\n%s", err, out)
	}
}
