package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/id4me/id4me-registry/authority"
)

// AuthorityStore is an authority.Store in the registry's database (migrations 00003,
// 00004 and 00007 to 00010, tables authority_*), sharing its Store's connections: closing the
// Store closes it. Holders' credentials, credential links, consents and grants reference the
// registry's identities; consents and grants reference a client. A write that a missing
// identity or client refuses returns authority.ErrNotFound. RedeemCredentialLink hands its
// check the transaction as a registry.Reader.
//
// Every statement is a fixed text, prepared once (pool.go), like the registry's frequent
// ones. The writes that decide something (RedeemGrant, RedeemCredentialLink, UseTOTPStep,
// SetCredentialLinkPending, UpdateClient, UseInitialAccessToken) each turn on one
// conditional statement, which the database runs atomically: of any number of concurrent
// calls, only as many succeed as the condition lets through. AddSigningKey, which must see
// every key stored before it, locks the table of keys against other writers (PostgreSQL;
// SQLite has one writer); DeleteClient locks the client's row; the writes of credential
// links lock their identity (authority_links.go); ClaimLoginAttempt locks its budgets' rows,
// made first when missing (authority_throttle.go). AddSigningKey, CreateCredentialLink,
// RedeemCredentialLink, RevokeGrant, DeleteClient, UseInitialAccessToken, ClaimLoginAttempt
// and ReleaseLoginAttempts run in one transaction; like Store.Tx, every
// write is run again when the database asks for a retry, and on SQLite waits for the
// store's write slot.
type AuthorityStore struct {
	s *Store
}

var _ authority.Store = (*AuthorityStore)(nil)

// Authority returns the authority's store in s's database.
func (s *Store) Authority() *AuthorityStore { return &AuthorityStore{s: s} }

// sweepBatch bounds the rows one statement of DeleteExpired deletes, so that a large sweep
// does not hold SQLite's write lock, or PostgreSQL's row locks, for long.
const sweepBatch = 1000

