package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/id4me/id4me-registry/authority"
	"github.com/id4me/id4me-registry/internal/dbtest"
	"github.com/id4me/id4me-registry/internal/devdns"
	"github.com/id4me/id4me-registry/internal/oidctest"
	"github.com/id4me/id4me-registry/internal/testenv"
	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
	"github.com/id4me/id4me-registry/registry"
	"github.com/id4me/id4me-registry/server"
	"github.com/id4me/id4me-registry/sqlstore"
)

// emailClaims is a claims request parameter as ID4me relying parties send it.
const emailClaims = testenv.EmailClaims

// clock is the registry's settable clock.
// env is a running registry (testenv.Env): a gRPC server on a loopback listener, two
// authoritative nameservers for example.test on loopback, and an operator credential. Its
// fields are the Env's; a test may swap the clients and the operator credential.
type env struct {
	t     *testing.T
	h     *testenv.Env
	ns    []*devdns.Server
	store *sqlstore.Store
	svc   *registry.Service
	// mapping is the resolver the authority reads, shared with svc.
	mapping *registry.Resolver
	srv     *server.Server
	addr    string
	conn    *grpc.ClientConn
	admin   string
	clock   *testenv.Clock
	logs    *testenv.LogBuffer
	tlsCfg  *tls.Config
	http    *httptest.Server
	// ops serves the operator's handler (/metrics, /readyz).
	ops      *httptest.Server
	registry registryv1.RegistryServiceClient
	adminAPI registryv1.AdminServiceClient
	resolver registryv1.ResolverServiceClient
	// With envOptions.authority: the authority, its issuer URL (its HTTPS listener) and the
	// roots that trust its certificate.
	auth   *authority.Authority
	issuer string
	roots  *x509.CertPool
}

// envOptions are testenv.Options.
type envOptions = testenv.Options

func newEnv(t *testing.T, opts envOptions) *env {
	t.Helper()
	var h *testenv.Env
	// Last: no registry error answered may have a reason that is not as catalogued.
	t.Cleanup(func() {
		if h == nil {
			return
		}
		for line := range strings.Lines(h.Logs.String()) {
			if strings.Contains(line, server.UncataloguedReason) {
				t.Errorf("a registry error is not as registry/reasons.go catalogues it: %s", line)
			}
		}
	})
	h = testenv.New(t, opts)
	return &env{
		t: t, h: h, ns: h.NS, store: h.Store, svc: h.Svc, srv: h.Srv, addr: h.Addr, conn: h.Conn,
		admin: h.Operator, clock: h.Clock, logs: h.Logs, tlsCfg: h.TLS, http: h.HTTP, ops: h.Ops,
		registry: h.RegistryAPI, adminAPI: h.AdminAPI, resolver: h.ResolverAPI, mapping: h.Resolver,
		auth: h.Auth, issuer: h.Issuer, roots: h.Roots,
	}
}

// harness is e's testenv.Env with the clients and operator credential e holds now.
func (e *env) harness() *testenv.Env {
	h := *e.h
	h.RegistryAPI, h.AdminAPI, h.Operator = e.registry, e.adminAPI, e.admin
	return &h
}

// as returns a context that authenticates with bearer.
func as(bearer string) context.Context { return testenv.As(bearer) }

// testAgent is an agent created through the AdminService, with a token.
type testAgent struct {
	agent *registryv1.Agent
	token string
	key   *ecdsa.PrivateKey
}

func agentOf(a testenv.Agent) testAgent { return testAgent{agent: a.Agent, token: a.Token, key: a.Key} }

func (a testAgent) h() testenv.Agent {
	return testenv.Agent{Agent: a.agent, Token: a.token, Key: a.key}
}

func (a testAgent) ctx() context.Context { return as(a.token) }

// actorOf is the registry actor of a test agent, for calls straight to the service.
func actorOf(a testAgent) registry.Actor {
	return registry.Actor{Kind: registry.ActorAgent, ID: a.agent.Id}
}

func (e *env) newAgent(name string, certPins ...string) testAgent {
	e.t.Helper()
	return agentOf(e.harness().NewAgent(name, certPins...))
}

