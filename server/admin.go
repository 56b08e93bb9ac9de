package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// readyTimeout bounds the readiness check of one /readyz request: a database that takes
// longer to answer a ping is as good as unreachable for the calls a load balancer would send.
const readyTimeout = time.Second

// newAdminServer builds the operator's HTTP server: /metrics, /readyz and, when configured,
// pprof. It has no authentication of its own, so it belongs on loopback or an operators'
// network (--admin-addr).
func (s *Server) newAdminServer() *http.Server {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Prometheus, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /readyz", s.readyz)
	if s.cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return &http.Server{
		Handler:           accessLog(s.cfg.Logger, mux),
		ReadHeaderTimeout: 10 * time.Second,
		// A CPU profile or trace runs for the seconds its request asks for.
		WriteTimeout:   5 * time.Minute,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelWarn),
	}
}

// readyz answers 200 while this instance can serve calls, and 503 while its database does
// not answer or it is shutting down, so that a load balancer sends calls elsewhere.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	select {
	case <-s.stopping:
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte("shutting down\n"))
		return
	default:
	}
	if s.cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := s.cfg.Ready(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("database unreachable\n"))
			return
		}
	}
	w.Write([]byte("ready\n"))
}

// AdminHandler returns the operator's HTTP handler (/metrics, /readyz, pprof if configured).
func (s *Server) AdminHandler() http.Handler { return s.admin.Handler }

// ServeAdmin serves the operator's HTTP handler, plain HTTP, on l until Shutdown.
func (s *Server) ServeAdmin(l net.Listener) error {
	err := s.admin.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
