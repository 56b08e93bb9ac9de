package agent_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/id4me/id4me-registry/agent"
	"github.com/id4me/id4me-registry/dnsverify"
	"github.com/id4me/id4me-registry/internal/devdns"
	"github.com/id4me/id4me-registry/internal/testdb"
	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
	"github.com/id4me/id4me-registry/registry"
	"github.com/id4me/id4me-registry/server"
	"github.com/id4me/id4me-registry/sqlstore"
)

const zone = "example.test."

// testRegistry is a registry served over gRPC on loopback, checking challenges on two
// authoritative nameservers for example.test. (devdns, also on loopback).
type testRegistry struct {
	addr  string
	ns    []*devdns.Server
	admin registryv1.AdminServiceClient
	token string         // an operator credential
	roots *x509.CertPool // trusts the registry's certificate
}

// registryOptions change the registry a test starts.
type registryOptions struct {
	// checkOn, when set, is the one nameserver the registry asks instead of the test's two.
	checkOn string
	// transferPendingPeriod is the registry's transfer policy; 0 completes transfers at once.
	transferPendingPeriod time.Duration
}

func startRegistry(t *testing.T, opts registryOptions) *testRegistry {
	t.Helper()
	ctx := context.Background()
	r := &testRegistry{}
	servers := []string{}
	for range 2 {
		ns, err := devdns.Start("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ns.Close() })
		ns.AddZone(zone)
		r.ns = append(r.ns, ns)
		servers = append(servers, ns.Addr)
	}
	if opts.checkOn != "" {
		servers = []string{opts.checkOn}
	}
	store, err := sqlstore.Open(ctx, testdb.SQLite(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	v, err := dnsverify.New(dnsverify.Config{Servers: servers, QueryTimeout: 500 * time.Millisecond, Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := registry.New(registry.Config{
		Store: store, DNS: v, ChallengeTTL: time.Hour, TransferPendingPeriod: opts.transferPendingPeriod,
		AllowSpecialUseNames: true, // example.test, as dev mode allows
	})
	if err != nil {
		t.Fatal(err)
	}
	cert, _, err := server.DevCertificate()
	if err != nil {
		t.Fatal(err)
	}
	r.roots = x509.NewCertPool()
	r.roots.AddCert(cert.Leaf)
	tlsCfg, err := server.ServerTLSConfig(cert, "")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{
		Service: svc, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), TLS: tlsCfg,
		AllowPlaintextLoopback: true, AgentRate: rate.Inf, EventPollInterval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = l.Addr().String()
	go srv.ServeGRPC(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	conn, err := grpc.NewClient(r.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	r.admin = registryv1.NewAdminServiceClient(conn)
	if _, r.token, err = svc.CreateOperatorCredential(ctx, registry.System, "test"); err != nil {
		t.Fatal(err)
	}
	return r
}

// asAdmin is a context carrying the operator credential.
func (r *testRegistry) asAdmin() context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+r.token)
}

// newAgent creates an agent with an API token, and the client certificate keys pinned.
func (r *testRegistry) newAgent(t *testing.T, name string, certPins ...string) (id, token string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwk, err := jose.JSONWebKey{Key: &key.PublicKey}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	a, err := r.admin.CreateAgent(r.asAdmin(), &registryv1.CreateAgentRequest{
		DisplayName: name, ClaimsEndpoint: "https://" + name + ".agent.test/userinfo",
		Issuer: "https://" + name + ".agent.test", AccountKeyJwk: string(jwk), ClientCertSpkiSha256: certPins,
	})
	if err != nil {
		t.Fatalf("CreateAgent: %v", err)
	}
	tok, err := r.admin.CreateAgentToken(r.asAdmin(), &registryv1.CreateAgentTokenRequest{AgentId: a.Id, Description: "test"})
	if err != nil {
		t.Fatalf("CreateAgentToken: %v", err)
	}
	return a.Id, tok.Secret
}

// dial returns a client for the agent with token, asking the test's nameservers.
func (r *testRegistry) dial(t *testing.T, token string, opts ...agent.Option) *agent.Client {
	t.Helper()
	opts = append([]agent.Option{
		agent.WithToken(token), agent.WithPlaintext(),
		agent.WithDNSServers(r.ns[0].Addr, r.ns[1].Addr),
	}, opts...)
	c, err := agent.Dial(r.addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// serves reports whether the nameserver has any TXT record at name.
func serves(t *testing.T, ns *devdns.Server, name string) bool {
	t.Helper()
	v, err := dnsverify.New(dnsverify.Config{Servers: []string{ns.Addr}, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ans, err := v.LookupTXT(context.Background(), name)
	if err != nil {
		t.Fatalf("TXT %s on %s: %v", name, ns.Addr, err)
	}
	return len(ans.Servers) == 1 && len(ans.Servers[0].Values) > 0
}