var (
	// An object has expired once its expire time has come; DeleteExpired deletes it once that
	// time has passed.
	sqlSigningKeys = newSQL("SELECT " + signingKeyColumns + " FROM authority_signing_keys" +
		" WHERE expire_time IS NULL OR expire_time > ? ORDER BY create_time, id")
	// Another instance rotated first if it made a key after the caller's newest.
	sqlNewerKey = newSQL("SELECT 1 FROM authority_signing_keys WHERE alg = ? AND create_time > ? LIMIT 1")
	sqlAnyKey   = newSQL("SELECT 1 FROM authority_signing_keys WHERE alg = ? LIMIT 1")
	// SQLite runs one write transaction at a time anyway; on PostgreSQL the lock makes
	// rotations of concurrent instances run one after the other, each seeing the keys of
	// those before it. It lets the JWKS be read meanwhile.
	sqlLockSigningKeys = "LOCK TABLE authority_signing_keys IN SHARE ROW EXCLUSIVE MODE"
	sqlInsertKey       = newSQL("INSERT INTO authority_signing_keys (" + signingKeyColumns + ") VALUES (" +
		placeholders(7) + ") ON CONFLICT DO NOTHING")
	sqlRetireKeys = newSQL("UPDATE authority_signing_keys SET retire_time = ?, expire_time = ?" +
		" WHERE alg = ? AND id <> ? AND retire_time IS NULL")
	sqlReplaceKeyJWK = newSQL("UPDATE authority_signing_keys SET private_jwk = ? WHERE id = ? AND private_jwk = ?")
	sqlHasKey        = newSQL("SELECT 1 FROM authority_signing_keys WHERE id = ?")

	sqlInsertClient = newSQL("INSERT INTO authority_clients (" + clientColumns + ") VALUES (" +
		placeholders(7) + ") ON CONFLICT DO NOTHING")
	sqlGetClient = newSQL("SELECT " + clientColumns + " FROM authority_clients WHERE id = ?")
	sqlHasClient = newSQL("SELECT 1 FROM authority_clients WHERE id = ?")
	// An update or a deletion must come with the registration token hash the caller read:
	// of two concurrent ones, the second finds it changed.
	sqlUpdateClient = newSQL("UPDATE authority_clients SET secret_hash = ?, secret_expire_time = ?," +
		" registration_token_hash = ?, metadata = ?, sector = ? WHERE id = ? AND registration_token_hash = ?")
	// On PostgreSQL the row lock makes a concurrent grant or consent, whose foreign key
	// locks the client's row for key share, wait for the deletion and then fail, or the
	// deletion wait for it and then delete it.
	sqlLockClient = sqlText{
		sqlite:   "SELECT registration_token_hash FROM authority_clients WHERE id = ?",
		postgres: newSQL("SELECT registration_token_hash FROM authority_clients WHERE id = ? FOR UPDATE").postgres,
	}
	// The grants go first: a token being issued holds its grant's row (sqlInsertToken), so
	// the deletion of the grants waits for it, and the deletion of the tokens then sees it.
	sqlDeleteClientGrants   = newSQL("DELETE FROM authority_grants WHERE client_id = ?")
	sqlDeleteClientTokens   = newSQL("DELETE FROM authority_access_tokens WHERE client_id = ?")
	sqlDeleteClientConsents = newSQL("DELETE FROM authority_consents WHERE client_id = ?")
	sqlDeleteClient         = newSQL("DELETE FROM authority_clients WHERE id = ?")

	sqlInsertInitialToken = newSQL("INSERT INTO authority_initial_access_tokens (" + initialTokenColumns + ") VALUES (" +
		placeholders(8) + ") ON CONFLICT DO NOTHING")
	sqlGetInitialToken    = newSQL("SELECT " + initialTokenColumns + " FROM authority_initial_access_tokens WHERE token_hash = ?")
	sqlHasInitialToken    = newSQL("SELECT 1 FROM authority_initial_access_tokens WHERE token_hash = ?")
	sqlListInitialTokens  = newSQL("SELECT " + initialTokenColumns + " FROM authority_initial_access_tokens ORDER BY create_time, id")
	sqlRevokeInitialToken = newSQL("UPDATE authority_initial_access_tokens SET revoke_time = ?" +
		" WHERE id = ? AND revoke_time IS NULL")
	sqlHasInitialTokenID = newSQL("SELECT 1 FROM authority_initial_access_tokens WHERE id = ?")
	sqlUseInitialToken   = newSQL("UPDATE authority_initial_access_tokens SET uses = uses + 1 WHERE token_hash = ?" +
		" AND revoke_time IS NULL AND (expire_time IS NULL OR expire_time > ?) AND (max_uses = 0 OR uses < max_uses)")

	sqlGetHolder   = newSQL("SELECT " + holderColumns + " FROM authority_holder_credentials WHERE identity_id = ?")
	sqlHasHolder   = newSQL("SELECT 1 FROM authority_holder_credentials WHERE identity_id = ?")
	sqlUseTOTPStep = newSQL("UPDATE authority_holder_credentials SET totp_last_step = ?" +
		" WHERE identity_id = ? AND totp_last_step < ?")
	// Setting credentials replaces the previous ones.
	sqlPutHolder = newSQL("INSERT INTO authority_holder_credentials (" + holderColumns + ") VALUES (" +
		placeholders(5) + `) ON CONFLICT (identity_id) DO UPDATE SET password_hash = excluded.password_hash,
		totp_secret = excluded.totp_secret, totp_last_step = excluded.totp_last_step,
		update_time = excluded.update_time`)

	sqlInsertAuthRequest = newSQL("INSERT INTO authority_auth_requests (" + authRequestColumns + ") VALUES (" +
		placeholders(9) + ") ON CONFLICT DO NOTHING")
	sqlGetAuthRequest    = newSQL("SELECT " + authRequestColumns + " FROM authority_auth_requests WHERE id = ?")
	sqlUpdateAuthRequest = newSQL("UPDATE authority_auth_requests SET pending_identity_id = ?, pending_identifier = ?," +
		" pending_amr = ?, login_session_hash = ? WHERE id = ?")
	sqlDeleteAuthRequest = newSQL("DELETE FROM authority_auth_requests WHERE id = ?")

	sqlInsertSession = newSQL("INSERT INTO authority_sessions (" + sessionColumns + ") VALUES (" +
		placeholders(7) + ") ON CONFLICT DO NOTHING")
	sqlGetSession    = newSQL("SELECT " + sessionColumns + " FROM authority_sessions WHERE id_hash = ?")
	sqlDeleteSession = newSQL("DELETE FROM authority_sessions WHERE id_hash = ?")

	sqlGetConsent = newSQL("SELECT " + consentColumns + " FROM authority_consents WHERE client_id = ? AND identity_id = ?")
	sqlPutConsent = newSQL("INSERT INTO authority_consents (" + consentColumns + ") VALUES (" + placeholders(5) +
		`) ON CONFLICT (client_id, identity_id) DO UPDATE SET scopes = excluded.scopes, claims = excluded.claims,
		update_time = excluded.update_time`)

	// Either unique key may refuse the row: the ID or the code's hash.
	sqlInsertGrant = newSQL("INSERT INTO authority_grants (" + grantColumns + ") VALUES (" +
		placeholders(18) + ") ON CONFLICT DO NOTHING")
	sqlGetGrantByCode = newSQL("SELECT " + grantColumns + " FROM authority_grants WHERE code_hash = ?")
	sqlRedeemGrant    = newSQL("UPDATE authority_grants SET use_time = ? WHERE code_hash = ? AND use_time IS NULL" +
		" RETURNING " + grantColumns)
	sqlRevokeGrant  = newSQL("UPDATE authority_grants SET revoke_time = ? WHERE id = ? AND revoke_time IS NULL")
	sqlHasGrant     = newSQL("SELECT 1 FROM authority_grants WHERE id = ?")
	sqlRevokeTokens = newSQL("UPDATE authority_access_tokens SET revoke_time = ? WHERE grant_id = ? AND revoke_time IS NULL")

	// A token is stored only while its grant exists (not after its client's deletion), and
	// the token of a revoked grant is stored revoked. On PostgreSQL the grant's row is locked
	// for share: a RevokeGrant or DeleteClient under way waits for the token, and then
	// revokes or deletes it, or the token waits for it, and then reads the revoke time or
	// finds no grant. On SQLite writes never overlap.
	sqlInsertToken = func() sqlText {
		q := "INSERT INTO authority_access_tokens (" + accessTokenColumns + ") SELECT " + placeholders(10) +
			", COALESCE(?, revoke_time) FROM authority_grants WHERE id = ?%s ON CONFLICT DO NOTHING"
		return sqlText{sqlite: fmt.Sprintf(q, ""), postgres: newSQL(fmt.Sprintf(q, " FOR SHARE")).postgres}
	}()
	sqlGetToken = newSQL("SELECT " + accessTokenColumns + " FROM authority_access_tokens WHERE token_hash = ?")

	// The sweeps of DeleteExpired read the index on expire_time; on PostgreSQL they skip the
	// rows other transactions hold, to delete them next time.
	sqlSweeps = []sqlText{
		sweepSQL("authority_auth_requests", "id"),
		sweepSQL("authority_sessions", "id_hash"),
		sweepSQL("authority_grants", "id"),
		sweepSQL("authority_access_tokens", "token_hash"),
		sweepSQL("authority_credential_links", "token_hash"),
		sweepSQL("authority_login_throttles", "key_hash"),
		sweepSQL("authority_known_devices", "device_hash, identity_id"),
	}
	sqlDeleteExpiredKeys = newSQL("DELETE FROM authority_signing_keys WHERE expire_time < ?")
)

