package server

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/id4me/id4me-registry/registry"
)

// Limits bounds what clients can hold of the gRPC server: connections, streams, and calls in
// progress. A zero field takes its default; a negative one turns that bound off.
type Limits struct {
	// MaxConnectionIdle is how long a connection may carry no call before the server closes
	// it (GOAWAY: a client reconnects when it next calls). A connection with an open call or
	// stream is not idle. Default 60s.
	MaxConnectionIdle time.Duration
	// MaxStreamsPerConn is the HTTP/2 limit of concurrent calls on one connection
	// (SETTINGS_MAX_CONCURRENT_STREAMS): a gRPC client queues calls beyond it, and the server
	// refuses streams a client opens beyond it (REFUSED_STREAM). Default 100.
	MaxStreamsPerConn int
	// MaxConns caps open connections; one beyond the cap is closed as soon as it is accepted.
	// Default 500.
	MaxConns int
	// MaxWatchesPerAgent caps the WatchEvents streams one agent has open on this instance at
	// once; the next is refused with RESOURCE_EXHAUSTED, reason TOO_MANY_STREAMS. Default 4.
	MaxWatchesPerAgent int
	// MaxInFlight bounds the calls of each class in progress at once; a call beyond it is
	// answered at once with RESOURCE_EXHAUSTED, reason OVERLOADED, and a RetryInfo. Defaults:
	// DefaultMaxInFlight.
	MaxInFlight map[CallClass]int
}

// CallClass groups methods by the resource their calls hold, for MaxInFlight.
type CallClass string

// The call classes. Health and reflection calls belong to none and are never shed.
const (
	// ClassRead: Get*, List*, ResolveIdentifier: indexed reads, often answered from a cache;
	// they cost CPU and a database connection for a moment.
	ClassRead CallClass = "read"
	// ClassWrite: every other unary method: one write transaction each. SQLite runs one at a
	// time; on PostgreSQL each holds one of the pool's connections.
	ClassWrite CallClass = "write"
	// ClassDNS: VerifyChallenge, which waits for the zone's nameservers (up to the DNS
	// timeout) and then writes.
	ClassDNS CallClass = "dns"
	// ClassWatch: WatchEvents streams, each reading the store every event poll interval for
	// as long as it is open.
	ClassWatch CallClass = "watch"
)

// DefaultMaxInFlight returns the default bounds of calls in progress per class, for a
// process that may run on GOMAXPROCS CPUs.
//
// The bounds are small: a call admitted beyond what the cores and the database can work on
// at once only waits, and makes every other call wait longer. Measured with 200 clients
// registering identifiers on 2 cores (BenchmarkOverload), 2 per core in each class kept the
// admitted calls' p99 lowest at the same throughput as larger bounds.
//
// Reads, 2 × GOMAXPROCS: indexed reads, often answered from the caches, are CPU and a
// connection for a moment. Writes, 2 × GOMAXPROCS: one transaction each; SQLite commits one at
// a time, and on PostgreSQL they leave most of the pool's 4 × GOMAXPROCS connections to reads.
// DNS checks, 2 × GOMAXPROCS: a check waits for the zone's nameservers but costs CPU for its
// queries and ends in a write; raise it when agents' nameservers are slow. Watches, 1,000
// streams: each reads the store once per poll interval.
func DefaultMaxInFlight() map[CallClass]int {
	n := runtime.GOMAXPROCS(0)
	return map[CallClass]int{ClassRead: 2 * n, ClassWrite: 2 * n, ClassDNS: 2 * n, ClassWatch: 1000}
}

// Default limits.
const (
	DefaultMaxConnectionIdle  = time.Minute
	DefaultMaxStreamsPerConn  = 100
	DefaultMaxConns           = 500
	DefaultMaxWatchesPerAgent = 4
)

// Keepalive enforcement: a client may ping at most this often; one that pings more gets
// GOAWAY ("too_many_pings"). Pings are allowed on connections without calls, since clients
// behind NAT keep connections warm so; they do not count as activity for MaxConnectionIdle.
const keepaliveMinTime = 10 * time.Second

