package registry

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// IdentifierInfo is an identifier as an agent or operator reads it: the stored identifier
// and the claims endpoint in effect.
type IdentifierInfo struct {
	Identifier
	// EffectiveClaimsEndpoint is the identifier's override, or its agent's default.
	EffectiveClaimsEndpoint string
}

// identifierView is how an identifier appears in the journal.
type identifierView struct {
	Name string `json:"name"`
	// DNSName is set for an e-mail-form identifier, whose DNS name is not its name.
	DNSName        string   `json:"dns_name,omitempty"`
	AgentID        string   `json:"agent_id"`
	IdentityID     string   `json:"identity_id"`
	ClaimsEndpoint string   `json:"claims_endpoint,omitempty"`
	Statuses       []Status `json:"statuses,omitempty"`
	Version        int64    `json:"version"`
	ChallengeID    string   `json:"challenge_id,omitempty"`
	// PurgeTime is set while the identifier is pending delete.
	PurgeTime *time.Time `json:"purge_time,omitempty"`
	// Reason is an operator's reason for a server status change.
	Reason string `json:"reason,omitempty"`
}

func viewIdentifier(i Identifier) identifierView {
	v := identifierView{Name: i.Name, AgentID: i.AgentID, IdentityID: i.IdentityID, ClaimsEndpoint: i.ClaimsEndpoint, Statuses: i.Statuses, Version: i.Version}
	if !i.PurgeTime.IsZero() {
		v.PurgeTime = &i.PurgeTime
	}
	if i.DNSName != i.Name {
		v.DNSName = i.DNSName
	}
	return v
}

func info(i Identifier, a Agent) IdentifierInfo {
	ep := i.ClaimsEndpoint
	if ep == "" {
		ep = a.ClaimsEndpoint
	}
	return IdentifierInfo{Identifier: i, EffectiveClaimsEndpoint: ep}
}

// RegisterIdentifier consumes a valid register challenge of the agent and registers its
// identifier to the agent with a new identity, all in one transaction. Of any number of
// concurrent registrations of one name, or of names with one DNS name, exactly one succeeds;
// the others are KindAlreadyExists (IDENTIFIER_TAKEN) and their challenges stay valid. The
// registration policy is checked again: it may have changed since the challenge was made.
//
// With a requestID the registration can be retried: a call with the same requestID and
// arguments answers with the identifier the first one registered (REQUEST_OUTCOME_GONE once
// the agent no longer sponsors it), one with other arguments is REQUEST_ID_REUSED.
func (s *Service) RegisterIdentifier(ctx context.Context, actor Actor, challengeID, claimsEndpoint, requestID string) (IdentifierInfo, error) {
	r, err := newRequest(actor, requestID, MethodRegisterIdentifier, challengeID, claimsEndpoint)
	if err != nil {
		return IdentifierInfo{}, err
	}
	return once(ctx, s, r,
		func(o RequestOutcome) (IdentifierInfo, error) { return s.registered(ctx, actor, o) },
		func() (IdentifierInfo, error) { return s.register(ctx, actor, challengeID, claimsEndpoint, r) })
}

