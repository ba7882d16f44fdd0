package edge

import (
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
)

// Keys of the values observe and the handlers share through c.Locals.
const (
	localRequestID = "edge.request_id"
	localLogger    = "edge.logger"
	localObserved  = "edge.observed"
	localRoute     = "edge.route"
	localOrderID   = "edge.order_id"
	localPrincipal = "edge.principal"
)

// observe wraps every routed request: it assigns the request id, gives the handlers a
// logger carrying it, turns panics and errors into envelopes right here (so the status is
// known), then writes the access log line and the HTTP metrics.
func (s *server) observe(c *fiber.Ctx) error {
	if s.inflight != nil {
		s.inflight.n.Add(1)
		defer s.inflight.n.Add(-1)
	}
	start := time.Now()
	log := s.log.With(slog.String("request_id", ensureRequestID(c)))
	c.Locals(localLogger, log)
	c.Locals(localObserved, true)
	if s.cfg.NodeID != "" {
		c.Set("X-Node-ID", s.cfg.NodeID)
	}
	if err := recovered(c); err != nil {
		if herr := s.handleError(c, err); herr != nil {
			log.Error("writing error response", slog.Any("error", herr))
			c.Status(fiber.StatusInternalServerError)
		}
	}
	s.finish(c, log, start)
	return nil
}

// recovered runs the rest of the chain and turns a panic into an error, so that a bug
// costs one 500 envelope and a logged stack, not the connection.
func recovered(c *fiber.Ctx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			// Whatever the handler had written is unreliable now.
			c.Response().Reset()
			ensureRequestID(c)
			err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	return c.Next()
}

// finish writes the access log line and the HTTP metrics of a completed request.
func (s *server) finish(c *fiber.Ctx, log *slog.Logger, start time.Time) {
	d := time.Since(start)
	route, ok := c.Locals(localRoute).(string)
	if !ok {
		route = c.Route().Path
	}
	status := c.Response().StatusCode()
	s.metrics.observeHTTP(route, c.Method(), strconv.Itoa(status), d)

	attrs := []slog.Attr{
		slog.String("method", c.Method()),
		slog.String("route", route),
		slog.String("path", c.Path()),
		slog.Int("status", status),
		slog.Duration("duration", d),
	}
	if id, ok := c.Locals(localOrderID).(string); ok {
		attrs = append(attrs, slog.String("order_id", id))
	}
	log.LogAttrs(c.UserContext(), slog.LevelInfo, "http request", attrs...)
}

// logger returns the request-scoped logger (with request_id, and order_id once known).
func (s *server) logger(c *fiber.Ctx) *slog.Logger {
	if l, ok := c.Locals(localLogger).(*slog.Logger); ok {
		return l
	}
	return s.log.With(slog.String("request_id", ensureRequestID(c)))
}

// setOrderID records the order a request is about, for the access log and later log lines.
func (s *server) setOrderID(c *fiber.Ctx, id string) {
	if cur, ok := c.Locals(localOrderID).(string); ok && cur == id {
		return
	}
	c.Locals(localOrderID, id)
	c.Locals(localLogger, s.logger(c).With(slog.String("order_id", id)))
}