// sweepSQL returns the statement deleting up to a limit of rows of table, whose primary key
// is key (one column, or several separated by commas), that expired before a time; its
// parameters are the time and the limit.
func sweepSQL(table, key string) sqlText {
	q := "DELETE FROM " + table + " WHERE (" + key + ") IN (SELECT " + key + " FROM " + table +
		" WHERE expire_time < ? ORDER BY expire_time LIMIT ?"
	return sqlText{sqlite: q + ")", postgres: newSQL(q + " FOR UPDATE SKIP LOCKED)").postgres}
}

// authError returns err as the authority store returns it: the authority's own errors as
// they are, a missing identity or client as authority.ErrNotFound, a database error as the
// registry's (dbError).
func authError(err error) error {
	switch {
	case err == nil, errors.Is(err, authority.ErrNotFound), errors.Is(err, authority.ErrConflict):
		return err
	case isForeignKey(err):
		return fmt.Errorf("%w: no such identity or client (%w)", authority.ErrNotFound, dbError(err))
	}
	return dbError(err)
}

// exec runs one statement on its own and returns how many rows it changed.
func (a *AuthorityStore) exec(ctx context.Context, q sqlText, args ...any) (int64, error) {
	var n int64
	err := a.s.write(ctx, func() error {
		var err error
		n, err = a.s.execSQL(ctx, q, args...)
		return err
	})
	return n, authError(err)
}

