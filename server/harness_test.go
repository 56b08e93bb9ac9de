package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/id4me/id4me-registry/authority"
	"github.com/id4me/id4me-registry/dnsverify"
	"github.com/id4me/id4me-registry/internal/devdns"
	"github.com/id4me/id4me-registry/internal/testdb"
	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
	"github.com/id4me/id4me-registry/registry"
	"github.com/id4me/id4me-registry/server"
	"github.com/id4me/id4me-registry/sqlstore"
)

// The zone every test identifier lives in, served by both test nameservers.
const zone = "example.test."

// clock is a settable clock for the registry.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// env is a running registry: a gRPC server on a loopback listener, two authoritative
// nameservers for example.test on loopback, and an operator credential.
type env struct {
	t     *testing.T
	ns    []*devdns.Server
	store *sqlstore.Store
	svc   *registry.Service
	// mapping is the resolver the authority reads, shared with svc.
	mapping *registry.Resolver
	srv     *server.Server
	addr    string
	conn    *grpc.ClientConn
	admin   string
	clock   *clock
	logs    *syncBuffer
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

type envOptions struct {
	// dsn picks the database; default a SQLite file of the test's own.
	dsn        func(t testing.TB) string
	agentRate  rate.Limit
	agentBurst int
	noPlain    bool
	// clientCA is a PEM file agents' client certificates must chain to.
	clientCA string
	quorum   int
	// eventPollInterval is server.Config.EventPollInterval; default 1s.
	eventPollInterval time.Duration
	// configure, if set, changes the registry's configuration before the service is made.
	configure func(*registry.Config)
	// authority serves the embedded authority on a real HTTPS listener (env.issuer);
	// configureAuthority, if set, changes its configuration first.
	authority          bool
	configureAuthority func(*authority.Config)
	// configureKeys, if set, changes the configuration of the authority's signing keys.
	configureKeys func(*authority.KeyConfig)
	// limits is server.Config.Limits; without MaxInFlight no call is shed, as the tests of
	// races start more calls at once than the default bounds admit.
	limits server.Limits
	// pprof is server.Config.Pprof.
	pprof bool
}

// syncBuffer collects log output from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newEnv(t *testing.T, opts envOptions) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, clock: &clock{now: time.Now().UTC()}, logs: &syncBuffer{}}
	// Last: no registry error answered may have a reason that is not as catalogued.
	t.Cleanup(func() {
		for line := range strings.Lines(e.logs.String()) {
			if strings.Contains(line, server.UncataloguedReason) {
				t.Errorf("a registry error is not as registry/reasons.go catalogues it: %s", line)
			}
		}
	})
	for range 2 {
		ns, err := devdns.Start("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ns.Close() })
		ns.AddZone(zone)
		ns.AddZone("delegated.test.")
		e.ns = append(e.ns, ns)
	}
	if opts.dsn == nil {
		opts.dsn = testdb.SQLite
	}
	log := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	store, err := sqlstore.Open(ctx, opts.dsn(t), sqlstore.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	e.store = store
	prom := prometheus.NewRegistry()
	metrics := server.NewMetrics(prom)
	v, err := dnsverify.New(dnsverify.Config{
		Servers: []string{e.ns[0].Addr, e.ns[1].Addr}, QueryTimeout: 300 * time.Millisecond,
		Timeout: 2 * time.Second, Quorum: opts.quorum, OnQuery: metrics.DNSQuery,
	})
	if err != nil {
		t.Fatal(err)
	}
	// The test identifiers are under example.test, a special-use name, as dev mode allows.
	cfg := registry.Config{
		Store: store, DNS: v, OpenID: v, AuthorityIssuer: "id.example.test",
		ChallengeTTL: time.Hour, ChallengeMaxAttempts: 3, Now: e.clock.Now, Observer: metrics,
		AllowSpecialUseNames: true,
	}
	// The authority's tests play agents with claims endpoints on loopback (internal/oidctest).
	cfg.AllowLocalEndpoints = opts.authority
	if opts.configure != nil {
		opts.configure(&cfg)
	}
	if cfg.Resolver == nil {
		cfg.Resolver = registry.NewResolver(store, cfg.ResolveCacheTTL, cfg.Now)
	}
	e.mapping = cfg.Resolver
	cert, _, err := server.DevCertificate()
	if err != nil {
		t.Fatal(err)
	}
	e.tlsCfg, err = server.ServerTLSConfig(cert, opts.clientCA)
	if err != nil {
		t.Fatal(err)
	}
	if opts.limits.MaxInFlight == nil {
		opts.limits.MaxInFlight = map[server.CallClass]int{server.ClassRead: -1, server.ClassWrite: -1, server.ClassDNS: -1, server.ClassWatch: -1}
	}
	if opts.agentRate == 0 {
		opts.agentRate = rate.Inf
	}
	var (
		authHandler http.Handler
		hl          net.Listener
	)
	if opts.authority {
		if hl, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		e.issuer = "https://" + hl.Addr().String()
		e.roots = x509.NewCertPool()
		e.roots.AddCert(cert.Leaf)
		kcfg := authority.KeyConfig{Now: e.clock.Now, Logger: log}
		if opts.configureKeys != nil {
			opts.configureKeys(&kcfg)
		}
		keys, err := authority.NewKeySet(ctx, store.Authority(), kcfg)
		if err != nil {
			t.Fatal(err)
		}
		acfg := authority.Config{
			Issuer: e.issuer, Store: store.Authority(), Keys: keys, Resolver: e.mapping, Logger: log, Now: e.clock.Now,
			// Cheap hashes: the tests count logins, not hash strength.
			Password: authority.PasswordParams{Memory: 64, Time: 1, Threads: 1},
			Observe:  metrics.AuthorityEvent,
		}
		if opts.configureAuthority != nil {
			opts.configureAuthority(&acfg)
		}
		if e.auth, err = authority.New(acfg); err != nil {
			t.Fatal(err)
		}
		cfg.CredentialLinks = e.auth
		authHandler = e.auth.Handler()
	}
	if e.svc, err = registry.New(cfg); err != nil {
		t.Fatal(err)
	}
	e.srv, err = server.New(server.Config{
		Service: e.svc, Logger: log, TLS: e.tlsCfg, AllowPlaintextLoopback: !opts.noPlain,
		AgentRate: opts.agentRate, AgentBurst: opts.agentBurst, Prometheus: prom,
		EventPollInterval: opts.eventPollInterval, Authority: authHandler,
		Limits: opts.limits, Ready: store.Ping, Pprof: opts.pprof,
	})
	if err != nil {
		t.Fatal(err)
	}
	if hl != nil {
		go e.srv.ServeHTTPS(hl)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = l.Addr().String()
	go e.srv.ServeGRPC(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.srv.Shutdown(ctx)
	})
	e.http = httptest.NewServer(e.srv.Handler())
	t.Cleanup(e.http.Close)
	e.ops = httptest.NewServer(e.srv.AdminHandler())
	t.Cleanup(e.ops.Close)
	e.conn, err = grpc.NewClient(e.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.conn.Close() })
	e.registry = registryv1.NewRegistryServiceClient(e.conn)
	e.adminAPI = registryv1.NewAdminServiceClient(e.conn)
	e.resolver = registryv1.NewResolverServiceClient(e.conn)
	_, e.admin, err = e.svc.CreateOperatorCredential(ctx, registry.System, "test")
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// as returns a context that authenticates with bearer.
func as(bearer string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+bearer)
}

// testAgent is an agent created through the AdminService, with a token.
type testAgent struct {
	agent *registryv1.Agent
	token string
	key   *ecdsa.PrivateKey
}

func (a testAgent) ctx() context.Context { return as(a.token) }

// actorOf is the registry actor of a test agent, for calls straight to the service.
func actorOf(a testAgent) registry.Actor {
	return registry.Actor{Kind: registry.ActorAgent, ID: a.agent.Id}
}

func (e *env) newAgent(name string, certPins ...string) testAgent {
	e.t.Helper()
	return e.newAgentAt(name, "https://"+name+".agent.test", "https://"+name+".agent.test/userinfo", certPins...)
}

// newAgentAt creates an agent with the given issuer and claims endpoint.
func (e *env) newAgentAt(name, issuer, claimsEndpoint string, certPins ...string) testAgent {
	e.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		e.t.Fatal(err)
	}
	jwk, err := jose.JSONWebKey{Key: &key.PublicKey}.MarshalJSON()
	if err != nil {
		e.t.Fatal(err)
	}
	a, err := e.adminAPI.CreateAgent(as(e.admin), &registryv1.CreateAgentRequest{
		DisplayName: name, ClaimsEndpoint: claimsEndpoint,
		Issuer: issuer, AccountKeyJwk: string(jwk), ClientCertSpkiSha256: certPins,
	})
	if err != nil {
		e.t.Fatalf("CreateAgent: %v", err)
	}
	tok, err := e.adminAPI.CreateAgentToken(as(e.admin), &registryv1.CreateAgentTokenRequest{AgentId: a.Id, Description: "test"})
	if err != nil {
		e.t.Fatalf("CreateAgentToken: %v", err)
	}
	return testAgent{agent: a, token: tok.Secret, key: key}
}

