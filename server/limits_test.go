package server_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
	"github.com/id4me/id4me-registry/server"
)

// noShedding turns every class bound off but those given.
func noShedding(bounds map[server.CallClass]int) map[server.CallClass]int {
	out := map[server.CallClass]int{server.ClassRead: -1, server.ClassWrite: -1, server.ClassDNS: -1, server.ClassWatch: -1}
	for c, n := range bounds {
		out[c] = n
	}
	return out
}

// dialOwn opens a gRPC connection of the test's own to the registry, which reconnects
// quickly after a refusal.
func (e *env) dialOwn() *grpc.ClientConn {
	e.t.Helper()
	conn, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{BaseDelay: 20 * time.Millisecond, Multiplier: 1.5, MaxDelay: 200 * time.Millisecond}}))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { conn.Close() })
	return conn
}

// watchOn opens a WatchEvents stream as agent a over conn.
func (e *env) watchOn(conn *grpc.ClientConn, a testAgent) *watcher {
	e.t.Helper()
	ctx, cancel := context.WithCancel(a.ctx())
	e.t.Cleanup(cancel)
	stream, err := registryv1.NewRegistryServiceClient(conn).WatchEvents(ctx, &registryv1.WatchEventsRequest{})
	if err != nil {
		e.t.Fatalf("WatchEvents: %v", err)
	}
	w := &watcher{events: make(chan *registryv1.Event, 100), end: make(chan error, 1), cancel: cancel}
	go readStream(stream, w)
	return w
}

// waitReady connects conn and waits until it is ready.
func waitReady(t *testing.T, conn *grpc.ClientConn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn.Connect()
	for s := conn.GetState(); s != connectivity.Ready; s = conn.GetState() {
		if !conn.WaitForStateChange(ctx, s) {
			t.Fatalf("connection not ready within 10s (state %v)", s)
		}
	}
}

func TestIdleConnectionsAreClosedAfterMaxIdle(t *testing.T) {
	e := newEnv(t, envOptions{Limits: server.Limits{MaxConnectionIdle: 200 * time.Millisecond}})
	a := e.newAgent("alpha")
	e.register(a, "alice.example.test")
	e.setServerStatus("first event", serverHold)

	// A connection carrying an open stream is not idle, however long the stream waits.
	busy := e.dialOwn()
	w := e.watchOn(busy, a)
	w.next(t)

	// A connection that never carries a call is closed after the idle time.
	idle := e.dialOwn()
	waitReady(t, idle)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if !idle.WaitForStateChange(ctx, connectivity.Ready) {
		t.Fatal("an idle connection stayed open for 10s with --grpc-max-idle 200ms")
	}
	if s := idle.GetState(); s != connectivity.Idle {
		t.Fatalf("idle connection went to %v, want IDLE (closed by the server's GOAWAY)", s)
	}

	// By now the stream has been open longer than the idle time, and goes on.
	if s := busy.GetState(); s != connectivity.Ready {
		t.Fatalf("connection with an open stream is %v, want READY", s)
	}
	e.setServerStatus("second event")
	if ev := w.next(t); ev.Id != 2 {
		t.Fatalf("stream got event %d, want 2", ev.Id)
	}
	// A closed idle connection is opened again by the client's next call.
	if _, err := registryv1.NewRegistryServiceClient(idle).GetIdentifier(a.ctx(), &registryv1.GetIdentifierRequest{Identifier: "alice.example.test"}); err != nil {
		t.Fatalf("call on a connection closed for idleness: %v", err)
	}
}

func TestConnectionBeyondCapIsClosedAtOnce(t *testing.T) {
	e := newEnv(t, envOptions{Limits: server.Limits{MaxConns: 2}})
	a := e.newAgent("alpha") // the env's own connection is the first
	second := e.dialOwn()
	if _, err := registryv1.NewRegistryServiceClient(second).ListIdentifiers(a.ctx(), &registryv1.ListIdentifiersRequest{}); err != nil {
		t.Fatalf("call on the second connection: %v", err)
	}

	// The third is closed as soon as it is accepted: the client reads end of file at once,
	// without sending anything, rather than waiting in the listen backlog.
	third, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	third.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := third.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("connection beyond the cap: read %d bytes, %v; want it closed", n, err)
	}
	// A gRPC client beyond the cap fails fast.
	refused := e.dialOwn()
	ctx, cancel := context.WithTimeout(a.ctx(), 10*time.Second)
	defer cancel()
	_, err = registryv1.NewRegistryServiceClient(refused).ListIdentifiers(ctx, &registryv1.ListIdentifiersRequest{})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("call on a connection beyond the cap: %v, want UNAVAILABLE", err)
	}

	// Once a connection ends, a new one is served.
	second.Close()
	if _, err := registryv1.NewRegistryServiceClient(refused).ListIdentifiers(ctx, &registryv1.ListIdentifiersRequest{}, grpc.WaitForReady(true)); err != nil {
		t.Fatalf("call after a connection ended: %v", err)
	}
}

