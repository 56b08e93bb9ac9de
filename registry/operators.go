package registry

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// Operator credentials: bearer credentials for the AdminService and the ResolverService. The
// first one is made with the database at hand (admin bootstrap, serve --dev); later ones
// through the AdminService, by an operator.

// CreateOperatorCredential issues an operator credential and returns it with the bearer
// value, shown this once.
func (s *Service) CreateOperatorCredential(ctx context.Context, actor Actor, description string) (Credential, string, error) {
	return s.createCredential(ctx, actor, OperatorPrefix, "", description)
}

// ListOperatorCredentials returns every credential of no agent, revoked ones too, oldest
// first: the operator credentials, and any agent token made without an agent before
// CreateAgentToken refused that (it authenticates nobody, and is listed so that it can be
// revoked).
func (s *Service) ListOperatorCredentials(ctx context.Context) ([]Credential, error) {
	return s.store.ListCredentials(ctx, "")
}

// CountOperators returns how many operator credentials exist, revoked ones included.
func (s *Service) CountOperators(ctx context.Context) (int, error) {
	creds, err := s.store.ListCredentials(ctx, "")
	n := 0
	for _, c := range creds {
		if strings.HasPrefix(c.ID, OperatorPrefix) {
			n++
		}
	}
	return n, err
}

// RevokeOperatorCredential revokes an operator credential; revoking a revoked one is a
// no-op. The last credential not revoked is kept (LAST_OPERATOR_CREDENTIAL): without it no
// one could reach the AdminService again short of the database itself (admin bootstrap), so
// an operator replacing a leaked credential creates the new one first. Concurrent revocations
// lock the operator credentials (Tx.LockOperatorCredentials), so they cannot revoke the last
// two together.
func (s *Service) RevokeOperatorCredential(ctx context.Context, actor Actor, id string) (Credential, error) {
	if id == "" {
		return Credential{}, NewError(ReasonCredentialIDRequired, "id is required")
	}
	var out Credential
	err := s.store.Tx(ctx, func(tx Tx) error {
		c, err := tx.GetCredential(ctx, id)
		if KindOf(err) == KindNotFound || (err == nil && c.AgentID != "") {
			return NewError(ReasonCredentialNotFound, "there is no operator credential %s", id)
		}
		if err != nil {
			return err
		}
		out = c
		if c.Revoked() {
			return nil
		}
		active, err := tx.LockOperatorCredentials(ctx)
		if err != nil {
			return err
		}
		others := slices.ContainsFunc(active, func(o Credential) bool {
			return o.ID != c.ID && strings.HasPrefix(o.ID, OperatorPrefix)
		})
		if !others && strings.HasPrefix(c.ID, OperatorPrefix) {
			return NewError(ReasonLastOperatorCredential, "%s is the last operator credential; create another before revoking it", c.ID)
		}
		out.RevokeTime = s.now()
		if err := tx.RevokeCredential(ctx, c.ID, out.RevokeTime); err != nil {
			return err
		}
		return s.journal(ctx, tx, out.RevokeTime, actor, "operator_credential.revoke", "operator_credential", c.ID, viewCredential(c), viewCredential(out))
	})
	if err != nil {
		return Credential{}, fmt.Errorf("revoke operator credential: %w", err)
	}
	s.auth.purge()
	return out, nil
}
