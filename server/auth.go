package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"strings"

	middleware "github.com/grpc-ecosystem/go-grpc-middleware/v2"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/id4me/id4me-registry/registry"
)

type actorKey struct{}

// ActorFrom returns the authenticated actor of a call (the zero Actor if none).
func ActorFrom(ctx context.Context) registry.Actor {
	a, _ := ctx.Value(actorKey{}).(registry.Actor)
	return a
}

// callState is shared by the interceptors of one call. The outer ones (logging) see the
// context as it was before authentication, so authentication records the actor here too.
type callState struct {
	actor registry.Actor
}

type callStateKey struct{}

func callStateFrom(ctx context.Context) *callState {
	s, _ := ctx.Value(callStateKey{}).(*callState)
	return s
}

func withCallStateUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	return h(context.WithValue(ctx, callStateKey{}, &callState{}), req)
}

func withCallStateStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	w := middleware.WrapServerStream(ss)
	w.WrappedContext = context.WithValue(ss.Context(), callStateKey{}, &callState{})
	return h(srv, w)
}

// Service name prefixes of full method names, for authorisation.
const (
	registryServicePrefix = "/id4me.registry.v1.RegistryService/"
	adminServicePrefix    = "/id4me.registry.v1.AdminService/"
	resolverServicePrefix = "/id4me.registry.v1.ResolverService/"
)

// needsCredentials says which calls go through authentication: all but health and reflection.
func needsCredentials(_ context.Context, c interceptors.CallMeta) bool {
	return !strings.HasPrefix(c.FullMethod(), "/grpc.health.v1.Health/") &&
		!strings.HasPrefix(c.FullMethod(), "/grpc.reflection.")
}

// authenticator authenticates a call by its bearer credential or, failing that, its
// pinned mTLS client certificate, and authorises it by service: agents call the
// RegistryService, operators the AdminService and ResolverService.
type authenticator struct {
	svc *registry.Service
	log *slog.Logger
}

func (a authenticator) authenticate(ctx context.Context) (context.Context, error) {
	method, _ := grpc.Method(ctx)
	actor, err := a.identify(ctx)
	if err != nil {
		return nil, err
	}
	switch {
	case strings.HasPrefix(method, registryServicePrefix):
		if actor.Kind != registry.ActorAgent {
			return nil, statusError(registry.ReasonAgentCredentialRequired, "the RegistryService is for agents; this credential is an operator's")
		}
	case strings.HasPrefix(method, adminServicePrefix), strings.HasPrefix(method, resolverServicePrefix):
		if actor.Kind != registry.ActorOperator {
			return nil, statusError(registry.ReasonOperatorCredentialRequired, "this service is for registry operators")
		}
	default:
		return nil, statusError(registry.ReasonMethodNotAllowed, "unknown method")
	}
	if st := callStateFrom(ctx); st != nil {
		st.actor = actor
	}
	return context.WithValue(ctx, actorKey{}, actor), nil
}

func (a authenticator) identify(ctx context.Context) (registry.Actor, error) {
	if md, _ := metadata.FromIncomingContext(ctx); len(md.Get("authorization")) > 0 {
		bearer, err := auth.AuthFromMD(ctx, "bearer")
		if err != nil {
			return registry.Actor{}, statusError(registry.ReasonCredentialMalformed, "the authorization metadata must be \"Bearer <token>\"")
		}
		actor, err := a.svc.AuthenticateBearer(ctx, bearer)
		if err != nil {
			return registry.Actor{}, toStatus(ctx, a.log, err)
		}
		return actor, nil
	}
	if spki, ok := clientCertSPKI(ctx); ok {
		actor, err := a.svc.AuthenticateCertificate(ctx, spki)
		if err != nil {
			return registry.Actor{}, toStatus(ctx, a.log, err)
		}
		return actor, nil
	}
	return registry.Actor{}, statusError(registry.ReasonCredentialRequired, "send \"authorization: Bearer <token>\" metadata or a pinned client certificate")
}

// clientCertSPKI returns the hex SHA-256 of the SubjectPublicKeyInfo of the call's TLS
// client certificate. The TLS handshake proved the client holds the key, so the pin alone
// identifies the agent.
func clientCertSPKI(ctx context.Context) (string, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "", false
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		return "", false
	}
	sum := sha256.Sum256(info.State.PeerCertificates[0].RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:]), true
}
