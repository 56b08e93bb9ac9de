package registry

import (
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/id4me/id4me-registry/acme"
)

// AgentSpec is what an operator gives to create an agent, and the fields UpdateAgent may change.
type AgentSpec struct {
	DisplayName    string
	ClaimsEndpoint string
	Issuer         string
	AccountKeyJWK  string
	ClientCertSPKI []string
	State          AgentState
}

// AgentField names a field of AgentSpec for UpdateAgent.
type AgentField string

// Agent fields UpdateAgent can change.
const (
	AgentFieldDisplayName    AgentField = "display_name"
	AgentFieldClaimsEndpoint AgentField = "claims_endpoint"
	AgentFieldIssuer         AgentField = "issuer"
	AgentFieldAccountKey     AgentField = "account_key_jwk"
	AgentFieldState          AgentField = "state"
	AgentFieldClientCerts    AgentField = "client_cert_spki_sha256"
)

const maxDisplayName = 200

// agentView is how an agent appears in the journal.
type agentView struct {
	ID                   string   `json:"id"`
	DisplayName          string   `json:"display_name"`
	ClaimsEndpoint       string   `json:"claims_endpoint"`
	Issuer               string   `json:"issuer"`
	AccountKeyThumbprint string   `json:"account_key_thumbprint"`
	State                string   `json:"state"`
	ClientCertSPKI       []string `json:"client_cert_spki_sha256,omitempty"`
	Version              int64    `json:"version"`
}

func viewAgent(a Agent) agentView {
	return agentView{a.ID, a.DisplayName, a.ClaimsEndpoint, a.Issuer, a.AccountKeyThumbprint, string(a.State), a.ClientCertSPKI, a.Version}
}

// credentialView is how a credential appears in the journal: never its secret or hash.
type credentialView struct {
	ID          string `json:"id"`
	AgentID     string `json:"agent_id,omitempty"`
	Description string `json:"description"`
	Revoked     bool   `json:"revoked"`
}

func viewCredential(c Credential) credentialView {
	return credentialView{c.ID, c.AgentID, c.Description, c.Revoked()}
}

func (s *Service) checkAgentSpec(spec *AgentSpec, fields []AgentField) (thumbprint string, err error) {
	for _, f := range fields {
		switch f {
		case AgentFieldDisplayName:
			spec.DisplayName = strings.TrimSpace(spec.DisplayName)
			if spec.DisplayName == "" || utf8.RuneCountInString(spec.DisplayName) > maxDisplayName || !utf8.ValidString(spec.DisplayName) {
				return "", NewError(ReasonDisplayNameInvalid, "display_name must be 1 to %d characters", maxDisplayName)
			}
		case AgentFieldClaimsEndpoint:
			if err := s.checkEndpointURL(claimsEndpointURL, spec.ClaimsEndpoint); err != nil {
				return "", err
			}
		case AgentFieldIssuer:
			if err := s.checkEndpointURL(issuerURL, spec.Issuer); err != nil {
				return "", err
			}
		case AgentFieldAccountKey:
			key, err := acme.ParseAccountKey(spec.AccountKeyJWK)
			if err != nil {
				return "", NewError(ReasonAccountKeyInvalid, "account_key_jwk: %v", err)
			}
			thumbprint = key.Thumbprint
		case AgentFieldState:
			if spec.State != AgentActive && spec.State != AgentSuspended {
				return "", NewError(ReasonAgentStateInvalid, "state must be active or suspended")
			}
		case AgentFieldClientCerts:
			norm := make([]string, 0, len(spec.ClientCertSPKI))
			for _, h := range spec.ClientCertSPKI {
				h = strings.ToLower(strings.TrimSpace(h))
				if b, err := hex.DecodeString(h); err != nil || len(b) != 32 {
					return "", NewError(ReasonClientCertPinInvalid, "client_cert_spki_sha256 entries must be 64 hex characters (SHA-256 of the SubjectPublicKeyInfo), got %q", h)
				}
				norm = append(norm, h)
			}
			slices.Sort(norm)
			spec.ClientCertSPKI = slices.Compact(norm)
		default:
			return "", NewError(ReasonUpdateMaskInvalid, "agent field %q cannot be changed", f)
		}
	}
	return thumbprint, nil
}

// CreateAgent adds an agent partner; it starts active.
func (s *Service) CreateAgent(ctx context.Context, actor Actor, spec AgentSpec) (Agent, error) {
	thumb, err := s.checkAgentSpec(&spec, []AgentField{AgentFieldDisplayName, AgentFieldClaimsEndpoint, AgentFieldIssuer, AgentFieldAccountKey, AgentFieldClientCerts})
	if err != nil {
		return Agent{}, err
	}
	now := s.now()
	a := Agent{
		ID: newID(AgentIDPrefix), DisplayName: spec.DisplayName, ClaimsEndpoint: spec.ClaimsEndpoint,
		Issuer: spec.Issuer, AccountKeyJWK: spec.AccountKeyJWK, AccountKeyThumbprint: thumb,
		State: AgentActive, ClientCertSPKI: spec.ClientCertSPKI, CreateTime: now, UpdateTime: now, Version: 1,
	}
	err = s.store.Tx(ctx, func(tx Tx) error {
		if err := tx.CreateAgent(ctx, a); err != nil {
			return err
		}
		return s.journal(ctx, tx, now, actor, "agent.create", "agent", a.ID, nil, viewAgent(a))
	})
	if err != nil {
		return Agent{}, fmt.Errorf("create agent: %w", err)
	}
	return a, nil
}

