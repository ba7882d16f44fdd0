// Package warehouse is the fulfilment port: what ordermesh asks of a warehouse (pick,
// pack and hand a paid order to the carrier), and a simulated warehouse with a
// configurable latency and failure rate, so that everything runs on one machine. A real
// warehouse is an adapter of Warehouse away.
package warehouse

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"
)

// Task is one order to fulfil: the payload of its fulfilment job.
type Task struct {
	ID       string       `json:"id"` // the task's id; the warehouse keys its work by it
	OrderID  string       `json:"order_id"`
	Customer string       `json:"customer"`
	Lines    []order.Line `json:"lines"`
}

// Warehouse is the port to a warehouse.
type Warehouse interface {
	// Fulfil picks, packs and hands the task's order to the carrier, and returns once it
	// has. It is idempotent by Task.ID: a task run again after a failure or a crash is not
	// shipped twice. Any error may be retried.
	Fulfil(ctx context.Context, t Task) error
}

// Mode is how the simulated warehouse behaves.
type Mode struct {
	LatencyMS   int64   `json:"latency_ms"`   // how long fulfilling one task takes
	FailureRate float64 `json:"failure_rate"` // share of attempts that fail (0..1)
}

// DefaultMode is the demo's warehouse: half a second per parcel, one attempt in twenty fails.
var DefaultMode = Mode{LatencyMS: 500, FailureRate: 0.05}

// ErrSimulated is the failure the simulated warehouse reports.
var ErrSimulated = errors.New("simulated warehouse failure")

// Sim is a simulated warehouse. Its mode may change while it runs.
type Sim struct {
	mu   sync.Mutex
	mode Mode
	rng  *rand.Rand
}

// NewSim returns a simulated warehouse in mode m; seed makes its failures repeatable.
func NewSim(m Mode, seed uint64) *Sim {
	return &Sim{mode: m, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Mode returns the current mode.
func (s *Sim) Mode() Mode {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mode
}

// SetMode changes the mode; tasks already running keep the old one.
func (s *Sim) SetMode(m Mode) error {
	if m.LatencyMS < 0 || m.FailureRate < 0 || m.FailureRate > 1 {
		return errors.New("warehouse mode: latency_ms must be >= 0 and failure_rate within 0..1")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mode = m
	return nil
}

// Fulfil waits the mode's latency (or until ctx ends) and fails at the mode's rate.
func (s *Sim) Fulfil(ctx context.Context, _ Task) error {
	s.mu.Lock()
	m := s.mode
	fail := s.rng.Float64() < m.FailureRate
	s.mu.Unlock()
	if m.LatencyMS > 0 {
		t := time.NewTimer(time.Duration(m.LatencyMS) * time.Millisecond)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if fail {
		return ErrSimulated
	}
	return nil
}
