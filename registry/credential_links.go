package registry

import (
	"context"
	"fmt"
	"sync"
	"time"
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
	AgentID    string
	Purpose    CredentialLinkPurpose
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

// linkIssuer holds the Service's CredentialLinkIssuer, set once at wiring time.
type linkIssuer struct {
	mu sync.RWMutex
	i  CredentialLinkIssuer
}

// SetCredentialLinkIssuer names the authority that makes credential links. The authority
// reads the mapping through the Service, so the two are wired after both exist.
func (s *Service) SetCredentialLinkIssuer(i CredentialLinkIssuer) {
	s.links.mu.Lock()
	s.links.i = i
	s.links.mu.Unlock()
}

// credentialLinkView is how a credential link appears in the journal: never its URL.
type credentialLinkView struct {
	Purpose    CredentialLinkPurpose `json:"purpose"`
	IdentityID string                `json:"identity_id"`
	ExpireTime time.Time             `json:"expire_time"`
}

// CreateCredentialLink asks the authority for a credential link for the holder of an
// identifier the agent sponsors. An identifier on hold or pending delete gets none: its
// holder cannot log in.
func (s *Service) CreateCredentialLink(ctx context.Context, actor Actor, identifier string, purpose CredentialLinkPurpose) (CredentialLink, error) {
	if purpose != CredentialLinkSetup && purpose != CredentialLinkReset {
		return CredentialLink{}, Errorf(KindInvalidArgument, "PURPOSE_REQUIRED", "purpose must be PURPOSE_SETUP or PURPOSE_RESET")
	}
	s.links.mu.RLock()
	issuer := s.links.i
	s.links.mu.RUnlock()
	if issuer == nil {
		return CredentialLink{}, Errorf(KindUnimplemented, "NO_AUTHORITY", "this registry runs without an authority, so it keeps no holder credentials")
	}
	i, err := s.ownIdentifier(ctx, s.store, actor, identifier)
	if err != nil {
		return CredentialLink{}, err
	}
	if i.Has(StatusPendingDelete) {
		return CredentialLink{}, Errorf(KindFailedPrecondition, "IDENTIFIER_PENDING_DELETE", "identifier %s is pending delete; restore it first", i.Name)
	}
	if i.Has(StatusServerHold) {
		return CredentialLink{}, Errorf(KindFailedPrecondition, "IDENTIFIER_ON_HOLD", "identifier %s is on hold; its holder cannot log in", i.Name)
	}
	link, err := issuer.IssueCredentialLink(ctx, CredentialLinkRequest{IdentityID: i.IdentityID, Identifier: i.Name, AgentID: i.AgentID, Purpose: purpose})
	if err != nil {
		return CredentialLink{}, fmt.Errorf("credential link: %w", err)
	}
	now := s.now()
	err = s.store.Tx(ctx, func(tx Tx) error {
		return s.journal(ctx, tx, now, actor, "credential_link.create", "identifier", i.Name, nil,
			credentialLinkView{Purpose: purpose, IdentityID: i.IdentityID, ExpireTime: link.ExpireTime})
	})
	if err != nil {
		return CredentialLink{}, fmt.Errorf("credential link: %w", err)
	}
	return link, nil
}

// SubjectSeed returns the secret an identity's subjects are derived from.
func (s *Service) SubjectSeed(ctx context.Context, identityID string) (string, error) {
	id, err := s.store.GetIdentity(ctx, identityID)
	if err != nil {
		return "", err
	}
	return id.SubjectSeed, nil
}
