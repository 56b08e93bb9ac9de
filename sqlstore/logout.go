package sqlstore

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/id4me/id4me-registry/authority"
)

// The records of logout (migration 00011): the clients each session logged its holder in at
// that asked for back-channel logouts, and the queue of logout tokens to send.

// sessionClientRow is an authority.SessionClient.
type sessionClientRow struct {
	SessionID  string `gorm:"primaryKey"`
	ClientID   string `gorm:"primaryKey"`
	Subject    string
	CreateTime dbTime
	ExpireTime dbTime
}

func (sessionClientRow) TableName() string { return "authority_session_clients" }

// backchannelLogoutRow is an authority.BackchannelLogout.
type backchannelLogoutRow struct {
	SessionID  string `gorm:"primaryKey"`
	ClientID   string `gorm:"primaryKey"`
	Subject    string
	Attempts   int
	NextTime   dbTime
	CreateTime dbTime
	ExpireTime dbTime
}

func (backchannelLogoutRow) TableName() string { return "authority_backchannel_logouts" }

func (r backchannelLogoutRow) logout() authority.BackchannelLogout {
	return authority.BackchannelLogout{
		SessionID: r.SessionID, ClientID: r.ClientID, Subject: r.Subject, Attempts: r.Attempts,
		NextTime: time.Time(r.NextTime), CreateTime: time.Time(r.CreateTime), ExpireTime: time.Time(r.ExpireTime),
	}
}

// PutSessionClient replaces the record of the same session and client.
func (a *AuthorityStore) PutSessionClient(ctx context.Context, sc authority.SessionClient) error {
	row := sessionClientRow{
		SessionID: sc.SessionID, ClientID: sc.ClientID, Subject: sc.Subject,
		CreateTime: dbTime(sc.CreateTime), ExpireTime: dbTime(sc.ExpireTime),
	}
	_, err := a.exec(ctx, func(db *gorm.DB) *gorm.DB {
		return db.Clauses(upsert([]string{"session_id", "client_id"}, "subject", "create_time", "expire_time")).Create(&row)
	})
	return err
}

// EndSession moves the session's client records into the queue with one INSERT … SELECT,
// limited to the room the queue has left. On PostgreSQL, sessions ending at the same time
// may each see the same room and together overfill the queue by a little: the bound is
// there to stop a flood, not to count exactly.
func (a *AuthorityStore) EndSession(ctx context.Context, idHash []byte, sid string, now time.Time, giveUpAfter time.Duration, maxQueued int) (int, int, error) {
	if err := mustBeSet("the time a session ends", now); err != nil {
		return 0, 0, err
	}
	var queued, dropped int
	err := a.tx(ctx, func(t *tx) error {
		queued, dropped = 0, 0
		db := t.q(ctx)
		if err := db.Where("id_hash = ?", idHash).Delete(&sessionRow{}).Error; err != nil {
			return err
		}
		var clients, held int64
		if err := db.Model(&sessionClientRow{}).Where("session_id = ?", sid).Count(&clients).Error; err != nil {
			return err
		}
		if clients == 0 {
			return nil
		}
		if err := db.Model(&backchannelLogoutRow{}).Count(&held).Error; err != nil {
			return err
		}
		room := max(int64(maxQueued)-held, 0)
		if room > 0 {
			at, expire := dbTime(now), dbTime(now.Add(giveUpAfter))
			records := db.Model(&sessionClientRow{}).
				Select("session_id, client_id, subject, 0, ?, ?, ?", at, at, expire).
				Where("session_id = ?", sid).Order("create_time, client_id").Limit(int(room))
			res := db.Exec("INSERT INTO authority_backchannel_logouts (session_id, client_id, subject, attempts, next_time, create_time, expire_time) ? ON CONFLICT DO NOTHING", records)
			if res.Error != nil {
				return res.Error
			}
			queued = int(res.RowsAffected)
		}
		dropped = int(max(clients-room, 0))
		return db.Where("session_id = ?", sid).Delete(&sessionClientRow{}).Error
	})
	if err != nil {
		return 0, 0, err
	}
	return queued, dropped, nil
}

// ClaimBackchannelLogouts reads the due logouts, skipping those another transaction holds
// (PostgreSQL), and leases them. The sender polls while the queue is empty, so a read
// through the index on next_time comes first and the write transaction (SQLite's one write
// slot) only when something is due.
func (a *AuthorityStore) ClaimBackchannelLogouts(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]authority.BackchannelLogout, error) {
	if err := mustBeSet("the time of a claim", now); err != nil {
		return nil, err
	}
	if due, err := has(a.q(ctx), &backchannelLogoutRow{}, "next_time <= ?", dbTime(now)); err != nil || !due {
		return nil, err
	}
	var out []authority.BackchannelLogout
	err := a.tx(ctx, func(t *tx) error {
		out = out[:0]
		var rows []backchannelLogoutRow
		err := t.q(ctx).Where("next_time <= ?", dbTime(now)).Order("next_time").Limit(limit).Clauses(skipLocked).Find(&rows).Error
		if err != nil {
			return err
		}
		next := dbTime(now.Add(lease))
		for _, r := range rows {
			if _, err := update(t.q(ctx), &backchannelLogoutRow{}, map[string]any{"next_time": next},
				"session_id = ? AND client_id = ?", r.SessionID, r.ClientID); err != nil {
				return err
			}
			l := r.logout()
			l.NextTime = norm(now.Add(lease))
			out = append(out, l)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (a *AuthorityStore) RetryBackchannelLogout(ctx context.Context, sid, clientID string, attempts int, next time.Time) error {
	n, err := a.exec(ctx, func(db *gorm.DB) *gorm.DB {
		return db.Model(&backchannelLogoutRow{}).Where("session_id = ? AND client_id = ?", sid, clientID).
			Updates(map[string]any{"attempts": attempts, "next_time": dbTime(next)})
	})
	if err == nil && n == 0 {
		return fmt.Errorf("back-channel logout of session %q to client %q: %w", sid, clientID, authority.ErrNotFound)
	}
	return err
}

func (a *AuthorityStore) DeleteBackchannelLogout(ctx context.Context, sid, clientID string) error {
	_, err := a.exec(ctx, func(db *gorm.DB) *gorm.DB {
		return db.Where("session_id = ? AND client_id = ?", sid, clientID).Delete(&backchannelLogoutRow{})
	})
	return err
}

// RevokeAccessToken revokes a token of the client that is not revoked yet; when none is, it
// tells a token revoked already (harmless) from one that is missing or another client's.
func (a *AuthorityStore) RevokeAccessToken(ctx context.Context, tokenHash []byte, clientID string, now time.Time) error {
	if err := mustBeSet("the revoke time of an access token", now); err != nil {
		return err
	}
	n, err := a.exec(ctx, func(db *gorm.DB) *gorm.DB {
		return db.Model(&accessTokenRow{}).Where("token_hash = ? AND client_id = ? AND revoke_time IS NULL", tokenHash, clientID).
			Update("revoke_time", dbTime(now))
	})
	if err != nil || n > 0 {
		return err
	}
	ok, err := has(a.q(ctx), &accessTokenRow{}, "token_hash = ? AND client_id = ?", tokenHash, clientID)
	switch {
	case err != nil:
		return err
	case !ok:
		return fmt.Errorf("access token of client %q: %w", clientID, authority.ErrNotFound)
	}
	return nil
}
