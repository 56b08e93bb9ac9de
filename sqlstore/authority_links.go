package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/id4me/id4me-registry/authority"
	"github.com/id4me/id4me-registry/registry"
)

// Credential links, and the end of what old credentials gave once new ones are set.
//
// On PostgreSQL CreateCredentialLink and RedeemCredentialLink first lock the row of the
// link's identity (FOR NO KEY UPDATE, which lets the foreign keys that reference it be
// checked meanwhile): the writes to one identity's links run one after the other, each
// seeing the links of those before it, and always lock the identity before its links, so
// they cannot deadlock. On SQLite writes never overlap.
var (
	sqlInsertLink = newSQL("INSERT INTO authority_credential_links (" + linkColumns + ") VALUES (" +
		placeholders(13) + ") ON CONFLICT DO NOTHING")
	sqlGetLink      = newSQL("SELECT " + linkColumns + " FROM authority_credential_links WHERE token_hash = ?")
	sqlHasLink      = newSQL("SELECT 1 FROM authority_credential_links WHERE token_hash = ?")
	sqlLinkIdentity = newSQL("SELECT identity_id FROM authority_credential_links WHERE token_hash = ?")
	sqlLockIdentity = sqlText{postgres: newSQL("SELECT 1 FROM identities WHERE id = ? FOR NO KEY UPDATE").postgres}
	sqlLinkPending  = newSQL("UPDATE authority_credential_links SET pending_password_hash = ?, pending_totp_secret = ?" +
		" WHERE token_hash = ? AND use_time IS NULL AND void_time IS NULL")
	sqlUseLink = newSQL("UPDATE authority_credential_links SET use_time = ?" +
		" WHERE token_hash = ? AND use_time IS NULL AND void_time IS NULL AND expire_time > ?")
	// The identity's links that can still be used, but one.
	sqlVoidLinks = newSQL("UPDATE authority_credential_links SET void_time = ?" +
		" WHERE identity_id = ? AND use_time IS NULL AND void_time IS NULL AND token_hash <> ?")

	// What the old credentials gave, found through the indexes on identity_id (migration
	// 00007). A code not yet used goes; a grant used already is revoked, and so are its
	// tokens (a token issued from it later is stored revoked, sqlInsertToken).
	sqlEndSessions          = newSQL("DELETE FROM authority_sessions WHERE identity_id = ?")
	sqlDropUnusedGrants     = newSQL("DELETE FROM authority_grants WHERE identity_id = ? AND use_time IS NULL")
	sqlRevokeIdentityGrants = newSQL("UPDATE authority_grants SET revoke_time = ? WHERE identity_id = ? AND revoke_time IS NULL")
	sqlRevokeIdentityTokens = newSQL("UPDATE authority_access_tokens SET revoke_time = ?" +
		" WHERE identity_id = ? AND revoke_time IS NULL")
	sqlForgetPendingLogins = newSQL("UPDATE authority_auth_requests SET pending_identity_id = '', pending_identifier = ''," +
		" pending_amr = '[]' WHERE pending_identity_id = ?")
)

// lockIdentity locks the row of an identity on PostgreSQL (see above); a missing identity is
// ErrNotFound.
func (t *tx) lockIdentity(ctx context.Context, identityID string) error {
	if !t.postgres {
		return nil
	}
	var one int
	err := t.c.QueryRowContext(ctx, t.sql(sqlLockIdentity), identityID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("identity %q: %w", identityID, authority.ErrNotFound)
	}
	return err
}

func (a *AuthorityStore) CreateCredentialLink(ctx context.Context, l authority.CredentialLink, within func(ctx context.Context, tx registry.Tx) error) error {
	if err := mustBeSet("the create time of a credential link", l.CreateTime); err != nil {
		return err
	}
	return a.tx(ctx, func(t *tx) error {
		if err := t.lockIdentity(ctx, l.IdentityID); err != nil {
			return err
		}
		if _, err := t.execSQL(ctx, sqlVoidLinks, t.time(dbTime(l.CreateTime)), l.IdentityID, blob(l.TokenHash)); err != nil {
			return err
		}
		n, err := t.execSQL(ctx, sqlInsertLink, linkArgs(t.reader, l)...)
		switch {
		case err != nil:
			return err
		case n == 0:
			return fmt.Errorf("credential link exists already: %w", authority.ErrConflict)
		case within != nil:
			return within(ctx, t)
		}
		return nil
	})
}

func (a *AuthorityStore) GetCredentialLink(ctx context.Context, tokenHash []byte) (authority.CredentialLink, error) {
	var row linkRow
	if err := getRow(ctx, a.s.reader, "credential link", sqlGetLink, row.dest(), tokenHash); err != nil {
		return authority.CredentialLink{}, err
	}
	return row.link(), nil
}

func (a *AuthorityStore) SetCredentialLinkPending(ctx context.Context, tokenHash []byte, passwordHash, totpSecret string) error {
	n, err := a.exec(ctx, sqlLinkPending, passwordHash, totpSecret, tokenHash)
	if err != nil || n > 0 {
		return err
	}
	return lost(ctx, a.s.reader, sqlHasLink, tokenHash, "credential link", "was used already or is void")
}

func (a *AuthorityStore) RedeemCredentialLink(ctx context.Context, tokenHash []byte, now time.Time, c authority.HolderCredential, check func(ctx context.Context, r registry.Reader) error) error {
	if err := mustBeSet("the time a credential link is used", now); err != nil {
		return err
	}
	// The check's refusal is returned as it is, not as a database error.
	var refused error
	err := a.tx(ctx, func(t *tx) error {
		refused = nil
		var identityID string
		err := t.c.QueryRowContext(ctx, t.sql(sqlLinkIdentity), tokenHash).Scan(&identityID)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("credential link: %w", authority.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if c.IdentityID != "" && c.IdentityID != identityID {
			return fmt.Errorf("sqlstore: credentials of identity %q set through a link of identity %q", c.IdentityID, identityID)
		}
		if err := t.lockIdentity(ctx, identityID); err != nil {
			return err
		}
		at := t.time(dbTime(now))
		n, err := t.execSQL(ctx, sqlUseLink, at, tokenHash, at)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("credential link was used already, is void or has expired: %w", authority.ErrConflict)
		}
		if check != nil {
			if refused = check(ctx, t); refused != nil {
				return refused
			}
		}
		c.IdentityID = identityID
		if _, err := t.execSQL(ctx, sqlPutHolder, holderArgs(t.reader, c)...); err != nil {
			return err
		}
		if _, err := t.execSQL(ctx, sqlVoidLinks, at, identityID, tokenHash); err != nil {
			return err
		}
		for _, q := range []struct {
			q    sqlText
			args []any
		}{
			{sqlEndSessions, []any{identityID}},
			{sqlForgetPendingLogins, []any{identityID}},
			{sqlDropUnusedGrants, []any{identityID}},
			{sqlRevokeIdentityGrants, []any{at, identityID}},
			{sqlRevokeIdentityTokens, []any{at, identityID}},
			{sqlForgetDevices, []any{identityID}},
		} {
			if _, err := t.execSQL(ctx, q.q, q.args...); err != nil {
				return err
			}
		}
		return nil
	})
	if refused != nil && err != nil {
		return refused
	}
	return err
}
