package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"

	"github.com/id4me/id4me-registry/registry"
)

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
