package sqlstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

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
			if err := putThrottle(t.q(ctx), k.Hash, n, now.Add(k.Backoff.Delay(n)), now.Add(k.Backoff.Forget)); err != nil {
				return err
			}
		}
		return nil
	})
	return retryAt, err
}

// putThrottle stores a budget's attempts, next time and expire time.
func putThrottle(db *gorm.DB, keyHash []byte, attempts int, next, expire time.Time) error {
	_, err := update(db, &throttleRow{}, map[string]any{"attempts": attempts, "next_time": dbTime(next), "expire_time": dbTime(expire)},
		"key_hash = ?", blob(keyHash))
	return err
}

// getThrottle reads a budget's row, on PostgreSQL locking it; gorm.ErrRecordNotFound when
// it has none.
func getThrottle(db *gorm.DB, keyHash []byte) (throttleRow, error) {
	var row throttleRow
	err := db.Where("key_hash = ?", blob(keyHash)).Clauses(forUpdate).Take(&row).Error
	return row, err
}

// lockThrottle makes sure the budget keyHash has a row, locks it (PostgreSQL), and returns
// its attempts and next time as they count at now: none for a budget that has expired.
func (t *tx) lockThrottle(ctx context.Context, keyHash []byte, now time.Time) (int, time.Time, error) {
	seed := throttleRow{KeyHash: blob(keyHash), NextTime: dbTime(now), ExpireTime: dbTime(now)}
	for range seedAttempts {
		err := t.q(ctx).Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "key_hash"}}, DoNothing: true}).Create(&seed).Error
		if err != nil {
			return 0, time.Time{}, err
		}
		row, err := getThrottle(t.q(ctx), keyHash)
		switch {
		case errors.Is(err, gorm.ErrRecordNotFound):
			continue
		case err != nil:
			return 0, time.Time{}, err
		case !time.Time(row.ExpireTime).After(now):
			// Forgotten, or just made: the budget starts afresh.
			return 0, time.Time{}, nil
		}
		return row.Attempts, time.Time(row.NextTime), nil
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
				if err := t.q(ctx).Where("key_hash = ?", blob(k.Hash)).Delete(&throttleRow{}).Error; err != nil {
					return err
				}
				continue
			}
			row, err := getThrottle(t.q(ctx), k.Hash)
			switch {
			case errors.Is(err, gorm.ErrRecordNotFound):
				continue
			case err != nil:
				return err
			case row.Attempts == 0:
				continue
			}
			n := row.Attempts - 1
			at := time.Time(row.NextTime)
			if soon := now.Add(k.Backoff.Delay(n)); soon.Before(at) {
				at = soon
			}
			if err := putThrottle(t.q(ctx), k.Hash, n, at, time.Time(row.ExpireTime)); err != nil {
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
	row := knownDeviceRow{DeviceHash: blob(d.DeviceHash), IdentityID: d.IdentityID, CreateTime: dbTime(d.CreateTime), ExpireTime: dbTime(d.ExpireTime)}
	_, err := a.exec(ctx, func(db *gorm.DB) *gorm.DB {
		return db.Clauses(upsert([]string{"device_hash", "identity_id"}, "create_time", "expire_time")).Create(&row)
	})
	return err
}

func (a *AuthorityStore) IsKnownDevice(ctx context.Context, deviceHash []byte, identityID string, now time.Time) (bool, error) {
	return has(a.q(ctx), &knownDeviceRow{}, "device_hash = ? AND identity_id = ? AND expire_time > ?", deviceHash, identityID, dbTime(now))
}
