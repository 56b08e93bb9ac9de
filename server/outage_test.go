package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/id4me/id4me-registry/internal/testdb"
	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
)

// wantReady fails unless the operator's /readyz answers code.
func (e *env) wantReady(code int) {
	e.t.Helper()
	if got, body := get(e.t, http.DefaultClient, e.ops.URL+"/readyz"); got != code {
		e.t.Fatalf("/readyz: %d %q, want %d", got, body, code)
	}
}

// logCount counts the log lines whose message is msg.
func (e *env) logCount(msg string) int {
	n := 0
	for line := range strings.Lines(e.logs.String()) {
		var rec struct{ Msg string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == msg {
			n++
		}
	}
	return n
}

// wantOutageCalls makes calls of each kind (a read, a write, an authentication with
// unusedToken, which the cache cannot answer) and fails unless each is UNAVAILABLE, reason DATABASE_UNAVAILABLE, within
// the calls' generous deadline.
func (e *env) wantOutageCalls(a testAgent, unusedToken string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(a.ctx(), 20*time.Second)
	defer cancel()
	for range 3 {
		_, err := e.registry.GetIdentifier(ctx, &registryv1.GetIdentifierRequest{Identifier: "alice.example.test"})
		wantStatus(e.t, err, codes.Unavailable, "DATABASE_UNAVAILABLE")
	}
	_, err := e.registry.CreateChallenge(ctx, &registryv1.CreateChallengeRequest{Identifier: "bob.example.test", Purpose: registryv1.Purpose_PURPOSE_REGISTER})
	wantStatus(e.t, err, codes.Unavailable, "DATABASE_UNAVAILABLE")
	ctx, cancel = context.WithTimeout(as(unusedToken), 20*time.Second)
	defer cancel()
	_, err = e.registry.ListIdentifiers(ctx, &registryv1.ListIdentifiersRequest{})
	wantStatus(e.t, err, codes.Unavailable, "DATABASE_UNAVAILABLE")
}

// newToken makes another token of agent a.
func (e *env) newToken(a testAgent) string {
	e.t.Helper()
	tok, err := e.adminAPI.CreateAgentToken(as(e.admin), &registryv1.CreateAgentTokenRequest{AgentId: a.agent.Id, Description: "unused"})
	if err != nil {
		e.t.Fatal(err)
	}
	return tok.Secret
}

// wantRecovered fails unless the registry serves reads and writes again, says it is ready,
// and logged the outage's end once.
func (e *env) wantRecovered(a testAgent) {
	e.t.Helper()
	if _, err := e.registry.GetIdentifier(a.ctx(), &registryv1.GetIdentifierRequest{Identifier: "alice.example.test"}); err != nil {
		e.t.Fatalf("read after the outage: %v", err)
	}
	e.register(a, "bob.example.test")
	e.wantReady(http.StatusOK)
	if n := e.logCount("database reachable again"); n != 1 {
		e.t.Fatalf("%d log lines say the database is reachable again, want 1:\n%s", n, e.logs.String())
	}
}

// TestDatabaseOutageIsUnavailable stops a PostgreSQL server of the test's own under a running
// registry ("fast": every session ends with 57P01, then connections are refused), calls, starts
// it again and calls.
func TestDatabaseOutageIsUnavailable(t *testing.T) {
	pg := testdb.StartServer(t)
	e := newEnv(t, envOptions{DSN: func(testing.TB) string { return pg.DSN() }})
	a := e.newAgent("alpha")
	e.register(a, "alice.example.test")
	e.wantReady(http.StatusOK)

	unused := e.newToken(a)
	pg.Stop(t, "fast")
	e.wantOutageCalls(a, unused)
	e.wantReady(http.StatusServiceUnavailable)
	if n := e.logCount("database unreachable: calls fail with UNAVAILABLE until it answers again"); n != 1 {
		t.Fatalf("%d log lines say the database is unreachable, want 1 for the whole outage:\n%s", n, e.logs.String())
	}
	if n := e.logCount("internal error"); n != 0 {
		t.Fatalf("the outage was logged as %d internal errors:\n%s", n, e.logs.String())
	}

	pg.Start(t)
	e.wantRecovered(a)
}

// proxy is a TCP proxy in front of a server that a test can cut: open connections are
// dropped and new ones closed as soon as they are accepted, until it is restored.
type proxy struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  []net.Conn
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l, target: target}
	t.Cleanup(func() { l.Close(); p.setCut(true) })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *proxy) serve(c net.Conn) {
	p.mu.Lock()
	if p.cut {
		p.mu.Unlock()
		c.Close()
		return
	}
	p.mu.Unlock()
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, c, up)
	p.mu.Unlock()
	go func() { io.Copy(up, c); up.Close() }()
	io.Copy(c, up)
	c.Close()
}

