package sqlstore

import (
	"context"

	"github.com/id4me/id4me-registry/registry"
)

// ExecInTx runs a raw statement in the database transaction behind t, for tests that make the
// database fail on purpose.
func ExecInTx(ctx context.Context, t registry.Tx, sql string) error {
	_, err := t.(*tx).exec(ctx, sql)
	return err
}

// Prepared reports whether the store keeps query prepared.
func Prepared(s *Store, query string) bool { return s.pool.cached(query) != nil }

// SQLInsertJournal is the SQLite text of the journal insert.
var SQLInsertJournal = sqlInsertJournal.sqlite

// IndexedStatement is a statement of the store that must read an index, not scan its table.
type IndexedStatement struct {
	Name             string
	SQLite, Postgres string
	// Index is the index it must read.
	Index string
}

// IndexedStatements are the claims of background work, the other reads of migration 00002's
// partial indexes, the read by DNS name (migration 00005), the sweep of request outcomes
// (00006) and the deletion of an identity's known devices (00010).
var IndexedStatements = []IndexedStatement{
	{"ClaimDueTransfers", sqlClaimDueTransfers.sqlite, sqlClaimDueTransfers.postgres, "transfers_pending_act"},
	{"ClaimDuePurges", sqlClaimDuePurges.sqlite, sqlClaimDuePurges.postgres, "identifiers_purge"},
	{"ClaimOpenIDChecks", sqlClaimOpenIDChecks.sqlite, sqlClaimOpenIDChecks.postgres, "identifiers_openid_next_check"},
	{"DeleteExpiredChallenges", sqlDeleteExpiredChallenges.sqlite, sqlDeleteExpiredChallenges.postgres, "challenges_expire"},
	{"DeleteAckedEvents", sqlDeleteAckedEvents.sqlite, sqlDeleteAckedEvents.postgres, "events_acked"},
	{"DeleteRequestOutcomes", sqlDeleteRequestOutcomes.sqlite, sqlDeleteRequestOutcomes.postgres, "request_outcomes_create"},
	{"PendingTransfer", sqlPendingTransfer.sqlite, sqlPendingTransfer.postgres, "transfers_pending"},
	{"ListTransfers in both directions", sqlListTransfersBoth[1].sqlite, sqlListTransfersBoth[1].postgres, "transfers_losing"},
	{"GetIdentifierByDNSName", sqlGetIdentifierByDNSName.sqlite, sqlGetIdentifierByDNSName.postgres, "identifiers_dns_name"},
	{"ForgetKnownDevices", sqlForgetDevices.sqlite, sqlForgetDevices.postgres, "authority_known_devices_identity"},
}