// insert runs an INSERT … ON CONFLICT DO NOTHING on its own; a row refused by a unique key
// is ErrConflict.
func (a *AuthorityStore) insert(ctx context.Context, what string, q sqlText, args ...any) error {
	n, err := a.exec(ctx, q, args...)
	if err == nil && n == 0 {
		return fmt.Errorf("%s exists already: %w", what, authority.ErrConflict)
	}
	return err
}

// tx runs fn in one transaction (Store.runTx).
func (a *AuthorityStore) tx(ctx context.Context, fn func(t *tx) error) error {
	return authError(a.s.write(ctx, func() error { return a.s.runTx(ctx, fn) }))
}

// getRow reads the one row q selects into dest; no row is ErrNotFound.
func getRow(ctx context.Context, r reader, what string, q sqlText, dest []any, args ...any) error {
	err := r.c.QueryRowContext(ctx, r.sql(q), args...).Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, authority.ErrNotFound)
	}
	return authError(err)
}

// has reports whether q, a SELECT 1, finds a row.
func has(ctx context.Context, r reader, q sqlText, args ...any) (bool, error) {
	var one int
	err := r.c.QueryRowContext(ctx, r.sql(q), args...).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, authError(err)
}

// lost explains why a conditional write changed nothing: the object q looks for (a
// SELECT 1) is missing, ErrNotFound, or it exists and the condition refused it, ErrConflict.
func lost(ctx context.Context, r reader, q sqlText, arg any, what, refused string) error {
	ok, err := has(ctx, r, q, arg)
	switch {
	case err != nil:
		return err
	case ok:
		return fmt.Errorf("%s %s: %w", what, refused, authority.ErrConflict)
	}
	return fmt.Errorf("%s: %w", what, authority.ErrNotFound)
}

func mustBeSet(what string, t time.Time) error {
	if t.IsZero() {
		return fmt.Errorf("sqlstore: %s must be set", what)
	}
	return nil
}

func (a *AuthorityStore) SigningKeys(ctx context.Context, now time.Time) ([]authority.SigningKey, error) {
	r := a.s.reader
	rows, err := queryRows(ctx, r, sqlSigningKeys, (*signingKeyRow).dest, r.time(dbTime(now)))
	if err != nil || len(rows) == 0 {
		return nil, authError(err)
	}
	out := make([]authority.SigningKey, len(rows))
	for i, row := range rows {
		out[i] = row.key()
	}
	return out, nil
}

func (a *AuthorityStore) AddSigningKey(ctx context.Context, k authority.SigningKey, notAfter time.Time, verifyFor time.Duration) error {
	if err := mustBeSet("the sign time of a signing key", k.SignTime); err != nil {
		return err
	}
	return a.tx(ctx, func(t *tx) error {
		if t.postgres {
			if _, err := t.c.ExecContext(ctx, sqlLockSigningKeys); err != nil {
				return err
			}
		}
		// With no notAfter, every key is newer.
		q, args := sqlAnyKey, []any{k.Alg}
		if !notAfter.IsZero() {
			q, args = sqlNewerKey, []any{k.Alg, t.time(dbTime(notAfter))}
		}
		newer, err := has(ctx, t.reader, q, args...)
		switch {
		case err != nil:
			return err
		case newer:
			return fmt.Errorf("a newer %s signing key exists: %w", k.Alg, authority.ErrConflict)
		}
		n, err := t.execSQL(ctx, sqlInsertKey, signingKeyArgs(t.reader, k)...)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("signing key %q exists already: %w", k.ID, authority.ErrConflict)
		}
		_, err = t.execSQL(ctx, sqlRetireKeys, t.time(dbTime(k.SignTime)), t.time(dbTime(k.SignTime.Add(verifyFor))), k.Alg, k.ID)
		return err
	})
}

