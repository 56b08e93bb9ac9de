package cmdline

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
)

// Flags is a command's flag set and what its help says. Its -h and --help print the help on
// standard output; a wrong flag is an error that points to --help, not the whole usage.
type Flags struct {
	*flag.FlagSet
	// Path is how the command is called: "id4me-registry serve".
	Path string
	// Summary says in one sentence what the command does: the help's first line.
	Summary string
	// Args names the positional arguments in the usage line ("NAME"), set by Parse.
	Args string
	// Notes, if any, end the help.
	Notes string
	// Env names a flag's environment variable.
	Env    func(flagName string) string
	stdout io.Writer
}

// NewFlags returns the flags of the command path, summed up by summary, whose variables env
// names; its help goes to stdout.
func NewFlags(path, summary string, env func(string) string, stdout io.Writer) *Flags {
	fs := flag.NewFlagSet(path, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &Flags{FlagSet: fs, Path: path, Summary: summary, Env: env, stdout: stdout}
}

// Parse parses args, whose positional arguments (as many as names) may come before, between
// or after the flags, then fills the flags not given from their environment variables. With
// -h or --help it prints the help and returns flag.ErrHelp, which is no failure (Main exits 0).
func (f *Flags) Parse(args []string, names ...string) ([]string, error) {
	if f.Args == "" {
		f.Args = strings.Join(names, " ")
	}
	pos, err := f.parseArgs(args, names)
	if errors.Is(err, flag.ErrHelp) {
		f.PrintHelp(f.stdout)
		return nil, flag.ErrHelp
	}
	if err != nil {
		return nil, f.SeeHelp(err)
	}
	if err := FlagsFromEnv(f.FlagSet, f.Env); err != nil {
		return nil, err
	}
	return pos, nil
}

func (f *Flags) parseArgs(args, names []string) ([]string, error) {
	var positional []string
	for {
		if err := f.FlagSet.Parse(args); err != nil {
			return nil, f.explainValue(err)
		}
		if f.NArg() == 0 {
			break
		}
		positional = append(positional, f.Arg(0))
		args = f.FlagSet.Args()[1:]
	}
	switch {
	case len(positional) > len(names):
		return nil, fmt.Errorf("unexpected argument %q", positional[len(names)])
	case len(positional) < len(names):
		return nil, fmt.Errorf("%s is required", strings.Join(names[len(positional):], " and "))
	}
	return positional, nil
}

// SeeHelp adds to err where the command's help is.
func (f *Flags) SeeHelp(err error) error {
	return SeeHelp(err, f.Path)
}

// SeeHelp adds to err where the help of the command path is.
func SeeHelp(err error, path string) error {
	return fmt.Errorf("%w; see %s --help", err, path)
}

var invalidValue = regexp.MustCompile(`^invalid value ".*" for flag -(\S+): `)

// explainValue adds the expected format to the flag package's error for a bad duration.
func (f *Flags) explainValue(err error) error {
	m := invalidValue.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	if fl := f.Lookup(m[1]); fl != nil && IsDuration(fl.Value) {
		return fmt.Errorf("%w (%s)", err, DurationFormat)
	}
	return err
}

// DurationFormat says how a duration is written, for errors.
const DurationFormat = "want a duration such as 90s, 15m, 1h30m or 720h: a number and a unit, ns, us, ms, s, m or h"

// IsDuration reports whether v is a time.Duration flag's value.
func IsDuration(v flag.Value) bool {
	g, ok := v.(flag.Getter)
	if !ok {
		return false
	}
	_, ok = g.Get().(time.Duration)
	return ok
}

// PrintHelp writes the help: the summary, the usage line, each flag with its default and its
// environment variable, and the notes.
func (f *Flags) PrintHelp(w io.Writer) {
	fmt.Fprintf(w, "%s\n\nusage: %s [flags]", Sentence(f.Summary), f.Path)
	if f.Args != "" {
		fmt.Fprintf(w, " %s", f.Args)
	}
	fmt.Fprintln(w)
	n := 0
	f.VisitAll(func(fl *flag.Flag) {
		if !isHidden(fl) {
			n++
		}
	})
	if n > 0 {
		fmt.Fprintln(w, "\nflags:")
	}
	f.VisitAll(func(fl *flag.Flag) {
		if isHidden(fl) {
			return
		}
		typ, usage := flag.UnquoteUsage(fl)
		name := "--" + fl.Name
		if typ != "" {
			name += " " + typ
		}
		extra := "env " + f.Env(fl.Name)
		if d := fl.DefValue; d != "" && d != "0" && d != "false" && d != "[]" && d != "0s" {
			extra += ", default " + d
		}
		fmt.Fprintf(w, "  %-30s (%s)\n", name, extra)
		wrap(w, usage, "        ", 96)
	})
	if f.Notes != "" {
		fmt.Fprintf(w, "\n%s", strings.TrimLeft(f.Notes, "\n"))
	}
}

// Hidden is a flag value that the help does not list: a removed flag kept to say what
// replaced it.
type Hidden interface{ Hidden() bool }

func isHidden(fl *flag.Flag) bool {
	h, ok := fl.Value.(Hidden)
	return ok && h.Hidden()
}

// wrap writes text in lines of at most width columns, each started with indent.
func wrap(w io.Writer, text, indent string, width int) {
	line := indent
	for _, word := range strings.Fields(text) {
		if len(line) > len(indent) && len(line)+1+len(word) > width {
			fmt.Fprintln(w, line)
			line = indent
		}
		if len(line) > len(indent) {
			line += " "
		}
		line += word
	}
	fmt.Fprintln(w, line)
}

// Sentence returns s with a capital first letter and a full stop: a command's summary as the
// first line of its help.
func Sentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return s
	}
	s = strings.ToUpper(s[:1]) + s[1:]
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}
