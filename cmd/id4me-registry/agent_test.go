package main_test

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/id4me/id4me-registry/internal/testenv"
)

// TestAgentCommandIsID4meAgent: "id4me-registry agent …" and "id4me-agent …" are the same
// command: the same output and exit status for the same arguments, but for the program's name.
func TestAgentCommandIsID4meAgent(t *testing.T) {
	agentBinary, err := testenv.BuildCommand(t.TempDir(), "id4me-agent")
	if err != nil {
		t.Fatal(err)
	}
	// sameName writes the registry's program name as id4me-agent's.
	sameName := strings.NewReplacer("id4me-registry agent", "id4me-agent", "id4me-registry: ", "id4me-agent: ").Replace
	status := func(err error) int {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	}
	token := []string{"ID4ME_AGENT_TOKEN=x", "ID4ME_AGENT_PLAINTEXT=true"}
	for _, tt := range []struct {
		env  []string
		args []string
		// want is in what id4me-agent prints, on stdout or stderr.
		want string
	}{
		{nil, []string{"help"}, "usage: id4me-agent <command> [flags]"},
		{nil, nil, "id4me-agent: a command is required"},
		{nil, []string{"frobnicate"}, `id4me-agent: unknown agent command "frobnicate"`},
		{nil, []string{"register", "-h"}, "usage: id4me-agent register [flags] NAME"},
		{token, []string{"register", "a.example"}, "id4me-agent: --dns-provider is required"},
		{[]string{"ID4ME_AGENT_TOKEN="}, []string{"list", "--plaintext"}, "id4me-agent: no credential: set --token (ID4ME_AGENT_TOKEN)"},
	} {
		regOut, regErr, err := cli(t, tt.env, append([]string{"agent"}, tt.args...)...)
		regStatus := status(err)
		out, stderr, err := testenv.CLI(agentBinary, tt.env, tt.args...)
		agentStatus := status(err)
		if !strings.Contains(out+stderr, tt.want) {
			t.Errorf("id4me-agent %v printed no %q:\n%s\n%s", tt.args, tt.want, out, stderr)
		}
		if strings.Contains(regOut+regErr, "id4me-agent") {
			t.Errorf("id4me-registry agent %v names itself id4me-agent:\n%s\n%s", tt.args, regOut, regErr)
		}
		if sameName(regOut) != out || sameName(regErr) != stderr || regStatus != agentStatus {
			t.Errorf("%v: id4me-registry agent and id4me-agent differ:\n"+
				"id4me-registry agent (status %d):\n%s\n%s\nid4me-agent (status %d):\n%s\n%s",
				tt.args, regStatus, regOut, regErr, agentStatus, out, stderr)
		}
	}
}
