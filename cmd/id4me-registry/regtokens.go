package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/id4me/id4me-registry/authority"
)

// registrationTokensCommands manage initial access tokens in the database (--db) directly.
var registrationTokensCommands = commandGroup{
	path:    "id4me-registry registration-tokens",
	summary: "Make, list and revoke the initial access tokens relying parties register with (serve --registration token).",
	commands: []command{
		{"create", "", "make a token and print it (--description, --expires-in, --max-uses)", registrationTokensCreate},
		{"list", "", "print the tokens: ID, state, uses, creation, expiry, description", registrationTokensList},
		{"revoke", "", "revoke a token (--id)", registrationTokensRevoke},
	},
	footer: `Initial access tokens (RFC 7591 section 3) let relying parties register with an authority
served with --registration token: they send one as "Authorization: Bearer <token>". A token
is stored hashed and printed once, when it is made.
`,
}

// registrationTokensCreate prints the new token alone on stdout, so that a script can take
// it, and what it allows on stderr.
func registrationTokensCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags(ctx, stdout)
	db := fs.String("db", "id4me-registry.db", "database: a SQLite file path, or a postgres:// DSN")
	description := fs.String("description", "", "what the token is for (shown by list)")
	expiresIn := fs.Duration("expires-in", 0, "how long the token works; 0: until revoked")
	maxUses := fs.Int("max-uses", 0, "how many clients the token may register; 0: any number")
	if _, err := fs.Parse(args); err != nil {
		return err
	}
	if *expiresIn < 0 || *maxUses < 0 {
		return errors.New("--expires-in and --max-uses must not be negative")
	}
	store, err := openStore(ctx, *db, true)
	if err != nil {
		return err
	}
	defer store.Close()
	now := time.Now()
	var expire time.Time
	if *expiresIn > 0 {
		expire = now.Add(*expiresIn)
	}
	t, secret, err := authority.IssueInitialAccessToken(ctx, store.Authority(), *description, *maxUses, expire, now)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, secret)
	fmt.Fprintf(stderr, "initial access token %s: %s, %s; shown once, stored hashed\n", t.ID, usesText(t), expiryText(t))
	return nil
}

func registrationTokensList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags(ctx, stdout)
	db := fs.String("db", "id4me-registry.db", "database: a SQLite file path, or a postgres:// DSN")
	if _, err := fs.Parse(args); err != nil {
		return err
	}
	store, err := openStore(ctx, *db, false)
	if err != nil {
		return err
	}
	defer store.Close()
	tokens, err := store.Authority().ListInitialAccessTokens(ctx)
	if err != nil {
		return fmt.Errorf("reading the initial access tokens (is the database migrated?): %w", err)
	}
	now := time.Now()
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tUSES\tCREATED\tEXPIRES\tDESCRIPTION")
	for _, t := range tokens {
		uses := strconv.Itoa(t.Uses) + "/-"
		if t.MaxUses > 0 {
			uses = fmt.Sprintf("%d/%d", t.Uses, t.MaxUses)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.State(now), uses, formatKeyTime(t.CreateTime), formatKeyTime(t.ExpireTime), t.Description)
	}
	return tw.Flush()
}

func registrationTokensRevoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags(ctx, stdout)
	db := fs.String("db", "id4me-registry.db", "database: a SQLite file path, or a postgres:// DSN")
	id := fs.String("id", "", "ID of the token to revoke, as list prints it")
	if _, err := fs.Parse(args); err != nil {
		return err
	}
	if *id == "" {
		return errors.New("--id is required: the ID list prints")
	}
	store, err := openStore(ctx, *db, false)
	if err != nil {
		return err
	}
	defer store.Close()
	err = store.Authority().RevokeInitialAccessToken(ctx, *id, time.Now())
	if errors.Is(err, authority.ErrNotFound) {
		return fmt.Errorf("no initial access token %q", *id)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "initial access token %s revoked: it registers no more clients\n", *id)
	return nil
}

func usesText(t authority.InitialAccessToken) string {
	if t.MaxUses == 0 {
		return "any number of registrations"
	}
	if t.MaxUses == 1 {
		return "1 registration"
	}
	return fmt.Sprintf("%d registrations", t.MaxUses)
}

func expiryText(t authority.InitialAccessToken) string {
	if t.ExpireTime.IsZero() {
		return "until revoked"
	}
	return "until " + formatKeyTime(t.ExpireTime)
}
