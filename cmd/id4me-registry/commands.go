package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
)

// command is a subcommand of a command group (admin, admin operators, …).
type command struct {
	name string
	// args shows the arguments (or subcommands) in the usage text.
	args string
	help string
	run  func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commandGroup is a command made of subcommands, listed in its usage text.
type commandGroup struct {
	// path is how the group is called: "admin", "admin operators".
	path     string
	commands []command
	// footer ends the usage text.
	footer string
}

func (g commandGroup) usage() string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: id4me-registry %s <command> [flags]\n\ncommands:\n", g.path)
	width := 0
	for _, c := range g.commands {
		width = max(width, len(c.name)+len(c.args)+1)
	}
	for _, c := range g.commands {
		fmt.Fprintf(&b, "  %-*s  %s\n", width, strings.TrimSpace(c.name+" "+c.args), c.help)
	}
	if g.footer != "" {
		b.WriteString("\n" + g.footer)
	}
	return b.String()
}

// run runs the subcommand args[0] names with the rest of args.
func (g commandGroup) run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	names := make([]string, len(g.commands))
	for i, c := range g.commands {
		names[i] = c.name
	}
	if len(args) == 0 {
		fmt.Fprint(stderr, g.usage())
		return fmt.Errorf("%q needs a command: %s", g.path, strings.Join(names, ", "))
	}
	if slices.Contains([]string{"help", "-h", "--help"}, args[0]) {
		fmt.Fprint(stdout, g.usage())
		return nil
	}
	for _, c := range g.commands {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprint(stderr, g.usage())
	return fmt.Errorf("unknown %s command %q", g.path, args[0])
}
