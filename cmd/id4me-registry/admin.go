package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"

	"github.com/id4me/id4me-registry/internal/cmdline"
	"github.com/id4me/id4me-registry/internal/grpcconn"
	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
	"github.com/id4me/id4me-registry/registry"
)

// adminCommands are the operator's commands. bootstrap works on the database directly, to
// make the first operator credential; the others call the AdminService over gRPC with an
// operator credential, never the database.
var adminCommands = commandGroup{
	path:    "id4me-registry admin",
	summary: "Operators' commands: agents, their tokens, operator credentials, identifiers and the journal, over the AdminService.",
	commands: []command{
		{"bootstrap", "", "create an operator credential in the database (--db) directly and print its secret: the first one", bootstrap},
		{"agents", "<command>", "create, list, show, update, suspend and resume agents", agentCommands.run},
		{"tokens", "<command>", "create, list and revoke agents' API tokens", tokenCommands.run},
		{"operators", "<command>", "create, list and revoke operator credentials", operatorCommands.run},
		{"identifiers", "<command>", "show and resolve an identifier, set its server statuses (hold, prohibitions)", identifierCommands.run},
		{"journal", "", "print the audit journal, filtered, and follow it", journal},
	},
	footer: adminFooter,
}

// operatorCommands manage operator credentials.
var operatorCommands = commandGroup{
	path:    "id4me-registry admin operators",
	summary: "Create, list and revoke operator credentials, the bearer credentials of the AdminService.",
	commands: []command{
		{"create", "", "create an operator credential; print its secret, shown this once", operatorsCreate},
		{"list", "", "list the operator credentials, revoked ones too, without secrets", operatorsList},
		{"revoke", "ID", "revoke an operator credential at once (the last one is kept: create its successor first)", operatorsRevoke},
	},
	footer: adminFooter,
}

const adminFooter = `Commands that call the AdminService take the registry's address and an operator credential:
--registry (default 127.0.0.1:9443), --token, --ca-file, --insecure-skip-verify, --plaintext
(a --dev registry on loopback), --json. Every flag can also be set by an environment variable:
ID4ME_ADMIN_ and the flag's name in upper case, "-" as "_" (--token is ID4ME_ADMIN_TOKEN, the
variable serve --dev prints). bootstrap's --db is ID4ME_DB, as for serve.
`

// adminEnvName is a flag's environment variable: --token is ID4ME_ADMIN_TOKEN.
var adminEnvName = cmdline.EnvName("ID4ME_ADMIN_")

// adminConn is an AdminService command's connection, and its flags.
type adminConn struct {
	registryv1.AdminServiceClient
	resolver registryv1.ResolverServiceClient
	*cmdline.ConnFlags
	// flags are the command's flags, to tell which were given.
	flags *cmdline.Flags
	close func() error
}

// dialAdmin parses the flags of the AdminService command ctx names (define adds its own)
// and its positional arguments (as many as names), and connects.
func dialAdmin(ctx context.Context, args []string, stdout io.Writer, define func(*flag.FlagSet), names ...string) (*adminConn, []string, error) {
	fs := newFlagsEnv(ctx, stdout, adminEnvName)
	f := cmdline.AddConnFlags(fs.FlagSet, adminEnvName, "an operator credential")
	if define != nil {
		define(fs.FlagSet)
	}
	pos, err := fs.Parse(args, names...)
	if err != nil {
		return nil, nil, err
	}
	if f.Token == "" {
		return nil, nil, f.NoCredential()
	}
	c, err := f.Config()
	if err != nil {
		return nil, nil, err
	}
	conn, err := grpcconn.Dial(f.Registry, c)
	if err != nil {
		return nil, nil, err
	}
	return &adminConn{
		AdminServiceClient: registryv1.NewAdminServiceClient(conn), resolver: registryv1.NewResolverServiceClient(conn),
		ConnFlags: f, flags: fs, close: conn.Close,
	}, pos, nil
}