func TestCallsBeyondStreamLimitOfConnectionWait(t *testing.T) {
	e := newEnv(t, envOptions{Limits: server.Limits{MaxStreamsPerConn: 2}})
	a := e.newAgent("alpha")
	e.register(a, "alice.example.test")
	e.setServerStatus("an event", serverHold)
	conn := e.dialOwn()
	w1, w2 := e.watchOn(conn, a), e.watchOn(conn, a)
	w1.next(t)
	w2.next(t)

	// A third call on the same connection waits for one of the two to end: gRPC clients
	// honour the server's SETTINGS_MAX_CONCURRENT_STREAMS.
	api := registryv1.NewRegistryServiceClient(conn)
	get := &registryv1.GetIdentifierRequest{Identifier: "alice.example.test"}
	ctx, cancel := context.WithTimeout(a.ctx(), 300*time.Millisecond)
	defer cancel()
	if _, err := api.GetIdentifier(ctx, get); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("third call on a connection with 2 streams open: %v, want it to wait (DEADLINE_EXCEEDED)", err)
	}
	// The limit is per connection.
	if _, err := e.registry.GetIdentifier(a.ctx(), get); err != nil {
		t.Fatalf("call on another connection: %v", err)
	}
	w1.cancel()
	if _, err := api.GetIdentifier(a.ctx(), get); err != nil {
		t.Fatalf("call after a stream ended: %v", err)
	}
}

// A client that ignores the stream limit has the streams beyond it refused by the server.
func TestStreamsBeyondLimitOfConnectionAreRefused(t *testing.T) {
	e := newEnv(t, envOptions{Limits: server.Limits{MaxStreamsPerConn: 2}})
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	// Health.Watch streams need no credential and stay open.
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":authority", e.addr},
		{":path", "/grpc.health.v1.Health/Watch"}, {"content-type", "application/grpc"}, {"te", "trailers"},
	} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	for _, id := range []uint32{1, 3, 5} {
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
		// An empty HealthCheckRequest: no compression, length 0.
		if err := fr.WriteData(id, true, []byte{0, 0, 0, 0, 0}); err != nil {
			t.Fatal(err)
		}
	}
	var advertised uint32
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading frames: %v (server advertised %d concurrent streams)", err, advertised)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if v, ok := f.Value(http2.SettingMaxConcurrentStreams); ok {
				advertised = v
			}
		case *http2.RSTStreamFrame:
			if f.StreamID != 5 {
				t.Fatalf("stream %d reset (%v), want only stream 5 refused", f.StreamID, f.ErrCode)
			}
			if f.ErrCode != http2.ErrCodeRefusedStream {
				t.Fatalf("stream 5 reset with %v, want REFUSED_STREAM", f.ErrCode)
			}
			if advertised != 2 {
				t.Fatalf("server advertised %d concurrent streams, want 2", advertised)
			}
			return
		case *http2.GoAwayFrame:
			t.Fatalf("server sent GOAWAY (%v) instead of refusing the stream", f.ErrCode)
		}
	}
}

