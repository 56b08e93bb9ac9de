package server

import (
	"context"
	"log/slog"
	"time"

	"google.golang.org/grpc"

	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
	"github.com/id4me/id4me-registry/registry"
)

// registryService is RegistryService: the agents' API.
type registryService struct {
	registryv1.UnimplementedRegistryServiceServer
	svc *registry.Service
	log *slog.Logger
	// pollInterval is how often an event stream reads the store without a signal (events
	// committed by other instances are seen only so) and re-authenticates its caller.
	pollInterval time.Duration
	// reauth authenticates a call's credential again, from its metadata or TLS state.
	reauth func(context.Context) (registry.Actor, error)
	// stopping is closed when the server shuts down; open event streams then end.
	stopping <-chan struct{}
	// watches caps each agent's open event streams.
	watches *watchCounter
}

func (s *registryService) CreateChallenge(ctx context.Context, req *registryv1.CreateChallengeRequest) (*registryv1.Challenge, error) {
	c, err := s.svc.CreateChallenge(ctx, ActorFrom(ctx), req.GetIdentifier(), purposeFromProto(req.GetPurpose()))
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return challengeToProto(c), nil
}

func (s *registryService) GetChallenge(ctx context.Context, req *registryv1.GetChallengeRequest) (*registryv1.Challenge, error) {
	c, err := s.svc.GetChallenge(ctx, ActorFrom(ctx), req.GetId())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return challengeToProto(c), nil
}

func (s *registryService) VerifyChallenge(ctx context.Context, req *registryv1.VerifyChallengeRequest) (*registryv1.Challenge, error) {
	c, err := s.svc.VerifyChallenge(ctx, ActorFrom(ctx), req.GetId())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return challengeToProto(c), nil
}

func (s *registryService) RegisterIdentifier(ctx context.Context, req *registryv1.RegisterIdentifierRequest) (*registryv1.RegisterIdentifierResponse, error) {
	i, err := s.svc.RegisterIdentifier(ctx, ActorFrom(ctx), req.GetChallengeId(), req.GetClaimsEndpoint(), req.GetRequestId())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	out := &registryv1.RegisterIdentifierResponse{Identifier: identifierToProto(i)}
	// The registration stands whether or not the link can be made: the agent can ask for
	// one with CreateCredentialLink.
	link, err := s.svc.CreateCredentialLink(ctx, ActorFrom(ctx), i.Name, registry.CredentialLinkSetup)
	switch {
	case err == nil:
		out.CredentialLink = credentialLinkToProto(link)
	case registry.KindOf(err) != registry.KindUnimplemented:
		s.log.WarnContext(ctx, "registered without a credential link", "identifier", i.Name, "err", err)
	}
	return out, nil
}

func (s *registryService) CreateCredentialLink(ctx context.Context, req *registryv1.CreateCredentialLinkRequest) (*registryv1.CredentialLink, error) {
	link, err := s.svc.CreateCredentialLinkWithReason(ctx, ActorFrom(ctx), req.GetIdentifier(), linkPurposeFromProto[req.GetPurpose()], req.GetReason())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return credentialLinkToProto(link), nil
}

func (s *registryService) GetIdentifier(ctx context.Context, req *registryv1.GetIdentifierRequest) (*registryv1.Identifier, error) {
	return getIdentifier(ctx, s.svc, s.log, req)
}

func getIdentifier(ctx context.Context, svc *registry.Service, log *slog.Logger, req *registryv1.GetIdentifierRequest) (*registryv1.Identifier, error) {
	i, err := svc.GetIdentifier(ctx, ActorFrom(ctx), req.GetIdentifier())
	if err != nil {
		return nil, toStatus(ctx, log, err)
	}
	return identifierToProto(i), nil
}

