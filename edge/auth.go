package edge

import (
	"log/slog"
	"strings"

	"github.com/ordermesh/ordermesh/actors/order"

	"github.com/gofiber/fiber/v2"
)

// Authentication: POST /auth/login trades a password for a short-lived access token and a
// refresh token (see sessions.go), and authenticate checks the access token on every
// protected route.

// authenticate admits requests that carry a valid access token and stores the principal
// for the handlers. Every failure is the same 401: telling a client which check failed
// helps only an attacker; the log has the detail.
func (s *server) authenticate(c *fiber.Ctx) error {
	scheme, token, ok := strings.Cut(c.Get(fiber.HeaderAuthorization), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return order.Errorf(order.CodeUnauthenticated, "a bearer access token is required")
	}
	p, err := s.tokens.verify(c.UserContext(), strings.TrimSpace(token))
	if err != nil {
		s.logger(c).Info("rejected access token", slog.Any("error", err))
		return order.Errorf(order.CodeUnauthenticated, "the access token is invalid or expired")
	}
	c.Locals(localPrincipal, p)
	c.Locals(localLogger, s.logger(c).With(slog.String("user", p.Subject)))
	return c.Next()
}

// principal returns the authenticated caller; only valid behind authenticate.
func principal(c *fiber.Ctx) order.Principal {
	p, _ := c.Locals(localPrincipal).(order.Principal)
	return p
}
