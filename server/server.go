// Package server puts the registry on the network: the gRPC services (RegistryService,
// AdminService, ResolverService) with their interceptors (authentication, authorisation,
// panic recovery, logging, metrics, per-agent rate limits, load shedding), health and
// reflection, the public HTTPS listener (the identity authority, /healthz), and the
// operator's HTTP listener (/metrics, /readyz, pprof).
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/ratelimit"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
	"github.com/id4me/id4me-registry/registry"
)

// Config configures a Server.
type Config struct {
	Service *registry.Service
	Logger  *slog.Logger
	// TLS is the listeners' TLS configuration (see ServerTLSConfig). Required.
	TLS *tls.Config
	// AllowPlaintextLoopback accepts plaintext gRPC from loopback clients (dev mode).
	AllowPlaintextLoopback bool
	// AgentRate and AgentBurst bound each agent's calls (token bucket); rate.Inf disables.
	AgentRate  rate.Limit
	AgentBurst int
	// Prometheus is where metrics are registered and served from; nil makes a new registry.
	Prometheus *prometheus.Registry
	// EventPollInterval is how often an open WatchEvents stream reads the store when this
	// instance has not signalled a new event (events committed by other instances sharing
	// the database are seen only so), and how often it checks its caller's credential
	// again. Default 1s.
	EventPollInterval time.Duration
	// Authority is the embedded Identity Authority's handler, served at the root of the
	// HTTPS listener beside /healthz; nil serves only that.
	Authority http.Handler
	// Limits bounds connections, streams and calls in progress; zero fields take defaults.
	Limits Limits
	// Ready tells whether this instance can serve calls (its database answers), for /readyz;
	// it is given a context with a short deadline. nil: always ready.
	Ready func(context.Context) error
	// Pprof serves net/http/pprof under /debug/pprof/ on the operator's handler.
	Pprof bool
}

// NewPrometheusRegistry returns a metrics registry with the Go runtime and process collectors.
func NewPrometheusRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// Server is the registry's gRPC server and HTTP handler.
type Server struct {
	cfg    Config
	grpc   *grpc.Server
	health *health.Server
	http   *http.Server
	admin  *http.Server
	conns  *connLimit
	// stopping is closed by Shutdown, which ends the open event streams: they would
	// otherwise keep a graceful stop waiting until its deadline.
	stopping     chan struct{}
	stoppingOnce sync.Once
}