func (s *registryService) ListIdentifiers(ctx context.Context, req *registryv1.ListIdentifiersRequest) (*registryv1.ListIdentifiersResponse, error) {
	ids, next, err := s.svc.ListIdentifiers(ctx, ActorFrom(ctx), req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	out := &registryv1.ListIdentifiersResponse{NextPageToken: next, Identifiers: make([]*registryv1.Identifier, len(ids))}
	for k, i := range ids {
		out.Identifiers[k] = identifierToProto(i)
	}
	return out, nil
}

func (s *registryService) UpdateIdentifier(ctx context.Context, req *registryv1.UpdateIdentifierRequest) (*registryv1.Identifier, error) {
	in := req.GetIdentifier()
	if in == nil {
		return nil, statusError(registry.ReasonIdentifierRequired, "identifier is required")
	}
	statuses, err := statusesFromProto(in.GetStatuses())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	u := registry.IdentifierUpdate{Identifier: in.GetName(), ClaimsEndpoint: in.GetClaimsEndpoint(), Statuses: statuses, Etag: in.GetEtag()}
	for _, p := range req.GetUpdateMask().GetPaths() {
		u.Fields = append(u.Fields, registry.IdentifierField(p))
	}
	i, err := s.svc.UpdateIdentifier(ctx, ActorFrom(ctx), u)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return identifierToProto(i), nil
}

func (s *registryService) DeleteIdentifier(ctx context.Context, req *registryv1.DeleteIdentifierRequest) (*registryv1.Identifier, error) {
	i, err := s.svc.DeleteIdentifier(ctx, ActorFrom(ctx), req.GetIdentifier(), req.GetEtag())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return identifierToProto(i), nil
}

func (s *registryService) RestoreIdentifier(ctx context.Context, req *registryv1.RestoreIdentifierRequest) (*registryv1.Identifier, error) {
	i, err := s.svc.RestoreIdentifier(ctx, ActorFrom(ctx), req.GetIdentifier())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return identifierToProto(i), nil
}

func (s *registryService) RequestTransfer(ctx context.Context, req *registryv1.RequestTransferRequest) (*registryv1.Transfer, error) {
	t, err := s.svc.RequestTransfer(ctx, ActorFrom(ctx), req.GetChallengeId(), req.GetRequestId())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return transferToProto(t), nil
}

func (s *registryService) ApproveTransfer(ctx context.Context, req *registryv1.ApproveTransferRequest) (*registryv1.Transfer, error) {
	t, err := s.svc.ApproveTransfer(ctx, ActorFrom(ctx), req.GetId())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return transferToProto(t), nil
}

func (s *registryService) RejectTransfer(ctx context.Context, req *registryv1.RejectTransferRequest) (*registryv1.Transfer, error) {
	t, err := s.svc.RejectTransfer(ctx, ActorFrom(ctx), req.GetId())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return transferToProto(t), nil
}

func (s *registryService) CancelTransfer(ctx context.Context, req *registryv1.CancelTransferRequest) (*registryv1.Transfer, error) {
	t, err := s.svc.CancelTransfer(ctx, ActorFrom(ctx), req.GetId())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return transferToProto(t), nil
}

func (s *registryService) GetTransfer(ctx context.Context, req *registryv1.GetTransferRequest) (*registryv1.Transfer, error) {
	t, err := s.svc.GetTransfer(ctx, ActorFrom(ctx), req.GetId())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return transferToProto(t), nil
}

func (s *registryService) ListTransfers(ctx context.Context, req *registryv1.ListTransfersRequest) (*registryv1.ListTransfersResponse, error) {
	dir, err := transferDirectionFromProto(req.GetDirection())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	transfers, next, err := s.svc.ListTransfers(ctx, ActorFrom(ctx), dir, req.GetPendingOnly(), req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	out := &registryv1.ListTransfersResponse{NextPageToken: next, Transfers: make([]*registryv1.Transfer, len(transfers))}
	for k, t := range transfers {
		out.Transfers[k] = transferToProto(t)
	}
	return out, nil
}

func (s *registryService) ListEvents(ctx context.Context, req *registryv1.ListEventsRequest) (*registryv1.ListEventsResponse, error) {
	evs, next, err := s.svc.ListEvents(ctx, ActorFrom(ctx), req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	out := &registryv1.ListEventsResponse{NextPageToken: next, Events: make([]*registryv1.Event, len(evs))}
	for k, ev := range evs {
		out.Events[k] = eventToProto(ev)
	}
	return out, nil
}

func (s *registryService) AckEvents(ctx context.Context, req *registryv1.AckEventsRequest) (*registryv1.AckEventsResponse, error) {
	n, err := s.svc.AckEvents(ctx, ActorFrom(ctx), req.GetEventIds())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return &registryv1.AckEventsResponse{AcknowledgedCount: int32(n)}, nil
}

// watchBatch is how many events a stream reads from the store at a time.
const watchBatch = 500

// WatchEvents streams the agent's events. It reads what is there, then waits for this
// instance's signal of a new event, the poll interval (for events committed by other
// instances) or the end of the call, and reads again after the last event sent. The signal
// channel is taken before each read, so an event committed between the read and the wait
// wakes the stream at once. Every poll interval or so the caller's credential is checked
// again (the registry's authentication cache makes that cheap), so a revoked token or a
// suspended agent loses an open stream as it would lose its next call. Shutdown ends the
// stream with UNAVAILABLE; the client reconnects with after_id.
func (s *registryService) WatchEvents(req *registryv1.WatchEventsRequest, stream grpc.ServerStreamingServer[registryv1.Event]) error {
	ctx := stream.Context()
	actor := ActorFrom(ctx)
	release, err := s.watches.acquire(actor.ID)
	if err != nil {
		return err
	}
	defer release()
	after := req.GetAfterId() // the registry refuses a negative one on the first read
	if after == 0 {
		// From the oldest unacknowledged event on; from then on every event, acknowledged
		// or not, so an acknowledgement by another reader does not hide one from this stream.
		start, err := s.svc.EventsStart(ctx, actor)
		if err != nil {
			return toStatus(ctx, s.log, err)
		}
		after = start
	}
	poll := time.NewTicker(s.pollInterval)
	defer poll.Stop()
	lastAuth := time.Now()
	for {
		signal := s.svc.EventSignal(actor.ID)
		evs, err := s.svc.EventsAfter(ctx, actor, after, watchBatch)
		if err != nil {
			return toStatus(ctx, s.log, err)
		}
		for _, ev := range evs {
			if err := stream.Send(eventToProto(ev)); err != nil {
				return err
			}
			after = ev.ID
		}
		if len(evs) < watchBatch {
			// Caught up: wait for news. With a full batch more are waiting; read on at once.
			select {
			case <-signal:
			case <-poll.C:
			case <-s.stopping:
			case <-ctx.Done():
			}
		}
		select {
		case <-s.stopping:
			return statusError(registry.ReasonServerShuttingDown, "the server is shutting down; watch again with after_id set to the last event received")
		case <-ctx.Done():
			return toStatus(ctx, s.log, ctx.Err())
		default:
		}
		if time.Since(lastAuth) >= s.pollInterval {
			again, err := s.reauth(ctx)
			if err != nil {
				return err
			}
			if again.ID != actor.ID {
				return statusError(registry.ReasonCredentialChanged, "the credential no longer belongs to the agent that opened the stream")
			}
			lastAuth = time.Now()
		}
	}
}