// The server pings a connection quiet for keepaliveTime and closes it unless the client
// answers within keepaliveTimeout, so a vanished client's stream does not stay open.
const (
	keepaliveTime    = time.Minute
	keepaliveTimeout = 20 * time.Second
)

// shedRetryDelay is the RetryInfo a shed call carries: the client should wait about this
// long (jittered ±50 %, so that shed clients do not return together) before calling again.
// Long enough that waiting clients cost the server little, short against a call's deadline.
const shedRetryDelay = 100 * time.Millisecond

// withDefaults returns l with zero fields set to their defaults.
func (l Limits) withDefaults() Limits {
	if l.MaxConnectionIdle == 0 {
		l.MaxConnectionIdle = DefaultMaxConnectionIdle
	}
	if l.MaxStreamsPerConn == 0 {
		l.MaxStreamsPerConn = DefaultMaxStreamsPerConn
	}
	if l.MaxConns == 0 {
		l.MaxConns = DefaultMaxConns
	}
	if l.MaxWatchesPerAgent == 0 {
		l.MaxWatchesPerAgent = DefaultMaxWatchesPerAgent
	}
	inFlight := DefaultMaxInFlight()
	for c, n := range l.MaxInFlight {
		if n != 0 {
			inFlight[c] = n
		}
	}
	l.MaxInFlight = inFlight
	return l
}

// classOf returns the class of a full method name, or "" for calls that are never shed.
func classOf(fullMethod string) CallClass {
	service, method, _ := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	switch {
	case !strings.HasPrefix(service, "id4me.registry."):
		return ""
	case method == "WatchEvents":
		return ClassWatch
	case method == "VerifyChallenge":
		return ClassDNS
	case strings.HasPrefix(method, "Get"), strings.HasPrefix(method, "List"), strings.HasPrefix(method, "Resolve"):
		return ClassRead
	}
	return ClassWrite
}

// shedder admits calls while their class has room and refuses the others at once: a queue
// would only make every call slower, and the client can retry elsewhere or later.
type shedder struct {
	slots map[CallClass]chan struct{}
	shed  *prometheus.CounterVec
}

func newShedder(bounds map[CallClass]int, reg prometheus.Registerer) *shedder {
	s := &shedder{
		slots: make(map[CallClass]chan struct{}),
		shed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "id4me_grpc_shed_total",
			Help: "Calls refused with RESOURCE_EXHAUSTED (OVERLOADED) because their class had as many calls in progress as it may, by class.",
		}, []string{"class"}),
	}
	reg.MustRegister(s.shed)
	for c, n := range bounds {
		if n <= 0 {
			continue
		}
		ch := make(chan struct{}, n)
		s.slots[c] = ch
		s.shed.WithLabelValues(string(c))
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "id4me_grpc_in_flight",
			Help:        "Calls in progress, by class; at the class's bound further calls are shed.",
			ConstLabels: prometheus.Labels{"class": string(c)},
		}, func() float64 { return float64(len(ch)) }))
	}
	return s
}

// admit takes a slot of fullMethod's class and returns its release, or an OVERLOADED status
// when the class is full.
func (s *shedder) admit(fullMethod string) (func(), error) {
	c := classOf(fullMethod)
	ch := s.slots[c]
	if ch == nil {
		return func() {}, nil
	}
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	default:
	}
	s.shed.WithLabelValues(string(c)).Inc()
	return nil, overloaded(c)
}

// overloaded is the answer to a call shed from class c.
func overloaded(c CallClass) error {
	st := status.New(kindCodes[registry.ReasonOverloaded.Kind()], "the registry is busy with other "+string(c)+" calls; retry after the delay given")
	delay := shedRetryDelay/2 + rand.N(shedRetryDelay)
	d, err := st.WithDetails(
		&errdetails.ErrorInfo{Reason: string(registry.ReasonOverloaded), Domain: ErrorDomain, Metadata: map[string]string{"class": string(c)}},
		&errdetails.RetryInfo{RetryDelay: durationpb.New(delay)},
	)
	if err != nil {
		return st.Err()
	}
	return d.Err()
}