// publish serves the challenge's record on the given nameservers (all when none given).
func (e *env) publish(c *registryv1.Challenge, servers ...int) {
	if len(servers) == 0 {
		servers = []int{0, 1}
	}
	for _, k := range servers {
		e.ns[k].SetTXT(c.RecordName, c.RecordValue)
	}
}

// register runs the whole flow for identifier as agent a and returns the identifier.
func (e *env) register(a testAgent, identifier string) *registryv1.Identifier {
	e.t.Helper()
	c := e.validChallenge(a, identifier)
	resp, err := e.registry.RegisterIdentifier(a.ctx(), &registryv1.RegisterIdentifierRequest{ChallengeId: c.Id})
	if err != nil {
		e.t.Fatalf("RegisterIdentifier(%s): %v", identifier, err)
	}
	return resp.Identifier
}

// validChallenge creates, publishes and verifies a register challenge.
func (e *env) validChallenge(a testAgent, identifier string) *registryv1.Challenge {
	e.t.Helper()
	c, err := e.registry.CreateChallenge(a.ctx(), &registryv1.CreateChallengeRequest{Identifier: identifier, Purpose: registryv1.Purpose_PURPOSE_REGISTER})
	if err != nil {
		e.t.Fatalf("CreateChallenge(%s): %v", identifier, err)
	}
	e.publish(c)
	v, err := e.registry.VerifyChallenge(a.ctx(), &registryv1.VerifyChallengeRequest{Id: c.Id})
	if err != nil {
		e.t.Fatalf("VerifyChallenge: %v", err)
	}
	if v.Status != registryv1.Challenge_STATUS_VALID {
		e.t.Fatalf("VerifyChallenge: status %v, problem %v", v.Status, v.Problem)
	}
	return v
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
	var n int64
	q := e.store.DB().Table(table)
	if where != "" {
		q = q.Where(where, args...)
	}
	if err := q.Count(&n).Error; err != nil {
		e.t.Fatal(err)
	}
	return n
}
