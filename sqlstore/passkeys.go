package sqlstore

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/id4me/id4me-registry/authority"
)

// Passkeys and WebAuthn ceremonies (migration 00012). A passkey waiting for a credential
// link has the link's token hash in link_hash; RedeemCredentialLink (authority_links.go)
// makes it work and deletes the identity's others.

type passkeyRow struct {
	CredentialID []byte `gorm:"primaryKey"`
	IdentityID   string
	Identifier   string
	Name         string
	Credential   string
	LinkHash     []byte
	CreateTime   dbTime
	UseTime      dbTime
}

func (passkeyRow) TableName() string { return "authority_passkeys" }

func (r passkeyRow) passkey() authority.Passkey {
	return authority.Passkey{
		CredentialID: r.CredentialID, IdentityID: r.IdentityID, Identifier: r.Identifier, Name: r.Name,
		Credential: []byte(r.Credential), LinkHash: r.LinkHash, CreateTime: time.Time(r.CreateTime), UseTime: time.Time(r.UseTime),
	}
}

type ceremonyRow struct {
	IDHash      []byte `gorm:"primaryKey"`
	BrowserHash []byte
	IdentityID  string
	Purpose     string
	Session     string
	ExpireTime  dbTime
}

func (ceremonyRow) TableName() string { return "authority_webauthn_ceremonies" }

func (a *AuthorityStore) AddPasskey(ctx context.Context, p authority.Passkey) error {
	if err := mustBeSet("the create time of a passkey", p.CreateTime); err != nil {
		return err
	}
	if len(p.CredentialID) == 0 {
		return fmt.Errorf("sqlstore: a passkey needs a credential ID")
	}
	row := passkeyRow{
		CredentialID: p.CredentialID, IdentityID: p.IdentityID, Identifier: p.Identifier, Name: p.Name,
		Credential: string(p.Credential), LinkHash: p.LinkHash, CreateTime: dbTime(p.CreateTime), UseTime: dbTime(p.UseTime),
	}
	return a.tx(ctx, func(t *tx) error {
		if err := t.sessionLasts(ctx, p.IdentityID, p.SessionIDHash); err != nil {
			return err
		}
		if p.LinkHash != nil {
			// Locked like every write of the identity's links, so that a redemption either
			// sees this passkey or comes before it and refuses it here.
			if err := t.lockIdentity(ctx, p.IdentityID); err != nil {
				return err
			}
			ok, err := has(t.q(ctx), &linkRow{}, "token_hash = ? AND identity_id = ? AND use_time IS NULL AND void_time IS NULL", p.LinkHash, p.IdentityID)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("credential link was used already or is void: %w", authority.ErrConflict)
			}
		}
		ok, err := insert(t.q(ctx), &row)
		switch {
		case err != nil:
			return err
		case !ok:
			return fmt.Errorf("passkey exists already: %w", authority.ErrConflict)
		}
		return nil
	})
}

func (a *AuthorityStore) Passkeys(ctx context.Context, identityID string) ([]authority.Passkey, error) {
	ps, err := find(a.q(ctx).Where("identity_id = ? AND link_hash IS NULL", identityID).Order("create_time, credential_id"), passkeyRow.passkey)
	return ps, authError(err)
}

func (a *AuthorityStore) LinkPasskeys(ctx context.Context, tokenHash []byte) ([]authority.Passkey, error) {
	ps, err := find(a.q(ctx).Where("link_hash = ?", tokenHash).Order("create_time, credential_id"), passkeyRow.passkey)
	return ps, authError(err)
}

func (a *AuthorityStore) GetPasskey(ctx context.Context, credentialID []byte) (authority.Passkey, error) {
	var row passkeyRow
	if err := getRow(a.q(ctx).Where("credential_id = ? AND link_hash IS NULL", credentialID), &row, "passkey"); err != nil {
		return authority.Passkey{}, err
	}
	return row.passkey(), nil
}

func (a *AuthorityStore) UsePasskey(ctx context.Context, credentialID, was, credential []byte, now time.Time) error {
	n, err := a.exec(ctx, func(db *gorm.DB) *gorm.DB {
		return db.Model(&passkeyRow{}).Where("credential_id = ? AND link_hash IS NULL AND credential = ?", credentialID, string(was)).
			Updates(map[string]any{"credential": string(credential), "use_time": dbTime(now)})
	})
	if err != nil || n > 0 {
		return err
	}
	if _, err := a.GetPasskey(ctx, credentialID); err != nil {
		return err
	}
	return fmt.Errorf("passkey: used by another login meanwhile: %w", authority.ErrConflict)
}

func (a *AuthorityStore) DeletePasskey(ctx context.Context, identityID string, credentialID []byte) error {
	n, err := a.exec(ctx, func(db *gorm.DB) *gorm.DB {
		return db.Where("credential_id = ? AND identity_id = ? AND link_hash IS NULL", credentialID, identityID).Delete(&passkeyRow{})
	})
	if err == nil && n == 0 {
		return fmt.Errorf("passkey: %w", authority.ErrNotFound)
	}
	return err
}

func (a *AuthorityStore) CreateCeremony(ctx context.Context, c authority.Ceremony) error {
	if err := mustBeSet("the expire time of a ceremony", c.ExpireTime); err != nil {
		return err
	}
	return a.insert(ctx, "ceremony", &ceremonyRow{
		IDHash: c.IDHash, BrowserHash: blob(c.BrowserHash), IdentityID: c.IdentityID, Purpose: c.Purpose,
		Session: string(c.Session), ExpireTime: dbTime(c.ExpireTime),
	})
}

func (a *AuthorityStore) TakeCeremony(ctx context.Context, idHash []byte) (authority.Ceremony, error) {
	var c authority.Ceremony
	err := a.tx(ctx, func(t *tx) error {
		var row ceremonyRow
		if err := getRow(t.q(ctx).Where("id_hash = ?", idHash), &row, "ceremony"); err != nil {
			return err
		}
		// Of concurrent takes, only the one whose delete finds the row has it.
		res := t.q(ctx).Where("id_hash = ?", idHash).Delete(&ceremonyRow{})
		if n, err := changed(res); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("ceremony: %w", authority.ErrNotFound)
		}
		c = authority.Ceremony{
			IDHash: row.IDHash, BrowserHash: unblob(row.BrowserHash), IdentityID: row.IdentityID, Purpose: row.Purpose,
			Session: []byte(row.Session), ExpireTime: time.Time(row.ExpireTime),
		}
		return nil
	})
	return c, err
}

// activateLinkPasskeys deletes an identity's passkeys but those waiting for the link of
// tokenHash, and makes those work, and deletes its recovery codes (RedeemCredentialLink).
func activateLinkPasskeys(db *gorm.DB, identityID string, tokenHash []byte) error {
	if err := db.Where("identity_id = ? AND (link_hash IS NULL OR link_hash <> ?)", identityID, tokenHash).Delete(&passkeyRow{}).Error; err != nil {
		return err
	}
	if err := db.Model(&passkeyRow{}).Where("link_hash = ?", tokenHash).Update("link_hash", nil).Error; err != nil {
		return err
	}
	return db.Where("identity_id = ?", identityID).Delete(&recoveryCodeRow{}).Error
}
