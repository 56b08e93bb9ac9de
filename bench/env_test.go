package bench

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/id4me/id4me-registry/dnsverify"
	"github.com/id4me/id4me-registry/internal/devdns"
	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
	"github.com/id4me/id4me-registry/registry"
	"github.com/id4me/id4me-registry/server"
	"github.com/id4me/id4me-registry/sqlstore"
)

// zone is the DNS zone every benchmark identifier lives in, served by both loopback
// nameservers.
const zone = "bench.test"

// concurrency is how many agents (or clients) work at once in the gRPC benchmarks.
const concurrency = 16

// registryEnv is a registry served in process on a loopback gRPC listener, as `serve` wires it
// (metrics, logging at info level to a discarded writer, plaintext gRPC from loopback), with
// two authoritative nameservers for zone on loopback that the DNS checks ask.
type registryEnv struct {
	store *sqlstore.Store
	svc   *registry.Service
	addr  string
	ns    []*devdns.Server
}

// newRegistryEnv starts a registry on the database at dsn (a SQLite path or a postgres://
// DSN), with the server's configuration changed by configure if given; tb's cleanup stops it.
func newRegistryEnv(tb testing.TB, dsn string, configure ...func(*server.Config)) *registryEnv {
	tb.Helper()
	ctx := context.Background()
	e := &registryEnv{}
	for range 2 {
		ns, err := devdns.Start("127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { ns.Close() })
		ns.AddZone(zone)
		e.ns = append(e.ns, ns)
	}
	store, err := sqlstore.Open(ctx, dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { store.Close() })
	e.store = store

	prom := prometheus.NewRegistry()
	metrics := server.NewMetrics(prom)
	v, err := dnsverify.New(dnsverify.Config{Servers: []string{e.ns[0].Addr, e.ns[1].Addr}, OnQuery: metrics.DNSQuery})
	if err != nil {
		tb.Fatal(err)
	}
	// bench.test is a special-use name, as dev mode allows.
	e.svc, err = registry.New(registry.Config{Store: store, DNS: v, OpenID: v, Observer: metrics, AllowSpecialUseNames: true})
	if err != nil {
		tb.Fatal(err)
	}
	cert, _, err := server.DevCertificate()
	if err != nil {
		tb.Fatal(err)
	}
	tlsCfg, err := server.ServerTLSConfig(cert, "")
	if err != nil {
		tb.Fatal(err)
	}
	cfg := server.Config{
		Service: e.svc, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), TLS: tlsCfg,
		AllowPlaintextLoopback: true, AgentRate: rate.Inf, Prometheus: prom,
		// These figures are of the work the calls do, at the benchmarks' concurrency, not of
		// admission: no call is shed unless a benchmark sets bounds (BenchmarkOverload).
		Limits: server.Limits{MaxInFlight: map[server.CallClass]int{
			server.ClassRead: -1, server.ClassWrite: -1, server.ClassDNS: -1, server.ClassWatch: -1,
		}},
	}
	for _, c := range configure {
		c(&cfg)
	}
	srv, err := server.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	e.addr = l.Addr().String()
	go srv.ServeGRPC(l)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return e
}

// benchAgent is an agent with its own API token and its own connection to the registry.
type benchAgent struct {
	id  string
	ctx context.Context // carries the agent's bearer token
	api registryv1.RegistryServiceClient
}

// newAgents creates n agents, each with an ACME account key and a token, and connects each.
func (e *registryEnv) newAgents(tb testing.TB, n int) []benchAgent {
	tb.Helper()
	ids := createAgents(tb, e.svc, n)
	out := make([]benchAgent, n)
	for k, id := range ids {
		_, token, err := e.svc.CreateAgentToken(context.Background(), registry.System, id, "bench")
		if err != nil {
			tb.Fatal(err)
		}
		out[k] = benchAgent{id: id, ctx: withBearer(token), api: registryv1.NewRegistryServiceClient(dial(tb, e.addr))}
	}
	return out
}