func (s *shedder) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	release, err := s.admit(info.FullMethod)
	if err != nil {
		return nil, err
	}
	defer release()
	return h(ctx, req)
}

func (s *shedder) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	release, err := s.admit(info.FullMethod)
	if err != nil {
		return err
	}
	defer release()
	return h(srv, ss)
}

// watchCounter caps each agent's open WatchEvents streams.
type watchCounter struct {
	max  int
	mu   sync.Mutex
	open map[string]int
}

func newWatchCounter(max int) *watchCounter {
	return &watchCounter{max: max, open: make(map[string]int)}
}

// acquire counts a new stream of agentID and returns its release, or TOO_MANY_STREAMS when the
// agent has as many open as it may.
func (w *watchCounter) acquire(agentID string) (func(), error) {
	if w.max < 0 {
		return func() {}, nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.open[agentID] >= w.max {
		return nil, statusError(registry.ReasonTooManyStreams,
			"this agent has as many WatchEvents streams open as it may; close one first (one stream receives every event)")
	}
	w.open[agentID]++
	return func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.open[agentID]--; w.open[agentID] == 0 {
			delete(w.open, agentID)
		}
	}, nil
}

// connLimit counts the open connections of the gRPC listeners and closes those accepted
// beyond a cap at once.
//
// golang.org/x/net/netutil.LimitListener instead stops accepting at the cap: the kernel then
// completes further handshakes into its backlog, where clients wait, connected as far as they
// can tell, until their own timeouts, and a flood of them is served first once room returns.
// Closing at once tells a client straight away to try again later or elsewhere (another
// instance behind the load balancer), and keeps the backlog for clients that can be served.
type connLimit struct {
	max     int64
	open    atomic.Int64
	refused prometheus.Counter
	log     *slog.Logger
	// warned makes the first refusal after a time under the cap log, not every one.
	warned atomic.Bool
}

func newConnLimit(max int, log *slog.Logger, reg prometheus.Registerer) *connLimit {
	c := &connLimit{
		max: int64(max), log: log,
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "id4me_grpc_connections_refused_total",
			Help: "gRPC connections closed as soon as they were accepted because as many as --grpc-max-conns were open.",
		}),
	}
	reg.MustRegister(c.refused, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "id4me_grpc_connections",
		Help: "Open gRPC connections.",
	}, func() float64 { return float64(c.open.Load()) }))
	return c
}

// listener wraps l so that its connections count against the cap.
func (c *connLimit) listener(l net.Listener) net.Listener {
	if c.max < 0 {
		return l
	}
	return &connLimitListener{Listener: l, c: c}
}

type connLimitListener struct {
	net.Listener
	c *connLimit
}

func (l *connLimitListener) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.c.open.Add(1) <= l.c.max {
			l.c.warned.Store(false)
			return &countedConn{Conn: conn, c: l.c}, nil
		}
		l.c.open.Add(-1)
		conn.Close()
		l.c.refused.Inc()
		if l.c.warned.CompareAndSwap(false, true) {
			l.c.log.Warn("gRPC connection cap reached: closing new connections until some end", "max", l.c.max)
		}
	}
}

// countedConn gives its slot back when it is closed, once.
type countedConn struct {
	net.Conn
	c      *connLimit
	closed sync.Once
}

func (c *countedConn) Close() error {
	c.closed.Do(func() { c.c.open.Add(-1) })
	return c.Conn.Close()
}

// grpcOptions returns the gRPC server options that apply l.
func (l Limits) grpcOptions() []grpc.ServerOption {
	params := keepalive.ServerParameters{Time: keepaliveTime, Timeout: keepaliveTimeout}
	if l.MaxConnectionIdle > 0 {
		params.MaxConnectionIdle = l.MaxConnectionIdle
	}
	opts := []grpc.ServerOption{
		grpc.KeepaliveParams(params),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: keepaliveMinTime, PermitWithoutStream: true}),
	}
	if l.MaxStreamsPerConn > 0 {
		opts = append(opts, grpc.MaxConcurrentStreams(uint32(l.MaxStreamsPerConn)))
	}
	return opts
}
