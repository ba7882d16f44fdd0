package cluster

import (
	"strconv"
	"sync"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the node's grain and membership metrics.
type Metrics struct {
	commands *prometheus.CounterVec
	members  *prometheus.GaugeVec
	changes  prometheus.Counter
	batchN   prometheus.Histogram
	batchDur *prometheus.HistogramVec
	// A stock grain's batches: commands decided per store write, and the write's time.
	stockCmds prometheus.Histogram
	stockDur  prometheus.Histogram

	mu          sync.Mutex
	lastVersion uint64
}

// NewMetrics registers the node's metrics in reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ordermesh_grain_commands_total",
			Help: "Commands handled by order grains on this node, by command type and result code (0 = applied or replayed).",
		}, []string{"command", "code"}),
		members: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ordermesh_cluster_members",
			Help: "Members of the cluster as this node sees them, by state.",
		}, []string{"state"}),
		changes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ordermesh_cluster_topology_changes_total",
			Help: "Changes of the cluster membership seen by this node.",
		}),
		batchN: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ordermesh_store_batch_writes",
			Help:    "Writes per group-commit batch of the store.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11), // 1 .. 1024
		}),
		batchDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ordermesh_store_batch_seconds",
			Help:    "Time to write one group-commit batch, by result (ok or error).",
			Buckets: prometheus.ExponentialBuckets(0.0002, 2, 14), // 0.2 ms .. 1.6 s
		}, []string{"result"}),
	}
	m.stockCmds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "ordermesh_stock_batch_commands",
		Help:    "Commands a stock grain decided per store write (one sku's batch).",
		Buckets: prometheus.ExponentialBuckets(1, 2, 13), // 1 .. 4096
	})
	m.stockDur = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "ordermesh_stock_batch_seconds",
		Help:    "Time to write one stock grain's batch.",
		Buckets: prometheus.ExponentialBuckets(0.0002, 2, 14),
	})
	reg.MustRegister(m.commands, m.members, m.changes, m.batchN, m.batchDur, m.stockCmds, m.stockDur)
	return m
}

// Outcome counts one command; it is actors.GrainConfig.Outcome.
func (m *Metrics) Outcome(c order.CommandType, code order.Code) {
	m.commands.WithLabelValues(string(c), strconv.Itoa(int(code))).Inc()
}

// StoreBatch records one batch of the store; it is a persistence.BatchObserver.
func (m *Metrics) StoreBatch(writes int, took time.Duration, err error) {
	m.batchN.Observe(float64(writes))
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.batchDur.WithLabelValues(result).Observe(took.Seconds())
}

// StockBatch records one stock grain batch; it is actors.StockConfig.Batched.
func (m *Metrics) StockBatch(commands, _ int, took time.Duration) {
	m.stockCmds.Observe(float64(commands))
	m.stockDur.Observe(took.Seconds())
}

func (m *Metrics) observeView(v View) {
	counts := map[MemberState]int{StateJoining: 0, StateActive: 0, StateLeaving: 0}
	for _, mem := range v.Members {
		counts[mem.State]++
	}
	for st, c := range counts {
		m.members.WithLabelValues(string(st)).Set(float64(c))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if v.Version > m.lastVersion {
		if m.lastVersion != 0 {
			m.changes.Add(float64(v.Version - m.lastVersion))
		}
		m.lastVersion = v.Version
	}
}

// Watch registers gauges that read the node's state at scrape time.
func (m *Metrics) Watch(reg prometheus.Registerer, n *Node) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ordermesh_active_grains",
		Help: "Order grains active on this node.",
	}, func() float64 { return float64(n.Activations()) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ordermesh_grains_max",
		Help: "The bound on grains (orders and skus) active on this node (--max-grains; 0 = none).",
	}, func() float64 { return float64(n.MaxGrains()) }))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "ordermesh_grains_evicted_total",
		Help: "Order grains passivated early, least recently used first, to stay within the bound on active grains.",
	}, func() float64 { return float64(n.Evictions()) }))
	m.observeView(n.View())
}