// operatorToken creates an operator credential and returns its bearer value.
func (e *registryEnv) operatorToken(tb testing.TB) string {
	tb.Helper()
	_, token, err := e.svc.CreateOperatorCredential(context.Background(), registry.System, "bench")
	if err != nil {
		tb.Fatal(err)
	}
	return token
}

// register runs one registration as an agent does it: create a register challenge, publish
// its TXT record on both nameservers, ask the registry to verify it, register the identifier,
// and remove the record again (lego's Present and CleanUp).
func (e *registryEnv) register(a benchAgent, name string) error {
	return e.registerVia(a, name, func(rpc func(context.Context) error) error { return rpc(a.ctx) })
}

// registerVia runs one registration as register does, making each of its calls through call,
// which runs rpc with a context that carries the agent's credential.
func (e *registryEnv) registerVia(a benchAgent, name string, call func(rpc func(context.Context) error) error) error {
	var c *registryv1.Challenge
	err := call(func(ctx context.Context) (err error) {
		c, err = a.api.CreateChallenge(ctx, &registryv1.CreateChallengeRequest{Identifier: name, Purpose: registryv1.Purpose_PURPOSE_REGISTER})
		return err
	})
	if err != nil {
		return fmt.Errorf("CreateChallenge(%s): %w", name, err)
	}
	for _, ns := range e.ns {
		ns.SetTXT(c.RecordName, c.RecordValue)
	}
	defer func() {
		for _, ns := range e.ns {
			ns.Remove(c.RecordName, dns.TypeTXT)
		}
	}()
	var v *registryv1.Challenge
	err = call(func(ctx context.Context) (err error) {
		v, err = a.api.VerifyChallenge(ctx, &registryv1.VerifyChallengeRequest{Id: c.Id})
		return err
	})
	if err != nil {
		return fmt.Errorf("VerifyChallenge(%s): %w", name, err)
	}
	if v.Status != registryv1.Challenge_STATUS_VALID {
		return fmt.Errorf("VerifyChallenge(%s): status %v, problem %v", name, v.Status, v.Problem)
	}
	err = call(func(ctx context.Context) error {
		_, err := a.api.RegisterIdentifier(ctx, &registryv1.RegisterIdentifierRequest{ChallengeId: c.Id})
		return err
	})
	if err != nil {
		return fmt.Errorf("RegisterIdentifier(%s): %w", name, err)
	}
	return nil
}

// createAgents creates n active agents through the service, each with its own ACME account
// key, and returns their IDs.
func createAgents(tb testing.TB, svc *registry.Service, n int) []string {
	tb.Helper()
	ids := make([]string, n)
	for k := range ids {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			tb.Fatal(err)
		}
		jwk, err := jose.JSONWebKey{Key: &key.PublicKey}.MarshalJSON()
		if err != nil {
			tb.Fatal(err)
		}
		host := fmt.Sprintf("agent%03d.%s", k, zone)
		a, err := svc.CreateAgent(context.Background(), registry.System, registry.AgentSpec{
			DisplayName: "bench " + host, ClaimsEndpoint: "https://" + host + "/userinfo",
			Issuer: "https://" + host, AccountKeyJWK: string(jwk),
		})
		if err != nil {
			tb.Fatal(err)
		}
		ids[k] = a.ID
	}
	return ids
}

// dial connects to a registry over loopback (plaintext, as --dev allows); tb's cleanup closes
// the connection.
func dial(tb testing.TB, addr string) *grpc.ClientConn {
	tb.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	return conn
}

// withBearer returns a context whose calls authenticate with bearer.
func withBearer(bearer string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+bearer)
}

// parallel runs work for items 1…n on workers goroutines, each taking the next item as it
// finishes one, and returns the first error (after which no new item starts).
func parallel(workers, n int, work func(worker, item int) error) error {
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		firstErr error
		once     sync.Once
	)
	for w := range workers {
		wg.Go(func() {
			for {
				item := int(next.Add(1))
				if item > n {
					return
				}
				if err := work(w, item); err != nil {
					once.Do(func() { firstErr = err })
					next.Store(int64(n))
					return
				}
			}
		})
	}
	wg.Wait()
	return firstErr
}

// median returns the middle of ds (the upper middle for an even count).
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// ms returns d in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
