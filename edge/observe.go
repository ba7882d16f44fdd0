package edge

import (
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/ordermesh/ordermesh/actors/order"
)

// Keys of the values observe and the handlers share through c.Locals.
const (
	localRequestID = "edge.request_id"
	localLogger    = "edge.logger"
	localObserved  = "edge.observed"
	localRoute     = "edge.route"
	localOrderID   = "edge.order_id"
	localPrincipal = "edge.principal"
	localUser      = "edge.user" // the username a request is for, authenticated or claimed
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
	log := s.log.With(slog.String("request_id", s.stamp(c)))
	c.Locals(localLogger, log)
	c.Locals(localObserved, true)
	if err := recovered(c); err != nil {
		s.writeError(c, log, err)
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

// stamp sets what every response carries, whichever path wrote it, and returns the
// request id. It is called again on error paths, since a panic resets the response.
//
// Nothing the API answers may be cached or framed: tokens and orders are private, and
// no page of ours is meant to be shown inside another site's frame. The policy is only
// frame-ancestors, so that it does not constrain the scripts and styles of the web app
// that will be served from / later; that app sets its own policy.
func (s *server) stamp(c *fiber.Ctx) string {
	id := ensureRequestID(c)
	if s.cfg.NodeID != "" {
		c.Set("X-Node-ID", s.cfg.NodeID)
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderXFrameOptions, "DENY")
	c.Set(fiber.HeaderContentSecurityPolicy, "frame-ancestors 'none'")
	return id
}

// refuseUnknownMethods answers methods that are not in Fiber's list (PURGE, FOO, a NUL
// byte) with a 405 envelope. Fiber itself would write a plain-text 400 before any
// middleware runs, without request id or metrics.
func (s *server) refuseUnknownMethods(app *fiber.App) {
	srv := app.Server()
	next := srv.Handler
	srv.Handler = func(fctx *fasthttp.RequestCtx) {
		if slices.Contains(fiber.DefaultMethods, string(fctx.Method())) {
			next(fctx)
			return
		}
		c := app.AcquireCtx(fctx)
		defer app.ReleaseCtx(c)
		s.writeError(c, s.log, order.Errorf(order.CodeMethodNotAllowed, "method %q is not supported", truncate(c.Method(), 32)))
	}
}

// writeError answers err through handleError, outside Fiber's own error handling.
func (s *server) writeError(c *fiber.Ctx, log *slog.Logger, err error) {
	if herr := s.handleError(c, err); herr != nil {
		log.Error("writing error response", slog.Any("error", herr))
		c.Status(fiber.StatusInternalServerError)
	}
}

// methodLabel is the method as a metric label: a standard method, or "OTHER", so that
// a scanner's made-up methods do not each make a series.
func methodLabel(m string) string {
	if slices.Contains(fiber.DefaultMethods, m) {
		return m
	}
	return "OTHER"
}

// finish writes the access log line and the HTTP metrics of a completed request.
func (s *server) finish(c *fiber.Ctx, log *slog.Logger, start time.Time) {
	d := time.Since(start)
	route, ok := c.Locals(localRoute).(string)
	if !ok {
		route = c.Route().Path
	}
	status := c.Response().StatusCode()
	s.metrics.observeHTTP(route, methodLabel(c.Method()), strconv.Itoa(status), d)
	if s.requests != nil && route != "/ws" {
		// A WebSocket's duration is its connection's life, not a latency.
		s.requests.Record(d)
	}

	attrs := []slog.Attr{
		slog.String("method", truncate(c.Method(), 32)),
		slog.String("route", route),
		slog.String("path", c.Path()),
		slog.Int("status", status),
		slog.Duration("duration", d),
	}
	if id, ok := c.Locals(localOrderID).(string); ok {
		attrs = append(attrs, slog.String("order_id", id))
	}
	if user := requestUser(c); user != "" {
		attrs = append(attrs, slog.String("user", user))
	}
	version := c.Get(HeaderClientVersion)
	s.guard.clientVersions.WithLabelValues(s.versions.label(version)).Inc()
	if version != "" {
		attrs = append(attrs, slog.String("client_version", truncate(version, 64)))
	}
	log.LogAttrs(c.UserContext(), slog.LevelInfo, "http request", attrs...)
}

// requestUser is the user a request is for: the authenticated principal, else the
// username an authentication request claimed, else "".
func requestUser(c *fiber.Ctx) string {
	if p, ok := c.Locals(localPrincipal).(order.Principal); ok && p.Subject != "" {
		return p.Subject
	}
	u, _ := c.Locals(localUser).(string)
	return u
}

// logger returns the request-scoped logger (with request_id, and order_id once known).
func (s *server) logger(c *fiber.Ctx) *slog.Logger {
	if l, ok := c.Locals(localLogger).(*slog.Logger); ok {
		return l
	}
	return s.log.With(slog.String("request_id", ensureRequestID(c)))
}

// setOrderID records the order a request is about, for the access log and later log
// lines, and names the node that owns it in the Ordermesh-Owner header.
func (s *server) setOrderID(c *fiber.Ctx, id string) {
	if cur, ok := c.Locals(localOrderID).(string); ok && cur == id {
		return
	}
	c.Locals(localOrderID, id)
	c.Locals(localLogger, s.logger(c).With(slog.String("order_id", id)))
	if s.cluster != nil {
		if owner := s.cluster.OwnerHTTP(id); owner != "" {
			c.Set(HeaderOwner, owner)
		}
	}
}
