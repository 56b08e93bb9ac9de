package server

import (
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// routinePaths are the HTTP paths whose requests the access log writes at DEBUG: probes
// (/healthz, /readyz), scrapes (/metrics) and the pages' static assets, which load balancers,
// Prometheus and every page view fetch all the time.
var routinePaths = []string{"/healthz", "/readyz", "/metrics", "/assets/", "/favicon."}

// secretPathPrefixes are the paths whose last part is a secret (a credential link's token):
// the access log writes the prefix and "…" instead.
var secretPathPrefixes = []string{"/credential/"}

// accessLog logs each request to next once it is answered: method, path, status, bytes
// and duration. It never logs the query string, headers or body, and cuts the secret off
// the paths of secretPathPrefixes. Requests to routinePaths that succeed are logged at
// DEBUG, the rest at INFO (a 5xx answer at WARN).
func accessLog(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		level := slog.LevelInfo
		switch {
		case rec.status >= 500:
			level = slog.LevelWarn
		case rec.status < 400 && hasAnyPrefix(r.URL.Path, routinePaths):
			level = slog.LevelDebug
		}
		ctx := r.Context()
		if !log.Enabled(ctx, level) {
			return
		}
		log.Log(ctx, level, "http request", "method", r.Method, "path", loggedPath(r.URL.Path),
			"status", rec.status, "bytes", rec.bytes, "duration", time.Since(start))
	})
}

// loggedPath is path with the secret of a secretPathPrefixes path cut off.
func loggedPath(path string) string {
	for _, p := range secretPathPrefixes {
		if strings.HasPrefix(path, p) && len(path) > len(p) {
			return p + "…"
		}
	}
	return path
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// statusRecorder keeps the status and the size of an answer. Unwrap lets
// http.ResponseController reach the connection's Flusher and deadlines.
type statusRecorder struct {
	http.ResponseWriter
	status      int
	bytes       int64
	wroteHeader bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wroteHeader && code >= 200 {
		r.status, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(p []byte) (int, error) {
	r.wroteHeader = true
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

// Flush passes a flush on (pprof and streamed answers).
func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
