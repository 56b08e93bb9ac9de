// Package testenv runs the registry for tests that cross packages: the whole stack in process
// (gRPC server, registry, store, embedded authority on a real HTTPS listener, two loopback
// nameservers; New), or the id4me-registry binary as a process (Binary, StartInstance, CLI).
// It is for tests only: the server tests build their harness on it, and so do the
// end-to-end tests in e2e/.
package testenv

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
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/id4me/id4me-registry/authority"
	"github.com/id4me/id4me-registry/dnsverify"
	"github.com/id4me/id4me-registry/internal/devdns"
	"github.com/id4me/id4me-registry/internal/fakeclock"
	"github.com/id4me/id4me-registry/internal/oidctest"
	"github.com/id4me/id4me-registry/internal/testdb"
	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
	"github.com/id4me/id4me-registry/registry"
	"github.com/id4me/id4me-registry/server"
	"github.com/id4me/id4me-registry/sqlstore"
)

// Zone is the zone every test identifier lives in, served by both test nameservers.
const Zone = "example.test."

// Clock is a settable clock for the registry and the authority.
type Clock = fakeclock.Clock

// NewClock returns a clock set to now.
func NewClock(now time.Time) *Clock { return fakeclock.New(now) }

// LogBuffer collects log output from many goroutines.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *LogBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *LogBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Options configures an Env; the zero value is a registry on SQLite without the authority.
type Options struct {
	// DSN picks the database; default a SQLite file of the test's own.
	DSN        func(t testing.TB) string
	AgentRate  rate.Limit
	AgentBurst int
	// NoPlaintext refuses plaintext gRPC from loopback (server.Config.AllowPlaintextLoopback
	// false); the Env's own client then cannot call.
	NoPlaintext bool
	// ClientCA is a PEM file agents' client certificates must chain to.
	ClientCA string
	Quorum   int
	// EventPollInterval is server.Config.EventPollInterval; default 1s.
	EventPollInterval time.Duration
	// Configure, if set, changes the registry's configuration before the service is made.
	Configure func(*registry.Config)
	// Authority serves the embedded authority on a real HTTPS listener (Env.Issuer);
	// ConfigureAuthority, if set, changes its configuration first.
	Authority          bool
	ConfigureAuthority func(*authority.Config)
	// IssuerHost, if set, is the host of the authority's issuer URL instead of 127.0.0.1
	// (the listener stays on 127.0.0.1): "localhost" for passkeys, as WebAuthn takes no IP
	// address for a relying-party ID.
	IssuerHost string
	// ConfigureKeys, if set, changes the configuration of the authority's signing keys.
	ConfigureKeys func(*authority.KeyConfig)
	// Limits is server.Config.Limits; without MaxInFlight no call is shed, as tests of
	// races start more calls at once than the default bounds admit.
	Limits server.Limits
	// Pprof is server.Config.Pprof.
	Pprof bool
}

// Env is a running registry: a gRPC server on a loopback listener, two authoritative
// nameservers for example.test (and delegated.test) on loopback, and an operator credential.
type Env struct {
	t     testing.TB
	NS    []*devdns.Server
	Store *sqlstore.Store
	Svc   *registry.Service
	// Resolver is the mapping the authority reads, shared with Svc.
	Resolver *registry.Resolver
	Srv      *server.Server
	// Addr is the gRPC listener's address; Conn a plaintext connection to it.
	Addr string
	Conn *grpc.ClientConn
	// Operator is an operator's bearer credential.
	Operator string
	Clock    *Clock
	// Logs holds the registry's and the authority's log, JSON lines at debug level.
	Logs *LogBuffer
	TLS  *tls.Config
	// HTTP serves the public handler (/healthz, the authority) in plain HTTP; Ops the
	// operator's handler (/metrics, /readyz).
	HTTP *httptest.Server
	Ops  *httptest.Server
	// The clients of the three services over Conn.
	RegistryAPI registryv1.RegistryServiceClient
	AdminAPI    registryv1.AdminServiceClient
	ResolverAPI registryv1.ResolverServiceClient
	// With Options.Authority: the authority, its issuer URL (its HTTPS listener), the roots
	// that trust its certificate, and a client for relying parties and agents that trusts
	// them (StartAgent adds each agent's certificate).
	Auth     *authority.Authority
	Issuer   string
	Roots    *x509.CertPool
	RPClient *http.Client
}

