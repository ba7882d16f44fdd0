package edge

import (
	"testing"

	"github.com/ordermesh/ordermesh/actors/order"
)

func TestHTTPStatus(t *testing.T) {
	for code, status := range map[order.Code]int{
		order.CodeOK: 200, order.CodeInvalidRequest: 400, order.CodeUnauthenticated: 401, order.CodeForbidden: 403,
		order.CodeNotFound: 404, order.CodeRouteNotFound: 404, order.CodeMethodNotAllowed: 405,
		order.CodeIllegalTransition: 409, order.CodeAlreadyExists: 409, order.CodeOutOfStock: 409, order.CodeTooLarge: 413,
		order.CodeHeadersTooLarge: 431, order.CodeValidation: 422, order.CodeKeyReused: 422,
		order.CodeDuplicateItem: 422, order.CodeOrderTooLarge: 422,
		order.CodeRateLimited: 429, order.CodeInternal: 500, order.CodeUnavailable: 503,
	} {
		if got := httpStatus(code); got != status {
			t.Errorf("httpStatus(%d) = %d, want %d", code, got, status)
		}
		// The numbering convention clients may rely on: the first three digits are the status.
		if code != order.CodeOK && int(code)/100 != status {
			t.Errorf("code %d does not start with its status %d", code, status)
		}
		if code.Retryable() != (code == order.CodeUnavailable) {
			t.Errorf("%d.Retryable() = %v", code, code.Retryable())
		}
	}
}