func (a *AuthorityStore) ReplaceSigningKeyPrivateJWK(ctx context.Context, id string, old, jwk []byte) error {
	n, err := a.exec(ctx, sqlReplaceKeyJWK, blob(jwk), id, blob(old))
	if err != nil || n > 0 {
		return err
	}
	return lost(ctx, a.s.reader, sqlHasKey, id, fmt.Sprintf("signing key %q", id), "changed since it was read")
}

func (a *AuthorityStore) CreateClient(ctx context.Context, c authority.Client) error {
	args, err := clientArgs(a.s.reader, c)
	if err != nil {
		return err
	}
	return a.insert(ctx, fmt.Sprintf("client %q", c.ID), sqlInsertClient, args...)
}

func (a *AuthorityStore) GetClient(ctx context.Context, id string) (authority.Client, error) {
	var row clientRow
	if err := getRow(ctx, a.s.reader, fmt.Sprintf("client %q", id), sqlGetClient, row.dest(), id); err != nil {
		return authority.Client{}, err
	}
	return row.client()
}

func (a *AuthorityStore) UpdateClient(ctx context.Context, c authority.Client, registrationTokenHash []byte) error {
	md, err := json.Marshal(c.Metadata)
	if err != nil {
		return fmt.Errorf("sqlstore: encoding metadata of client %s: %w", c.ID, err)
	}
	r := a.s.reader
	n, err := a.exec(ctx, sqlUpdateClient, blob(c.SecretHash), r.time(dbTime(c.SecretExpireTime)), blob(c.RegistrationTokenHash),
		string(md), c.Metadata.Sector, c.ID, registrationTokenHash)
	if err != nil || n > 0 {
		return err
	}
	return lost(ctx, r, sqlHasClient, c.ID, fmt.Sprintf("client %q", c.ID), "has another registration token")
}

func (a *AuthorityStore) DeleteClient(ctx context.Context, id string, registrationTokenHash []byte) error {
	return a.tx(ctx, func(t *tx) error {
		var stored []byte
		err := t.c.QueryRowContext(ctx, t.sql(sqlLockClient), id).Scan(&stored)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("client %q: %w", id, authority.ErrNotFound)
		case err != nil:
			return err
		case !bytes.Equal(stored, registrationTokenHash):
			return fmt.Errorf("client %q has another registration token: %w", id, authority.ErrConflict)
		}
		for _, q := range []sqlText{sqlDeleteClientGrants, sqlDeleteClientTokens, sqlDeleteClientConsents, sqlDeleteClient} {
			if _, err := t.execSQL(ctx, q, id); err != nil {
				return err
			}
		}
		return nil
	})
}

func (a *AuthorityStore) CreateInitialAccessToken(ctx context.Context, t authority.InitialAccessToken) error {
	if err := mustBeSet("the create time of an initial access token", t.CreateTime); err != nil {
		return err
	}
	return a.insert(ctx, fmt.Sprintf("initial access token %q", t.ID), sqlInsertInitialToken, initialTokenArgs(a.s.reader, t)...)
}

func (a *AuthorityStore) GetInitialAccessToken(ctx context.Context, tokenHash []byte) (authority.InitialAccessToken, error) {
	var row initialTokenRow
	if err := getRow(ctx, a.s.reader, "initial access token", sqlGetInitialToken, row.dest(), tokenHash); err != nil {
		return authority.InitialAccessToken{}, err
	}
	return row.token(), nil
}

func (a *AuthorityStore) ListInitialAccessTokens(ctx context.Context) ([]authority.InitialAccessToken, error) {
	rows, err := queryRows(ctx, a.s.reader, sqlListInitialTokens, (*initialTokenRow).dest)
	if err != nil || len(rows) == 0 {
		return nil, authError(err)
	}
	out := make([]authority.InitialAccessToken, len(rows))
	for i, row := range rows {
		out[i] = row.token()
	}
	return out, nil
}

func (a *AuthorityStore) RevokeInitialAccessToken(ctx context.Context, id string, now time.Time) error {
	if err := mustBeSet("the revoke time of an initial access token", now); err != nil {
		return err
	}
	r := a.s.reader
	n, err := a.exec(ctx, sqlRevokeInitialToken, r.time(dbTime(now)), id)
	if err != nil || n > 0 {
		return err
	}
	// Revoked already, which is harmless, or missing.
	ok, err := has(ctx, r, sqlHasInitialTokenID, id)
	if err == nil && !ok {
		err = fmt.Errorf("initial access token %q: %w", id, authority.ErrNotFound)
	}
	return err
}

