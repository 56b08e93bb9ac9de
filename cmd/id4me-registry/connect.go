package main

import (
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/id4me/id4me-registry/internal/grpcconn"
)

// connFlags are the flags of every command that calls the registry's gRPC API (agent …,
// admin operators …): where the registry is, how to reach it, the bearer credential.
type connFlags struct {
	registry           string
	token              string
	caFile             string
	insecureSkipVerify bool
	plaintext          bool
	json               bool
	// env names a flag's environment variable, for messages.
	env func(flagName string) string
}

// addConnFlags defines the connection flags on fs; env names their environment variables.
func addConnFlags(fs *flag.FlagSet, env func(string) string, tokenWhat string) *connFlags {
	f := &connFlags{env: env}
	fs.StringVar(&f.registry, "registry", "127.0.0.1:9443", "the registry's gRPC address (host:port)")
	fs.StringVar(&f.token, "token", "", tokenWhat+" (prefer the environment variable to the command line)")
	fs.StringVar(&f.caFile, "ca-file", "", "CA certificates (PEM) to verify the registry's certificate with; default the system's")
	fs.BoolVar(&f.insecureSkipVerify, "insecure-skip-verify", false, "accept any registry certificate (a --dev registry's self-signed one); development only")
	fs.BoolVar(&f.plaintext, "plaintext", false, "gRPC without TLS, to a --dev registry on a loopback address")
	fs.BoolVar(&f.json, "json", false, "machine-readable output: one JSON object a line")
	return f
}

// config returns the connection the flags describe.
func (f *connFlags) config() (grpcconn.Config, error) {
	c := grpcconn.Config{Token: f.token, InsecureSkipVerify: f.insecureSkipVerify, Plaintext: f.plaintext}
	if f.caFile != "" {
		pem, err := os.ReadFile(f.caFile)
		if err != nil {
			return c, fmt.Errorf("--ca-file: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return c, fmt.Errorf("--ca-file %s: no PEM certificate found", f.caFile)
		}
	}
	return c, nil
}

// noCredential is the error of a command given no credential.
func (f *connFlags) noCredential(alternatives ...string) error {
	return errors.New("no credential: set " + strings.Join(append([]string{fmt.Sprintf("--token (%s)", f.env("token"))}, alternatives...), ", or "))
}

// parseCommandFlags parses args, whose positional arguments (as many as names) may come
// before, between or after the flags, then fills flags not given from the environment
// variables env names.
func parseCommandFlags(fs *flag.FlagSet, args []string, env func(string) string, names ...string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	switch {
	case len(positional) > len(names):
		return nil, fmt.Errorf("unexpected argument %q", positional[len(names)])
	case len(positional) < len(names):
		return nil, fmt.Errorf("%s is required", strings.Join(names[len(positional):], " and "))
	}
	return positional, flagsFromEnv(fs, env)
}
