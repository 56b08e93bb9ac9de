package sqlstore

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/id4me/id4me-registry/authority"
)

// What the account page reads and changes: an identity's sessions and consents, the end of
// a consent, and a password change.

func (a *AuthorityStore) Sessions(ctx context.Context, identityID string, now time.Time) ([]authority.Session, error) {
	var rows []sessionRow
	if err := a.q(ctx).Where("identity_id = ? AND expire_time > ?", identityID, dbTime(now)).Order("create_time DESC").Find(&rows).Error; err != nil {
		return nil, authError(err)
	}
	out := make([]authority.Session, 0, len(rows))
	for _, r := range rows {
		s, err := r.session()
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func (a *AuthorityStore) Consents(ctx context.Context, identityID string) ([]authority.Consent, error) {
	var rows []consentRow
	if err := a.q(ctx).Where("identity_id = ?", identityID).Order("update_time DESC, client_id").Find(&rows).Error; err != nil {
		return nil, authError(err)
	}
	out := make([]authority.Consent, 0, len(rows))
	for _, r := range rows {
		c, err := r.consent()
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func (a *AuthorityStore) RevokeConsent(ctx context.Context, clientID, identityID string, now time.Time) error {
	if err := mustBeSet("the time a consent is revoked", now); err != nil {
		return err
	}
	var n int64
	err := a.tx(ctx, func(t *tx) error {
		at := dbTime(now)
		var err error
		res := t.q(ctx).Where("client_id = ? AND identity_id = ?", clientID, identityID).Delete(&consentRow{})
		if n, err = changed(res); err != nil {
			return err
		}
		for _, end := range []func(db *gorm.DB) *gorm.DB{
			func(db *gorm.DB) *gorm.DB {
				return db.Where("identity_id = ? AND client_id = ? AND use_time IS NULL", identityID, clientID).Delete(&grantRow{})
			},
			func(db *gorm.DB) *gorm.DB {
				return db.Model(&grantRow{}).Where("identity_id = ? AND client_id = ? AND revoke_time IS NULL", identityID, clientID).Update("revoke_time", at)
			},
			func(db *gorm.DB) *gorm.DB {
				return db.Model(&accessTokenRow{}).Where("identity_id = ? AND client_id = ? AND revoke_time IS NULL", identityID, clientID).Update("revoke_time", at)
			},
		} {
			if err := end(t.q(ctx)).Error; err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil && n == 0 {
		return fmt.Errorf("consent of identity %q to client %q: %w", identityID, clientID, authority.ErrNotFound)
	}
	return err
}

func (a *AuthorityStore) ChangePassword(ctx context.Context, identityID, old, new string, now time.Time) error {
	if err := mustBeSet("the time a password is changed", now); err != nil {
		return err
	}
	n, err := a.exec(ctx, func(db *gorm.DB) *gorm.DB {
		return db.Model(&holderRow{}).Where("identity_id = ? AND password_hash = ?", identityID, old).
			Updates(map[string]any{"password_hash": new, "update_time": dbTime(now)})
	})
	if err != nil || n > 0 {
		return err
	}
	return lost(a.q(ctx), &holderRow{}, "identity_id = ?", identityID, "credentials", "changed meanwhile")
}

func (a *AuthorityStore) SetTOTPSecret(ctx context.Context, identityID string, session []byte, secret string, lastStep int64, now time.Time) error {
	if err := mustBeSet("the time a TOTP secret is set", now); err != nil {
		return err
	}
	return a.tx(ctx, func(t *tx) error {
		if err := t.sessionLasts(ctx, identityID, session); err != nil {
			return err
		}
		n, err := update(t.q(ctx), &holderRow{}, map[string]any{"totp_secret": secret, "totp_last_step": lastStep, "update_time": dbTime(now)},
			"identity_id = ?", identityID)
		if err == nil && n == 0 {
			return fmt.Errorf("credentials of identity %q: %w", identityID, authority.ErrNotFound)
		}
		return err
	})
}

// sessionLasts locks the identity (lockIdentity: a redemption of a credential link, which
// ends every session, waits for this transaction or comes before it) and refuses with
// ErrConflict when the identity's session of IDHash session has ended; a nil session asks
// for nothing.
func (t *tx) sessionLasts(ctx context.Context, identityID string, session []byte) error {
	if session == nil {
		return nil
	}
	if err := t.lockIdentity(ctx, identityID); err != nil {
		return err
	}
	ok, err := has(t.q(ctx), &sessionRow{}, "id_hash = ? AND identity_id = ?", session, identityID)
	if err != nil {
		return err
	}
	if !ok {
		return authority.ErrSessionEnded
	}
	return nil
}

type recoveryCodeRow struct {
	CodeHash   []byte `gorm:"primaryKey"`
	IdentityID string
	CreateTime dbTime
	UseTime    dbTime
}

func (recoveryCodeRow) TableName() string { return "authority_recovery_codes" }

func (a *AuthorityStore) SetRecoveryCodes(ctx context.Context, identityID string, session []byte, hashes [][]byte, now time.Time) error {
	if err := mustBeSet("the time recovery codes are made", now); err != nil {
		return err
	}
	return a.tx(ctx, func(t *tx) error {
		if err := t.sessionLasts(ctx, identityID, session); err != nil {
			return err
		}
		if err := t.q(ctx).Where("identity_id = ?", identityID).Delete(&recoveryCodeRow{}).Error; err != nil {
			return err
		}
		for _, h := range hashes {
			ok, err := insert(t.q(ctx), &recoveryCodeRow{CodeHash: h, IdentityID: identityID, CreateTime: dbTime(now)})
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("recovery code exists already: %w", authority.ErrConflict)
			}
		}
		return nil
	})
}

func (a *AuthorityStore) RecoveryCodesLeft(ctx context.Context, identityID string) (int, error) {
	var n int64
	err := a.q(ctx).Model(&recoveryCodeRow{}).Where("identity_id = ? AND use_time IS NULL", identityID).Count(&n).Error
	return int(n), authError(err)
}

func (a *AuthorityStore) UseRecoveryCode(ctx context.Context, identityID string, hash []byte, now time.Time) error {
	n, err := a.exec(ctx, func(db *gorm.DB) *gorm.DB {
		return db.Model(&recoveryCodeRow{}).Where("code_hash = ? AND identity_id = ? AND use_time IS NULL", hash, identityID).Update("use_time", dbTime(now))
	})
	if err == nil && n == 0 {
		return fmt.Errorf("recovery code: %w", authority.ErrNotFound)
	}
	return err
}
