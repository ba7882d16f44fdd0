package edge

import "github.com/prometheus/client_golang/prometheus"

// wsMetrics are the series of /ws.
type wsMetrics struct {
	clients    prometheus.Gauge
	slowClosed prometheus.Counter
	latency    prometheus.Histogram
	events     *prometheus.CounterVec
	closes     *prometheus.CounterVec
}

func newWSMetrics(reg prometheus.Registerer) (*wsMetrics, error) {
	m := &wsMetrics{
		clients: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "ordermesh", Subsystem: "ws", Name: "clients",
			Help: "WebSocket clients connected to this node (/ws).",
		}),
		slowClosed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ordermesh", Subsystem: "ws", Name: "slow_closed_total",
			Help: "WebSocket clients closed with 4408 because their send buffer overflowed.",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "ordermesh", Subsystem: "ws", Name: "push_latency_seconds",
			Help:    "From a change's commit (on whichever node) to its write to a client here; live pushes only.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ordermesh", Subsystem: "ws", Name: "events_total",
			Help: "Order events written to WebSocket clients, by source: live (pushed) or store (replayed on subscribe or filling a gap).",
		}, []string{"source"}),
		closes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ordermesh", Subsystem: "ws", Name: "closes_total",
			Help: "WebSocket connections closed by this node, by close code.",
		}, []string{"code"}),
	}
	m.events.WithLabelValues("live")
	m.events.WithLabelValues("store")
	for _, c := range []prometheus.Collector{m.clients, m.slowClosed, m.latency, m.events, m.closes} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
