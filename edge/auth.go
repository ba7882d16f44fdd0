package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/ordermesh/ordermesh/actors/order"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/crypto/bcrypt"

	"github.com/ordermesh/ordermesh/persistence"
)

// Authentication: POST /auth/login trades a password for a short-lived access token, and
// authenticate checks that token on every protected route.
//
// Refresh and logout (a rotating refresh token, stored hashed in persistence and revocable)
// are the next step: they get handlers next to login, registered in routes under /auth,
// and reuse tokenIssuer.issue for the new access token.

// Limits on login input; bcrypt ignores everything after 72 bytes, so longer passwords are
// refused rather than silently truncated.
const (
	maxUsernameLen = 64
	maxPasswordLen = 72
)

type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

type loginResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"` // seconds
	Role        string `json:"role"`
	Username    string `json:"username"`
}

// dummyHash is compared against when the user does not exist, so that a login for an
// unknown name costs as much as one with a wrong password and names cannot be probed.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("not a password"), bcryptCost)
	return h
})

var errBadCredentials = order.Errorf(order.CodeUnauthenticated, "wrong username or password")

func (s *server) login(c *fiber.Ctx) error {
	var req loginRequest
	if err := decodeStrict(c.Body(), &req, false); err != nil {
		return err
	}
	if req.Username == "" || req.Password == "" || len(req.Username) > maxUsernameLen || len(req.Password) > maxPasswordLen {
		return errBadCredentials
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.RequestTimeout)
	defer cancel()
	u, err := s.store.GetUser(ctx, req.Username)
	switch {
	case errors.Is(err, persistence.ErrNotFound):
		_ = bcrypt.CompareHashAndPassword(dummyHash(), []byte(req.Password))
		s.logger(c).Info("login failed", slog.String("user", req.Username), slog.String("reason", "unknown user"))
		return errBadCredentials
	case err != nil:
		return fmt.Errorf("loading user: %w", err)
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(req.Password)) != nil {
		s.logger(c).Info("login failed", slog.String("user", req.Username), slog.String("reason", "wrong password"))
		return errBadCredentials
	}
	role, ok := order.ParseRole(u.Role)
	if !ok {
		return fmt.Errorf("user %q has unknown role %q", u.Username, u.Role)
	}
	token, exp, err := s.tokens.issue(order.Principal{Subject: u.Username, Role: role})
	if err != nil {
		return err
	}
	s.logger(c).Info("login", slog.String("user", u.Username), slog.String("role", u.Role))
	return respond(c, fiber.StatusOK, loginResponse{
		AccessToken: token, TokenType: "Bearer", ExpiresIn: int64(exp.Sub(s.now()).Seconds()),
		Role: string(role), Username: u.Username,
	})
}

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
