package registry

import (
	"context"
	"time"
)

// Store keeps the registry's state. Reads may run outside a transaction; every state change
// runs inside Tx, so a change and its journal entry are written together or not at all.
//
// Implementations return *Error values of KindNotFound for missing objects, KindAlreadyExists
// (reason IDENTIFIER_TAKEN or OBJECT_EXISTS) for unique violations, and KindAborted (reason
// CONCURRENT_UPDATE) when a conditional update finds the object changed.
type Store interface {
	Reader
	// Tx runs fn in one read-write transaction: committed if fn returns nil, rolled back
	// otherwise. fn may be called again if the database asks for a retry, so it must not
	// have effects outside tx.
	Tx(ctx context.Context, fn func(tx Tx) error) error
	// Close releases the store's connections.
	Close() error
}

// Reader reads the registry's state.
type Reader interface {
	GetAgent(ctx context.Context, id string) (Agent, error)
	// ListAgents returns up to limit agents with ID > afterID, ordered by ID.
	ListAgents(ctx context.Context, afterID string, limit int) ([]Agent, error)
	// FindAgentByCertSPKI returns the agent that pinned the client certificate key spkiHex.
	FindAgentByCertSPKI(ctx context.Context, spkiHex string) (Agent, error)

	GetCredential(ctx context.Context, id string) (Credential, error)
	// ListCredentials returns an agent's tokens (or, with agentID "", the operator
	// credentials), oldest first.
	ListCredentials(ctx context.Context, agentID string) ([]Credential, error)

	GetChallenge(ctx context.Context, id string) (Challenge, error)

	GetIdentity(ctx context.Context, id string) (Identity, error)

	GetIdentifier(ctx context.Context, name string) (Identifier, error)
	// GetIdentifierByDNSName returns the identifier whose DNSName is dnsName.
	GetIdentifierByDNSName(ctx context.Context, dnsName string) (Identifier, error)
	// ListIdentifiers returns up to limit identifiers of agentID with Name > afterName,
	// ordered by Name (keyset pagination: the cost does not grow with the position).
	ListIdentifiers(ctx context.Context, agentID, afterName string, limit int) ([]Identifier, error)

	// ListJournal returns up to limit entries matching f with ID > afterID, oldest first.
	ListJournal(ctx context.Context, f JournalFilter, afterID int64, limit int) ([]JournalEntry, error)
	// LatestJournal returns the last limit entries matching f, newest first.
	LatestJournal(ctx context.Context, f JournalFilter, limit int) ([]JournalEntry, error)

	GetTransfer(ctx context.Context, id string) (Transfer, error)
	// PendingTransfer returns the identifier's pending transfer; KindNotFound if there is none.
	PendingTransfer(ctx context.Context, identifier string) (Transfer, error)
	// ListTransfers returns up to limit transfers matching f with ID > afterID, ordered by ID.
	ListTransfers(ctx context.Context, f TransferFilter, afterID string, limit int) ([]Transfer, error)

	// LastEventID returns the ID of the agent's newest event, 0 if it has had none.
	LastEventID(ctx context.Context, agentID string) (int64, error)
	// ListEvents returns up to limit of the agent's events with ID > afterID, oldest first;
	// with unackedOnly, only those not acknowledged.
	ListEvents(ctx context.Context, agentID string, afterID int64, unackedOnly bool, limit int) ([]Event, error)

	// GetRequestOutcome returns the outcome of the agent's call with requestID; KindNotFound
	// if there is none.
	GetRequestOutcome(ctx context.Context, agentID, requestID string) (RequestOutcome, error)
}