// setCut cuts the proxy (dropping every open connection) or restores it.
func (p *proxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

// withHost returns dsn with its host:port replaced.
func withHost(t *testing.T, dsn, hostPort string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = hostPort
	return u.String()
}

// TestDatabaseConnectionLossIsUnavailable puts a proxy between the registry and the shared
// PostgreSQL server and cuts it: the registry's connections break mid-stream and new ones
// end at once.
func TestDatabaseConnectionLossIsUnavailable(t *testing.T) {
	dsn := testdb.Postgres(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, u.Host)
	e := newEnv(t, envOptions{DSN: func(testing.TB) string { return withHost(t, dsn, p.l.Addr().String()) }})
	a := e.newAgent("alpha")
	e.register(a, "alice.example.test")

	unused := e.newToken(a)
	p.setCut(true)
	e.wantOutageCalls(a, unused)
	e.wantReady(http.StatusServiceUnavailable)
	if n := e.logCount("database unreachable: calls fail with UNAVAILABLE until it answers again"); n != 1 {
		t.Fatalf("%d log lines say the database is unreachable, want 1:\n%s", n, e.logs.String())
	}

	p.setCut(false)
	e.wantRecovered(a)
}

// lockedIdentifier starts a registry on a fresh schema of the shared PostgreSQL server with
// alice.example.test registered by agent alpha, and locks the identifier's row in a
// transaction of another session, which it returns with a handle on the database for other
// sessions. The registry's sessions are named appName.
func lockedIdentifier(t *testing.T, appName string) (*env, testAgent, *sql.DB, *sql.Tx) {
	t.Helper()
	dsn := testdb.Postgres(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("application_name", appName)
	u.RawQuery = q.Encode()
	e := newEnv(t, envOptions{DSN: func(testing.TB) string { return u.String() }})
	a := e.newAgent("alpha")
	e.register(a, "alice.example.test")
	other, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	tx, err := other.Begin()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback() })
	if _, err := tx.Exec("SELECT 1 FROM identifiers WHERE name = $1 FOR UPDATE", "alice.example.test"); err != nil {
		t.Fatal(err)
	}
	return e, a, other, tx
}

var updateClaimsEndpoint = &registryv1.UpdateIdentifierRequest{
	Identifier: &registryv1.Identifier{Name: "alice.example.test", ClaimsEndpoint: "https://alpha.agent.test/moved"},
	UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"claims_endpoint"}},
}

// waitForLock waits until a session of the registry's (named app) waits for a lock, and
// returns its process id. It asks outside any transaction: within one, PostgreSQL shows the
// same snapshot of pg_stat_activity every time.
func waitForLock(t *testing.T, db *sql.DB, app string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var pid int
		err := db.QueryRow(`SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`, app).Scan(&pid)
		if err == nil {
			return pid
		}
		if !errors.Is(err, sql.ErrNoRows) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("no call waited for the locked row within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rawCall makes a unary call over HTTP/2 without a gRPC client, with a grpc-timeout header, and
// returns the grpc-status of the answer. Unlike a gRPC client, it does not cancel the call
// when the timeout passes, so the server's own deadline ends it.
func rawCall(t *testing.T, addr, method, bearer, timeout string, req proto.Message) (codes.Code, http2.ErrCode) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":authority", addr}, {":path", method},
		{"content-type", "application/grpc"}, {"te", "trailers"}, {"grpc-timeout", timeout},
		{"authorization", "Bearer " + bearer},
	} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	msg, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	if err := fr.WriteData(1, true, append(binary.BigEndian.AppendUint32([]byte{0}, uint32(len(msg))), msg...)); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the answer: %v", err)
		}
		if rst, ok := f.(*http2.RSTStreamFrame); ok {
			return codes.Unknown, rst.ErrCode
		}
		if h, ok := f.(*http2.MetaHeadersFrame); ok {
			if v := h.PseudoValue("status"); v != "" && v != "200" {
				t.Fatalf("HTTP status %s", v)
			}
			for _, hf := range h.RegularFields() {
				if hf.Name == "grpc-status" {
					n, err := strconv.Atoi(hf.Value)
					if err != nil {
						t.Fatalf("grpc-status %q", hf.Value)
					}
					return codes.Code(n), 0
				}
			}
		}
	}
}

