package registry

import (
	"context"
	"fmt"
	"time"
)

// HolderChange is something a holder did at the authority: a sign-in, or a change of the
// identity's credentials or of what it shares. It is journaled for the identifier, never
// with a secret; Notify also tells the sponsoring agent, through its event queue, as
// EventCredentialsChanged.
type HolderChange struct {
	Identifier string
	IdentityID string
	// Action names it: holder.sign_in, holder_credential.password_change,
	// holder_credential.passkey_add, holder_credential.passkey_remove, consent.revoke,
	// session.end. (Credentials set through a link are journaled, and the agent told, in
	// the transaction that sets them: authority.journalCredentials.)
	Action string
	// Detail is journaled as the entry's After view: names and kinds, never secrets.
	Detail map[string]any
	Notify bool
	Time   time.Time
}

// HolderJournal records holders' changes in the registry's journal and agents' event
// queues. The authority reaches it through its configuration; it needs only the store, so
// that it can be made before the Service, which needs the authority.
type HolderJournal struct {
	store Store
}

// NewHolderJournal returns a HolderJournal writing to store.
func NewHolderJournal(store Store) *HolderJournal { return &HolderJournal{store: store} }

// HolderActivity returns the last limit entries of the journal of identifier that its
// holder made (sign-ins and changes, Actor "holder:<identifier>"), newest first.
func (j *HolderJournal) HolderActivity(ctx context.Context, identifier string, limit int) ([]JournalEntry, error) {
	all, err := j.store.LatestJournal(ctx, JournalFilter{ObjectType: "identifier", ObjectID: identifier}, limit)
	if err != nil {
		return nil, err
	}
	actor := Actor{Kind: ActorHolder, ID: identifier}.String()
	out := all[:0]
	for _, e := range all {
		if e.Actor == actor {
			out = append(out, e)
		}
	}
	return out, nil
}

// RecordHolderChange journals c for its identifier and, with c.Notify, appends the event
// for the identifier's sponsoring agent, in one transaction. An identifier that no longer
// stands for c.IdentityID (deleted and registered again) records nothing: a KindNotFound
// error.
func (j *HolderJournal) RecordHolderChange(ctx context.Context, c HolderChange) error {
	c.Time = c.Time.UTC().Truncate(time.Microsecond)
	var detail string
	if len(c.Detail) > 0 {
		var err error
		if detail, err = journalJSON(c.Detail); err != nil {
			return err
		}
	}
	return j.store.Tx(ctx, func(tx Tx) error {
		i, err := tx.GetIdentifier(ctx, c.Identifier)
		if err != nil {
			return err
		}
		if i.IdentityID != c.IdentityID {
			return NewError(ReasonIdentifierNotFound, "%s no longer stands for this identity", c.Identifier)
		}
		actor := Actor{Kind: ActorHolder, ID: i.Name}
		e := JournalEntry{Time: c.Time, Actor: actor.String(), Action: c.Action, ObjectType: "identifier", ObjectID: i.Name, After: detail}
		if _, err := tx.AppendJournal(ctx, e); err != nil {
			return fmt.Errorf("append journal: %w", err)
		}
		if !c.Notify {
			return nil
		}
		_, err = tx.AppendEvent(ctx, Event{AgentID: i.AgentID, Type: EventCredentialsChanged, Identifier: i.Name, Time: c.Time, Data: EventData{Reason: c.Action}})
		return err
	})
}
