package edge

import (
	"errors"
	"log/slog"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"

	"github.com/gofiber/fiber/v2"
)

// envelope is the shape of every response body: code 0 and data on success, a stable
// order.Code and a human message on failure.
type envelope struct {
	Code    order.Code `json:"code"`
	Message string     `json:"message"`
	Data    any        `json:"data,omitempty"`
}

// respond sends data in a success envelope with the given HTTP status.
func respond(c *fiber.Ctx, status int, data any) error {
	return c.Status(status).JSON(envelope{Code: order.CodeOK, Message: "ok", Data: data})
}

// handleError is the app's only ErrorHandler: every failure, from a handler, from routing,
// from fasthttp itself (a request it cannot parse, headers or body too large) or from
// refuseUnknownMethods, leaves through here as an envelope. Errors that are not
// *order.Error are reported as CodeInternal and logged in full, never shown.
func (s *server) handleError(c *fiber.Ctx, err error) error {
	// For a request fasthttp refused, this is the moment it gave up on it: the closest to
	// its arrival that we know (fasthttp's own start time is zero on that path).
	start := time.Now()
	// fasthttp refuses requests before any middleware runs, so the request may not have
	// an id yet.
	id := s.stamp(c)
	log := s.log.With(slog.String("request_id", id))

	appErr := toAppError(err)
	if appErr.Code == order.CodeInternal {
		log.Error("request failed", slog.String("method", c.Method()), slog.String("path", c.Path()), slog.Any("error", err))
	}
	observed := c.Locals(localObserved) != nil
	if !observed || appErr.Code == order.CodeRouteNotFound || appErr.Code == order.CodeMethodNotAllowed {
		// Label metrics with a constant, not with whatever path a scanner tried.
		c.Locals(localRoute, "unmatched")
	}
	if appErr.Code.Retryable() {
		c.Set("Retry-After", "1")
	}
	if appErr.Code == order.CodeUnauthenticated {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="ordermesh"`)
	}
	if !observed {
		// The observe middleware never saw this request: account for it here.
		defer s.finish(c, log, start)
	}
	return c.Status(httpStatus(appErr.Code)).JSON(envelope{Code: appErr.Code, Message: appErr.Message})
}

// toAppError maps any error to the *order.Error the client sees.
func toAppError(err error) *order.Error {
	var appErr *order.Error
	if errors.As(err, &appErr) {
		return appErr
	}
	var fe *fiber.Error
	if errors.As(err, &fe) {
		switch fe.Code {
		case fiber.StatusNotFound:
			return order.Errorf(order.CodeRouteNotFound, "no such endpoint")
		case fiber.StatusMethodNotAllowed:
			return order.Errorf(order.CodeMethodNotAllowed, "method not allowed on this endpoint")
		case fiber.StatusRequestEntityTooLarge:
			return order.Errorf(order.CodeTooLarge, "request body is too large")
		case fiber.StatusRequestHeaderFieldsTooLarge:
			return order.Errorf(order.CodeHeadersTooLarge, "the request line and headers are too large")
		case fiber.StatusBadRequest:
			return order.Errorf(order.CodeInvalidRequest, "malformed HTTP request")
		case fiber.StatusRequestTimeout:
			return order.Errorf(order.CodeUnavailable, "request timed out")
		}
	}
	return &order.Error{Code: order.CodeInternal, Message: "internal error"}
}