// TestDeadlineMidTransactionIsDeadlineExceeded: an update waits inside its transaction for a
// row another session holds, and the call's deadline passes. The call is DEADLINE_EXCEEDED,
// in its answer and in the server's metrics and log, not an internal error, and nothing is
// changed. A call that the client cancels meanwhile is CANCELED.
func TestDeadlineMidTransactionIsDeadlineExceeded(t *testing.T) {
	app := "id4me_deadline_" + strings.ToLower(rand.Text()[:8])
	e, a, db, lock := lockedIdentifier(t, app)
	const method = "/id4me.registry.v1.RegistryService/UpdateIdentifier"
	if code, rst := rawCall(t, e.addr, method, a.token, "300m", updateClaimsEndpoint); code != codes.DeadlineExceeded && rst != http2.ErrCodeCancel {
		t.Fatalf("update past its deadline: %v, %v; want DEADLINE_EXCEEDED or the stream reset", code, rst)
	}
	e.waitMetric(`grpc_server_handled_total{grpc_code="DeadlineExceeded",grpc_method="UpdateIdentifier",grpc_service="id4me.registry.v1.RegistryService",grpc_type="unary"} 1`)

	ctx, cancel := context.WithCancel(a.ctx())
	done := make(chan error, 1)
	go func() {
		_, err := e.registry.UpdateIdentifier(ctx, updateClaimsEndpoint)
		done <- err
	}()
	waitForLock(t, db, app)
	cancel()
	if err := <-done; status.Code(err) != codes.Canceled {
		t.Fatalf("cancelled update: %v, want CANCELED", err)
	}
	e.waitMetric(`grpc_server_handled_total{grpc_code="Canceled",grpc_method="UpdateIdentifier",grpc_service="id4me.registry.v1.RegistryService",grpc_type="unary"} 1`)
	if n := e.logCount("internal error"); n != 0 {
		t.Fatalf("calls cut short were logged as %d internal errors:\n%s", n, e.logs.String())
	}

	if err := lock.Rollback(); err != nil {
		t.Fatal(err)
	}
	i, err := e.registry.GetIdentifier(a.ctx(), &registryv1.GetIdentifierRequest{Identifier: "alice.example.test"})
	if err != nil || i.ClaimsEndpoint != "" {
		t.Fatalf("after the updates cut short: %v, %v; want the identifier unchanged", i, err)
	}
	if _, err := e.registry.UpdateIdentifier(a.ctx(), updateClaimsEndpoint); err != nil {
		t.Fatalf("the update again: %v", err)
	}
}

// TestTerminatedDatabaseSessionIsUnavailable: the database ends the session of a transaction
// in progress (pg_terminate_backend: 57P01, as in a shutdown); the call is UNAVAILABLE and can
// be made again.
func TestTerminatedDatabaseSessionIsUnavailable(t *testing.T) {
	app := "id4me_terminate_" + strings.ToLower(rand.Text()[:8])
	e, a, db, lock := lockedIdentifier(t, app)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(a.ctx(), 20*time.Second)
		defer cancel()
		_, err := e.registry.UpdateIdentifier(ctx, updateClaimsEndpoint)
		done <- err
	}()
	if _, err := db.Exec("SELECT pg_terminate_backend($1)", waitForLock(t, db, app)); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, <-done, codes.Unavailable, "DATABASE_UNAVAILABLE")
	if err := lock.Rollback(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.registry.UpdateIdentifier(a.ctx(), updateClaimsEndpoint); err != nil {
		t.Fatalf("the update again: %v", err)
	}
}