// GetAgent returns an agent.
func (s *Service) GetAgent(ctx context.Context, id string) (Agent, error) {
	return s.store.GetAgent(ctx, id)
}

// ListAgents returns a page of agents ordered by ID, and the token of the next page.
func (s *Service) ListAgents(ctx context.Context, size int32, token string) ([]Agent, string, error) {
	n, err := pageSize(size)
	if err != nil {
		return nil, "", err
	}
	after, err := decodePageToken("agents", token)
	if err != nil {
		return nil, "", err
	}
	agents, err := s.store.ListAgents(ctx, after, n+1)
	if err != nil {
		return nil, "", err
	}
	agents, next := trimPage(agents, n, "agents", func(a Agent) string { return a.ID })
	return agents, next, nil
}

// UpdateAgent changes the given fields of an agent. A non-empty etag must match. Suspending
// the agent voids the credential links it asked for.
func (s *Service) UpdateAgent(ctx context.Context, actor Actor, id string, spec AgentSpec, fields []AgentField, etag string) (Agent, error) {
	if len(fields) == 0 {
		return Agent{}, NewError(ReasonUpdateMaskRequired, "update_mask must name the fields to change")
	}
	thumb, err := s.checkAgentSpec(&spec, fields)
	if err != nil {
		return Agent{}, err
	}
	var out Agent
	err = s.store.Tx(ctx, func(tx Tx) error {
		old, err := tx.GetAgent(ctx, id)
		if err != nil {
			return err
		}
		if etag != "" && etag != old.Etag() {
			return NewError(ReasonETagMismatch, "agent %s changed since it was read; read it again", id)
		}
		a := old
		for _, f := range fields {
			switch f {
			case AgentFieldDisplayName:
				a.DisplayName = spec.DisplayName
			case AgentFieldClaimsEndpoint:
				a.ClaimsEndpoint = spec.ClaimsEndpoint
			case AgentFieldIssuer:
				a.Issuer = spec.Issuer
			case AgentFieldAccountKey:
				a.AccountKeyJWK, a.AccountKeyThumbprint = spec.AccountKeyJWK, thumb
			case AgentFieldState:
				a.State = spec.State
			case AgentFieldClientCerts:
				a.ClientCertSPKI = spec.ClientCertSPKI
			}
		}
		a.UpdateTime = s.now()
		a.Version++
		if old.State != AgentSuspended && a.State == AgentSuspended {
			// A suspension voids the credential links the agent asked for; resuming does not
			// revive them.
			a.LinkGeneration++
		}
		if err := tx.UpdateAgent(ctx, a); err != nil {
			return err
		}
		action := "agent.update"
		if old.State != a.State {
			action = map[AgentState]string{AgentSuspended: "agent.suspend", AgentActive: "agent.resume"}[a.State]
		}
		out = a
		return s.journal(ctx, tx, a.UpdateTime, actor, action, "agent", a.ID, viewAgent(old), viewAgent(a))
	})
	if err != nil {
		return Agent{}, fmt.Errorf("update agent: %w", err)
	}
	s.cache.purge()
	s.auth.purge()
	return out, nil
}

// CreateAgentToken issues an API token for an agent and returns it with the bearer value,
// which is shown this once and kept only as a hash. An empty agentID is refused
// (AGENT_ID_REQUIRED): a credential without an agent would be an operator's, which only
// CreateOperatorCredential makes.
func (s *Service) CreateAgentToken(ctx context.Context, actor Actor, agentID, description string) (Credential, string, error) {
	if agentID == "" {
		return Credential{}, "", NewError(ReasonAgentIDRequired, "agent_id is required: a token belongs to an agent (operator credentials come from CreateOperatorCredential)")
	}
	return s.createCredential(ctx, actor, AgentTokenPrefix, agentID, description)
}

func (s *Service) createCredential(ctx context.Context, actor Actor, prefix, agentID, description string) (Credential, string, error) {
	if utf8.RuneCountInString(description) > maxDisplayName {
		return Credential{}, "", NewError(ReasonDescriptionTooLong, "description must be at most %d characters", maxDisplayName)
	}
	secret := newSecret()
	c := Credential{ID: newID(prefix), AgentID: agentID, Description: description, SecretHash: hashSecret(secret), CreateTime: s.now()}
	objType := "agent_token"
	if agentID == "" {
		objType = "operator_credential"
	}
	err := s.store.Tx(ctx, func(tx Tx) error {
		if agentID != "" {
			if _, err := tx.GetAgent(ctx, agentID); err != nil {
				return err
			}
		}
		if err := tx.CreateCredential(ctx, c); err != nil {
			return err
		}
		return s.journal(ctx, tx, c.CreateTime, actor, objType+".create", objType, c.ID, nil, viewCredential(c))
	})
	if err != nil {
		return Credential{}, "", fmt.Errorf("create credential: %w", err)
	}
	return c, bearerValue(c.ID, secret), nil
}

