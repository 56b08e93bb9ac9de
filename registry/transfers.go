package registry

import (
	"context"
	"fmt"
)

// transferable returns why an identifier cannot be transferred to agentID now, or nil.
func transferable(i Identifier, agentID string) error {
	switch {
	case i.AgentID == agentID:
		return NewError(ReasonAlreadySponsor, "identifier %s is already sponsored by the calling agent", i.Name)
	case i.Has(StatusPendingDelete):
		return NewError(ReasonIdentifierPendingDelete, "identifier %s is pending delete", i.Name)
	case i.Has(StatusPendingTransfer):
		return NewError(ReasonTransferPending, "a transfer of identifier %s is pending already", i.Name)
	case i.Has(StatusServerHold):
		return NewError(ReasonIdentifierOnHold, "identifier %s is on hold", i.Name)
	}
	for _, st := range []Status{StatusClientTransferProhibited, StatusServerTransferProhibited} {
		if i.Has(st) {
			return NewError(ReasonIdentifierTransferProhibited, "identifier %s has status %s", i.Name, st)
		}
	}
	return nil
}

// RequestTransfer consumes a valid transfer challenge of the (gaining) agent and asks for its
// identifier. With no pending period (the default) the transfer completes at once: the DNS
// proof is the holder's consent. Otherwise it is pending until the losing agent approves or
// rejects it, the gaining agent cancels it, or Config.TransferPendingPeriod passes and the
// registry approves it.
//
// Refused while a client or server transfer-prohibited status or serverHold is set, while a
// transfer is pending, while the identifier is pending delete, when the agent sponsors the
// identifier already, and when the identifier changed sponsor since the challenge was made
// (SPONSOR_CHANGED). So of concurrent requests for one identifier exactly one succeeds.
//
// With a requestID the request can be retried: a call with the same requestID and challenge
// answers with the transfer the first one made, as it is now; one with another challenge is
// REQUEST_ID_REUSED.
func (s *Service) RequestTransfer(ctx context.Context, actor Actor, challengeID, requestID string) (Transfer, error) {
	r, err := newRequest(actor, requestID, MethodRequestTransfer, challengeID)
	if err != nil {
		return Transfer{}, err
	}
	return once(ctx, s, r,
		func(o RequestOutcome) (Transfer, error) { return s.partyTransfer(ctx, s.store, actor, o.Resource) },
		func() (Transfer, error) { return s.requestTransfer(ctx, actor, challengeID, r) })
}

// requestTransfer is RequestTransfer's call r.
func (s *Service) requestTransfer(ctx context.Context, actor Actor, challengeID string, r request) (Transfer, error) {
	c, err := s.ownChallenge(ctx, s.store, actor, challengeID)
	if err != nil {
		return Transfer{}, err
	}
	now := s.now()
	status := c.StatusAt(now)
	if err := unusable(c, status); err != nil {
		return Transfer{}, err
	}
	if status != ChallengeValid {
		return Transfer{}, NewError(ReasonChallengeNotValid, "challenge %s is %s; publish the record and verify it first", c.ID, status)
	}
	if c.Purpose != PurposeTransfer {
		return Transfer{}, NewError(ReasonChallengePurposeMismatch, "challenge %s is for %s, not transfer", c.ID, c.Purpose)
	}
	used := c
	used.Status = ChallengeConsumed
	var t Transfer
	err = s.change(ctx, actor, now, func(ch *change) error {
		i, err := ch.tx.GetIdentifier(ctx, c.Identifier)
		if err != nil {
			return err
		}
		if err := transferable(i, actor.ID); err != nil {
			return err
		}
		if i.AgentID != c.SponsorAgentID {
			// Another transfer (or a purge and a new registration) came first.
			return NewError(ReasonSponsorChanged, "identifier %s changed sponsor since challenge %s was made; create a new challenge", i.Name, c.ID)
		}
		if err := ch.tx.UpdateChallenge(ctx, used, c.Status, c.Attempts); err != nil {
			if KindOf(err) == KindAborted {
				return NewError(ReasonChallengeConsumed, "challenge %s was used by a concurrent call; create a new one", c.ID)
			}
			return err
		}
		t = Transfer{
			ID: newOrderedID(TransferIDPrefix, now), Identifier: i.Name, GainingAgentID: actor.ID,
			LosingAgentID: i.AgentID, ChallengeID: c.ID, RequestTime: now,
		}
		if err := r.record(ctx, ch.tx, now, t.ID, ""); err != nil {
			return err
		}
		if s.cfg.TransferPendingPeriod == 0 {
			t.Status, t.ActTime = TransferServerApproved, now
			if err := ch.tx.CreateTransfer(ctx, t); err != nil {
				return err
			}
			if err := ch.journal(ctx, "transfer.request", "transfer", t.ID, nil, t); err != nil {
				return err
			}
			return ch.completeTransfer(ctx, i, t)
		}
		t.Status, t.ActTime = TransferPending, now.Add(s.cfg.TransferPendingPeriod)
		next := i
		next.Statuses = withStatus(i.Statuses, StatusPendingTransfer)
		if err := ch.updateIdentifier(ctx, &next); err != nil {
			return err
		}
		if err := ch.tx.CreateTransfer(ctx, t); err != nil {
			return err
		}
		if err := ch.journal(ctx, "transfer.request", "transfer", t.ID, nil, t); err != nil {
			return err
		}
		return ch.event(ctx, t.LosingAgentID, EventTransferRequested, t.Identifier, EventData{Transfer: &t, Statuses: next.Statuses})
	})
	if err != nil {
		return Transfer{}, fmt.Errorf("request transfer: %w", err)
	}
	s.cache.forget(t.Identifier)
	return t, nil
}