// newAgentAt creates an agent with the given issuer and claims endpoint.
func (e *env) newAgentAt(name, issuer, claimsEndpoint string, certPins ...string) testAgent {
	e.t.Helper()
	return agentOf(e.harness().NewAgentAt(name, issuer, claimsEndpoint, certPins...))
}

// publish serves the challenge's record on the given nameservers (all when none given).
func (e *env) publish(c *registryv1.Challenge, servers ...int) { e.h.Publish(c, servers...) }

// register runs the whole flow for identifier as agent a and returns the identifier.
func (e *env) register(a testAgent, identifier string) *registryv1.Identifier {
	e.t.Helper()
	return e.harness().Register(a.h(), identifier)
}

// validChallenge creates, publishes and verifies a register challenge.
func (e *env) validChallenge(a testAgent, identifier string) *registryv1.Challenge {
	e.t.Helper()
	return e.harness().ValidChallenge(a.h(), identifier, registryv1.Purpose_PURPOSE_REGISTER)
}

// authEnv is a registry with its authority on a real HTTPS listener, and what a login needs:
// clients that trust it.
type authEnv struct {
	*env
	// rpClient is the relying parties' and agents' client; browser makes holders' clients.
	rpClient *http.Client
}

func newAuthEnv(t *testing.T, opts envOptions) *authEnv {
	t.Helper()
	opts.Authority = true
	e := newEnv(t, opts)
	return &authEnv{env: e, rpClient: e.h.RPClient}
}

// startAgent starts a test agent's claims endpoint and creates the agent with it.
func (e *authEnv) startAgent(name string) (testAgent, *oidctest.Agent) {
	e.t.Helper()
	a, ag := e.harness().StartAgent(name)
	return agentOf(a), ag
}

// holderFor registers identifier with agent a and has its holder set a password (and a
// TOTP secret, when withTOTP) through the credential link of the registration.
func (e *authEnv) holderFor(a testAgent, identifier string, withTOTP bool) *oidctest.Holder {
	e.t.Helper()
	return e.harness().HolderFor(a.h(), identifier, withTOTP)
}

func (e *authEnv) setCredentials(identifier, link string, withTOTP bool) *oidctest.Holder {
	e.t.Helper()
	return e.h.SetCredentials(identifier, link, withTOTP)
}

// totpCode is the current TOTP code of secret by the env's clock.
func (e *authEnv) totpCode(secret string) string { return e.h.TOTPCode(secret) }

// newRP registers a relying party.
func (e *authEnv) newRP(metadata map[string]any) *oidctest.RP {
	e.t.Helper()
	return e.h.NewRP(metadata)
}

// login runs a whole login of h at rp with extra authorization parameters.
func (e *authEnv) login(rp *oidctest.RP, h *oidctest.Holder, extra map[string]string) *oidctest.Result {
	e.t.Helper()
	return e.h.Login(rp, h, extra)
}

// wantStatus fails unless err is a gRPC status with code and an ErrorInfo with reason.
func wantStatus[R ~string](t *testing.T, err error, code codes.Code, reason R) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v %s", code, reason)
	}
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("got %v, want a gRPC status", err)
	}
	if st.Code() != code {
		t.Fatalf("got code %v (%s), want %v %s", st.Code(), st.Message(), code, reason)
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			if info.Reason != string(reason) {
				t.Fatalf("got reason %s (%s), want %s", info.Reason, st.Message(), reason)
			}
			if info.Domain != server.ErrorDomain {
				t.Fatalf("got domain %s, want %s", info.Domain, server.ErrorDomain)
			}
			if st.Message() == "" {
				t.Fatal("status has no message")
			}
			return
		}
	}
	t.Fatalf("status %v %q has no ErrorInfo, want reason %s", st.Code(), st.Message(), reason)
}

// countRows counts the rows of a table straight from the database.
func (e *env) countRows(table, where string, args ...any) int64 {
	e.t.Helper()
	return dbtest.CountRows(e.t, e.store, table, where, args...)
}
