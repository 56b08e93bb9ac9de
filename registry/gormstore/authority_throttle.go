package gormstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/id4me/id4me-registry/authority"
)

// Login throttles and known devices (migration 00008).
var (
	// On PostgreSQL the budgets' rows are locked, so that concurrent attempts claim them one
	// after the other; on SQLite writes never overlap.
	sqlGetThrottle = sqlText{
		sqlite:   "SELECT attempts, next_time, expire_time FROM authority_login_throttles WHERE key_hash = ?",
		postgres: newSQL("SELECT attempts, next_time, expire_time FROM authority_login_throttles WHERE key_hash = ? FOR UPDATE").postgres,
	}
	sqlPutThrottle = newSQL(`INSERT INTO authority_login_throttles (key_hash, attempts, next_time, expire_time) VALUES (?, ?, ?, ?)
		ON CONFLICT (key_hash) DO UPDATE SET attempts = excluded.attempts, next_time = excluded.next_time,
		expire_time = excluded.expire_time`)
	sqlClearThrottle = newSQL("DELETE FROM authority_login_throttles WHERE key_hash = ?")

	sqlPutDevice = newSQL(`INSERT INTO authority_known_devices (device_hash, identity_id, create_time, expire_time)
		VALUES (?, ?, ?, ?) ON CONFLICT (device_hash, identity_id) DO UPDATE SET create_time = excluded.create_time,
		expire_time = excluded.expire_time`)
	sqlIsDevice = newSQL("SELECT 1 FROM authority_known_devices WHERE device_hash = ? AND identity_id = ? AND expire_time > ?")
)

func (a *AuthorityStore) ClaimLoginAttempt(ctx context.Context, keys []authority.ThrottleKey, now time.Time) (time.Time, error) {
	if err := mustBeSet("the time of a login attempt", now); err != nil {
		return time.Time{}, err
	}
	now = norm(now)
	var retryAt time.Time
	err := a.tx(ctx, func(t *tx) error {
		retryAt = time.Time{}
		attempts := make([]int, len(keys))
		for i, k := range keys {
			var n int
			var next, expire dbTime
			err := t.c.QueryRowContext(ctx, t.sql(sqlGetThrottle), k.Hash).Scan(&n, &next, &expire)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				continue
			case err != nil:
				return err
			case !time.Time(expire).After(now):
				// Forgotten: the budget starts afresh.
				continue
			case time.Time(next).After(now) && time.Time(next).After(retryAt):
				retryAt = time.Time(next)
			}
			attempts[i] = n
		}
		if !retryAt.IsZero() {
			return nil
		}
		for i, k := range keys {
			n := attempts[i] + 1
			_, err := t.execSQL(ctx, sqlPutThrottle, blob(k.Hash), n,
				t.time(dbTime(now.Add(k.Backoff.Delay(n)))), t.time(dbTime(now.Add(k.Backoff.Forget))))
			if err != nil {
				return err
			}
		}
		return nil
	})
	return retryAt, err
}

func (a *AuthorityStore) ClearLoginAttempts(ctx context.Context, keyHashes [][]byte) error {
	for _, h := range keyHashes {
		if _, err := a.exec(ctx, sqlClearThrottle, h); err != nil {
			return err
		}
	}
	return nil
}

func (a *AuthorityStore) PutKnownDevice(ctx context.Context, d authority.KnownDevice) error {
	if err := mustBeSet("the expire time of a known device", d.ExpireTime); err != nil {
		return err
	}
	r := a.s.reader
	_, err := a.exec(ctx, sqlPutDevice, blob(d.DeviceHash), d.IdentityID, r.time(dbTime(d.CreateTime)), r.time(dbTime(d.ExpireTime)))
	return err
}

func (a *AuthorityStore) IsKnownDevice(ctx context.Context, deviceHash []byte, identityID string, now time.Time) (bool, error) {
	r := a.s.reader
	return has(ctx, r, sqlIsDevice, deviceHash, identityID, r.time(dbTime(now)))
}
