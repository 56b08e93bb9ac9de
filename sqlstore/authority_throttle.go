package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/id4me/id4me-registry/authority"
)

// Login throttles and known devices (migration 00008).
//
// A claim first makes sure every budget it counts against has a row (an empty one, expired
// at once, when it has none), then reads them, on PostgreSQL locking them (FOR UPDATE): a
// lock needs a row to take, and without one concurrent first attempts against a new or
// forgotten budget would all go through and count as one. The budgets are taken in the
// order of their hashes, so that two claims never wait for each other's. On SQLite writes
// never overlap.
var (
	sqlSeedThrottle = newSQL(`INSERT INTO authority_login_throttles (key_hash, attempts, next_time, expire_time)
		VALUES (?, 0, ?, ?) ON CONFLICT (key_hash) DO NOTHING`)
	sqlGetThrottle = sqlText{
		sqlite:   "SELECT attempts, next_time, expire_time FROM authority_login_throttles WHERE key_hash = ?",
		postgres: newSQL("SELECT attempts, next_time, expire_time FROM authority_login_throttles WHERE key_hash = ? FOR UPDATE").postgres,
	}
	sqlPutThrottle = newSQL(`UPDATE authority_login_throttles SET attempts = ?, next_time = ?, expire_time = ?
		WHERE key_hash = ?`)
	sqlClearThrottle = newSQL("DELETE FROM authority_login_throttles WHERE key_hash = ?")

	sqlPutDevice = newSQL(`INSERT INTO authority_known_devices (device_hash, identity_id, create_time, expire_time)
		VALUES (?, ?, ?, ?) ON CONFLICT (device_hash, identity_id) DO UPDATE SET create_time = excluded.create_time,
		expire_time = excluded.expire_time`)
	sqlIsDevice = newSQL("SELECT 1 FROM authority_known_devices WHERE device_hash = ? AND identity_id = ? AND expire_time > ?")
	// Through the index on identity_id (migration 00010).
	sqlForgetDevices = newSQL("DELETE FROM authority_known_devices WHERE identity_id = ?")
)

// seedAttempts is how often a claim tries to find the row of a budget it has just made sure
// of: a sweep of DeleteExpired may delete an expired row between the two statements.
const seedAttempts = 3

func (a *AuthorityStore) ClaimLoginAttempt(ctx context.Context, keys []authority.ThrottleKey, now time.Time) (time.Time, error) {
	if err := mustBeSet("the time of a login attempt", now); err != nil {
		return time.Time{}, err
	}
	now = norm(now)
	keys = slices.Clone(keys)
	slices.SortFunc(keys, func(a, b authority.ThrottleKey) int { return bytes.Compare(a.Hash, b.Hash) })
	var retryAt time.Time
	err := a.tx(ctx, func(t *tx) error {
		retryAt = time.Time{}
		attempts := make([]int, len(keys))
		nexts := make([]time.Time, len(keys))
		for i, k := range keys {
			n, next, err := t.lockThrottle(ctx, k.Hash, now)
			if err != nil {
				return err
			}
			attempts[i], nexts[i] = n, next
		}
		ownFree := false
		for i, k := range keys {
			if k.Own && attempts[i] < k.Backoff.Free {
				ownFree = true
			}
		}
		for i, k := range keys {
			if k.Shared && ownFree {
				continue
			}
			if nexts[i].After(now) && nexts[i].After(retryAt) {
				retryAt = nexts[i]
			}
		}
		if !retryAt.IsZero() {
			return nil
		}
		for i, k := range keys {
			n := attempts[i] + 1
			_, err := t.execSQL(ctx, sqlPutThrottle, n, t.time(dbTime(now.Add(k.Backoff.Delay(n)))),
				t.time(dbTime(now.Add(k.Backoff.Forget))), blob(k.Hash))
			if err != nil {
				return err
			}
		}
		return nil
	})
	return retryAt, err
}

// lockThrottle makes sure the budget keyHash has a row, locks it (PostgreSQL), and returns
// its attempts and next time as they count at now: none for a budget that has expired.
func (t *tx) lockThrottle(ctx context.Context, keyHash []byte, now time.Time) (int, time.Time, error) {
	at := t.time(dbTime(now))
	for range seedAttempts {
		if _, err := t.execSQL(ctx, sqlSeedThrottle, blob(keyHash), at, at); err != nil {
			return 0, time.Time{}, err
		}
		var n int
		var next, expire dbTime
		err := t.c.QueryRowContext(ctx, t.sql(sqlGetThrottle), keyHash).Scan(&n, &next, &expire)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			continue
		case err != nil:
			return 0, time.Time{}, err
		case !time.Time(expire).After(now):
			// Forgotten, or just made: the budget starts afresh.
			return 0, time.Time{}, nil
		}
		return n, time.Time(next), nil
	}
	return 0, time.Time{}, fmt.Errorf("sqlstore: the login budget's row vanished %d times while it was claimed", seedAttempts)
}

func (a *AuthorityStore) ReleaseLoginAttempts(ctx context.Context, keys []authority.ThrottleKey, now time.Time) error {
	if err := mustBeSet("the time of a successful login", now); err != nil {
		return err
	}
	now = norm(now)
	keys = slices.Clone(keys)
	slices.SortFunc(keys, func(a, b authority.ThrottleKey) int { return bytes.Compare(a.Hash, b.Hash) })
	return a.tx(ctx, func(t *tx) error {
		for _, k := range keys {
			if k.Own {
				if _, err := t.execSQL(ctx, sqlClearThrottle, blob(k.Hash)); err != nil {
					return err
				}
				continue
			}
			var n int
			var next, expire dbTime
			err := t.c.QueryRowContext(ctx, t.sql(sqlGetThrottle), k.Hash).Scan(&n, &next, &expire)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				continue
			case err != nil:
				return err
			case n == 0:
				continue
			}
			n--
			at := time.Time(next)
			if soon := now.Add(k.Backoff.Delay(n)); soon.Before(at) {
				at = soon
			}
			_, err = t.execSQL(ctx, sqlPutThrottle, n, t.time(dbTime(at)), t.time(expire), blob(k.Hash))
			if err != nil {
				return err
			}
		}
		return nil
	})
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
