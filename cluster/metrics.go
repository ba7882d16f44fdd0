package cluster

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ordermesh/ordermesh/actors"
)

// Metrics are the node's grain metrics.
type Metrics struct {
	commands *prometheus.CounterVec
}

// NewMetrics registers the grain metrics in reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{commands: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ordermesh_grain_commands_total",
		Help: "Commands handled by order grains on this node, by command type and result code (0 = applied or replayed).",
	}, []string{"command", "code"})}
	reg.MustRegister(m.commands)
	return m
}

// Outcome counts one command; it is actors.GrainConfig.Outcome.
func (m *Metrics) Outcome(c actors.CommandType, code actors.Code) {
	m.commands.WithLabelValues(string(c), strconv.Itoa(int(code))).Inc()
}

// Watch registers gauges that read the node's state at scrape time.
func (m *Metrics) Watch(reg prometheus.Registerer, n *Node) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ordermesh_active_grains",
		Help: "Order grains active on this node.",
	}, func() float64 { return float64(n.Activations()) }))
}