// ListAgentTokens returns an agent's tokens, oldest first.
func (s *Service) ListAgentTokens(ctx context.Context, agentID string) ([]Credential, error) {
	if _, err := s.store.GetAgent(ctx, agentID); err != nil {
		return nil, err
	}
	return s.store.ListCredentials(ctx, agentID)
}

// RevokeAgentToken revokes one of an agent's tokens; revoking a revoked token is a no-op.
func (s *Service) RevokeAgentToken(ctx context.Context, actor Actor, agentID, tokenID string) (Credential, error) {
	var out Credential
	err := s.store.Tx(ctx, func(tx Tx) error {
		c, err := tx.GetCredential(ctx, tokenID)
		if err != nil {
			return err
		}
		if c.AgentID != agentID || agentID == "" {
			return NewError(ReasonCredentialNotFound, "agent %s has no token %s", agentID, tokenID)
		}
		out = c
		if c.Revoked() {
			return nil
		}
		out.RevokeTime = s.now()
		if err := tx.RevokeCredential(ctx, c.ID, out.RevokeTime); err != nil {
			return err
		}
		return s.journal(ctx, tx, out.RevokeTime, actor, "agent_token.revoke", "agent_token", c.ID, viewCredential(c), viewCredential(out))
	})
	if err != nil {
		return Credential{}, fmt.Errorf("revoke token: %w", err)
	}
	s.auth.purge()
	return out, nil
}

// AuthenticateBearer returns the actor a bearer value belongs to. A revoked or unknown
// credential is KindUnauthenticated; a suspended agent KindPermissionDenied.
func (s *Service) AuthenticateBearer(ctx context.Context, bearer string) (Actor, error) {
	id, secret, ok := splitBearer(bearer)
	if !ok || !(strings.HasPrefix(id, AgentTokenPrefix) || strings.HasPrefix(id, OperatorPrefix)) {
		return Actor{}, NewError(ReasonCredentialMalformed, "the bearer credential is not one this registry issued")
	}
	now := s.cfg.Now()
	if actor, ok := s.auth.get(id, secret, now); ok {
		return actor, nil
	}
	gen := s.auth.generation()
	c, err := s.store.GetCredential(ctx, id)
	if err != nil {
		if KindOf(err) == KindNotFound {
			return Actor{}, NewError(ReasonCredentialInvalid, "the bearer credential is not valid")
		}
		return Actor{}, err
	}
	if !secretMatches(secret, c.SecretHash) {
		return Actor{}, NewError(ReasonCredentialInvalid, "the bearer credential is not valid")
	}
	if c.Revoked() {
		return Actor{}, NewError(ReasonCredentialRevoked, "the bearer credential was revoked")
	}
	actor := Actor{Kind: ActorOperator, ID: c.ID, CredentialID: c.ID}
	if c.AgentID == "" && !strings.HasPrefix(c.ID, OperatorPrefix) {
		// An agent token made without an agent (CreateAgentToken allowed that once) is no
		// operator's credential.
		return Actor{}, NewError(ReasonCredentialInvalid, "the bearer credential is not valid")
	}
	if c.AgentID != "" {
		a, err := s.store.GetAgent(ctx, c.AgentID)
		if err != nil {
			return Actor{}, err
		}
		if a.State != AgentActive {
			return Actor{}, NewError(ReasonAgentSuspended, "agent %s is suspended", a.ID)
		}
		actor = Actor{Kind: ActorAgent, ID: a.ID, CredentialID: c.ID}
	}
	s.auth.put(id, c.SecretHash, actor, gen, now)
	return actor, nil
}

// AuthenticateCertificate returns the agent that pinned a client certificate's key (hex
// SHA-256 of its SubjectPublicKeyInfo).
func (s *Service) AuthenticateCertificate(ctx context.Context, spkiHex string) (Actor, error) {
	spkiHex = strings.ToLower(spkiHex)
	now := s.cfg.Now()
	if actor, ok := s.auth.get("spki:"+spkiHex, "", now); ok {
		return actor, nil
	}
	gen := s.auth.generation()
	a, err := s.store.FindAgentByCertSPKI(ctx, spkiHex)
	if err != nil {
		if KindOf(err) == KindNotFound {
			return Actor{}, NewError(ReasonClientCertUnknown, "the client certificate is not pinned to any agent")
		}
		return Actor{}, err
	}
	if a.State != AgentActive {
		return Actor{}, NewError(ReasonAgentSuspended, "agent %s is suspended", a.ID)
	}
	actor := Actor{Kind: ActorAgent, ID: a.ID}
	s.auth.put("spki:"+spkiHex, nil, actor, gen, now)
	return actor, nil
}
