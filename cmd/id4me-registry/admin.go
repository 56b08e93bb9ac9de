package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/id4me/id4me-registry/internal/cmdline"
	"github.com/id4me/id4me-registry/internal/grpcconn"
	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
	"github.com/id4me/id4me-registry/registry"
)

// adminCommands are the operator's commands. bootstrap works on the database directly, to
// make the first operator credential; the others call the AdminService over gRPC with an
// operator credential.
var adminCommands = commandGroup{
	path: "admin",
	commands: []command{
		{"bootstrap", "", "create an operator credential in the database (--db) directly and print its secret: the first one", bootstrap},
		{"operators", "create|list|revoke", "manage operator credentials through the AdminService", operatorCommands.run},
	},
	footer: adminFooter,
}

// operatorCommands manage operator credentials.
var operatorCommands = commandGroup{
	path: "admin operators",
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
	*cmdline.ConnFlags
	close func() error
}

// dialAdmin parses the flags of the AdminService command name (define adds its own) and its
// positional arguments (as many as names), and connects.
func dialAdmin(name string, args []string, stderr io.Writer, define func(*flag.FlagSet), names ...string) (*adminConn, []string, error) {
	fs := flag.NewFlagSet("admin "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := cmdline.AddConnFlags(fs, adminEnvName, "an operator credential")
	if define != nil {
		define(fs)
	}
	pos, err := cmdline.ParseCommandFlags(fs, args, adminEnvName, names...)
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
	return &adminConn{AdminServiceClient: registryv1.NewAdminServiceClient(conn), ConnFlags: f, close: conn.Close}, pos, nil
}

// operatorsCreate runs `admin operators create`.
func operatorsCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var desc string
	api, _, err := dialAdmin("operators create", args, stderr, func(fs *flag.FlagSet) {
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
	if api.JSON {
		cmdline.PrintJSONLine(stdout, c)
		return nil
	}
	fmt.Fprintf(stderr, "created operator credential %s; its secret (below) is shown this once\n", c.Id)
	fmt.Fprintln(stdout, c.Secret)
	return nil
}

// operatorsList runs `admin operators list`.
func operatorsList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	api, _, err := dialAdmin("operators list", args, stderr, nil)
	if err != nil {
		return err
	}
	defer api.close()
	resp, err := api.ListOperatorCredentials(ctx, &registryv1.ListOperatorCredentialsRequest{})
	if err != nil {
		return err
	}
	for _, c := range resp.Credentials {
		if api.JSON {
			cmdline.PrintJSONLine(stdout, c)
			continue
		}
		state := "active"
		if c.RevokeTime != nil {
			state = "revoked " + c.RevokeTime.AsTime().Format(time.RFC3339)
		}
		fmt.Fprintf(stdout, "%s\t%s\t%s\t%s\n", c.Id, c.CreateTime.AsTime().Format(time.RFC3339), state, c.Description)
	}
	return nil
}

// operatorsRevoke runs `admin operators revoke ID`.
func operatorsRevoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	api, pos, err := dialAdmin("operators revoke", args, stderr, nil, "ID")
	if err != nil {
		return err
	}
	defer api.close()
	c, err := api.RevokeOperatorCredential(ctx, &registryv1.RevokeOperatorCredentialRequest{Id: pos[0]})
	if err != nil {
		return err
	}
	if api.JSON {
		cmdline.PrintJSONLine(stdout, c)
		return nil
	}
	fmt.Fprintf(stdout, "operator credential %s is revoked (since %s)\n", c.Id, c.RevokeTime.AsTime().Format(time.RFC3339))
	return nil
}

func migrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("db", "id4me-registry.db", "database: a SQLite file path, or a postgres:// DSN")
	if err := parseFlags(fs, args); err != nil {
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
	fs := flag.NewFlagSet("admin bootstrap", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("db", "id4me-registry.db", "database: a SQLite file path, or a postgres:// DSN")
	force := fs.Bool("force", false, "create another operator credential even if one exists")
	desc := fs.String("description", "bootstrap", "what the credential is for")
	if err := parseFlags(fs, args); err != nil {
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

// redactDSN hides a password in a database URL before it is printed.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return dsn
	}
	return u.Redacted()
}