// New starts a registry for t; everything stops when t ends.
func New(t testing.TB, opts Options) *Env {
	t.Helper()
	ctx := context.Background()
	e := &Env{t: t, Clock: NewClock(time.Now().UTC()), Logs: &LogBuffer{}}
	e.NS = StartNameservers(t, 2, Zone, "delegated.test.")
	if opts.DSN == nil {
		opts.DSN = testdb.SQLite
	}
	log := slog.New(slog.NewJSONHandler(e.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	store, err := sqlstore.Open(ctx, opts.DSN(t), sqlstore.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	e.Store = store
	prom := prometheus.NewRegistry()
	metrics := server.NewMetrics(prom)
	v, err := dnsverify.New(dnsverify.Config{
		Servers: []string{e.NS[0].Addr, e.NS[1].Addr}, QueryTimeout: 300 * time.Millisecond,
		Timeout: 2 * time.Second, Quorum: opts.Quorum, OnQuery: metrics.DNSQuery,
	})
	if err != nil {
		t.Fatal(err)
	}
	// The test identifiers are under example.test, a special-use name, as dev mode allows.
	cfg := registry.Config{
		Store: store, DNS: v, OpenID: v, AuthorityIssuer: "id.example.test",
		ChallengeTTL: time.Hour, ChallengeMaxAttempts: 3, Now: e.Clock.Now, Observer: metrics,
		AllowSpecialUseNames: true,
	}
	// The authority's tests play agents with claims endpoints on loopback (internal/oidctest).
	cfg.AllowLocalEndpoints = opts.Authority
	if opts.Configure != nil {
		opts.Configure(&cfg)
	}
	if cfg.Resolver == nil {
		cfg.Resolver = registry.NewResolver(store, cfg.ResolveCacheTTL, cfg.Now)
	}
	e.Resolver = cfg.Resolver
	cert, _, err := server.DevCertificate()
	if err != nil {
		t.Fatal(err)
	}
	e.TLS, err = server.ServerTLSConfig(cert, opts.ClientCA)
	if err != nil {
		t.Fatal(err)
	}
	if opts.Limits.MaxInFlight == nil {
		opts.Limits.MaxInFlight = map[server.CallClass]int{server.ClassRead: -1, server.ClassWrite: -1, server.ClassDNS: -1, server.ClassWatch: -1}
	}
	if opts.AgentRate == 0 {
		opts.AgentRate = rate.Inf
	}
	var (
		authHandler http.Handler
		hl          net.Listener
	)
	if opts.Authority {
		if hl, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		e.Issuer = "https://" + hl.Addr().String()
		if opts.IssuerHost != "" {
			e.Issuer = "https://" + net.JoinHostPort(opts.IssuerHost, strconv.Itoa(hl.Addr().(*net.TCPAddr).Port))
		}
		e.Roots = x509.NewCertPool()
		e.Roots.AddCert(cert.Leaf)
		e.RPClient = oidctest.HTTPClient(e.Roots, false)
		kcfg := authority.KeyConfig{Now: e.Clock.Now, Logger: log}
		if opts.ConfigureKeys != nil {
			opts.ConfigureKeys(&kcfg)
		}
		keys, err := authority.NewKeySet(ctx, store.Authority(), kcfg)
		if err != nil {
			t.Fatal(err)
		}
		acfg := authority.Config{
			Issuer: e.Issuer, Store: store.Authority(), Keys: keys, Resolver: e.Resolver, Logger: log, Now: e.Clock.Now,
			// Cheap hashes: the tests count logins, not hash strength.
			Password: authority.PasswordParams{Memory: 64, Time: 1, Threads: 1},
			Observe:  metrics.AuthorityEvent,
			// What holders do is journaled, and agents told of credential changes.
			HolderJournal: registry.NewHolderJournal(store),
		}
		if opts.ConfigureAuthority != nil {
			opts.ConfigureAuthority(&acfg)
		}
		if e.Auth, err = authority.New(acfg); err != nil {
			t.Fatal(err)
		}
		cfg.CredentialLinks = e.Auth
		authHandler = e.Auth.Handler()
	}
	if e.Svc, err = registry.New(cfg); err != nil {
		t.Fatal(err)
	}
	e.Srv, err = server.New(server.Config{
		Service: e.Svc, Logger: log, TLS: e.TLS, AllowPlaintextLoopback: !opts.NoPlaintext,
		AgentRate: opts.AgentRate, AgentBurst: opts.AgentBurst, Prometheus: prom,
		EventPollInterval: opts.EventPollInterval, Authority: authHandler,
		Limits: opts.Limits, Ready: store.Ping, Pprof: opts.Pprof,
	})
	if err != nil {
		t.Fatal(err)
	}
	if hl != nil {
		go e.Srv.ServeHTTPS(hl)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.Addr = l.Addr().String()
	go e.Srv.ServeGRPC(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.Srv.Shutdown(ctx)
	})
	e.HTTP = httptest.NewServer(e.Srv.Handler())
	t.Cleanup(e.HTTP.Close)
	e.Ops = httptest.NewServer(e.Srv.AdminHandler())
	t.Cleanup(e.Ops.Close)
	e.Conn, err = grpc.NewClient(e.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Conn.Close() })
	e.RegistryAPI = registryv1.NewRegistryServiceClient(e.Conn)
	e.AdminAPI = registryv1.NewAdminServiceClient(e.Conn)
	e.ResolverAPI = registryv1.NewResolverServiceClient(e.Conn)
	_, e.Operator, err = e.Svc.CreateOperatorCredential(ctx, registry.System, "test")
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// StartNameservers starts n authoritative nameservers on loopback, each serving the zones
// (empty until records are set), stopped when t ends.
func StartNameservers(t testing.TB, n int, zones ...string) []*devdns.Server {
	t.Helper()
	var out []*devdns.Server
	for range n {
		ns, err := devdns.Start("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ns.Close() })
		for _, z := range zones {
			ns.AddZone(z)
		}
		out = append(out, ns)
	}
	return out
}

// As returns a context that authenticates with bearer.
func As(bearer string) context.Context { return Bearer(context.Background(), bearer) }

// Agent is an agent created through the AdminService, with an API token.
type Agent struct {
	Agent *registryv1.Agent
	Token string
	// Key is the private half of the agent's ACME account key.
	Key *ecdsa.PrivateKey
}

// Ctx returns a context that authenticates as the agent.
func (a Agent) Ctx() context.Context { return As(a.Token) }

// NewAgent creates an agent with an issuer and claims endpoint under name.agent.test.
func (e *Env) NewAgent(name string, certPins ...string) Agent {
	e.t.Helper()
	return e.NewAgentAt(name, "https://"+name+".agent.test", "https://"+name+".agent.test/userinfo", certPins...)
}

// NewAgentAt creates an agent with the given issuer and claims endpoint, and pinned client
// certificates (hex SHA-256 of their SubjectPublicKeyInfo).
func (e *Env) NewAgentAt(name, issuer, claimsEndpoint string, certPins ...string) Agent {
	e.t.Helper()
	return CreateAgent(e.t, e.AdminAPI, As(e.Operator), name, issuer, claimsEndpoint, certPins...)
}

// CreateAgent creates an agent with a new ACME account key through api, as the operator
// whose credential ctx carries, and gives it an API token.
func CreateAgent(t testing.TB, api registryv1.AdminServiceClient, ctx context.Context, name, issuer, claimsEndpoint string, certPins ...string) Agent {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwk, err := jose.JSONWebKey{Key: &key.PublicKey}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	a, err := api.CreateAgent(ctx, &registryv1.CreateAgentRequest{
		DisplayName: name, ClaimsEndpoint: claimsEndpoint,
		Issuer: issuer, AccountKeyJwk: string(jwk), ClientCertSpkiSha256: certPins,
	})
	if err != nil {
		t.Fatalf("CreateAgent: %v", err)
	}
	tok, err := api.CreateAgentToken(ctx, &registryv1.CreateAgentTokenRequest{AgentId: a.Id, Description: "test"})
	if err != nil {
		t.Fatalf("CreateAgentToken: %v", err)
	}
	return Agent{Agent: a, Token: tok.Secret, Key: key}
}

// Publish serves the challenge's record on the given nameservers (all when none given).
func (e *Env) Publish(c *registryv1.Challenge, servers ...int) {
	if len(servers) == 0 {
		servers = []int{0, 1}
	}
	for _, k := range servers {
		e.NS[k].SetTXT(c.RecordName, c.RecordValue)
	}
}

// Register runs the whole flow for identifier as agent a and returns the identifier.
func (e *Env) Register(a Agent, identifier string) *registryv1.Identifier {
	e.t.Helper()
	c := e.ValidChallenge(a, identifier, registryv1.Purpose_PURPOSE_REGISTER)
	resp, err := e.RegistryAPI.RegisterIdentifier(a.Ctx(), &registryv1.RegisterIdentifierRequest{ChallengeId: c.Id})
	if err != nil {
		e.t.Fatalf("RegisterIdentifier(%s): %v", identifier, err)
	}
	return resp.Identifier
}

// ValidChallenge creates a challenge for identifier as agent a, publishes its record on both
// nameservers and verifies it.
func (e *Env) ValidChallenge(a Agent, identifier string, purpose registryv1.Purpose) *registryv1.Challenge {
	e.t.Helper()
	c, err := e.RegistryAPI.CreateChallenge(a.Ctx(), &registryv1.CreateChallengeRequest{Identifier: identifier, Purpose: purpose})
	if err != nil {
		e.t.Fatalf("CreateChallenge(%s, %v): %v", identifier, purpose, err)
	}
	e.Publish(c)
	v, err := e.RegistryAPI.VerifyChallenge(a.Ctx(), &registryv1.VerifyChallengeRequest{Id: c.Id})
	if err != nil {
		e.t.Fatalf("VerifyChallenge: %v", err)
	}
	if v.Status != registryv1.Challenge_STATUS_VALID {
		e.t.Fatalf("VerifyChallenge: status %v, problem %v", v.Status, v.Problem)
	}
	return v
}
