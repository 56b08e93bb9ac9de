// Command id4me-registry runs the ID4me registry: its gRPC API, its HTTP listener, its
// database migrations and its operator bootstrap.
//
//	id4me-registry serve [flags]          run the service
//	id4me-registry migrate [flags]        apply the database migrations and exit
//	id4me-registry admin bootstrap        create an operator credential; print its secret
//	id4me-registry admin operators …      create, list, revoke operator credentials (gRPC)
//	id4me-registry keys rotate|list       rotate or list the authority's signing keys
//	id4me-registry keys generate-kek      print a new key-encryption key for the signing keys
//	id4me-registry keys rewrap            seal the signing keys with a new key-encryption key
//	id4me-registry registration-tokens create|list|revoke
//	                                      manage initial access tokens for registrations
//	id4me-registry version                print the version
//	id4me-registry agent register NAME    register an identifier, publishing the challenge
//	                                      record through a lego DNS provider (also: transfer,
//	                                      list, events, delete); the same as id4me-agent
//
// Every flag has an environment variable: --grpc-addr is ID4ME_GRPC_ADDR, and so on.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"

	agentcli "github.com/id4me/id4me-registry/agent/cli"
	"github.com/id4me/id4me-registry/internal/cmdline"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	cmdline.Main("id4me-registry", run)
}

const usage = `usage: id4me-registry <command> [flags]

commands:
  serve             run the registry (gRPC API, HTTPS listener, operator's listener)
  migrate           apply the database migrations and exit
  admin bootstrap   create an operator credential in the database and print its secret
  admin operators   create, list and revoke operator credentials over the AdminService
  keys rotate       make new signing keys for the authority (--alg, --now)
  keys list         list the authority's signing keys
  keys generate-kek print a new key-encryption key (--key-encryption-key-file)
  keys rewrap       seal every signing key with a new key-encryption key
  registration-tokens create|list|revoke
                    make, list or revoke initial access tokens (serve --registration token)
  dev-dns           serve a zone file on loopback DNS (demos: the agent's DNS)
  rp                a debugging relying party: log in with an identifier, see every token
  agent             an agent's client: register and transfer identifiers through a DNS
                    provider, list them, follow events, delete ("agent help" for more)
  agent claims-serve
                    an agent's claims endpoint, from a YAML/JSON file or a SQLite table
  version           print the version

Run "id4me-registry <command> -h" for a command's flags. Every flag can also be set by an
environment variable: ID4ME_ and the flag's name in upper case, "-" as "_" (--grpc-addr is
ID4ME_GRPC_ADDR).
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("a command is required")
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stdout, stderr)
	case "migrate":
		return migrate(ctx, args[1:], stdout, stderr)
	case "admin":
		return adminCommands.run(ctx, args[1:], stdout, stderr)
	case "keys":
		return keysCommand(ctx, args[1:], stdout, stderr)
	case "registration-tokens":
		return registrationTokensCommand(ctx, args[1:], stdout, stderr)
	case "dev-dns":
		return devDNS(ctx, args[1:], stdout, stderr)
	case "rp":
		return rpCommand(ctx, args[1:], stdout, stderr)
	case "agent":
		if len(args) > 1 && args[1] == "claims-serve" {
			return claimsServe(ctx, args[2:], stdout, stderr)
		}
		return agentcli.Command{Program: "id4me-registry agent"}.Run(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, versionString())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func versionString() string {
	v := version
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				v += " (" + s.Value + ")"
			}
		}
		v += " " + bi.GoVersion
	}
	return "id4me-registry " + v
}

// parseFlags parses args into fs, then fills every flag not given on the command line from
// its environment variable (ID4ME_<NAME>).
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return cmdline.FlagsFromEnv(fs, envName)
}

// envName is a flag's environment variable: --grpc-addr is ID4ME_GRPC_ADDR.
var envName = cmdline.EnvName("ID4ME_")