// given reports whether the flag name was set, on the command line or by its environment
// variable.
func (a *adminConn) given(name string) bool {
	set := false
	a.flags.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	if !set {
		_, set = os.LookupEnv(adminEnvName(name))
	}
	return set
}

// operatorsCreate runs `admin operators create`.
func operatorsCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var desc string
	api, _, err := dialAdmin(ctx, args, stdout, func(fs *flag.FlagSet) {
		fs.StringVar(&desc, "description", "", "what or whom the credential is for")
	})
	if err != nil {
		return err
	}
	defer api.close()
	c, err := api.CreateOperatorCredential(ctx, &registryv1.CreateOperatorCredentialRequest{Description: desc})
	if err != nil {
		return err
	}
	printCreated(stdout, stderr, api.JSON, c,
		fmt.Sprintf("created operator credential %s; its secret, on standard output, is shown this once", c.Id), c.Secret)
	return nil
}

// operatorsList runs `admin operators list`.
func operatorsList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	api, _, err := dialAdmin(ctx, args, stdout, nil)
	if err != nil {
		return err
	}
	defer api.close()
	resp, err := api.ListOperatorCredentials(ctx, &registryv1.ListOperatorCredentialsRequest{})
	if err != nil {
		return err
	}
	t := newTable(stdout, api.JSON, "ID", "CREATED", "STATE", "DESCRIPTION")
	for _, c := range resp.Credentials {
		t.row(c, c.Id, formatTimestamp(c.CreateTime), revokedState(c.RevokeTime), c.Description)
	}
	return t.flush()
}

// operatorsRevoke runs `admin operators revoke ID`.
func operatorsRevoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	api, pos, err := dialAdmin(ctx, args, stdout, nil, "ID")
	if err != nil {
		return err
	}
	defer api.close()
	c, err := api.RevokeOperatorCredential(ctx, &registryv1.RevokeOperatorCredentialRequest{Id: pos[0]})
	if err != nil {
		return err
	}
	printChanged(stdout, api.JSON, c, fmt.Sprintf("operator credential %s is revoked (since %s)", c.Id, formatTimestamp(c.RevokeTime)))
	return nil
}

func migrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags(ctx, stdout)
	db := fs.String("db", "id4me-registry.db", "database: a SQLite file path, or a postgres:// DSN")
	if _, err := fs.Parse(args); err != nil {
		return err
	}
	before, after, err := migrateStore(ctx, *db)
	if err != nil {
		return err
	}
	if before == after {
		fmt.Fprintf(stdout, "database %s is at schema version %d; nothing to do\n", redactDSN(*db), after)
	} else {
		fmt.Fprintf(stdout, "database %s migrated from schema version %d to %d\n", redactDSN(*db), before, after)
	}
	return nil
}

// bootstrap runs `admin bootstrap`: an operator credential made in the database directly, for
// when there is none to call the AdminService with.
func bootstrap(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags(ctx, stdout)
	db := fs.String("db", "id4me-registry.db", "database: a SQLite file path, or a postgres:// DSN")
	force := fs.Bool("force", false, "create another operator credential even if one exists")
	desc := fs.String("description", "bootstrap", "what the credential is for")
	if _, err := fs.Parse(args); err != nil {
		return err
	}
	store, err := openStore(ctx, *db, true)
	if err != nil {
		return err
	}
	defer store.Close()
	svc, err := registry.New(registry.Config{Store: store})
	if err != nil {
		return err
	}
	n, err := svc.CountOperators(ctx)
	if err != nil {
		return err
	}
	if n > 0 && !*force {
		return errors.New("an operator credential exists already; pass --force to create another")
	}
	_, secret, err := svc.CreateOperatorCredential(ctx, registry.System, *desc)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, secret)
	return nil
}

// redactDSN hides a password in a database URL, or in its password= parameter, before it
// is printed.
func redactDSN(dsn string) string {
	dsn = passwordParam.ReplaceAllString(dsn, "${1}xxxxx")
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return dsn
	}
	return u.Redacted()
}

var passwordParam = regexp.MustCompile(`((?:^|[\s?&])password=)[^\s&]*`)
