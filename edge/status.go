package edge

import (
	"github.com/gofiber/fiber/v2"

	"github.com/ordermesh/ordermesh/actors/order"
)

// httpStatus is the HTTP status that carries an application code. The domain's codes are
// numbered so that their first three digits are this status; the table says so explicitly
// rather than dividing, so that a new code without a status is a 500 that a test catches.
func httpStatus(c order.Code) int {
	switch c {
	case order.CodeOK:
		return fiber.StatusOK
	case order.CodeInvalidRequest:
		return fiber.StatusBadRequest
	case order.CodeUnauthenticated:
		return fiber.StatusUnauthorized
	case order.CodeForbidden:
		return fiber.StatusForbidden
	case order.CodeNotFound, order.CodeRouteNotFound:
		return fiber.StatusNotFound
	case order.CodeMethodNotAllowed:
		return fiber.StatusMethodNotAllowed
	case order.CodeIllegalTransition, order.CodeAlreadyExists, order.CodeOutOfStock:
		return fiber.StatusConflict
	case order.CodeTooLarge:
		return fiber.StatusRequestEntityTooLarge
	case order.CodeHeadersTooLarge:
		return fiber.StatusRequestHeaderFieldsTooLarge
	case order.CodeValidation, order.CodeKeyReused, order.CodeDuplicateItem, order.CodeOrderTooLarge:
		return fiber.StatusUnprocessableEntity
	case order.CodeRateLimited:
		return fiber.StatusTooManyRequests
	case order.CodeUnavailable:
		return fiber.StatusServiceUnavailable
	default:
		return fiber.StatusInternalServerError
	}
}
