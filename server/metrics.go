package server

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/id4me/id4me-registry/dnsverify"
)

// Metrics are the registry's own Prometheus metrics; the per-method gRPC counts and
// latencies come from the go-grpc-middleware Prometheus provider.
type Metrics struct {
	challengeChecks *prometheus.CounterVec
	dnsQueries      *prometheus.CounterVec
	dnsDuration     *prometheus.HistogramVec
	jobItems        *prometheus.CounterVec
	jobErrors       *prometheus.CounterVec
	jobDuration     *prometheus.HistogramVec
	authority       *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		challengeChecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "id4me_challenge_checks_total",
			Help: "DNS checks of challenges, by outcome: valid, or the problem's reason.",
		}, []string{"outcome"}),
		dnsQueries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "id4me_dns_queries_total",
			Help: "DNS exchanges with nameservers, by transport and outcome (an rcode, or error).",
		}, []string{"transport", "outcome"}),
		dnsDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "id4me_dns_query_duration_seconds",
			Help:    "Duration of DNS exchanges with nameservers.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"transport"}),
		jobItems: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "id4me_job_items_total",
			Help: "Items handled by background sweeps, by job (challenges deleted, transfers approved, identifiers purged, _openid records checked).",
		}, []string{"job"}),
		jobErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "id4me_job_errors_total",
			Help: "Background sweeps that ended in an error, by job.",
		}, []string{"job"}),
		jobDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "id4me_job_sweep_duration_seconds",
			Help:    "Duration of background sweeps, by job.",
			Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 5, 10, 30, 60, 300},
		}, []string{"job"}),
		authority: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "id4me_authority_events_total",
			Help: "What the identity authority answered, by event (registration, login, totp, credentials, token, userinfo) and outcome.",
		}, []string{"event", "outcome"}),
	}
	reg.MustRegister(m.challengeChecks, m.dnsQueries, m.dnsDuration, m.jobItems, m.jobErrors, m.jobDuration, m.authority)
	return m
}

// AuthorityEvent counts an answer of the identity authority (authority.Config.Observe).
func (m *Metrics) AuthorityEvent(event, outcome string) {
	m.authority.WithLabelValues(event, outcome).Inc()
}

// ChallengeChecked counts a challenge check (registry.Observer).
func (m *Metrics) ChallengeChecked(outcome string) {
	m.challengeChecks.WithLabelValues(outcome).Inc()
}

// DNSQuery counts a DNS exchange; it is dnsverify.Config.OnQuery.
func (m *Metrics) DNSQuery(q dnsverify.Query) {
	outcome := q.Rcode
	if q.Err != "" || outcome == "" {
		outcome = "error"
	}
	m.dnsQueries.WithLabelValues(q.Transport, outcome).Inc()
	m.dnsDuration.WithLabelValues(q.Transport).Observe(q.Duration.Seconds())
}

// SweepDone records one background sweep: the items it handled, how long it took and whether
// it failed. It is registry.WorkerConfig.Observe.
func (m *Metrics) SweepDone(job string, n int, took time.Duration, err error) {
	// Every series is touched on every sweep, so a job's counters read 0 rather than being
	// absent until its first item or error.
	items, errs := m.jobItems.WithLabelValues(job), m.jobErrors.WithLabelValues(job)
	if n > 0 {
		items.Add(float64(n))
	}
	if err != nil {
		errs.Inc()
	}
	m.jobDuration.WithLabelValues(job).Observe(took.Seconds())
}
