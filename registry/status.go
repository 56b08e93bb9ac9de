package registry

import (
	"context"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"
)

// maxReasonLength bounds the reason an operator gives for a server status change.
const maxReasonLength = 500

// SetServerStatus sets an identifier's server statuses (serverHold, server*Prohibited) to
// exactly want, leaving client and lifecycle statuses alone. A change is journaled with
// reason and announced to the sponsoring agent; asking for the statuses in force changes
// nothing. Setting serverHold voids the credential links of the identifier's holder. Only
// operators call it.
func (s *Service) SetServerStatus(ctx context.Context, actor Actor, identifier string, want []Status, reason, etag string) (IdentifierInfo, error) {
	if actor.Kind != ActorOperator && actor.Kind != ActorSystem {
		return IdentifierInfo{}, NewError(ReasonOperatorCredentialRequired, "only registry operators set server statuses")
	}
	for _, st := range want {
		if !st.IsServer() {
			return IdentifierInfo{}, NewError(ReasonStatusNotServerSettable, "status %q is not a server status; use serverHold, serverTransferProhibited, serverDeleteProhibited or serverUpdateProhibited", st)
		}
	}
	if utf8.RuneCountInString(reason) > maxReasonLength || !utf8.ValidString(reason) {
		return IdentifierInfo{}, NewError(ReasonReasonInvalid, "reason must be valid UTF-8 of at most %d characters", maxReasonLength)
	}
	var out IdentifierInfo
	changed := false
	err := s.change(ctx, actor, s.now(), func(ch *change) error {
		changed = false
		i, err := s.ownIdentifier(ctx, ch.tx, actor, identifier)
		if err != nil {
			return err
		}
		if etag != "" && etag != i.Etag() {
			return NewError(ReasonETagMismatch, "identifier %s changed since it was read; read it again", i.Name)
		}
		agent, err := ch.tx.GetAgent(ctx, i.AgentID)
		if err != nil {
			return err
		}
		next := i
		next.Statuses = withStatus(withoutStatus(i.Statuses, Status.IsServer), want...)
		if slices.Equal(next.Statuses, i.Statuses) {
			out = info(i, agent)
			return nil
		}
		changed = true
		if next.Has(StatusServerHold) && !i.Has(StatusServerHold) {
			// A hold voids the holder's credential links; releasing it does not revive them.
			next.LinkGeneration++
		}
		if err := ch.updateIdentifier(ctx, &next); err != nil {
			return err
		}
		out = info(next, agent)
		after := viewIdentifier(next)
		after.Reason = reason
		if err := ch.journal(ctx, "identifier.server_status", "identifier", i.Name, viewIdentifier(i), after); err != nil {
			return err
		}
		return ch.event(ctx, i.AgentID, EventServerStatusChanged, i.Name, EventData{Statuses: next.Statuses, PreviousStatuses: i.Statuses, Reason: reason})
	})
	if err != nil {
		return IdentifierInfo{}, fmt.Errorf("set server status: %w", err)
	}
	if changed {
		s.cache.forget(out.Name)
	}
	return out, nil
}

// RestoreIdentifier brings an identifier pending delete back, unchanged, before its purge
// time. Only the sponsoring agent calls it. A restore racing the purge has one outcome: the
// identifier is restored or purged, never both.
func (s *Service) RestoreIdentifier(ctx context.Context, actor Actor, identifier string) (IdentifierInfo, error) {
	var out IdentifierInfo
	err := s.change(ctx, actor, s.now(), func(ch *change) error {
		i, err := s.ownIdentifier(ctx, ch.tx, actor, identifier)
		if err != nil {
			return err
		}
		if !i.Has(StatusPendingDelete) {
			return NewError(ReasonIdentifierNotPendingDelete, "identifier %s is not pending delete", i.Name)
		}
		if !ch.now.Before(i.PurgeTime) {
			return NewError(ReasonRedemptionPeriodOver, "the redemption period of identifier %s ended at %s", i.Name, i.PurgeTime.Format("2006-01-02T15:04:05Z07:00"))
		}
		agent, err := ch.tx.GetAgent(ctx, i.AgentID)
		if err != nil {
			return err
		}
		next := i
		next.Statuses = withoutStatus(i.Statuses, func(st Status) bool { return st == StatusPendingDelete })
		next.DeleteTime, next.PurgeTime = time.Time{}, time.Time{}
		if err := ch.updateIdentifier(ctx, &next); err != nil {
			return err
		}
		out = info(next, agent)
		if err := ch.journal(ctx, "identifier.restore", "identifier", i.Name, viewIdentifier(i), viewIdentifier(next)); err != nil {
			return err
		}
		return ch.event(ctx, i.AgentID, EventIdentifierRestored, i.Name, EventData{Statuses: next.Statuses})
	})
	if err != nil {
		return IdentifierInfo{}, fmt.Errorf("restore identifier: %w", err)
	}
	s.cache.forget(out.Name)
	return out, nil
}
