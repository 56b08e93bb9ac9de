package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/id4me/id4me-registry/internal/cmdline"
)

// command is a command of a command group: a leaf that parses its flags, or a group of its own.
type command struct {
	name string
	// args shows the arguments (or subcommands) in the group's usage text.
	args string
	// summary says in one sentence what the command does; its help starts with it.
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commandGroup is a command made of subcommands, listed in its help.
type commandGroup struct {
	// path is how the group is called: "id4me-registry admin".
	path    string
	summary string
	// commands are the subcommands, in the order the help lists them.
	commands []command
	// footer ends the help.
	footer string
}

func (g *commandGroup) usage() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\nusage: %s <command> [flags]\n\ncommands:\n", g.summary, g.path)
	width := 0
	for _, c := range g.commands {
		width = max(width, len(c.name)+len(c.args)+1)
	}
	for _, c := range g.commands {
		fmt.Fprintf(&b, "  %-*s  %s\n", width, strings.TrimSpace(c.name+" "+c.args), c.summary)
	}
	if g.footer != "" {
		b.WriteString("\n" + g.footer)
	}
	fmt.Fprintf(&b, "\nRun \"%s <command> --help\" for a command's flags.\n", g.path)
	return b.String()
}

// names lists the group's commands, for messages.
func (g *commandGroup) names() string {
	names := make([]string, len(g.commands))
	for i, c := range g.commands {
		names[i] = c.name
	}
	return strings.Join(names, ", ")
}

// run runs the subcommand args[0] names with the rest of args; its flags' help names it with
// the group's path and its summary.
func (g *commandGroup) run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, g.usage())
		return fmt.Errorf("%q needs a command: %s", g.path, g.names())
	}
	if slices.Contains([]string{"help", "-h", "-help", "--help"}, args[0]) {
		fmt.Fprint(stdout, g.usage())
		return nil
	}
	for _, c := range g.commands {
		if c.name == args[0] {
			ctx = context.WithValue(ctx, commandKey{}, commandInfo{path: g.path + " " + c.name, summary: c.summary})
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	return cmdline.SeeHelp(fmt.Errorf("unknown command %q of %s (%s)", args[0], g.path, g.names()), g.path)
}

// commandKey is the context key of the commandInfo a group hands its subcommand.
type commandKey struct{}

// commandInfo is how a command is called and what it does, for its help.
type commandInfo struct{ path, summary string }

// newFlags returns the flags of the command ctx names (as its group called it), whose
// environment variables are ID4ME_<NAME>; its help goes to stdout.
func newFlags(ctx context.Context, stdout io.Writer) *cmdline.Flags {
	return newFlagsEnv(ctx, stdout, envName)
}

func newFlagsEnv(ctx context.Context, stdout io.Writer, env func(string) string) *cmdline.Flags {
	info, _ := ctx.Value(commandKey{}).(commandInfo)
	return cmdline.NewFlags(info.path, info.summary, env, stdout)
}
