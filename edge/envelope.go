package edge

import (
	"errors"
	"log/slog"

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

// handleError is the app's only ErrorHandler: every failure, from a handler, from routing
// or from fasthttp itself (body too large), leaves through here as an envelope. Errors that
// are not *order.Error are reported as CodeInternal and logged in full, never shown.
func (s *server) handleError(c *fiber.Ctx, err error) error {
	// fasthttp rejects oversized bodies before any middleware runs, so the request may
	// not have an id yet.
	id := ensureRequestID(c)
	log := s.log.With(slog.String("request_id", id))

	appErr := toAppError(err)
	if appErr.Code == order.CodeInternal {
		log.Error("request failed", slog.String("method", c.Method()), slog.String("path", c.Path()), slog.Any("error", err))
	}
	if appErr.Code == order.CodeRouteNotFound || appErr.Code == order.CodeMethodNotAllowed {
		// Label metrics with a constant, not with whatever path a scanner tried.
		c.Locals(localRoute, "unmatched")
	}
	if appErr.Code.Retryable() {
		c.Set("Retry-After", "1")
	}
	if appErr.Code == order.CodeUnauthenticated {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="ordermesh"`)
	}
	if c.Locals(localObserved) == nil {
		// The observe middleware never saw this request: account for it here.
		defer s.finish(c, log, c.Context().Time())
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
		case fiber.StatusBadRequest, fiber.StatusRequestHeaderFieldsTooLarge:
			return order.Errorf(order.CodeInvalidRequest, "malformed request")
		case fiber.StatusRequestTimeout:
			return order.Errorf(order.CodeUnavailable, "request timed out")
		}
	}
	return &order.Error{Code: order.CodeInternal, Message: "internal error"}
}