// register is RegisterIdentifier's call r.
func (s *Service) register(ctx context.Context, actor Actor, challengeID, claimsEndpoint string, r request) (IdentifierInfo, error) {
	if claimsEndpoint != "" {
		if err := s.checkEndpointURL(claimsEndpointURL, claimsEndpoint); err != nil {
			return IdentifierInfo{}, err
		}
	}
	// Everything that only reads happens before the transaction, which should hold the
	// database's write lock as briefly as it can: consuming the challenge is conditional on the
	// status and attempts read here, so a concurrent use or check makes it fail, not repeat.
	agent, err := s.store.GetAgent(ctx, actor.ID)
	if err != nil {
		return IdentifierInfo{}, err
	}
	c, err := s.ownChallenge(ctx, s.store, actor, challengeID)
	if err != nil {
		return IdentifierInfo{}, err
	}
	now := s.now()
	status := c.StatusAt(now)
	if err := unusable(c, status); err != nil {
		return IdentifierInfo{}, err
	}
	if status != ChallengeValid {
		return IdentifierInfo{}, NewError(ReasonChallengeNotValid, "challenge %s is %s; publish the record and verify it first", c.ID, status)
	}
	if c.Purpose != PurposeRegister {
		return IdentifierInfo{}, NewError(ReasonChallengePurposeMismatch, "challenge %s is for %s, not register", c.ID, c.Purpose)
	}
	name, err := ParseIdentifier(c.Identifier)
	if err != nil {
		return IdentifierInfo{}, err
	}
	if err := s.registrationPolicy().Check(name); err != nil {
		return IdentifierInfo{}, err
	}
	used := c
	used.Status = ChallengeConsumed
	identity := Identity{ID: newID(IdentityIDPrefix), SubjectSeed: newSecret(), CreateTime: now}
	i := Identifier{
		Name: name.ASCII, UnicodeName: name.Unicode, DNSName: name.DNSName, AgentID: agent.ID, IdentityID: identity.ID,
		ClaimsEndpoint: claimsEndpoint, CreateTime: now, UpdateTime: now, Version: 1,
		OpenID: OpenIDState{NextCheck: now.Add(min(firstOpenIDCheck, s.cfg.OpenIDCheckInterval))},
	}
	v := viewIdentifier(i)
	v.ChallengeID = c.ID
	err = s.store.Tx(ctx, func(tx Tx) error {
		if err := tx.UpdateChallenge(ctx, used, c.Status, c.Attempts); err != nil {
			if KindOf(err) == KindAborted {
				return NewError(ReasonChallengeConsumed, "challenge %s was used by a concurrent call; create a new one", c.ID)
			}
			return err
		}
		if err := tx.CreateIdentity(ctx, identity); err != nil {
			return err
		}
		if err := tx.CreateIdentifier(ctx, i); err != nil {
			return err
		}
		if err := r.record(ctx, tx, now, i.Name, identity.ID); err != nil {
			return err
		}
		return s.journal(ctx, tx, now, actor, "identifier.register", "identifier", i.Name, nil, v)
	})
	if err != nil {
		return IdentifierInfo{}, fmt.Errorf("register identifier: %w", err)
	}
	return info(i, agent), nil
}

// ownIdentifier reads an identifier the actor may see: any, for an operator; its own, for an
// agent (another agent's reads as not found).
func (s *Service) ownIdentifier(ctx context.Context, r Reader, actor Actor, identifier string) (Identifier, error) {
	name, err := ParseIdentifier(identifier)
	if err != nil {
		return Identifier{}, err
	}
	i, err := r.GetIdentifier(ctx, name.ASCII)
	if err != nil {
		return Identifier{}, err
	}
	if actor.Kind == ActorAgent && i.AgentID != actor.ID {
		return Identifier{}, NewError(ReasonIdentifierNotFound, "identifier %s not found", name.ASCII)
	}
	return i, nil
}

// GetIdentifier returns an identifier the actor may see, with the last periodic check of its
// _openid record.
func (s *Service) GetIdentifier(ctx context.Context, actor Actor, identifier string) (IdentifierInfo, error) {
	i, err := s.ownIdentifier(ctx, s.store, actor, identifier)
	if err != nil {
		return IdentifierInfo{}, err
	}
	a, err := s.store.GetAgent(ctx, i.AgentID)
	if err != nil {
		return IdentifierInfo{}, err
	}
	return info(i, a), nil
}

// ListIdentifiers returns a page of the agent's identifiers ordered by name, and the token
// of the next page. Pages are found by key, so the last page costs what the first does.
func (s *Service) ListIdentifiers(ctx context.Context, actor Actor, size int32, token string) ([]IdentifierInfo, string, error) {
	n, err := pageSize(size)
	if err != nil {
		return nil, "", err
	}
	after, err := decodePageToken("identifiers", token)
	if err != nil {
		return nil, "", err
	}
	agent, err := s.store.GetAgent(ctx, actor.ID)
	if err != nil {
		return nil, "", err
	}
	ids, err := s.store.ListIdentifiers(ctx, actor.ID, after, n+1)
	if err != nil {
		return nil, "", err
	}
	ids, next := trimPage(ids, n, "identifiers", func(i Identifier) string { return i.Name })
	out := make([]IdentifierInfo, len(ids))
	for k, i := range ids {
		out[k] = info(i, agent)
	}
	return out, next, nil
}

// IdentifierField names a field UpdateIdentifier can change.
type IdentifierField string

// Identifier fields UpdateIdentifier can change.
const (
	IdentifierFieldClaimsEndpoint IdentifierField = "claims_endpoint"
	IdentifierFieldStatuses       IdentifierField = "statuses"
)

// IdentifierUpdate is a change an agent asks for.
type IdentifierUpdate struct {
	Identifier     string
	ClaimsEndpoint string
	// Statuses are the statuses wanted: client statuses are set or cleared to match; server
	// statuses may be listed only if they are in force (they are left alone either way).
	Statuses []Status
	Fields   []IdentifierField
	// Etag, when set, must match the stored identifier's.
	Etag string
}