func (a *AuthorityStore) UseInitialAccessToken(ctx context.Context, tokenHash []byte, now time.Time, c authority.Client) error {
	if err := mustBeSet("the time an initial access token is used", now); err != nil {
		return err
	}
	args, err := clientArgs(a.s.reader, c)
	if err != nil {
		return err
	}
	return a.tx(ctx, func(t *tx) error {
		n, err := t.execSQL(ctx, sqlUseInitialToken, tokenHash, t.time(dbTime(now)))
		if err != nil {
			return err
		}
		if n == 0 {
			return lost(ctx, t.reader, sqlHasInitialToken, tokenHash, "initial access token", "is revoked, expired or used up")
		}
		if n, err = t.execSQL(ctx, sqlInsertClient, args...); err == nil && n == 0 {
			err = fmt.Errorf("client %q exists already: %w", c.ID, authority.ErrConflict)
		}
		return err
	})
}

func (a *AuthorityStore) GetHolderCredential(ctx context.Context, identityID string) (authority.HolderCredential, error) {
	var row holderRow
	err := getRow(ctx, a.s.reader, fmt.Sprintf("credentials of identity %q", identityID), sqlGetHolder, row.dest(), identityID)
	if err != nil {
		return authority.HolderCredential{}, err
	}
	return row.credential(), nil
}

func (a *AuthorityStore) UseTOTPStep(ctx context.Context, identityID string, step int64) error {
	n, err := a.exec(ctx, sqlUseTOTPStep, step, identityID, step)
	if err != nil || n > 0 {
		return err
	}
	return lost(ctx, a.s.reader, sqlHasHolder, identityID,
		fmt.Sprintf("credentials of identity %q", identityID), fmt.Sprintf("used TOTP step %d or a later one already", step))
}

func (a *AuthorityStore) CreateAuthRequest(ctx context.Context, r authority.AuthRequest) error {
	args, err := authRequestArgs(a.s.reader, r)
	if err != nil {
		return err
	}
	return a.insert(ctx, fmt.Sprintf("authorization request %q", r.ID), sqlInsertAuthRequest, args...)
}

func (a *AuthorityStore) GetAuthRequest(ctx context.Context, id string) (authority.AuthRequest, error) {
	var row authRequestRow
	if err := getRow(ctx, a.s.reader, fmt.Sprintf("authorization request %q", id), sqlGetAuthRequest, row.dest(), id); err != nil {
		return authority.AuthRequest{}, err
	}
	return row.request()
}

func (a *AuthorityStore) UpdateAuthRequest(ctx context.Context, r authority.AuthRequest) error {
	n, err := a.exec(ctx, sqlUpdateAuthRequest, r.PendingIdentityID, r.PendingIdentifier, encodeList(r.PendingAMR),
		blob(r.LoginSessionHash), r.ID)
	if err == nil && n == 0 {
		return fmt.Errorf("authorization request %q: %w", r.ID, authority.ErrNotFound)
	}
	return err
}

func (a *AuthorityStore) DeleteAuthRequest(ctx context.Context, id string) error {
	_, err := a.exec(ctx, sqlDeleteAuthRequest, id)
	return err
}

func (a *AuthorityStore) CreateSession(ctx context.Context, s authority.Session) error {
	return a.insert(ctx, "session", sqlInsertSession, sessionArgs(a.s.reader, s)...)
}

func (a *AuthorityStore) GetSession(ctx context.Context, idHash []byte) (authority.Session, error) {
	var row sessionRow
	if err := getRow(ctx, a.s.reader, "session", sqlGetSession, row.dest(), idHash); err != nil {
		return authority.Session{}, err
	}
	return row.session()
}

func (a *AuthorityStore) DeleteSession(ctx context.Context, idHash []byte) error {
	_, err := a.exec(ctx, sqlDeleteSession, idHash)
	return err
}

