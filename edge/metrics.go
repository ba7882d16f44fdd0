package edge

import (
	"strconv"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the edge's Prometheus series. They live in the registry given in Deps, not
// in the global default, so that tests and several apps in one process do not collide.
type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	commands *prometheus.CounterVec
	// retries counts each retry of a retryable answer, by RetryReason; retryExhausted
	// counts the requests that got 503 because retrying did not help in time.
	retries        *prometheus.CounterVec
	retryExhausted prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ordermesh", Subsystem: "http", Name: "requests_total",
			Help: "HTTP requests by route template, method and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "ordermesh", Subsystem: "http", Name: "request_duration_seconds",
			Help:    "HTTP request latency by route template and method.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method"}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ordermesh", Subsystem: "edge", Name: "commands_total",
			Help: "Order commands sent to grains by command type and result code (0 = ok).",
		}, []string{"type", "code"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ordermesh", Subsystem: "edge", Name: "retries_total",
			Help: "Retries the edge made of a retryable grain answer, by reason (moved, draining, unreachable, timeout, store, other).",
		}, []string{"reason"}),
		retryExhausted: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ordermesh", Subsystem: "edge", Name: "retry_exhausted_total",
			Help: "Requests answered 503 because retries of a retryable grain answer did not succeed in time.",
		}),
	}
	// Every reason is exported from the start, so that rate() sees the first retry.
	for _, r := range order.Reasons {
		m.retries.WithLabelValues(string(r))
	}
	for _, c := range []prometheus.Collector{m.requests, m.latency, m.commands, m.retries, m.retryExhausted} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) observeHTTP(route, method, status string, d time.Duration) {
	m.requests.WithLabelValues(route, method, status).Inc()
	m.latency.WithLabelValues(route, method).Observe(d.Seconds())
}

// observeCommand counts the final outcome of a command, after retries.
func (m *metrics) observeCommand(t order.CommandType, err error) {
	m.commands.WithLabelValues(string(t), strconv.Itoa(int(order.ErrorCode(err)))).Inc()
}

func metricsHandler(g prometheus.Gatherer) fiber.Handler {
	return adaptor.HTTPHandler(promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
}
