package main

import (
	"errors"
	"flag"
	"regexp"
	"strings"
	"testing"
)

// TestHelpOnEveryCommand walks the command tree from the top, each group's subcommands as its
// help lists them: every command's --help goes to stdout without error, starts with a
// sentence saying what the command does and names each flag's environment variable; a wrong
// flag is an error that points to --help, with nothing printed. Every command of the tables
// is reached.
func TestHelpOnEveryCommand(t *testing.T) {
	visited := map[string]bool{}
	var walk func(path []string)
	walk = func(path []string) {
		name := strings.Join(append([]string{"id4me-registry"}, path...), " ")
		visited[name] = true
		help, stderr, err := runCLI(t, append(path, "--help")...)
		out := help
		if err != nil && !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%s --help: %v", name, err)
		}
		first, _, _ := strings.Cut(out, "\n")
		if stderr != "" || first == "" || strings.HasPrefix(strings.ToLower(first), "usage") || !strings.HasSuffix(first, ".") {
			t.Errorf("%s --help: want a sentence first, on stdout alone; stdout:\n%s\nstderr:\n%s", name, out, stderr)
		}
		if !strings.Contains(out, "usage: "+name+" ") {
			t.Errorf("%s --help has no usage line:\n%s", name, out)
		}
		for _, m := range flagLine.FindAllStringSubmatch(out, -1) {
			if !strings.Contains(m[0], "(env ID4ME_") {
				t.Errorf("%s --help: flag --%s names no environment variable: %q", name, m[1], m[0])
			}
		}

		out, stderr, err = runCLI(t, append(path, "--no-such-flag")...)
		if err == nil || !strings.Contains(err.Error(), "see "+name+" --help") || out != "" || stderr != "" {
			t.Errorf("%s --no-such-flag: err %v, stdout %q, stderr %q; want an error pointing to --help alone", name, err, out, stderr)
		}

		for _, sub := range subcommands(help) {
			walk(append(append([]string{}, path...), sub))
		}
	}
	walk(nil)
	// claims-serve is this program's only, so id4me-agent's list of agent commands leaves it out.
	walk([]string{"agent", "claims-serve"})

	for _, g := range []*commandGroup{&rootCommands, &adminCommands, &agentCommands, &tokenCommands, &operatorCommands,
		&identifierCommands, &keysCommands, &registrationTokensCommands} {
		for _, c := range g.commands {
			if !visited[g.path+" "+c.name] {
				t.Errorf("%s %s is not reached from the top", g.path, c.name)
			}
		}
	}
	for _, want := range []string{"id4me-registry agent register", "id4me-registry admin journal", "id4me-registry serve"} {
		if !visited[want] {
			t.Errorf("%s not reached", want)
		}
	}
	if len(visited) < 35 {
		t.Errorf("only %d commands reached", len(visited))
	}
}

// flagLine is a flag's first line in a command's help.
var flagLine = regexp.MustCompile(`(?m)^  --([a-z0-9-]+).*$`)

// subcommands are the names a group's help lists under "commands:".
func subcommands(help string) []string {
	_, list, ok := strings.Cut(help, "\ncommands:\n")
	if !ok {
		return nil
	}
	var names []string
	for _, line := range strings.Split(list, "\n") {
		if !strings.HasPrefix(line, "  ") {
			break
		}
		names = append(names, strings.Fields(line)[0])
	}
	return names
}