func (a *AuthorityStore) GetConsent(ctx context.Context, clientID, identityID string) (authority.Consent, error) {
	var row consentRow
	err := getRow(ctx, a.s.reader, fmt.Sprintf("consent of identity %q to client %q", identityID, clientID),
		sqlGetConsent, row.dest(), clientID, identityID)
	if err != nil {
		return authority.Consent{}, err
	}
	return row.consent()
}

func (a *AuthorityStore) PutConsent(ctx context.Context, c authority.Consent) error {
	_, err := a.exec(ctx, sqlPutConsent, consentArgs(a.s.reader, c)...)
	return err
}

func (a *AuthorityStore) CreateGrant(ctx context.Context, g authority.Grant) error {
	return a.insert(ctx, fmt.Sprintf("grant %q or its code", g.ID), sqlInsertGrant, grantArgs(a.s.reader, g)...)
}

func (a *AuthorityStore) GetGrant(ctx context.Context, codeHash []byte) (authority.Grant, error) {
	var row grantRow
	if err := getRow(ctx, a.s.reader, "grant of code", sqlGetGrantByCode, row.dest(), codeHash); err != nil {
		return authority.Grant{}, err
	}
	return row.grant()
}

func (a *AuthorityStore) RedeemGrant(ctx context.Context, codeHash []byte, now time.Time) (authority.Grant, error) {
	if err := mustBeSet("the time a code is used", now); err != nil {
		return authority.Grant{}, err
	}
	r := a.s.reader
	var row grantRow
	err := a.s.write(ctx, func() error {
		return r.c.QueryRowContext(ctx, r.sql(sqlRedeemGrant), r.time(dbTime(now)), codeHash).Scan(row.dest()...)
	})
	if err == nil {
		return row.grant()
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return authority.Grant{}, authError(err)
	}
	// Used already (a use time, once set, stays), or missing.
	if err := getRow(ctx, r, "grant of code", sqlGetGrantByCode, row.dest(), codeHash); err != nil {
		return authority.Grant{}, err
	}
	g, err := row.grant()
	if err != nil {
		return authority.Grant{}, err
	}
	return g, fmt.Errorf("code of grant %q used already: %w", g.ID, authority.ErrConflict)
}

func (a *AuthorityStore) RevokeGrant(ctx context.Context, grantID string, now time.Time) error {
	if err := mustBeSet("the revoke time of a grant", now); err != nil {
		return err
	}
	return a.tx(ctx, func(t *tx) error {
		at := t.time(dbTime(now))
		n, err := t.execSQL(ctx, sqlRevokeGrant, at, grantID)
		if err != nil {
			return err
		}
		if n == 0 {
			// Revoked already, which is harmless: the tokens issued since are revoked below.
			ok, err := has(ctx, t.reader, sqlHasGrant, grantID)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("grant %q: %w", grantID, authority.ErrNotFound)
			}
		}
		_, err = t.execSQL(ctx, sqlRevokeTokens, at, grantID)
		return err
	})
}

func (a *AuthorityStore) CreateAccessToken(ctx context.Context, t authority.AccessToken) error {
	n, err := a.exec(ctx, sqlInsertToken, accessTokenArgs(a.s.reader, t)...)
	if err != nil || n > 0 {
		return err
	}
	// No grant to select from, or a token of that hash exists already.
	return lost(ctx, a.s.reader, sqlHasGrant, t.GrantID, fmt.Sprintf("grant %q", t.GrantID), "has an access token of that hash already")
}

func (a *AuthorityStore) GetAccessToken(ctx context.Context, tokenHash []byte) (authority.AccessToken, error) {
	var row accessTokenRow
	if err := getRow(ctx, a.s.reader, "access token", sqlGetToken, row.dest(), tokenHash); err != nil {
		return authority.AccessToken{}, err
	}
	return row.token()
}

func (a *AuthorityStore) DeleteExpired(ctx context.Context, now time.Time) (int64, error) {
	if err := mustBeSet("the time of a sweep", now); err != nil {
		return 0, err
	}
	r := a.s.reader
	before := r.time(dbTime(now))
	total, err := a.exec(ctx, sqlDeleteExpiredKeys, before)
	if err != nil {
		return 0, err
	}
	for _, q := range sqlSweeps {
		for {
			n, err := a.exec(ctx, q, before, sweepBatch)
			total += n
			if err != nil {
				return total, err
			}
			if n < sweepBatch {
				break
			}
		}
	}
	return total, nil
}
