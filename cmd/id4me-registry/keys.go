package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/id4me/id4me-registry/authority"
)

// keysCommands manage the authority's signing keys in the database (--db) directly.
var keysCommands = commandGroup{
	path:    "id4me-registry keys",
	summary: "Rotate, list and seal the identity authority's signing keys, in the database directly.",
	commands: []command{
		{"rotate", "", "make a new signing key of each algorithm (or of --alg): published at once, signing after --key-publish-lead (at once with --now); the keys it replaces stay published until what they signed has expired", keysRotate},
		{"list", "", "print the authority's signing keys, and the key-encryption key each is sealed with", keysList},
		{"generate-kek", "", "print a new random key-encryption key (for --key-encryption-key-file)", keysGenerateKEK},
		{"rewrap", "", "seal every signing key with --key-encryption-key-file: keys stored unsealed, and keys sealed with --old-key-encryption-key-file", keysRewrap},
	},
}

func keysRotate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags(ctx, stdout)
	db := fs.String("db", "id4me-registry.db", "database: a SQLite file path, or a postgres:// DSN")
	alg := fs.String("alg", "all", "algorithm of the key to rotate: RS256, ES256 or all")
	now := fs.Bool("now", false, "sign with the new key at once rather than after the publish lead (a key feared compromised)")
	lead := fs.Duration("key-publish-lead", authority.DefaultPublishLead, "how long a new key is published before it signs; relying parties' cached JWKS must have expired by then")
	verifyFor := fs.Duration("key-verify-for", authority.DefaultVerifyFor, "how long a replaced key stays published after it stops signing: at least the longest lifetime of a token plus clock skew")
	refresh := fs.Duration("key-refresh-interval", authority.DefaultRefreshInterval, "how often serving instances re-read the keys (a replaced key stays published this much longer)")
	rsaBits := fs.Int("key-rsa-bits", authority.DefaultRSABits, "size of new RSA keys in bits (at least 2048)")
	kek, oldKEK, err := parseWithKEK(fs, args)
	if err != nil {
		return err
	}
	var algs []string
	switch *alg {
	case "all":
		algs = []string{authority.RS256, authority.ES256}
	case authority.RS256, authority.ES256:
		algs = []string{*alg}
	default:
		return fmt.Errorf("--alg %q: use RS256, ES256 or all", *alg)
	}
	store, err := openStore(ctx, *db, true)
	if err != nil {
		return err
	}
	defer store.Close()
	as := store.Authority()

	before, err := as.SigningKeys(ctx, time.Now())
	if err != nil {
		return fmt.Errorf("reading the signing keys: %w", err)
	}
	// NewKeySet makes the first key of an algorithm that has none; that key is this
	// rotation's result rather than one more to replace at once.
	keys, err := authority.NewKeySet(ctx, as, authority.KeyConfig{
		RSABits:         *rsaBits,
		PublishLead:     *lead,
		VerifyFor:       *verifyFor,
		RefreshInterval: *refresh,
		RotationPeriod:  -1,
		KEK:             kek,
		PreviousKEK:     oldKEK,
		Logger:          slog.New(slog.NewTextHandler(stderr, nil)),
	})
	if err != nil {
		return keySetError(err)
	}
	for _, a := range algs {
		if !slices.ContainsFunc(before, func(k authority.SigningKey) bool { return k.Alg == a }) {
			after, err := as.SigningKeys(ctx, time.Now())
			if err != nil {
				return fmt.Errorf("reading the signing keys: %w", err)
			}
			for _, k := range after {
				if k.Alg == a {
					fmt.Fprintf(stdout, "%s key %s: the first; signs from %s (now)\n", a, k.ID, formatKeyTime(k.SignTime))
				}
			}
			continue
		}
		k, err := keys.Rotate(ctx, a, *now)
		if err != nil {
			return err
		}
		when := "now"
		if !*now {
			when = "in " + k.SignTime.Sub(k.CreateTime).String()
		}
		fmt.Fprintf(stdout, "%s key %s: published; signs from %s (%s); the key it replaces stays published until %s\n",
			a, k.ID, formatKeyTime(k.SignTime), when, formatKeyTime(k.SignTime.Add(*verifyFor+*refresh)))
	}
	return nil
}

func keysList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags(ctx, stdout)
	db := fs.String("db", "id4me-registry.db", "database: a SQLite file path, or a postgres:// DSN")
	kek, oldKEK, err := parseWithKEK(fs, args)
	if err != nil {
		return err
	}
	store, err := openStore(ctx, *db, false)
	if err != nil {
		return err
	}
	defer store.Close()
	now := time.Now()
	keys, err := store.Authority().SigningKeys(ctx, now)
	if err != nil {
		return fmt.Errorf("reading the signing keys (is the database migrated?): %w", err)
	}
	// Which key of each algorithm signs now, by the rule KeySet.Sign follows.
	signing := map[string]authority.SigningKey{}
	for _, k := range keys {
		if k.SignTime.After(now) || (!k.RetireTime.IsZero() && !now.Before(k.RetireTime)) {
			continue
		}
		if s, ok := signing[k.Alg]; !ok || k.SignTime.After(s.SignTime) ||
			(k.SignTime.Equal(s.SignTime) && k.CreateTime.After(s.CreateTime)) {
			signing[k.Alg] = k
		}
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KID\tALG\tSTATE\tCREATED\tSIGNS FROM\tRETIRES\tEXPIRES\tSEALED WITH")
	var unopened []error
	for _, k := range keys {
		state := "retired"
		switch {
		case signing[k.Alg].ID == k.ID:
			state = "signing"
		case k.SignTime.After(now) && (k.RetireTime.IsZero() || now.Before(k.RetireTime)):
			state = "next"
		}
		sealed := cmp.Or(k.SealedWith(), "-")
		// Given a key-encryption key, every key must open: what serve would meet at start.
		if kek != nil {
			if err := authority.CheckSigningKey(k, kek, oldKEK); err != nil {
				unopened = append(unopened, err)
				sealed += " (does not open)"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Alg, state, formatKeyTime(k.CreateTime),
			formatKeyTime(k.SignTime), formatKeyTime(k.RetireTime), formatKeyTime(k.ExpireTime), sealed)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return errors.Join(unopened...)
}

func keysGenerateKEK(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if _, err := newFlags(ctx, stdout).Parse(args); err != nil {
		return err
	}
	_, err := stdout.Write(authority.GenerateKeyEncryptionKey())
	return err
}

func keysRewrap(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags(ctx, stdout)
	db := fs.String("db", "id4me-registry.db", "database: a SQLite file path, or a postgres:// DSN")
	kek, oldKEK, err := parseWithKEK(fs, args)
	if err != nil {
		return err
	}
	if kek == nil {
		return errors.New("--key-encryption-key-file is required: the key-encryption key to seal the signing keys with")
	}
	store, err := openStore(ctx, *db, false)
	if err != nil {
		return err
	}
	defer store.Close()
	res, err := authority.RewrapSigningKeys(ctx, store.Authority(), kek, oldKEK)
	if err != nil {
		return keySetError(err)
	}
	fmt.Fprintf(stdout, "sealed %d signing keys with key-encryption key %s; %d were sealed with it already\n",
		res.Rewrapped, kek.ID(), res.Already)
	return nil
}

func formatKeyTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
