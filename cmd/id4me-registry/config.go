package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/peterbourgon/ff/v3/fftoml"
	"github.com/peterbourgon/ff/v3/ffyaml"
	"gopkg.in/yaml.v2"

	"github.com/id4me/id4me-registry/internal/cmdline"
)

// configSources says where each of serve's settings came from: "flag", "env" or "file";
// a flag not in it has its default.
type configSources map[string]string

// parseServeFlags parses serve's flags in their order of precedence: the command line, then
// the environment, then the configuration file (--config), then the defaults.
func parseServeFlags(fs *cmdline.Flags, args []string, configFile *string) (configSources, error) {
	if _, err := fs.Parse(args); err != nil {
		return nil, err
	}
	src := configSources{}
	fs.Visit(func(f *flag.Flag) { src[f.Name] = "flag" })
	fs.VisitAll(func(f *flag.Flag) {
		if _, ok := os.LookupEnv(fs.Env(f.Name)); ok && src[f.Name] == "" {
			src[f.Name] = "env"
		}
	})
	if *configFile == "" {
		return src, nil
	}
	if err := loadConfigFile(fs, *configFile, src); err != nil {
		return nil, fmt.Errorf("--config %s: %w", *configFile, err)
	}
	return src, nil
}

// loadConfigFile sets from the file at path, YAML or (by its .toml extension) TOML, each
// flag that neither the command line nor the environment set; its keys are the flags' names.
func loadConfigFile(fs *cmdline.Flags, path string, src configSources) error {
	parse := ffyaml.Parser
	switch strings.ToLower(filepath.Ext(path)) {
	case ".toml":
		parse = fftoml.Parser
	case ".yaml", ".yml", ".json":
	default:
		return errors.New("want a .yaml, .yml or .toml file")
	}
	file, err := os.Open(path)
	if err != nil {
		return err
	}
	defer file.Close()
	fromFile := map[string]bool{}
	return parse(file, func(name, value string) error {
		f := fs.Lookup(name)
		if f == nil || name == "config" || name == "print-config" {
			return fmt.Errorf("unknown key %q: the keys are serve's flag names (id4me-registry serve --help)", name)
		}
		if s := src[name]; s != "" && s != "file" {
			return nil // the command line and the environment win
		}
		if list, isList := f.Value.(*cmdline.StringList); isList && !fromFile[name] {
			*list = nil // a list from the file replaces the default
		}
		fromFile[name], src[name] = true, "file"
		if err := f.Value.Set(value); err != nil {
			err = fmt.Errorf("%s: %q: %w", name, value, err)
			if cmdline.IsDuration(f.Value) {
				err = fmt.Errorf("%w (%s)", err, cmdline.DurationFormat)
			}
			return err
		}
		return nil
	})
}

// secretFlags are serve's flags whose values are not printed as they are.
var secretFlags = map[string]func(string) string{
	"db": redactDSN,
}

// printConfig writes the effective configuration as a YAML configuration file that
// --config takes, a setting a line, with where each that is not a default came from;
// secrets are redacted.
func printConfig(w io.Writer, fs *cmdline.Flags, src configSources) error {
	fmt.Fprintln(w, "# id4me-registry serve: the effective configuration (flags > ID4ME_* variables > --config file > defaults)")
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || f.Name == "print-config" || f.Name == "config" {
			return
		}
		if _, removed := f.Value.(removedFlag); removed {
			return
		}
		var value string
		if value, err = configValue(f); err != nil {
			return
		}
		line := f.Name + ": " + value
		switch src[f.Name] {
		case "flag":
			line = fmt.Sprintf("%-50s # flag --%s", line, f.Name)
		case "env":
			line = fmt.Sprintf("%-50s # %s", line, fs.Env(f.Name))
		case "file":
			line = fmt.Sprintf("%-50s # --config %s", line, fs.Lookup("config").Value)
		}
		fmt.Fprintln(w, line)
	})
	return err
}

// configValue is a flag's value in YAML, on one line: a list in flow style.
func configValue(f *flag.Flag) (string, error) {
	var v any = f.Value.String()
	if g, ok := f.Value.(flag.Getter); ok {
		switch x := g.Get().(type) {
		case bool, int, float64:
			v = x
		}
	}
	if redact := secretFlags[f.Name]; redact != nil {
		v = redact(f.Value.String())
	}
	list, isList := f.Value.(*cmdline.StringList)
	if !isList {
		return yamlScalar(v)
	}
	items := make([]string, len(*list))
	for i, item := range *list {
		var err error
		if items[i], err = yamlScalar(item); err != nil {
			return "", err
		}
	}
	return "[" + strings.Join(items, ", ") + "]", nil
}

func yamlScalar(v any) (string, error) {
	b, err := yaml.Marshal(v)
	return strings.TrimSuffix(string(b), "\n"), err
}
