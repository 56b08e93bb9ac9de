package sqlstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/id4me/id4me-registry/authority"
)

// AuthorityStore is an authority.Store in the registry's database (migrations 00003,
// 00004 and 00007 to 00011, tables authority_*), sharing its Store's connections: closing the
// Store closes it. Holders' credentials, credential links, consents and grants reference the
// registry's identities; consents and grants reference a client. A write that a missing
// identity or client refuses returns authority.ErrNotFound. RedeemCredentialLink hands its
// check the transaction as a registry.Reader.
//
// The writes that decide something (RedeemGrant, RedeemCredentialLink, UseTOTPStep,
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

// q starts a statement outside a transaction.
func (a *AuthorityStore) q(ctx context.Context) *gorm.DB { return a.s.q(ctx) }

// exec runs the statement stmt makes on its own, as a write (Store.write), and returns how
// many rows it changed.
func (a *AuthorityStore) exec(ctx context.Context, stmt func(db *gorm.DB) *gorm.DB) (int64, error) {
	var n int64
	err := a.s.write(ctx, func() error {
		res := stmt(a.q(ctx))
		n = res.RowsAffected
		return res.Error
	})
	return n, authError(err)
}

// insert writes row on its own, ON CONFLICT DO NOTHING; a row refused by a unique key is
// ErrConflict.
func (a *AuthorityStore) insert(ctx context.Context, what string, row any) error {
	n, err := a.exec(ctx, func(db *gorm.DB) *gorm.DB { return db.Clauses(doNothing).Create(row) })
	if err == nil && n == 0 {
		return fmt.Errorf("%s exists already: %w", what, authority.ErrConflict)
	}
	return err
}

// execHand runs the written-out statement s on its own, as a write (Store.write), and
// returns how many rows it changed.
func (a *AuthorityStore) execHand(ctx context.Context, s handStmt, args ...any) (int64, error) {
	var n int64
	err := a.s.write(ctx, func() error {
		var err error
		n, err = a.s.exec(ctx, s, args...)
		return err
	})
	return n, authError(err)
}

// getHand reads the one row of the written-out SELECT s into dest; no row is ErrNotFound.
func (a *AuthorityStore) getHand(ctx context.Context, dest []any, s handStmt, what string, args ...any) error {
	ok, err := a.s.scanRow(ctx, dest, s, args...)
	if err != nil {
		return authError(err)
	}
	if !ok {
		return fmt.Errorf("%s: %w", what, authority.ErrNotFound)
	}
	return nil
}

// tx runs fn in one transaction (Store.runTx).
func (a *AuthorityStore) tx(ctx context.Context, fn func(t *tx) error) error {
	return authError(a.s.write(ctx, func() error { return a.s.runTx(ctx, fn) }))
}

// getRow reads the one row q selects into row; no row is ErrNotFound.
func getRow(q *gorm.DB, row any, what string) error {
	err := q.Take(row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return fmt.Errorf("%s: %w", what, authority.ErrNotFound)
	}
	return authError(err)
}

// has reports whether the table of model has a row the condition selects.
func has(q *gorm.DB, model any, cond string, args ...any) (bool, error) {
	var n int64
	err := q.Model(model).Where(cond, args...).Limit(1).Count(&n).Error
	return n > 0, authError(err)
}