// completeTransfer moves identifier i to the gaining agent of the approved transfer t and
// tells both agents.
func (ch *change) completeTransfer(ctx context.Context, i Identifier, t Transfer) error {
	next, err := ch.moveIdentifier(ctx, i, t)
	if err != nil {
		return err
	}
	return ch.tellCompleted(ctx, t, next.Statuses)
}

// moveIdentifier moves identifier i to the gaining agent of the approved transfer t and
// returns it as it is now: the identity (and so the holder's subject and credentials) stays;
// the sponsoring agent changes, the claims endpoint override and the losing agent's client
// statuses are dropped, and the credential links made before are void.
func (ch *change) moveIdentifier(ctx context.Context, i Identifier, t Transfer) (Identifier, error) {
	next := i
	next.AgentID = t.GainingAgentID
	next.LinkGeneration++
	next.ClaimsEndpoint = ""
	next.Statuses = withoutStatus(i.Statuses, func(st Status) bool { return st.IsClient() || st == StatusPendingTransfer })
	if err := ch.updateIdentifier(ctx, &next); err != nil {
		return Identifier{}, err
	}
	// The _openid record should now name the new agent: check it soon.
	st := i.OpenID
	st.NextCheck = ch.now.Add(min(firstOpenIDCheck, ch.s.cfg.OpenIDCheckInterval))
	if _, err := ch.tx.SetOpenIDState(ctx, i.Name, i.IdentityID, st); err != nil {
		return Identifier{}, err
	}
	if err := ch.journal(ctx, "identifier.transfer", "identifier", i.Name, viewIdentifier(i), viewIdentifier(next)); err != nil {
		return Identifier{}, err
	}
	return next, nil
}

// tellCompleted tells both agents of the completed transfer t; statuses are the
// identifier's now.
func (ch *change) tellCompleted(ctx context.Context, t Transfer, statuses []Status) error {
	d := EventData{Transfer: &t, Statuses: statuses}
	if err := ch.event(ctx, t.GainingAgentID, EventTransferCompletedIn, t.Identifier, d); err != nil {
		return err
	}
	return ch.event(ctx, t.LosingAgentID, EventTransferCompletedOut, t.Identifier, d)
}

// transferParty says which side of a transfer an action needs.
type transferParty int

const (
	losingParty transferParty = iota
	gainingParty
)

// resolveTransfer ends a pending transfer with status to, as actor, who must be the party
// named. The identifier is changed first and the transfer second, in every path, so that
// concurrent resolutions and deletes lock rows in one order.
func (s *Service) resolveTransfer(ctx context.Context, actor Actor, id string, party transferParty, to TransferStatus) (Transfer, error) {
	if id == "" {
		return Transfer{}, NewError(ReasonTransferIDRequired, "id is required")
	}
	var out Transfer
	err := s.change(ctx, actor, s.now(), func(ch *change) error {
		t, err := s.partyTransfer(ctx, ch.tx, actor, id)
		if err != nil {
			return err
		}
		switch {
		case party == losingParty && t.LosingAgentID != actor.ID:
			return NewError(ReasonLosingAgentOnly, "only the losing agent can %s transfer %s", verb(to), t.ID)
		case party == gainingParty && t.GainingAgentID != actor.ID:
			return NewError(ReasonGainingAgentOnly, "only the gaining agent can cancel transfer %s", t.ID)
		case t.Status != TransferPending:
			return NewError(ReasonTransferNotPending, "transfer %s is %s, not pending", t.ID, t.Status)
		}
		i, err := ch.tx.GetIdentifier(ctx, t.Identifier)
		if err != nil {
			return err
		}
		if to.Approved() {
			if err := approvable(i); err != nil {
				return err
			}
		}
		out, err = ch.endTransfer(ctx, i, t, to)
		return err
	})
	if err != nil {
		return Transfer{}, fmt.Errorf("%s transfer: %w", verb(to), err)
	}
	s.cache.forget(out.Identifier)
	return out, nil
}

func verb(to TransferStatus) string {
	switch to {
	case TransferClientApproved, TransferServerApproved:
		return "approve"
	case TransferClientRejected:
		return "reject"
	}
	return "cancel"
}

// approvable returns why a pending transfer of i cannot be approved now (a server status
// set while it was pending), or nil.
func approvable(i Identifier) error {
	for _, st := range []Status{StatusServerTransferProhibited, StatusServerHold} {
		if i.Has(st) {
			return NewError(ReasonIdentifierTransferProhibited, "identifier %s has status %s", i.Name, st)
		}
	}
	return nil
}