// UpdateIdentifier changes an agent's identifier: its claims endpoint override and its
// client statuses. Under clientUpdateProhibited only that status can be removed; under
// serverUpdateProhibited nothing changes.
func (s *Service) UpdateIdentifier(ctx context.Context, actor Actor, u IdentifierUpdate) (IdentifierInfo, error) {
	if len(u.Fields) == 0 {
		u.Fields = []IdentifierField{IdentifierFieldClaimsEndpoint, IdentifierFieldStatuses}
	}
	for _, f := range u.Fields {
		switch f {
		case IdentifierFieldClaimsEndpoint:
			if u.ClaimsEndpoint != "" {
				if err := s.checkEndpointURL(claimsEndpointURL, u.ClaimsEndpoint); err != nil {
					return IdentifierInfo{}, err
				}
			}
		case IdentifierFieldStatuses:
			for _, st := range u.Statuses {
				if !st.Known() {
					return IdentifierInfo{}, NewError(ReasonStatusUnknown, "status %q is not one the registry knows", st)
				}
			}
		default:
			return IdentifierInfo{}, NewError(ReasonUpdateMaskInvalid, "identifier field %q cannot be changed; use claims_endpoint or statuses", f)
		}
	}
	var out IdentifierInfo
	err := s.store.Tx(ctx, func(tx Tx) error {
		old, err := s.ownIdentifier(ctx, tx, actor, u.Identifier)
		if err != nil {
			return err
		}
		if u.Etag != "" && u.Etag != old.Etag() {
			return NewError(ReasonETagMismatch, "identifier %s changed since it was read; read it again", old.Name)
		}
		if old.Has(StatusServerUpdateProhibited) {
			return NewError(ReasonIdentifierUpdateProhibited, "identifier %s has status serverUpdateProhibited", old.Name)
		}
		if old.Has(StatusPendingDelete) {
			return NewError(ReasonIdentifierPendingDelete, "identifier %s is pending delete: restore it first", old.Name)
		}
		if old.Has(StatusPendingTransfer) {
			return NewError(ReasonTransferPending, "identifier %s has a pending transfer: it cannot change until the transfer ends", old.Name)
		}
		i := old
		for _, f := range u.Fields {
			switch f {
			case IdentifierFieldClaimsEndpoint:
				i.ClaimsEndpoint = u.ClaimsEndpoint
			case IdentifierFieldStatuses:
				if i.Statuses, err = applyClientStatuses(old.Statuses, u.Statuses); err != nil {
					return err
				}
			}
		}
		agent, err := tx.GetAgent(ctx, i.AgentID)
		if err != nil {
			return err
		}
		if i.ClaimsEndpoint == old.ClaimsEndpoint && slices.Equal(i.Statuses, old.Statuses) {
			out = info(old, agent)
			return nil
		}
		// Under clientUpdateProhibited the one change allowed is removing that status (RFC 5731 §2.3).
		onlyUnlock := slices.DeleteFunc(slices.Clone(old.Statuses), func(st Status) bool { return st == StatusClientUpdateProhibited })
		if old.Has(StatusClientUpdateProhibited) && (i.ClaimsEndpoint != old.ClaimsEndpoint || !slices.Equal(i.Statuses, onlyUnlock)) {
			return NewError(ReasonIdentifierUpdateProhibited, "identifier %s has status clientUpdateProhibited: remove it first, on its own", old.Name)
		}
		i.UpdateTime = s.now()
		i.Version++
		if err := tx.UpdateIdentifier(ctx, i); err != nil {
			return err
		}
		out = info(i, agent)
		return s.journal(ctx, tx, i.UpdateTime, actor, "identifier.update", "identifier", i.Name, viewIdentifier(old), viewIdentifier(i))
	})
	if err != nil {
		return IdentifierInfo{}, fmt.Errorf("update identifier: %w", err)
	}
	s.cache.forget(out.Name)
	return out, nil
}

// applyClientStatuses returns the statuses in force after an agent asks for want: client
// statuses as in want, server statuses as they were. Listing a server status not in force
// is refused.
func applyClientStatuses(current, want []Status) ([]Status, error) {
	var next []Status
	for _, st := range current {
		if !st.IsClient() {
			next = append(next, st)
		}
	}
	for _, st := range want {
		if st.IsClient() {
			next = append(next, st)
		} else if !slices.Contains(current, st) {
			return nil, NewError(ReasonStatusNotClientSettable, "status %s can be set only by the registry", st)
		}
	}
	slices.Sort(next)
	return slices.Compact(next), nil
}

