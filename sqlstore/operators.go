package sqlstore

import (
	"context"

	"github.com/id4me/id4me-registry/registry"
)

// sqlLockOperatorCredentials reads the operator credentials not revoked. On PostgreSQL it
// locks them: a second transaction waits for the first, and then reads each row again, so
// a credential the first revoked is no longer among those it gets. On SQLite the
// transaction holds the only write lock already.
var sqlLockOperatorCredentials = func() sqlText {
	q := "SELECT " + credentialColumns + " FROM credentials WHERE agent_id IS NULL AND revoke_time IS NULL ORDER BY create_time, id"
	return sqlText{sqlite: q, postgres: q + " FOR UPDATE"}
}()

func (t *tx) LockOperatorCredentials(ctx context.Context) ([]registry.Credential, error) {
	rows, err := queryRows(ctx, t.reader, sqlLockOperatorCredentials, (*credentialRow).dest)
	if err != nil || len(rows) == 0 {
		return nil, err
	}
	out := make([]registry.Credential, len(rows))
	for i, row := range rows {
		out[i] = row.credential()
	}
	return out, nil
}