// New builds the server.
func New(cfg Config) (*Server, error) {
	if cfg.Service == nil || cfg.TLS == nil {
		return nil, errors.New("server: Config.Service and Config.TLS are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Prometheus == nil {
		cfg.Prometheus = NewPrometheusRegistry()
	}
	if cfg.AgentRate == 0 {
		cfg.AgentRate, cfg.AgentBurst = 100, 200
	}
	if cfg.EventPollInterval <= 0 {
		cfg.EventPollInterval = time.Second
	}
	cfg.Limits = cfg.Limits.withDefaults()
	stopping := make(chan struct{})
	grpcMetrics := grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram())
	cfg.Prometheus.MustRegister(grpcMetrics)

	authn := authenticator{svc: cfg.Service, log: cfg.Logger}
	secured := selector.MatchFunc(needsCredentials)
	limiter := newAgentLimiter(cfg.AgentRate, cfg.AgentBurst)
	logOpts := []logging.Option{logging.WithLogOnEvents(logging.FinishCall), logging.WithFieldsFromContext(actorFields)}
	recoverOpt := recovery.WithRecoveryHandlerContext(recoverPanic(cfg.Logger))
	shed := newShedder(cfg.Limits.MaxInFlight, cfg.Prometheus)

	g := grpc.NewServer(append(cfg.Limits.grpcOptions(),
		grpc.Creds(newTransportCredentials(cfg.TLS, cfg.AllowPlaintextLoopback)),
		grpc.ConnectionTimeout(10*time.Second),
		// Reused handler goroutines keep their grown stacks: the store's calls run deep.
		grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0))*4),
		grpc.MaxRecvMsgSize(1<<20),
		grpc.ChainUnaryInterceptor(
			// First: a shed call costs next to nothing, not even a log line (the shed are
			// counted in id4me_grpc_shed_total); a log line per shed call would add to the
			// overload it answers.
			shed.unary,
			withCallStateUnary,
			grpcMetrics.UnaryServerInterceptor(),
			logging.UnaryServerInterceptor(slogLogger(cfg.Logger), logOpts...),
			reasonUnary(cfg.Logger),
			recovery.UnaryServerInterceptor(recoverOpt),
			selector.UnaryServerInterceptor(auth.UnaryServerInterceptor(authn.authenticate), secured),
			selector.UnaryServerInterceptor(ratelimit.UnaryServerInterceptor(limiter), secured),
		),
		grpc.ChainStreamInterceptor(
			shed.stream,
			withCallStateStream,
			grpcMetrics.StreamServerInterceptor(),
			logging.StreamServerInterceptor(slogLogger(cfg.Logger), logOpts...),
			reasonStream(cfg.Logger),
			recovery.StreamServerInterceptor(recoverOpt),
			selector.StreamServerInterceptor(auth.StreamServerInterceptor(authn.authenticate), secured),
			selector.StreamServerInterceptor(ratelimit.StreamServerInterceptor(limiter), secured),
		),
	)...)
	registryv1.RegisterRegistryServiceServer(g, &registryService{
		svc: cfg.Service, log: cfg.Logger, pollInterval: cfg.EventPollInterval, reauth: authn.identify, stopping: stopping,
		watches: newWatchCounter(cfg.Limits.MaxWatchesPerAgent),
	})
	registryv1.RegisterAdminServiceServer(g, &adminService{svc: cfg.Service, log: cfg.Logger})
	registryv1.RegisterResolverServiceServer(g, &resolverService{svc: cfg.Service, log: cfg.Logger})
	hs := health.NewServer()
	healthpb.RegisterHealthServer(g, hs)
	for _, name := range []string{"", registryv1.RegistryService_ServiceDesc.ServiceName, registryv1.AdminService_ServiceDesc.ServiceName, registryv1.ResolverService_ServiceDesc.ServiceName} {
		hs.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	reflection.Register(g)
	grpcMetrics.InitializeMetrics(g)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	if cfg.Authority != nil {
		mux.Handle("/", cfg.Authority)
	}
	httpTLS := cfg.TLS.Clone()
	// Browsers and relying parties use this listener: asking them for a client certificate
	// would make browsers offer one.
	httpTLS.ClientAuth = tls.NoClientCert
	hsrv := &http.Server{
		Handler:           accessLog(cfg.Logger, mux),
		TLSConfig:         httpTLS,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: httpsMaxStreams},
	}
	s := &Server{cfg: cfg, grpc: g, health: hs, http: hsrv, stopping: stopping,
		conns: newConnLimit(cfg.Limits.MaxConns, cfg.Logger, cfg.Prometheus)}
	s.admin = s.newAdminServer()
	return s, nil
}

// httpsMaxStreams bounds the concurrent requests of one HTTP/2 connection to the HTTPS
// listener: a browser or relying party needs a handful.
const httpsMaxStreams = 100

// Handler returns the public HTTP handler (/healthz, the authority).
func (s *Server) Handler() http.Handler { return s.http.Handler }

// ServeGRPC serves gRPC on l until Shutdown; the connections of l count against
// Limits.MaxConns.
func (s *Server) ServeGRPC(l net.Listener) error { return s.grpc.Serve(s.conns.listener(l)) }

// ServeHTTPS serves the HTTP handler over TLS on l until Shutdown.
func (s *Server) ServeHTTPS(l net.Listener) error {
	err := s.http.ServeTLS(l, "", "")
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops taking calls, ends the event streams (UNAVAILABLE, reason
// SERVER_SHUTTING_DOWN: their clients reconnect, elsewhere, with after_id), lets the other
// calls in flight finish until ctx ends, then stops. Every state change is one transaction,
// so a call cut short leaves nothing half-written.
func (s *Server) Shutdown(ctx context.Context) {
	s.health.Shutdown()
	s.stoppingOnce.Do(func() { close(s.stopping) })
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	httpErr := make(chan error, 1)
	go func() { httpErr <- s.http.Shutdown(ctx) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.grpc.Stop()
		<-done
	}
	<-httpErr
	// Last, so that /readyz says "stopping" and /metrics can be read while calls finish.
	s.admin.Close()
}
