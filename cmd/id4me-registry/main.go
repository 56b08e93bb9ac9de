// Command id4me-registry runs the ID4me registry: its gRPC API, its HTTP listener, its
// database migrations, and its operators' and agents' command-line clients.
//
//	id4me-registry serve [--config FILE] [flags]   run the service (--print-config: its settings)
//	id4me-registry migrate [flags]                 apply the database migrations and exit
//	id4me-registry backup --to FILE                copy a running SQLite database to a new file
//	id4me-registry admin bootstrap                 create an operator credential; print its secret
//	id4me-registry admin agents|tokens|operators|identifiers|journal …
//	                                               the operators' client of the AdminService
//	id4me-registry keys rotate|list|generate-kek|rewrap
//	                                               the authority's signing keys
//	id4me-registry registration-tokens create|list|revoke
//	                                               initial access tokens for registrations
//	id4me-registry dev-dns --zone-file FILE        a zone on loopback DNS, for demos
//	id4me-registry agent register|transfer|list|events|delete …
//	                                               an agent's client; the same as id4me-agent
//	id4me-registry agent claims-serve …             an agent's claims endpoint (agent/claims)
//	id4me-registry rp [flags]                      a debugging relying party (a web page)
//	id4me-registry version                         print the version
//
// The commands are listed in rootCommands and their groups; "--help" on any of them prints
// what it does and its flags. Every flag has an environment variable: --grpc-addr is
// ID4ME_GRPC_ADDR, an admin command's --token ID4ME_ADMIN_TOKEN, and so on.
package main

import (
	"context"
	"fmt"
	"io"
	"runtime/debug"

	agentcli "github.com/id4me/id4me-registry/agent/cli"
	"github.com/id4me/id4me-registry/internal/cmdline"
)

// version and commit are set at build time with
// -ldflags "-X main.version=… -X main.commit=…" (README, "Install"); without them the
// module version and VCS revision the Go toolchain recorded are printed, if any.
var version, commit string

func main() {
	cmdline.Main("id4me-registry", run)
}

// rootCommands are id4me-registry's commands, in the order its help lists them. A command that
// parses flags makes them with newFlags, so that --help and wrong flags behave alike.
var rootCommands = commandGroup{
	path:    "id4me-registry",
	summary: "id4me-registry runs an ID4me registry, its identity authority and its operators' tools.",
	commands: []command{
		{"serve", "", "run the registry: gRPC API, HTTPS listener (identity authority), operator's listener", serve},
		{"migrate", "", "apply the database migrations and exit", migrate},
		{"backup", "", "copy a running SQLite database, consistent, to a new file (--to FILE)", backup},
		{"admin", "<command>", "operators' commands: agents, tokens, operator credentials, identifiers, journal", adminCommands.run},
		{"keys", "<command>", "rotate, list and seal the authority's signing keys", keysCommands.run},
		{"registration-tokens", "<command>", "make, list or revoke initial access tokens (serve --registration token)", registrationTokensCommands.run},
		{"dev-dns", "", "serve a zone file on loopback DNS (demos: the agent's DNS)", devDNS},
		{"rp", "", "a debugging relying party: log in with an identifier, see every token, claim and HTTP exchange", rpCommand},
		{"agent", "<command>", "an agent's client: register and transfer identifiers through a DNS provider, list, follow events, delete; claims-serve: an agent's claims endpoint", agentCommand},
		{"version", "", "print the version", versionCommand},
	},
	footer: `Every flag can also be set by an environment variable: ID4ME_ and the flag's name in upper
case, "-" as "_" (--grpc-addr is ID4ME_GRPC_ADDR); each command's help names them.
`,
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "--version" || args[0] == "-version") {
		args = append([]string{"version"}, args[1:]...)
	}
	return cmdline.ConnHint(rootCommands.run(ctx, args, stdout, stderr))
}

func agentCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	// claims-serve links the SQLite driver, which id4me-agent leaves out: it is this
	// program's only.
	if len(args) > 0 && args[0] == "claims-serve" {
		return claimsServe(ctx, args[1:], stdout, stderr)
	}
	return agentcli.Command{Program: "id4me-registry agent"}.Run(ctx, args, stdout, stderr)
}

func versionCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if _, err := newFlags(ctx, stdout).Parse(args); err != nil {
		return err
	}
	fmt.Fprintln(stdout, versionString())
	return nil
}

func versionString() string {
	v, c, goVersion := version, commit, ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && c == "" {
				c = s.Value
			}
		}
		goVersion = " " + bi.GoVersion
	}
	if v == "" {
		v = "devel"
	}
	if c == "" {
		c = "unknown"
	}
	return "id4me-registry " + v + " (commit " + c + ")" + goVersion
}

// envName is a flag's environment variable: --grpc-addr is ID4ME_GRPC_ADDR.
var envName = cmdline.EnvName("ID4ME_")
