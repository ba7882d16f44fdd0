package edge

import (
	"context"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"

	"github.com/gofiber/fiber/v2"
)

type probeResponse struct {
	Status string `json:"status"`
	Node   string `json:"node,omitempty"`
}

// healthz answers as long as the process serves HTTP: it is the liveness probe.
func (s *server) healthz(c *fiber.Ctx) error {
	return respond(c, fiber.StatusOK, probeResponse{Status: "alive", Node: s.cfg.NodeID})
}

// readyz answers 503 until the node has joined the cluster and takes traffic, and again
// while it drains, so that load balancers send requests elsewhere.
func (s *server) readyz(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), 2*time.Second)
	defer cancel()
	if err := s.ready(ctx); err != nil {
		// The reason is for operators and load balancers: "not ready: draining".
		why := err.Error()
		if order.ErrorCode(err) != order.CodeInternal {
			why = order.ErrorMessage(err) // without the " (code n)" of Error()
		}
		return order.Errorf(order.CodeUnavailable, "not ready: %s", why)
	}
	return respond(c, fiber.StatusOK, probeResponse{Status: "ready", Node: s.cfg.NodeID})
}
