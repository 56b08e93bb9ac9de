package server

import (
	"context"

	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
	"github.com/id4me/id4me-registry/registry"
)

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

func operatorCredentialToProto(c registry.Credential, secret string) *registryv1.OperatorCredential {
	return &registryv1.OperatorCredential{
		Id: c.ID, Description: c.Description, Secret: secret, CreateTime: ts(c.CreateTime), RevokeTime: ts(c.RevokeTime),
	}
}
