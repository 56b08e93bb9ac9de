package cmdline

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// EnvName returns the function that names a flag's environment variable: prefix and the flag's
// name in upper case, "-" as "_". With prefix ID4ME_AGENT_, --dns-server is
// ID4ME_AGENT_DNS_SERVER.
func EnvName(prefix string) func(flagName string) string {
	return func(flagName string) string {
		return prefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
	}
}

// FlagsFromEnv fills every flag of fs not given on the command line from its environment
// variable, named by env. A StringList's variable is comma-separated.
func FlagsFromEnv(fs *flag.FlagSet, env func(flagName string) string) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		env := env(f.Name)
		v, ok := os.LookupEnv(env)
		if given[f.Name] || !ok || err != nil {
			return
		}
		if sl, isList := f.Value.(*StringList); isList {
			for _, item := range strings.Split(v, ",") {
				if item = strings.TrimSpace(item); item != "" {
					sl.Set(item)
				}
			}
			return
		}
		if e := f.Value.Set(v); e != nil {
			err = fmt.Errorf("%s=%q: %w", env, v, e)
			if IsDuration(f.Value) {
				err = fmt.Errorf("%s=%q is not a duration: %s", env, v, DurationFormat)
			}
		}
	})
	return err
}

// StringList is a repeatable string flag; its environment variable is comma-separated.
type StringList []string

func (s *StringList) String() string     { return strings.Join(*s, ",") }
func (s *StringList) Set(v string) error { *s = append(*s, v); return nil }
