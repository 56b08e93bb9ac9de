package server

import (
	"context"
	"log/slog"

	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
	"github.com/id4me/id4me-registry/registry"
)

// adminService is AdminService: the operators' API.
type adminService struct {
	registryv1.UnimplementedAdminServiceServer
	svc *registry.Service
	log *slog.Logger
}

func (s *adminService) CreateAgent(ctx context.Context, req *registryv1.CreateAgentRequest) (*registryv1.Agent, error) {
	a, err := s.svc.CreateAgent(ctx, ActorFrom(ctx), registry.AgentSpec{
		DisplayName: req.GetDisplayName(), ClaimsEndpoint: req.GetClaimsEndpoint(), Issuer: req.GetIssuer(),
		AccountKeyJWK: req.GetAccountKeyJwk(), ClientCertSPKI: req.GetClientCertSpkiSha256(),
	})
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return agentToProto(a), nil
}

func (s *adminService) GetAgent(ctx context.Context, req *registryv1.GetAgentRequest) (*registryv1.Agent, error) {
	a, err := s.svc.GetAgent(ctx, req.GetId())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return agentToProto(a), nil
}

func (s *adminService) ListAgents(ctx context.Context, req *registryv1.ListAgentsRequest) (*registryv1.ListAgentsResponse, error) {
	agents, next, err := s.svc.ListAgents(ctx, req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	out := &registryv1.ListAgentsResponse{NextPageToken: next}
	for _, a := range agents {
		out.Agents = append(out.Agents, agentToProto(a))
	}
	return out, nil
}

var agentStateFromProto = map[registryv1.Agent_State]registry.AgentState{
	registryv1.Agent_STATE_ACTIVE:    registry.AgentActive,
	registryv1.Agent_STATE_SUSPENDED: registry.AgentSuspended,
}

func (s *adminService) UpdateAgent(ctx context.Context, req *registryv1.UpdateAgentRequest) (*registryv1.Agent, error) {
	in := req.GetAgent()
	if in == nil {
		return nil, statusError(registry.ReasonAgentRequired, "agent is required")
	}
	spec := registry.AgentSpec{
		DisplayName: in.GetDisplayName(), ClaimsEndpoint: in.GetClaimsEndpoint(), Issuer: in.GetIssuer(),
		AccountKeyJWK: in.GetAccountKeyJwk(), ClientCertSPKI: in.GetClientCertSpkiSha256(), State: agentStateFromProto[in.GetState()],
	}
	var fields []registry.AgentField
	for _, p := range req.GetUpdateMask().GetPaths() {
		fields = append(fields, registry.AgentField(p))
	}
	a, err := s.svc.UpdateAgent(ctx, ActorFrom(ctx), in.GetId(), spec, fields, in.GetEtag())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return agentToProto(a), nil
}

func (s *adminService) CreateAgentToken(ctx context.Context, req *registryv1.CreateAgentTokenRequest) (*registryv1.AgentToken, error) {
	c, secret, err := s.svc.CreateAgentToken(ctx, ActorFrom(ctx), req.GetAgentId(), req.GetDescription())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return tokenToProto(c, secret), nil
}

func (s *adminService) ListAgentTokens(ctx context.Context, req *registryv1.ListAgentTokensRequest) (*registryv1.ListAgentTokensResponse, error) {
	cs, err := s.svc.ListAgentTokens(ctx, req.GetAgentId())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	out := &registryv1.ListAgentTokensResponse{}
	for _, c := range cs {
		out.Tokens = append(out.Tokens, tokenToProto(c, ""))
	}
	return out, nil
}

func (s *adminService) RevokeAgentToken(ctx context.Context, req *registryv1.RevokeAgentTokenRequest) (*registryv1.AgentToken, error) {
	c, err := s.svc.RevokeAgentToken(ctx, ActorFrom(ctx), req.GetAgentId(), req.GetTokenId())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return tokenToProto(c, ""), nil
}

func (s *adminService) GetIdentifier(ctx context.Context, req *registryv1.GetIdentifierRequest) (*registryv1.Identifier, error) {
	return getIdentifier(ctx, s.svc, s.log, req)
}

func (s *adminService) ListJournal(ctx context.Context, req *registryv1.ListJournalRequest) (*registryv1.ListJournalResponse, error) {
	entries, next, err := s.svc.ListJournal(ctx, registry.JournalFilter{ObjectType: req.GetObjectType(), ObjectID: req.GetObjectId()}, req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	out := &registryv1.ListJournalResponse{NextPageToken: next}
	for _, e := range entries {
		out.Entries = append(out.Entries, journalToProto(e))
	}
	return out, nil
}

func (s *adminService) SetServerStatus(ctx context.Context, req *registryv1.SetServerStatusRequest) (*registryv1.Identifier, error) {
	statuses, err := serverStatusesFromProto(req.GetStatuses())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	i, err := s.svc.SetServerStatus(ctx, ActorFrom(ctx), req.GetIdentifier(), statuses, req.GetReason(), req.GetEtag())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return identifierToProto(i), nil
}

func (s *adminService) CreateOperatorCredential(ctx context.Context, req *registryv1.CreateOperatorCredentialRequest) (*registryv1.OperatorCredential, error) {
	c, secret, err := s.svc.CreateOperatorCredential(ctx, ActorFrom(ctx), req.GetDescription())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return operatorCredentialToProto(c, secret), nil
}

func (s *adminService) ListOperatorCredentials(ctx context.Context, _ *registryv1.ListOperatorCredentialsRequest) (*registryv1.ListOperatorCredentialsResponse, error) {
	cs, err := s.svc.ListOperatorCredentials(ctx)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	out := &registryv1.ListOperatorCredentialsResponse{}
	for _, c := range cs {
		out.Credentials = append(out.Credentials, operatorCredentialToProto(c, ""))
	}
	return out, nil
}

func (s *adminService) RevokeOperatorCredential(ctx context.Context, req *registryv1.RevokeOperatorCredentialRequest) (*registryv1.OperatorCredential, error) {
	c, err := s.svc.RevokeOperatorCredential(ctx, ActorFrom(ctx), req.GetId())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return operatorCredentialToProto(c, ""), nil
}

func (s *adminService) CreateCredentialLink(ctx context.Context, req *registryv1.CreateCredentialLinkRequest) (*registryv1.CredentialLink, error) {
	link, err := s.svc.CreateCredentialLinkWithReason(ctx, ActorFrom(ctx), req.GetIdentifier(), linkPurposeFromProto[req.GetPurpose()], req.GetReason())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return credentialLinkToProto(link), nil
}
