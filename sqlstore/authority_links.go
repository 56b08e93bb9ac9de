package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

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

// lockIdentity locks the row of an identity on PostgreSQL (see above); a missing identity is
// ErrNotFound.
func (t *tx) lockIdentity(ctx context.Context, identityID string) error {
	if !t.d.rowLocks() {
		return nil
	}
	var row identityRow
	err := t.q(ctx).Select("id").Where("id = ?", identityID).Clauses(clause.Locking{Strength: "NO KEY UPDATE"}).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return fmt.Errorf("identity %q: %w", identityID, authority.ErrNotFound)
	}
	return err
}

// voidLinks voids the identity's links that can still be used, but the one of tokenHash.
func voidLinks(db *gorm.DB, at time.Time, identityID string, tokenHash []byte) error {
	_, err := update(db, &linkRow{}, map[string]any{"void_time": dbTime(at)},
		"identity_id = ? AND use_time IS NULL AND void_time IS NULL AND token_hash <> ?", identityID, blob(tokenHash))
	return err
}

func (a *AuthorityStore) CreateCredentialLink(ctx context.Context, l authority.CredentialLink, within func(ctx context.Context, tx registry.Tx) error) error {
	if err := mustBeSet("the create time of a credential link", l.CreateTime); err != nil {
		return err
	}
	row := linkToRow(l)
	return a.tx(ctx, func(t *tx) error {
		if err := t.lockIdentity(ctx, l.IdentityID); err != nil {
			return err
		}
		if err := voidLinks(t.q(ctx), l.CreateTime, l.IdentityID, l.TokenHash); err != nil {
			return err
		}
		ok, err := insert(t.q(ctx), &row)
		switch {
		case err != nil:
			return err
		case !ok:
			return fmt.Errorf("credential link exists already: %w", authority.ErrConflict)
		case within != nil:
			return within(ctx, t)
		}
		return nil
	})
}

func (a *AuthorityStore) GetCredentialLink(ctx context.Context, tokenHash []byte) (authority.CredentialLink, error) {
	var row linkRow
	if err := getRow(a.q(ctx).Where("token_hash = ?", tokenHash), &row, "credential link"); err != nil {
		return authority.CredentialLink{}, err
	}
	return row.link(), nil
}

func (a *AuthorityStore) SetCredentialLinkPending(ctx context.Context, tokenHash []byte, passwordHash, totpSecret string) error {
	n, err := a.exec(ctx, func(db *gorm.DB) *gorm.DB {
		return db.Model(&linkRow{}).Where("token_hash = ? AND use_time IS NULL AND void_time IS NULL", tokenHash).
			Updates(map[string]any{"pending_password_hash": passwordHash, "pending_totp_secret": totpSecret})
	})
	if err != nil || n > 0 {
		return err
	}
	return lost(a.q(ctx), &linkRow{}, "token_hash = ?", tokenHash, "credential link", "was used already or is void")
}

// endCredentials are the statements that end what an identity's old credentials gave,
// through the indexes on identity_id (migrations 00007 and 00010): its sessions and
// half-done logins, its known devices, its codes not yet used; a grant used already is
// revoked, and so are its tokens (a token issued from it later is stored revoked,
// CreateAccessToken).
var endCredentials = []func(db *gorm.DB, identityID string, at dbTime) *gorm.DB{
	func(db *gorm.DB, id string, _ dbTime) *gorm.DB {
		return db.Where("identity_id = ?", id).Delete(&sessionRow{})
	},
	func(db *gorm.DB, id string, _ dbTime) *gorm.DB {
		return db.Model(&authRequestRow{}).Where("pending_identity_id = ?", id).
			Updates(map[string]any{"pending_identity_id": "", "pending_identifier": "", "pending_amr": "[]"})
	},
	func(db *gorm.DB, id string, _ dbTime) *gorm.DB {
		return db.Where("identity_id = ? AND use_time IS NULL", id).Delete(&grantRow{})
	},
	func(db *gorm.DB, id string, at dbTime) *gorm.DB {
		return db.Model(&grantRow{}).Where("identity_id = ? AND revoke_time IS NULL", id).Update("revoke_time", at)
	},
	func(db *gorm.DB, id string, at dbTime) *gorm.DB {
		return db.Model(&accessTokenRow{}).Where("identity_id = ? AND revoke_time IS NULL", id).Update("revoke_time", at)
	},
	forgetDevices,
}

// forgetDevices deletes the identity's known devices, through
// authority_known_devices_identity (migration 00010).
func forgetDevices(db *gorm.DB, identityID string, _ dbTime) *gorm.DB {
	return db.Where("identity_id = ?", identityID).Delete(&knownDeviceRow{})
}

func (a *AuthorityStore) RedeemCredentialLink(ctx context.Context, tokenHash []byte, now time.Time, c authority.HolderCredential, check func(ctx context.Context, tx registry.Tx) error) error {
	if err := mustBeSet("the time a credential link is used", now); err != nil {
		return err
	}
	// The check's refusal is returned as it is, not as a database error.
	var refused error
	err := a.tx(ctx, func(t *tx) error {
		refused = nil
		var link linkRow
		err := t.q(ctx).Select("identity_id").Where("token_hash = ?", tokenHash).Take(&link).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return fmt.Errorf("credential link: %w", authority.ErrNotFound)
		}
		if err != nil {
			return err
		}
		identityID := link.IdentityID
		if c.IdentityID != "" && c.IdentityID != identityID {
			return fmt.Errorf("sqlstore: credentials of identity %q set through a link of identity %q", c.IdentityID, identityID)
		}
		if err := t.lockIdentity(ctx, identityID); err != nil {
			return err
		}
		at := dbTime(now)
		n, err := update(t.q(ctx), &linkRow{}, map[string]any{"use_time": at},
			"token_hash = ? AND use_time IS NULL AND void_time IS NULL AND expire_time > ?", tokenHash, at)
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
		// Setting credentials replaces the previous ones.
		holder := holderToRow(c)
		err = t.q(ctx).Clauses(upsert([]string{"identity_id"}, "password_hash", "totp_secret", "totp_last_step", "update_time")).
			Create(&holder).Error
		if err != nil {
			return err
		}
		if err := voidLinks(t.q(ctx), now, identityID, tokenHash); err != nil {
			return err
		}
		if err := activateLinkPasskeys(t.q(ctx), identityID, tokenHash); err != nil {
			return err
		}
		for _, end := range endCredentials {
			if err := end(t.q(ctx), identityID, at).Error; err != nil {
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