// DeleteIdentifier deletes an agent's identifier: it becomes pending delete for
// Config.RedemptionPeriod, during which it resolves to nothing and RestoreIdentifier can
// bring it back; then SweepPurges purges it and retires its identity for good. A pending
// transfer of it is cancelled by the registry, and its holder's credential links are void.
// Delete-prohibited statuses refuse.
func (s *Service) DeleteIdentifier(ctx context.Context, actor Actor, identifier, etag string) (IdentifierInfo, error) {
	var out IdentifierInfo
	err := s.change(ctx, actor, s.now(), func(ch *change) error {
		i, err := s.ownIdentifier(ctx, ch.tx, actor, identifier)
		if err != nil {
			return err
		}
		if etag != "" && etag != i.Etag() {
			return NewError(ReasonETagMismatch, "identifier %s changed since it was read; read it again", i.Name)
		}
		if i.Has(StatusPendingDelete) {
			return NewError(ReasonIdentifierPendingDelete, "identifier %s is pending delete already", i.Name)
		}
		for _, st := range []Status{StatusClientDeleteProhibited, StatusServerDeleteProhibited} {
			if i.Has(st) {
				return NewError(ReasonIdentifierDeleteProhibited, "identifier %s has status %s", i.Name, st)
			}
		}
		agent, err := ch.tx.GetAgent(ctx, i.AgentID)
		if err != nil {
			return err
		}
		next := i
		next.Statuses = withStatus(withoutStatus(i.Statuses, func(st Status) bool { return st == StatusPendingTransfer }), StatusPendingDelete)
		next.DeleteTime, next.PurgeTime = ch.now, ch.now.Add(s.cfg.RedemptionPeriod)
		// The holder's credential links die with the delete, and a restore does not revive them.
		next.LinkGeneration++
		// The identifier first, then its transfer: every path locks them in this order.
		if err := ch.updateIdentifier(ctx, &next); err != nil {
			return err
		}
		if i.Has(StatusPendingTransfer) {
			t, err := ch.tx.PendingTransfer(ctx, i.Name)
			if err != nil {
				return fmt.Errorf("pending transfer of %s: %w", i.Name, err)
			}
			if err := ch.cancelByServer(ctx, t, next.Statuses); err != nil {
				return err
			}
		}
		out = info(next, agent)
		if err := ch.journal(ctx, "identifier.delete", "identifier", i.Name, viewIdentifier(i), viewIdentifier(next)); err != nil {
			return err
		}
		return ch.event(ctx, i.AgentID, EventIdentifierDeleted, i.Name, EventData{Statuses: next.Statuses, PurgeTime: next.PurgeTime})
	})
	if err != nil {
		return IdentifierInfo{}, fmt.Errorf("delete identifier: %w", err)
	}
	s.cache.forget(out.Name)
	return out, nil
}

// cancelByServer ends the pending transfer t as serverCancelled, for an identifier whose
// own change (a delete) the caller has written already, leaving it with statuses (none if
// it is gone); both agents are told.
func (ch *change) cancelByServer(ctx context.Context, t Transfer, statuses []Status) error {
	before := t
	t.Status, t.ActTime = TransferServerCancelled, ch.now
	if err := ch.tx.UpdateTransfer(ctx, t, TransferPending); err != nil {
		return err
	}
	if err := ch.journal(ctx, "transfer.cancel", "transfer", t.ID, before, t); err != nil {
		return err
	}
	for _, a := range []string{t.GainingAgentID, t.LosingAgentID} {
		if err := ch.event(ctx, a, EventTransferCancelled, t.Identifier, EventData{Transfer: &t, Statuses: statuses}); err != nil {
			return err
		}
	}
	return nil
}

// ListJournal returns a page of the journal, oldest first, and the token of the next page.
func (s *Service) ListJournal(ctx context.Context, f JournalFilter, size int32, token string) ([]JournalEntry, string, error) {
	n, err := pageSize(size)
	if err != nil {
		return nil, "", err
	}
	after, err := decodeIntPageToken("journal", token)
	if err != nil {
		return nil, "", err
	}
	if f.ObjectType == "identifier" && f.ObjectID != "" {
		name, err := ParseIdentifier(f.ObjectID)
		if err != nil {
			return nil, "", err
		}
		f.ObjectID = name.ASCII
	}
	entries, err := s.store.ListJournal(ctx, f, after, n+1)
	if err != nil {
		return nil, "", err
	}
	entries, next := trimPage(entries, n, "journal", func(e JournalEntry) string { return fmt.Sprint(e.ID) })
	return entries, next, nil
}