// Tx reads and changes the registry's state inside one transaction.
type Tx interface {
	Reader

	CreateAgent(ctx context.Context, a Agent) error
	// UpdateAgent stores a, which must carry the next version: it succeeds only while the
	// stored version is a.Version-1.
	UpdateAgent(ctx context.Context, a Agent) error

	CreateCredential(ctx context.Context, c Credential) error
	// RevokeCredential sets the revoke time of a credential not yet revoked.
	RevokeCredential(ctx context.Context, id string, at time.Time) error
	// LockOperatorCredentials returns the operator credentials not revoked, oldest first,
	// locked until the transaction ends: a concurrent transaction that locks them too waits,
	// and then sees what this one revoked.
	LockOperatorCredentials(ctx context.Context) ([]Credential, error)

	CreateChallenge(ctx context.Context, c Challenge) error
	// UpdateChallenge stores c only while the stored challenge still has status fromStatus
	// and fromAttempts attempts (the values the caller read), so two concurrent checks or
	// uses of one challenge cannot both succeed; otherwise KindAborted.
	UpdateChallenge(ctx context.Context, c Challenge, fromStatus ChallengeStatus, fromAttempts int) error

	CreateIdentity(ctx context.Context, i Identity) error
	// RetireIdentity marks an identity retired for good.
	RetireIdentity(ctx context.Context, id string, at time.Time) error

	// CreateIdentifier stores a new identifier; a taken name or DNS name is KindAlreadyExists
	// with reason IDENTIFIER_TAKEN. A zero DNSName is stored as Name (a domain's DNS name); a
	// zero OpenID.NextCheck is stored as CreateTime (the first check is due at once).
	CreateIdentifier(ctx context.Context, i Identifier) error
	// UpdateIdentifier stores i, which must carry the next version (as UpdateAgent).
	UpdateIdentifier(ctx context.Context, i Identifier) error
	// DeleteIdentifier removes an identifier while its stored version is still version.
	DeleteIdentifier(ctx context.Context, name string, version int64) error

	// AppendJournal writes e and returns its ID.
	AppendJournal(ctx context.Context, e JournalEntry) (int64, error)

	// SetOpenIDState stores the outcome of an _openid check of the identifier name, only
	// while it is still the identifier of identity identityID (a purged and re-registered
	// name is another identifier). It changes neither the version nor the update time.
	// Reports whether a row was written.
	SetOpenIDState(ctx context.Context, name, identityID string, st OpenIDState) (bool, error)

	// CreateTransfer stores a new transfer. A second pending transfer of one identifier is
	// refused with reason TRANSFER_PENDING (KindFailedPrecondition, as the registry's own
	// check before it).
	CreateTransfer(ctx context.Context, t Transfer) error
	// UpdateTransfer stores t only while the stored transfer has status from; otherwise
	// KindAborted (reason CONCURRENT_UPDATE), or KindNotFound.
	UpdateTransfer(ctx context.Context, t Transfer, from TransferStatus) error

	// AppendEvent writes e as the agent's next event and returns its ID: the agent's events
	// are numbered 1, 2, 3, … and become visible in that order (the numbering serialises the
	// transactions that write events for one agent).
	AppendEvent(ctx context.Context, e Event) (int64, error)
	// AckEvents sets the acknowledge time of the agent's events ids that have none, and
	// returns how many it set.
	AckEvents(ctx context.Context, agentID string, ids []int64, at time.Time) (int, error)

	// The claims of background work. Each returns up to limit due items, oldest due first,
	// locked by this transaction; on PostgreSQL rows locked by another transaction are
	// skipped (FOR UPDATE SKIP LOCKED), so instances sharing the database share the work and
	// no item is handled twice.

	// ClaimDueTransfers returns pending transfers whose ActTime is at or before now, each
	// locked together with its identifier (a transfer whose identifier is locked is skipped).
	ClaimDueTransfers(ctx context.Context, now time.Time, limit int) ([]Transfer, error)
	// ClaimDuePurges returns identifiers pending delete whose PurgeTime is at or before now.
	ClaimDuePurges(ctx context.Context, now time.Time, limit int) ([]Identifier, error)
	// ClaimOpenIDChecks returns identifiers whose OpenID.NextCheck is at or before now and
	// moves their NextCheck to leaseUntil, so that no other instance checks them until then;
	// the caller checks them outside the transaction and stores the outcome with
	// SetOpenIDState. A claim whose holder died lapses at leaseUntil.
	ClaimOpenIDChecks(ctx context.Context, now, leaseUntil time.Time, limit int) ([]Identifier, error)
	// DeleteAckedEvents deletes up to limit events acknowledged before before and returns how
	// many it deleted. An agent's event numbering goes on from its last number regardless.
	DeleteAckedEvents(ctx context.Context, before time.Time, limit int) (int, error)
	// DeleteExpiredChallenges deletes up to limit challenges that expired before before and
	// returns how many it deleted.
	DeleteExpiredChallenges(ctx context.Context, before time.Time, limit int) (int, error)

	// CreateRequestOutcome stores the outcome of a call made with a request_id; one of the
	// same agent and request_id stored already is KindAlreadyExists (OBJECT_EXISTS).
	CreateRequestOutcome(ctx context.Context, o RequestOutcome) error
	// DeleteRequestOutcomes deletes up to limit request outcomes created before before and
	// returns how many it deleted.
	DeleteRequestOutcomes(ctx context.Context, before time.Time, limit int) (int, error)
}
