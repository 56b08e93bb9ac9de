package server

import (
	"context"
	"log/slog"

	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
	"github.com/id4me/id4me-registry/registry"
)

// resolverService is ResolverService: the read-only mapping.
type resolverService struct {
	registryv1.UnimplementedResolverServiceServer
	svc *registry.Service
	log *slog.Logger
}

func (s *resolverService) ResolveIdentifier(ctx context.Context, req *registryv1.ResolveIdentifierRequest) (*registryv1.Resolution, error) {
	r, err := s.svc.Resolve(ctx, req.GetIdentifier())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return &registryv1.Resolution{
		Identifier: r.Identifier, DnsName: r.DNSName, AgentId: r.AgentID, ClaimsEndpoint: r.ClaimsEndpoint,
		AgentIssuer: r.AgentIssuer, Statuses: statusesToProto(r.Statuses),
	}, nil
}
