package registry

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// CredentialLinkPurpose says what a credential link is for.
type CredentialLinkPurpose string

// Credential link purposes.
const (
	// CredentialLinkSetup: the holder sets their first credentials.
	CredentialLinkSetup CredentialLinkPurpose = "setup"
	// CredentialLinkReset: the holder replaces their credentials.
	CredentialLinkReset CredentialLinkPurpose = "reset"
)

// CredentialLinkRequest asks the authority for a credential link for an identity's holder.
type CredentialLinkRequest struct {
	IdentityID string
	Identifier string
	Purpose    CredentialLinkPurpose
	// CredentialLinkBinding is the state the link is made in (its AgentID the sponsoring
	// agent, which asked for it): the link works only while the registry still holds it.
	CredentialLinkBinding
	// Record, when it is not nil, is given the link as made, in the transaction that stores
	// it, to write the registry's record of it (the journal): both are committed, or
	// neither. It may be called again when the transaction is.
	Record func(ctx context.Context, tx Tx, link CredentialLink) error
}

// CredentialLinkBinding is the state of the registry a credential link is bound to: the
// identifier's sponsoring agent and the generations of the identifier and of that agent.
// A transfer, a delete and a hold of the identifier advance its generation, a suspension of
// the agent advances the agent's, so a link made before any of them is void for good, even
// once the identifier is restored or released or the agent resumed.
type CredentialLinkBinding struct {
	AgentID              string
	IdentifierGeneration int64
	AgentGeneration      int64
}

// linkBinding returns the binding of a credential link for identifier i sponsored by agent
// a, or why none can be made or used now: the identifier is pending delete or on hold, or
// the agent is suspended (KindFailedPrecondition).
func linkBinding(i Identifier, a Agent) (CredentialLinkBinding, error) {
	switch {
	case i.Has(StatusPendingDelete):
		return CredentialLinkBinding{}, NewError(ReasonIdentifierPendingDelete, "identifier %s is pending delete; restore it first", i.Name)
	case i.Has(StatusServerHold):
		return CredentialLinkBinding{}, NewError(ReasonIdentifierOnHold, "identifier %s is on hold; its holder cannot log in", i.Name)
	case a.State != AgentActive:
		return CredentialLinkBinding{}, NewError(ReasonSponsorSuspended, "agent %s, which sponsors identifier %s, is suspended", a.ID, i.Name)
	}
	return CredentialLinkBinding{AgentID: a.ID, IdentifierGeneration: i.LinkGeneration, AgentGeneration: a.LinkGeneration}, nil
}

// ReadCredentialLinkBinding reads through r the binding a credential link of the holder of
// identifier (a canonical name) standing for identity identityID would have now. An
// identifier that is gone or stands for another identity is KindNotFound; one pending
// delete or on hold, or sponsored by a suspended agent, KindFailedPrecondition: no link of
// its holder can be used.
func ReadCredentialLinkBinding(ctx context.Context, r Reader, identifier, identityID string) (CredentialLinkBinding, error) {
	i, err := r.GetIdentifier(ctx, identifier)
	if err != nil {
		return CredentialLinkBinding{}, err
	}
	if i.IdentityID != identityID {
		return CredentialLinkBinding{}, NewError(ReasonIdentifierNotFound, "identifier %s stands for another identity now", i.Name)
	}
	a, err := r.GetAgent(ctx, i.AgentID)
	if err != nil {
		return CredentialLinkBinding{}, err
	}
	return linkBinding(i, a)
}

// CredentialLinkBinding returns the binding credential links of the holder of identifier
// (standing for identity identityID) would have now, as ReadCredentialLinkBinding reads it
// from the store: never from the resolve cache, so a change made by another instance counts
// at once.
func (s *Resolver) CredentialLinkBinding(ctx context.Context, identifier, identityID string) (CredentialLinkBinding, error) {
	return ReadCredentialLinkBinding(ctx, s.store, identifier, identityID)
}

// CredentialLink is a single-use page on the authority where a holder sets credentials.
type CredentialLink struct {
	// URL holds the link's secret.
	URL        string
	ExpireTime time.Time
	Purpose    CredentialLinkPurpose
	Identifier string
}

// CredentialLinkIssuer makes credential links: the embedded authority, which keeps the
// holders' credentials.
type CredentialLinkIssuer interface {
	IssueCredentialLink(ctx context.Context, req CredentialLinkRequest) (CredentialLink, error)
}