// lost explains why a conditional write changed nothing: the object the condition selects
// is missing, ErrNotFound, or it exists and the write's condition refused it, ErrConflict.
func lost(q *gorm.DB, model any, cond string, arg any, what, refused string) error {
	ok, err := has(q, model, cond, arg)
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

// SigningKeys returns the keys that have not expired: an object has expired once its
// expire time has come; DeleteExpired deletes it once that time has passed.
func (a *AuthorityStore) SigningKeys(ctx context.Context, now time.Time) ([]authority.SigningKey, error) {
	keys, err := find(a.q(ctx).Where("expire_time IS NULL OR expire_time > ?", dbTime(now)).Order("create_time, id"), signingKeyRow.key)
	return keys, authError(err)
}

// lockSigningKeys makes the rotations of concurrent instances run one after the other on
// PostgreSQL, each seeing the keys of those before it, and lets the JWKS be read meanwhile.
// gorm has no LOCK TABLE: the statement is written out.
const lockSigningKeys = "LOCK TABLE authority_signing_keys IN SHARE ROW EXCLUSIVE MODE"

func (a *AuthorityStore) AddSigningKey(ctx context.Context, k authority.SigningKey, notAfter time.Time, verifyFor time.Duration) error {
	if err := mustBeSet("the sign time of a signing key", k.SignTime); err != nil {
		return err
	}
	return a.tx(ctx, func(t *tx) error {
		if t.d.rowLocks() {
			if err := t.q(ctx).Exec(lockSigningKeys).Error; err != nil {
				return err
			}
		}
		// Another instance rotated first if it made a key after the caller's newest; with
		// no notAfter, every key is newer.
		cond, args := "alg = ?", []any{k.Alg}
		if !notAfter.IsZero() {
			cond, args = "alg = ? AND create_time > ?", []any{k.Alg, dbTime(notAfter)}
		}
		newer, err := has(t.q(ctx), &signingKeyRow{}, cond, args...)
		switch {
		case err != nil:
			return err
		case newer:
			return fmt.Errorf("a newer %s signing key exists: %w", k.Alg, authority.ErrConflict)
		}
		row := signingKeyToRow(k)
		ok, err := insert(t.q(ctx), &row)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("signing key %q exists already: %w", k.ID, authority.ErrConflict)
		}
		_, err = update(t.q(ctx), &signingKeyRow{},
			map[string]any{"retire_time": dbTime(k.SignTime), "expire_time": dbTime(k.SignTime.Add(verifyFor))},
			"alg = ? AND id <> ? AND retire_time IS NULL", k.Alg, k.ID)
		return err
	})
}

func (a *AuthorityStore) ReplaceSigningKeyPrivateJWK(ctx context.Context, id string, old, jwk []byte) error {
	n, err := a.exec(ctx, func(db *gorm.DB) *gorm.DB {
		return db.Model(&signingKeyRow{}).Where("id = ? AND private_jwk = ?", id, blob(old)).Update("private_jwk", blob(jwk))
	})
	if err != nil || n > 0 {
		return err
	}
	return lost(a.q(ctx), &signingKeyRow{}, "id = ?", id, fmt.Sprintf("signing key %q", id), "changed since it was read")
}

func (a *AuthorityStore) CreateClient(ctx context.Context, c authority.Client) error {
	row, err := clientToRow(c)
	if err != nil {
		return err
	}
	return a.insert(ctx, fmt.Sprintf("client %q", c.ID), &row)
}

func (a *AuthorityStore) GetClient(ctx context.Context, id string) (authority.Client, error) {
	var row clientRow
	if err := getRow(a.q(ctx).Where("id = ?", id), &row, fmt.Sprintf("client %q", id)); err != nil {
		return authority.Client{}, err
	}
	return row.client()
}

// UpdateClient stores c only with the registration token hash the caller read: of two
// concurrent updates or deletions, the second finds it changed.
func (a *AuthorityStore) UpdateClient(ctx context.Context, c authority.Client, registrationTokenHash []byte) error {
	row, err := clientToRow(c)
	if err != nil {
		return err
	}
	n, err := a.exec(ctx, func(db *gorm.DB) *gorm.DB {
		return db.Model(&clientRow{}).Where("id = ? AND registration_token_hash = ?", c.ID, registrationTokenHash).
			Updates(map[string]any{
				"secret_hash":             row.SecretHash,
				"secret_expire_time":      row.SecretExpireTime,
				"registration_token_hash": row.RegistrationTokenHash,
				"metadata":                row.Metadata,
				"sector":                  row.Sector,
			})
	})
	if err != nil || n > 0 {
		return err
	}
	return lost(a.q(ctx), &clientRow{}, "id = ?", c.ID, fmt.Sprintf("client %q", c.ID), "has another registration token")
}