// endTransfer ends the pending transfer t of identifier i with status to, and tells the
// agents: the party that did not act, or both when the registry acted. An approval is told
// before the completion that follows it.
func (ch *change) endTransfer(ctx context.Context, i Identifier, t Transfer, to TransferStatus) (Transfer, error) {
	before := t
	t.Status, t.ActTime = to, ch.now
	next := i
	if to.Approved() {
		var err error
		if next, err = ch.moveIdentifier(ctx, i, t); err != nil {
			return Transfer{}, err
		}
	} else {
		next.Statuses = withoutStatus(i.Statuses, func(st Status) bool { return st == StatusPendingTransfer })
		if err := ch.updateIdentifier(ctx, &next); err != nil {
			return Transfer{}, err
		}
	}
	if err := ch.tx.UpdateTransfer(ctx, t, TransferPending); err != nil {
		return Transfer{}, err
	}
	if err := ch.journal(ctx, "transfer."+verb(to), "transfer", t.ID, before, t); err != nil {
		return Transfer{}, err
	}
	d := EventData{Transfer: &t, Statuses: next.Statuses}
	var notify []string
	var typ EventType
	switch to {
	case TransferClientApproved:
		typ, notify = EventTransferApproved, []string{t.GainingAgentID}
	case TransferServerApproved:
		typ, notify = EventTransferApproved, []string{t.GainingAgentID, t.LosingAgentID}
	case TransferClientRejected:
		typ, notify = EventTransferRejected, []string{t.GainingAgentID}
	case TransferClientCancelled:
		typ, notify = EventTransferCancelled, []string{t.LosingAgentID}
	case TransferServerCancelled:
		typ, notify = EventTransferCancelled, []string{t.GainingAgentID, t.LosingAgentID}
	}
	for _, a := range notify {
		if err := ch.event(ctx, a, typ, t.Identifier, d); err != nil {
			return Transfer{}, err
		}
	}
	if to.Approved() {
		if err := ch.tellCompleted(ctx, t, next.Statuses); err != nil {
			return Transfer{}, err
		}
	}
	return t, nil
}

// partyTransfer reads a transfer the actor gains or loses by (any, for an operator); another
// agent's reads as not found.
func (s *Service) partyTransfer(ctx context.Context, r Reader, actor Actor, id string) (Transfer, error) {
	t, err := r.GetTransfer(ctx, id)
	if err != nil {
		return Transfer{}, err
	}
	if actor.Kind == ActorAgent && t.GainingAgentID != actor.ID && t.LosingAgentID != actor.ID {
		return Transfer{}, NewError(ReasonTransferNotFound, "transfer %s not found", id)
	}
	return t, nil
}

// ApproveTransfer lets the losing agent approve a pending transfer; the identifier moves.
func (s *Service) ApproveTransfer(ctx context.Context, actor Actor, id string) (Transfer, error) {
	return s.resolveTransfer(ctx, actor, id, losingParty, TransferClientApproved)
}

// RejectTransfer lets the losing agent reject a pending transfer.
func (s *Service) RejectTransfer(ctx context.Context, actor Actor, id string) (Transfer, error) {
	return s.resolveTransfer(ctx, actor, id, losingParty, TransferClientRejected)
}

// CancelTransfer lets the gaining agent withdraw a pending transfer.
func (s *Service) CancelTransfer(ctx context.Context, actor Actor, id string) (Transfer, error) {
	return s.resolveTransfer(ctx, actor, id, gainingParty, TransferClientCancelled)
}

// GetTransfer returns a transfer the actor gains or loses by (any, for an operator).
func (s *Service) GetTransfer(ctx context.Context, actor Actor, id string) (Transfer, error) {
	if id == "" {
		return Transfer{}, NewError(ReasonTransferIDRequired, "id is required")
	}
	return s.partyTransfer(ctx, s.store, actor, id)
}

// ListTransfers returns a page of the agent's transfers in the direction asked, oldest first,
// and the token of the next page.
func (s *Service) ListTransfers(ctx context.Context, actor Actor, dir TransferDirection, pendingOnly bool, size int32, token string) ([]Transfer, string, error) {
	n, err := pageSize(size)
	if err != nil {
		return nil, "", err
	}
	if dir != TransferBoth && dir != TransferIn && dir != TransferOut {
		return nil, "", NewError(ReasonInvalidDirection, "direction %d is not one the registry knows", dir)
	}
	// The token is bound to the filter: a token of one listing is refused by another.
	kind := fmt.Sprintf("transfers/%d/%t", dir, pendingOnly)
	after, err := decodePageToken(kind, token)
	if err != nil {
		return nil, "", err
	}
	f := TransferFilter{AgentID: actor.ID, Direction: dir, PendingOnly: pendingOnly}
	ts, err := s.store.ListTransfers(ctx, f, after, n+1)
	if err != nil {
		return nil, "", err
	}
	ts, next := trimPage(ts, n, kind, func(t Transfer) string { return t.ID })
	return ts, next, nil
}
