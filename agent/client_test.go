package agent_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"math/big"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/id4me/id4me-registry/agent"
	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
)

// flakyEvents is a RegistryService whose event streams break after each event with
// UNAVAILABLE, as streams do when a registry instance shuts down.
type flakyEvents struct {
	registryv1.UnimplementedRegistryServiceServer
	mu      sync.Mutex
	afterID []int64  // the after_id of each stream opened
	auth    []string // the authorization metadata of each
}

func (f *flakyEvents) WatchEvents(req *registryv1.WatchEventsRequest, stream grpc.ServerStreamingServer[registryv1.Event]) error {
	md, _ := metadata.FromIncomingContext(stream.Context())
	f.mu.Lock()
	f.afterID = append(f.afterID, req.AfterId)
	f.auth = append(f.auth, md.Get("authorization")...)
	f.mu.Unlock()
	if req.AfterId == 3 {
		return status.Error(codes.PermissionDenied, "agent suspended")
	}
	if err := stream.Send(&registryv1.Event{Id: req.AfterId + 1}); err != nil {
		return err
	}
	return status.Error(codes.Unavailable, "the server is shutting down")
}

// TestWatchEventsReconnects: a broken stream is opened again after the last event received, so
// nothing is missed or repeated; a refusal ends the watch.
func TestWatchEventsReconnects(t *testing.T) {
	f := &flakyEvents{}
	srv := grpc.NewServer()
	registryv1.RegisterRegistryServiceServer(srv, f)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(srv.Stop)
	c, err := agent.Dial(l.Addr().String(), agent.WithToken("tk_test"), agent.WithPlaintext())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []int64
	err = c.WatchEvents(ctx, 0, func(ev *registryv1.Event) error {
		got = append(got, ev.Id)
		return nil
	})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("WatchEvents ended with %v, want the refusal", err)
	}
	f.mu.Lock()
	if want := []int64{1, 2, 3}; !slices.Equal(got, want) || !slices.Equal(f.afterID, []int64{0, 1, 2, 3}) {
		t.Errorf("events %v from streams after %v; want %v from streams after 0, 1, 2, 3", got, f.afterID, want)
	}
	for _, a := range f.auth {
		if a != "Bearer tk_test" {
			t.Errorf("a stream was opened with authorization %q", a)
		}
	}
	f.mu.Unlock()

	// The callback's error ends the watch at once.
	stop := errors.New("enough")
	if err := c.WatchEvents(ctx, 0, func(*registryv1.Event) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("WatchEvents = %v, want the callback's error", err)
	}
}

// TestMutualTLS: an agent authenticated by its client certificate alone registers an
// identifier over TLS, the registry's certificate verified against the given roots.
func TestMutualTLS(t *testing.T) {
	r := startRegistry(t, registryOptions{})
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "alpha"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pin := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	agentID, _ := r.newAgent(t, "alpha", hex.EncodeToString(pin[:]))

	c, err := agent.Dial(r.addr, agent.WithRootCAs(r.roots),
		agent.WithClientCertificate(tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}),
		agent.WithDNSServers(r.ns[0].Addr, r.ns[1].Addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	prov := &zoneProvider{publishOn: r.ns, removeFrom: r.ns, timeout: 10 * time.Second, interval: 20 * time.Millisecond}
	res, err := c.Register(context.Background(), "mtls.example.test", prov)
	if err != nil || res.Identifier.AgentId != agentID {
		t.Fatalf("Register over mTLS: %v, %v", res, err)
	}

	// Without the roots the registry's certificate is refused.
	untrusting, err := agent.Dial(r.addr, agent.WithToken("tk_x"))
	if err != nil {
		t.Fatal(err)
	}
	defer untrusting.Close()
	if _, err := untrusting.Identifier(context.Background(), "mtls.example.test"); status.Code(err) != codes.Unavailable ||
		!strings.Contains(err.Error(), "certificate") {
		t.Errorf("call to a registry with an untrusted certificate: %v", err)
	}
}