// DeleteClient locks the client's row first (PostgreSQL): a concurrent grant or consent,
// whose foreign key locks the client's row for key share, waits for the deletion and then
// fails, or the deletion waits for it and then deletes it. The grants go before the
// tokens: a token being issued holds its grant's row (CreateAccessToken), so the deletion
// of the grants waits for it, and the deletion of the tokens then sees it.
func (a *AuthorityStore) DeleteClient(ctx context.Context, id string, registrationTokenHash []byte) error {
	return a.tx(ctx, func(t *tx) error {
		var row clientRow
		err := t.q(ctx).Select("registration_token_hash").Where("id = ?", id).Clauses(forUpdate).Take(&row).Error
		switch {
		case errors.Is(err, gorm.ErrRecordNotFound):
			return fmt.Errorf("client %q: %w", id, authority.ErrNotFound)
		case err != nil:
			return err
		case !bytes.Equal(row.RegistrationTokenHash, registrationTokenHash):
			return fmt.Errorf("client %q has another registration token: %w", id, authority.ErrConflict)
		}
		for _, del := range []struct {
			model any
			cond  string
		}{
			{&grantRow{}, "client_id = ?"},
			{&accessTokenRow{}, "client_id = ?"},
			{&consentRow{}, "client_id = ?"},
			{&clientRow{}, "id = ?"},
		} {
			if err := t.q(ctx).Where(del.cond, id).Delete(del.model).Error; err != nil {
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
	row := initialTokenToRow(t)
	return a.insert(ctx, fmt.Sprintf("initial access token %q", t.ID), &row)
}

func (a *AuthorityStore) GetInitialAccessToken(ctx context.Context, tokenHash []byte) (authority.InitialAccessToken, error) {
	var row initialTokenRow
	if err := getRow(a.q(ctx).Where("token_hash = ?", tokenHash), &row, "initial access token"); err != nil {
		return authority.InitialAccessToken{}, err
	}
	return row.token(), nil
}

func (a *AuthorityStore) ListInitialAccessTokens(ctx context.Context) ([]authority.InitialAccessToken, error) {
	tokens, err := find(a.q(ctx).Order("create_time, id"), initialTokenRow.token)
	return tokens, authError(err)
}

func (a *AuthorityStore) RevokeInitialAccessToken(ctx context.Context, id string, now time.Time) error {
	if err := mustBeSet("the revoke time of an initial access token", now); err != nil {
		return err
	}
	n, err := a.exec(ctx, func(db *gorm.DB) *gorm.DB {
		return db.Model(&initialTokenRow{}).Where("id = ? AND revoke_time IS NULL", id).Update("revoke_time", dbTime(now))
	})
	if err != nil || n > 0 {
		return err
	}
	// Revoked already, which is harmless, or missing.
	ok, err := has(a.q(ctx), &initialTokenRow{}, "id = ?", id)
	if err == nil && !ok {
		err = fmt.Errorf("initial access token %q: %w", id, authority.ErrNotFound)
	}
	return err
}

func (a *AuthorityStore) UseInitialAccessToken(ctx context.Context, tokenHash []byte, now time.Time, c authority.Client) error {
	if err := mustBeSet("the time an initial access token is used", now); err != nil {
		return err
	}
	row, err := clientToRow(c)
	if err != nil {
		return err
	}
	return a.tx(ctx, func(t *tx) error {
		n, err := update(t.q(ctx), &initialTokenRow{}, map[string]any{"uses": gorm.Expr("uses + 1")},
			"token_hash = ? AND revoke_time IS NULL AND (expire_time IS NULL OR expire_time > ?) AND (max_uses = 0 OR uses < max_uses)",
			tokenHash, dbTime(now))
		if err != nil {
			return err
		}
		if n == 0 {
			return lost(t.q(ctx), &initialTokenRow{}, "token_hash = ?", tokenHash, "initial access token", "is revoked, expired or used up")
		}
		ok, err := insert(t.q(ctx), &row)
		if err == nil && !ok {
			err = fmt.Errorf("client %q exists already: %w", c.ID, authority.ErrConflict)
		}
		return err
	})
}

func (a *AuthorityStore) GetHolderCredential(ctx context.Context, identityID string) (authority.HolderCredential, error) {
	var row holderRow
	if err := getRow(a.q(ctx).Where("identity_id = ?", identityID), &row, fmt.Sprintf("credentials of identity %q", identityID)); err != nil {
		return authority.HolderCredential{}, err
	}
	return row.credential(), nil
}

func (a *AuthorityStore) UseTOTPStep(ctx context.Context, identityID string, step int64) error {
	n, err := a.exec(ctx, func(db *gorm.DB) *gorm.DB {
		return db.Model(&holderRow{}).Where("identity_id = ? AND totp_last_step < ?", identityID, step).Update("totp_last_step", step)
	})
	if err != nil || n > 0 {
		return err
	}
	return lost(a.q(ctx), &holderRow{}, "identity_id = ?", identityID,
		fmt.Sprintf("credentials of identity %q", identityID), fmt.Sprintf("used TOTP step %d or a later one already", step))
}

func (a *AuthorityStore) CreateAuthRequest(ctx context.Context, r authority.AuthRequest) error {
	row, err := authRequestToRow(r)
	if err != nil {
		return err
	}
	return a.insert(ctx, fmt.Sprintf("authorization request %q", r.ID), &row)
}

func (a *AuthorityStore) GetAuthRequest(ctx context.Context, id string) (authority.AuthRequest, error) {
	var row authRequestRow
	if err := getRow(a.q(ctx).Where("id = ?", id), &row, fmt.Sprintf("authorization request %q", id)); err != nil {
		return authority.AuthRequest{}, err
	}
	return row.request()
}

func (a *AuthorityStore) UpdateAuthRequest(ctx context.Context, r authority.AuthRequest) error {
	n, err := a.exec(ctx, func(db *gorm.DB) *gorm.DB {
		return db.Model(&authRequestRow{}).Where("id = ?", r.ID).Updates(map[string]any{
			"pending_identity_id": r.PendingIdentityID,
			"pending_identifier":  r.PendingIdentifier,
			"pending_amr":         encodeList(r.PendingAMR),
			"login_session_hash":  blob(r.LoginSessionHash),
		})
	})
	if err == nil && n == 0 {
		return fmt.Errorf("authorization request %q: %w", r.ID, authority.ErrNotFound)
	}
	return err
}

func (a *AuthorityStore) DeleteAuthRequest(ctx context.Context, id string) error {
	_, err := a.exec(ctx, func(db *gorm.DB) *gorm.DB { return db.Where("id = ?", id).Delete(&authRequestRow{}) })
	return err
}

func (a *AuthorityStore) CreateSession(ctx context.Context, s authority.Session) error {
	row := sessionToRow(s)
	return a.insert(ctx, "session", &row)
}

// GetSession reads a session by its hash: every authorization request of a logged-in
// holder does (handsql.go).
func (a *AuthorityStore) GetSession(ctx context.Context, idHash []byte) (authority.Session, error) {
	var row sessionRow
	if err := a.getHand(ctx, row.dest(), sqlGetSession, "session", idHash); err != nil {
		return authority.Session{}, err
	}
	return row.session()
}

func (a *AuthorityStore) DeleteSession(ctx context.Context, idHash []byte) error {
	_, err := a.exec(ctx, func(db *gorm.DB) *gorm.DB { return db.Where("id_hash = ?", idHash).Delete(&sessionRow{}) })
	return err
}

func (a *AuthorityStore) GetConsent(ctx context.Context, clientID, identityID string) (authority.Consent, error) {
	var row consentRow
	err := a.getHand(ctx, row.dest(), sqlGetConsent, fmt.Sprintf("consent of identity %q to client %q", identityID, clientID),
		clientID, identityID)
	if err != nil {
		return authority.Consent{}, err
	}
	return row.consent()
}

// upsert is ON CONFLICT on the columns of a unique key DO UPDATE SET each of set to the
// value the statement tried to insert.
func upsert(key []string, set ...string) clause.OnConflict {
	cols := make([]clause.Column, len(key))
	for i, k := range key {
		cols[i] = clause.Column{Name: k}
	}
	return clause.OnConflict{Columns: cols, DoUpdates: clause.AssignmentColumns(set)}
}

// PutConsent replaces the previous consent of the identity to the client.
func (a *AuthorityStore) PutConsent(ctx context.Context, c authority.Consent) error {
	row := consentToRow(c)
	_, err := a.exec(ctx, func(db *gorm.DB) *gorm.DB {
		return db.Clauses(upsert([]string{"client_id", "identity_id"}, "scopes", "claims", "update_time")).Create(&row)
	})
	return err
}

// CreateGrant stores g; either unique key may refuse the row: the ID or the code's hash.
// The statements of the code round trip are written out (handsql.go).
func (a *AuthorityStore) CreateGrant(ctx context.Context, g authority.Grant) error {
	row := grantToRow(g)
	n, err := a.execHand(ctx, sqlInsertGrant, row.args()...)
	if err == nil && n == 0 {
		return fmt.Errorf("grant %q or its code exists already: %w", g.ID, authority.ErrConflict)
	}
	return err
}

func (a *AuthorityStore) GetGrant(ctx context.Context, codeHash []byte) (authority.Grant, error) {
	var row grantRow
	if err := a.getHand(ctx, row.dest(), sqlGetGrant, "grant of code", codeHash); err != nil {
		return authority.Grant{}, err
	}
	return row.grant()
}

// RedeemGrant sets the use time of the grant of a code not used yet, and reads the grant
// back in the same statement (RETURNING).
func (a *AuthorityStore) RedeemGrant(ctx context.Context, codeHash []byte, now time.Time) (authority.Grant, error) {
	if err := mustBeSet("the time a code is used", now); err != nil {
		return authority.Grant{}, err
	}
	var row grantRow
	var redeemed bool
	err := a.s.write(ctx, func() error {
		var err error
		redeemed, err = a.s.scanRow(ctx, row.dest(), sqlRedeemGrant, dbTime(now), codeHash)
		return err
	})
	if err != nil {
		return authority.Grant{}, authError(err)
	}
	if redeemed {
		return row.grant()
	}
	// Used already (a use time, once set, stays), or missing.
	row = grantRow{}
	if err := a.getHand(ctx, row.dest(), sqlGetGrant, "grant of code", codeHash); err != nil {
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
		at := dbTime(now)
		n, err := update(t.q(ctx), &grantRow{}, map[string]any{"revoke_time": at}, "id = ? AND revoke_time IS NULL", grantID)
		if err != nil {
			return err
		}
		if n == 0 {
			// Revoked already, which is harmless: the tokens issued since are revoked below.
			ok, err := has(t.q(ctx), &grantRow{}, "id = ?", grantID)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("grant %q: %w", grantID, authority.ErrNotFound)
			}
		}
		_, err = update(t.q(ctx), &accessTokenRow{}, map[string]any{"revoke_time": at}, "grant_id = ? AND revoke_time IS NULL", grantID)
		return err
	})
}

// CreateAccessToken stores a token only while its grant exists (not after its client's
// deletion), and the token of a revoked grant revoked: the row is selected from the
// grant's. On PostgreSQL the grant's row is locked for share: a RevokeGrant or DeleteClient
// under way waits for the token, and then revokes or deletes it, or the token waits for it,
// and then reads the revoke time or finds no grant. On SQLite writes never overlap. gorm
// has no INSERT … SELECT: the statement is written out (handsql.go).
func (a *AuthorityStore) CreateAccessToken(ctx context.Context, t authority.AccessToken) error {
	r := accessTokenToRow(t)
	n, err := a.execHand(ctx, sqlInsertAccessToken, append(r.args(), t.GrantID)...)
	if err != nil || n > 0 {
		return err
	}
	// No grant to select from, or a token of that hash exists already.
	return lost(a.q(ctx), &grantRow{}, "id = ?", t.GrantID, fmt.Sprintf("grant %q", t.GrantID), "has an access token of that hash already")
}

// GetAccessToken reads a token by its hash: every userinfo request does (handsql.go).
func (a *AuthorityStore) GetAccessToken(ctx context.Context, tokenHash []byte) (authority.AccessToken, error) {
	var row accessTokenRow
	ok, err := a.s.scanRow(ctx, row.dest(), sqlGetAccessToken, tokenHash)
	if err != nil {
		return authority.AccessToken{}, authError(err)
	}
	if !ok {
		return authority.AccessToken{}, fmt.Errorf("access token: %w", authority.ErrNotFound)
	}
	return row.token()
}

// sweeps are the tables DeleteExpired sweeps, each with its primary key.
var sweeps = []struct {
	model any
	key   string
}{
	{&authRequestRow{}, "id"},
	{&sessionRow{}, "id_hash"},
	{&grantRow{}, "id"},
	{&accessTokenRow{}, "token_hash"},
	{&linkRow{}, "token_hash"},
	{&throttleRow{}, "key_hash"},
	{&knownDeviceRow{}, "device_hash, identity_id"},
	{&ceremonyRow{}, "id_hash"},
	{&sessionClientRow{}, "session_id, client_id"},
	{&backchannelLogoutRow{}, "session_id, client_id"},
}

// sweep deletes up to limit rows of model's table, whose primary key is key (one column, or
// several separated by commas), that expired before a time. It reads the index on
// expire_time; on PostgreSQL it skips the rows other transactions hold, to delete them next
// time.
func sweep(db *gorm.DB, model any, key string, before time.Time, limit int) *gorm.DB {
	expired := db.Model(model).Select(key).Where("expire_time < ?", dbTime(before)).
		Order("expire_time").Limit(limit).Clauses(skipLocked)
	return db.Where("("+key+") IN (?)", expired).Delete(model)
}

func (a *AuthorityStore) DeleteExpired(ctx context.Context, now time.Time) (int64, error) {
	if err := mustBeSet("the time of a sweep", now); err != nil {
		return 0, err
	}
	total, err := a.exec(ctx, func(db *gorm.DB) *gorm.DB {
		return db.Where("expire_time < ?", dbTime(now)).Delete(&signingKeyRow{})
	})
	if err != nil {
		return 0, err
	}
	for _, sw := range sweeps {
		for {
			n, err := a.exec(ctx, func(db *gorm.DB) *gorm.DB { return sweep(db, sw.model, sw.key, now, sweepBatch) })
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
