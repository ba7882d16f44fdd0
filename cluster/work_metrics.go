package cluster

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ordermesh/ordermesh/actors"
	"github.com/ordermesh/ordermesh/persistence"
)

// WorkMetrics are the metrics of the node's worker pools (payment submissions and
// fulfilment tasks) and of its payment provider's circuit breaker.
type WorkMetrics struct {
	runs *prometheus.CounterVec
	took *prometheus.HistogramVec
	age  *prometheus.HistogramVec
}

// breakerStates maps a circuit breaker's state to the value of its gauge.
var breakerStates = map[string]float64{"closed": 0, "half-open": 1, "open": 2}

// NewWorkMetrics registers the work metrics in reg. counts reads the queue depths (on
// every scrape, bounded by a second); breaker, if set, reports the provider's breaker.
func NewWorkMetrics(reg prometheus.Registerer, counts func(ctx context.Context) ([]persistence.JobCount, error), breaker func() string) *WorkMetrics {
	m := &WorkMetrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ordermesh_job_runs_total",
			Help: "Runs of jobs by this node's pools, by kind (payment, fulfilment) and outcome (done, retry, dead, cancelled, lost: its lease had passed).",
		}, []string{"kind", "outcome"}),
		took: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ordermesh_job_run_seconds",
			Help:    "Time one run of a job took on this node, by kind.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16), // 1 ms .. 33 s
		}, []string{"kind"}),
		age: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ordermesh_job_latency_seconds",
			Help:    "Time from a job's creation (its order's transition) to its completion, by kind: for fulfilment, from paid to shipped.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 16), // 10 ms .. 5.5 min
		}, []string{"kind"}),
	}
	reg.MustRegister(m.runs, m.took, m.age, &queueDepth{counts: counts})
	if breaker != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "ordermesh_payment_breaker_state",
			Help: "The payment provider's circuit breaker on this node: 0 closed, 1 half-open, 2 open (calls fail fast; payments wait in the queue).",
		}, func() float64 { return breakerStates[breaker()] }))
	}
	return m
}

// Finished records one run of a job; it is an actors.PoolObserver.
func (m *WorkMetrics) Finished(kind, outcome string, took, age time.Duration) {
	m.runs.WithLabelValues(kind, outcome).Inc()
	m.took.WithLabelValues(kind).Observe(took.Seconds())
	if outcome == actors.OutcomeDone {
		m.age.WithLabelValues(kind).Observe(age.Seconds())
	}
}

// queueDepth reports the jobs that are pending, running or dead, read from the store
// when scraped: the queue is the cluster's, every node reports the same figures.
type queueDepth struct {
	counts func(ctx context.Context) ([]persistence.JobCount, error)
}

var queueDepthDesc = prometheus.NewDesc("ordermesh_jobs",
	"Jobs in the cluster's queue by kind and state (pending, running, dead), as stored.", []string{"kind", "state"}, nil)

func (q *queueDepth) Describe(ch chan<- *prometheus.Desc) { ch <- queueDepthDesc }

func (q *queueDepth) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	counts, err := q.counts(ctx)
	if err != nil {
		return // the series go missing for one scrape; failing the whole scrape would hide the rest
	}
	// Every kind and state, 0 when empty: a series that vanishes when its queue drains
	// reads as "unknown", not as "empty".
	depth := map[[2]string]int64{}
	for _, kind := range []string{actors.JobPayment, actors.JobFulfilment} {
		for _, state := range []string{persistence.JobPending, persistence.JobRunning, persistence.JobDead} {
			depth[[2]string{kind, state}] = 0
		}
	}
	for _, c := range counts {
		depth[[2]string{c.Kind, c.State}] = c.N
	}
	for k, n := range depth {
		ch <- prometheus.MustNewConstMetric(queueDepthDesc, prometheus.GaugeValue, float64(n), k[0], k[1])
	}
}