// credentialLinkView is how a credential link appears in the journal: never its URL.
type credentialLinkView struct {
	Purpose    CredentialLinkPurpose `json:"purpose"`
	IdentityID string                `json:"identity_id"`
	ExpireTime time.Time             `json:"expire_time"`
	// Reason is the operator's reason for a link made through the AdminService.
	Reason string `json:"reason,omitempty"`
}

// CreateCredentialLink asks the authority for a credential link for the holder of an
// identifier the agent sponsors, bound to the agent (CredentialLinkBinding). An identifier
// on hold or pending delete gets none: its holder cannot log in; nor does one whose agent
// is suspended.
func (s *Service) CreateCredentialLink(ctx context.Context, actor Actor, identifier string, purpose CredentialLinkPurpose) (CredentialLink, error) {
	return s.CreateCredentialLinkWithReason(ctx, actor, identifier, purpose, "")
}

// CreateCredentialLinkWithReason is CreateCredentialLink with a reason, journaled with the
// link (never the link itself). An agent may give one. A registry operator may make a link
// for the holder of any identifier, for a support case, and must give one (REASON_REQUIRED):
// the link is the same, bound to the sponsoring agent and void on the same transfers,
// deletes, holds and suspensions.
func (s *Service) CreateCredentialLinkWithReason(ctx context.Context, actor Actor, identifier string, purpose CredentialLinkPurpose, reason string) (CredentialLink, error) {
	if actor.Kind == ActorOperator && strings.TrimSpace(reason) == "" {
		return CredentialLink{}, NewError(ReasonReasonRequired, "reason is required: say why an operator makes this link (e.g. the support case)")
	}
	if utf8.RuneCountInString(reason) > maxReasonLength || !utf8.ValidString(reason) {
		return CredentialLink{}, NewError(ReasonReasonInvalid, "reason must be valid UTF-8 of at most %d characters", maxReasonLength)
	}
	return s.createCredentialLink(ctx, actor, identifier, purpose, reason)
}

func (s *Service) createCredentialLink(ctx context.Context, actor Actor, identifier string, purpose CredentialLinkPurpose, reason string) (CredentialLink, error) {
	if purpose != CredentialLinkSetup && purpose != CredentialLinkReset {
		return CredentialLink{}, NewError(ReasonPurposeRequired, "purpose must be PURPOSE_SETUP or PURPOSE_RESET")
	}
	issuer := s.cfg.CredentialLinks
	if issuer == nil {
		return CredentialLink{}, NewError(ReasonNoAuthority, "this registry runs without an authority, so it keeps no holder credentials")
	}
	i, err := s.ownIdentifier(ctx, s.store, actor, identifier)
	if err != nil {
		return CredentialLink{}, err
	}
	// Read from the store, not the authentication cache: a suspension committed since the
	// caller authenticated voids the link (its generation is read after it, or the state
	// refuses).
	agent, err := s.store.GetAgent(ctx, i.AgentID)
	if err != nil {
		return CredentialLink{}, err
	}
	// The generations are read before the link is made: a transfer, delete, hold or
	// suspension committed meanwhile has advanced one, and the link is void from the start.
	binding, err := linkBinding(i, agent)
	if err != nil {
		return CredentialLink{}, err
	}
	now := s.now()
	link, err := issuer.IssueCredentialLink(ctx, CredentialLinkRequest{
		IdentityID: i.IdentityID, Identifier: i.Name, Purpose: purpose, CredentialLinkBinding: binding,
		Record: func(ctx context.Context, tx Tx, link CredentialLink) error {
			return s.journal(ctx, tx, now, actor, "credential_link.create", "identifier", i.Name, nil,
				credentialLinkView{Purpose: purpose, IdentityID: i.IdentityID, ExpireTime: link.ExpireTime, Reason: reason})
		},
	})
	if err != nil {
		return CredentialLink{}, fmt.Errorf("credential link: %w", err)
	}
	return link, nil
}

// SubjectSeed returns the secret an identity's subjects are derived from.
func (s *Resolver) SubjectSeed(ctx context.Context, identityID string) (string, error) {
	id, err := s.store.GetIdentity(ctx, identityID)
	if err != nil {
		return "", err
	}
	return id.SubjectSeed, nil
}
