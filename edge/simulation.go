package edge

import (
	"errors"
	"log/slog"

	"github.com/gofiber/fiber/v2"

	"github.com/ordermesh/ordermesh/actors/order"
	"github.com/ordermesh/ordermesh/actors/warehouse"
)

// Simulation reads and changes how this node's simulated outside services behave: the
// payment provider (actors/payment/sim) and the warehouse (warehouse.Sim).
type Simulation interface {
	// Simulation returns this node's simulated services; a part the node does not
	// simulate is nil.
	Simulation() SimulationState
	// SetSimulation replaces the parts st names (Node is ignored) and returns the state
	// after. An error that is an *order.Error is answered as it is; any other error is the
	// client's (422, its text shown), e.g. a part the node does not simulate.
	SetSimulation(st SimulationState) (SimulationState, error)
}

// SimulationState is the answer of GET /api/v1/simulation and the body of its PUT.
type SimulationState struct {
	Node      string           `json:"node"`
	Provider  *ProviderSimMode `json:"provider,omitempty"`
	Warehouse *warehouse.Mode  `json:"warehouse,omitempty"`
}

// ProviderSimMode is the mode of the simulated payment provider, the JSON of sim.Mode in
// actors/payment/sim, repeated here field for field (the node's adapter converts).
type ProviderSimMode struct {
	Down        bool    `json:"down"`         // every API call answers 503
	LatencyMS   int64   `json:"latency_ms"`   // every API call waits this long
	DelayMS     int64   `json:"delay_ms"`     // from intent to webhook
	FailureRate float64 `json:"failure_rate"` // share of intents that fail (0..1)
}

// errNoSimulation answers the simulation endpoints of a node that simulates nothing.
var errNoSimulation = order.Errorf(order.CodeUnavailable, "this node simulates no outside services")

// getSimulation handles GET /api/v1/simulation.
func (s *server) getSimulation(c *fiber.Ctx) error {
	if s.sim == nil {
		return errNoSimulation
	}
	return respond(c, fiber.StatusOK, s.sim.Simulation())
}

// putSimulation handles PUT /api/v1/simulation: the provider's and the warehouse's
// modes, each replaced in full when named, of this node only.
func (s *server) putSimulation(c *fiber.Ctx) error {
	if s.sim == nil {
		return errNoSimulation
	}
	var req SimulationState
	if err := decodeStrict(c.Body(), &req, false); err != nil {
		return err
	}
	if err := checkSimulation(req); err != nil {
		return err
	}
	if self := s.sim.Simulation().Node; req.Node != "" && req.Node != self {
		return order.Errorf(order.CodeValidation, "this is node %s, not %s: send the change to that node", self, truncate(req.Node, 64))
	}
	st, err := s.sim.SetSimulation(req)
	if err != nil {
		var appErr *order.Error
		if errors.As(err, &appErr) {
			return err
		}
		return order.Errorf(order.CodeValidation, "%s", truncate(err.Error(), 200))
	}
	s.logger(c).Info("simulation changed", slog.String("by", principal(c).Subject),
		slog.Any("provider", req.Provider), slog.Any("warehouse", req.Warehouse))
	return respond(c, fiber.StatusOK, st)
}

// checkSimulation refuses (422) a change that names nothing or a mode out of range.
func checkSimulation(st SimulationState) error {
	if st.Provider == nil && st.Warehouse == nil {
		return order.Errorf(order.CodeValidation, "name provider, warehouse or both")
	}
	if p := st.Provider; p != nil {
		if err := checkMode("provider", p.FailureRate, p.LatencyMS, p.DelayMS); err != nil {
			return err
		}
	}
	if w := st.Warehouse; w != nil {
		if err := checkMode("warehouse", w.FailureRate, w.LatencyMS); err != nil {
			return err
		}
	}
	return nil
}

func checkMode(part string, failureRate float64, ms ...int64) error {
	if !(failureRate >= 0 && failureRate <= 1) {
		return order.Errorf(order.CodeValidation, "%s.failure_rate must be within 0..1", part)
	}
	for _, v := range ms {
		if v < 0 {
			return order.Errorf(order.CodeValidation, "%s: durations in ms must not be negative", part)
		}
	}
	return nil
}