func TestFifthWatchOfAnAgentIsRefused(t *testing.T) {
	e := newEnv(t, envOptions{})
	a, b := e.newAgent("alpha"), e.newAgent("beta")
	e.register(a, "alice.example.test")
	e.setServerStatus("an event for alpha", serverHold)
	var open []*watcher
	for range server.DefaultMaxWatchesPerAgent {
		w := e.watch(a, 0)
		w.next(t)
		open = append(open, w)
	}
	wantStatus(t, e.watch(a, 0).ended(t), codes.ResourceExhausted, "TOO_MANY_STREAMS")

	// Another agent has streams of its own.
	e.register(b, "bob.example.test")
	if _, err := e.adminAPI.SetServerStatus(as(e.admin), &registryv1.SetServerStatusRequest{Identifier: "bob.example.test", Statuses: []registryv1.IdentifierStatus{serverHold}, Reason: "an event for beta"}); err != nil {
		t.Fatal(err)
	}
	e.watch(b, 0).next(t)

	// When one of alpha's streams ends, alpha may open another. The server counts the stream
	// out when its handler returns, a moment after the client cancels it.
	open[0].cancel()
	open[0].ended(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		w := e.watch(a, 0)
		select {
		case <-w.events:
			return
		case err := <-w.end:
			if status.Code(err) != codes.ResourceExhausted || time.Now().After(deadline) {
				t.Fatalf("watch after one of four ended: %v", err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// wantRetryInfo fails unless err carries a positive google.rpc.RetryInfo delay.
func wantRetryInfo(t *testing.T, err error) {
	t.Helper()
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			if ri.GetRetryDelay().AsDuration() <= 0 {
				t.Fatalf("RetryInfo delay %v, want a positive one", ri.GetRetryDelay().AsDuration())
			}
			return
		}
	}
	t.Fatalf("%v carries no RetryInfo", err)
}

func TestCallsBeyondTheirClassBoundAreShedAtOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registry.db")
	e := newEnv(t, envOptions{
		DSN:    func(testing.TB) string { return path },
		Limits: server.Limits{MaxInFlight: noShedding(map[server.CallClass]int{server.ClassWrite: 1, server.ClassWatch: 1})},
	})
	a, b := e.newAgent("alpha"), e.newAgent("beta")
	e.register(a, "alice.example.test")

	// Another process holds SQLite's write lock: the first write waits for it, holding the
	// write class's only slot.
	other, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ctx := context.Background()
	lock, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if _, err := lock.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	update := &registryv1.UpdateIdentifierRequest{
		Identifier: &registryv1.Identifier{Name: "alice.example.test", ClaimsEndpoint: "https://alpha.agent.test/other"},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"claims_endpoint"}},
	}
	first := make(chan error, 1)
	go func() {
		_, err := e.registry.UpdateIdentifier(a.ctx(), update)
		first <- err
	}()
	e.waitMetric(`id4me_grpc_in_flight{class="write"} 1`)

	_, err = e.registry.CreateChallenge(b.ctx(), &registryv1.CreateChallengeRequest{Identifier: "bob.example.test", Purpose: registryv1.Purpose_PURPOSE_REGISTER})
	wantStatus(t, err, codes.ResourceExhausted, "OVERLOADED")
	wantRetryInfo(t, err)
	// Reads are a class of their own.
	if _, err := e.registry.GetIdentifier(a.ctx(), &registryv1.GetIdentifierRequest{Identifier: "alice.example.test"}); err != nil {
		t.Fatalf("read while the writes are full: %v", err)
	}
	if _, err := lock.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if err := <-first; err != nil {
		t.Fatalf("the admitted write: %v", err)
	}
	if _, err := e.registry.CreateChallenge(b.ctx(), &registryv1.CreateChallengeRequest{Identifier: "bob.example.test", Purpose: registryv1.Purpose_PURPOSE_REGISTER}); err != nil {
		t.Fatalf("write once the class has room again: %v", err)
	}

	// Streams: the only slot is taken by alpha's stream.
	e.setServerStatus("an event", serverHold)
	e.watch(a, 0).next(t)
	err = e.watch(b, 0).ended(t)
	wantStatus(t, err, codes.ResourceExhausted, "OVERLOADED")
	wantRetryInfo(t, err)
	e.waitMetric(`id4me_grpc_shed_total{class="watch"} 1`)
	e.waitMetric(`id4me_grpc_shed_total{class="write"} 1`)
}

// waitMetric waits until the operator's /metrics has a line equal to line.
func (e *env) waitMetric(line string) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(e.ops.URL + "/metrics")
		if err != nil {
			e.t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for l := range strings.Lines(string(body)) {
			if strings.TrimSpace(l) == line {
				return
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("/metrics has no line %q within 10s", line)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
