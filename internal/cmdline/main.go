// Package cmdline holds what the module's programs (id4me-registry, id4me-agent) share on
// their command lines: flags that fall back to environment variables, the flags of the
// commands that call the registry's gRPC API, their JSON output, and how a program ends.
package cmdline

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Main runs the program called program: run gets the arguments after the program's name,
// standard output and error, and a context that ends on an interrupt or SIGTERM. When run
// fails, Main prints its error after the program's name and exits with status 2; flag.ErrHelp,
// returned once a command's help is printed, is no failure: Main exits 0.
func Main(program string, run func(ctx context.Context, args []string, stdout, stderr io.Writer) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, program+":", err)
		os.Exit(2)
	}
}
