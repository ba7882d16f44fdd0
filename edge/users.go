package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/crypto/bcrypt"

	"github.com/ordermesh/ordermesh/persistence"
)

// DemoPassword is the password of every demo user.
const DemoPassword = "ordermesh"

// demoUsers are the accounts SeedDemoUsers creates: two shoppers, so that "another
// shopper's order" can be tried, an operator and an admin.
var demoUsers = []struct {
	name string
	role order.Role
}{
	{"alice", order.RoleShopper},
	{"bob", order.RoleShopper},
	{"olga", order.RoleOperator},
	{"ada", order.RoleAdmin},
}

// bcryptCost is the work factor of new hashes. Tests lower it: at the default cost one
// hash takes over a second under the race detector.
var bcryptCost = bcrypt.DefaultCost

// HashPassword returns the bcrypt hash of pw, for persistence.User.PasswordHash.
func HashPassword(pw string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcryptCost)
	if err != nil {
		return "", fmt.Errorf("hashing password: %w", err)
	}
	return string(h), nil
}

// SeedDemoUsers makes sure the demo accounts alice and bob (shoppers), olga (operator)
// and ada (admin) exist with password DemoPassword. It is idempotent: an account that
// already has that role and password is left untouched.
func SeedDemoUsers(ctx context.Context, users persistence.Users) error {
	for _, d := range demoUsers {
		u, err := users.GetUser(ctx, d.name)
		switch {
		case err == nil:
			if u.Role == string(d.role) && bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(DemoPassword)) == nil {
				continue
			}
		case !errors.Is(err, persistence.ErrNotFound):
			return fmt.Errorf("seeding demo user %s: %w", d.name, err)
		}
		hash, err := HashPassword(DemoPassword)
		if err != nil {
			return fmt.Errorf("seeding demo user %s: %w", d.name, err)
		}
		created := u.CreatedAt
		if created.IsZero() {
			created = time.Now().UTC()
		}
		if err := users.PutUser(ctx, persistence.User{Username: d.name, PasswordHash: hash, Role: string(d.role), CreatedAt: created}); err != nil {
			return fmt.Errorf("seeding demo user %s: %w", d.name, err)
		}
	}
	return nil
}

// userResponse is an account as the API shows it; never its password hash.
type userResponse struct {
	Username  string    `json:"username"`
	Role      string    `json:"role"`
	Disabled  bool      `json:"disabled"`
	CreatedAt time.Time `json:"created_at"`
}

func userFor(u persistence.User) userResponse {
	return userResponse{Username: u.Username, Role: u.Role, Disabled: u.Disabled, CreatedAt: u.CreatedAt.UTC()}
}

type userListResponse struct {
	Users []userResponse `json:"users"`
}

type createUserRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Role     string `json:"role"`
}

// updateUserRequest changes a user; absent fields stay as they are.
type updateUserRequest struct {
	Role     *string `json:"role"`
	Disabled *bool   `json:"disabled"`
}

// listUsers handles GET /api/v1/users (admins).
func (s *server) listUsers(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.RequestTimeout)
	defer cancel()
	users, err := s.store.ListUsers(ctx)
	if err != nil {
		return fmt.Errorf("listing users: %w", err)
	}
	out := userListResponse{Users: make([]userResponse, len(users))}
	for i, u := range users {
		out.Users[i] = userFor(u)
	}
	return respond(c, fiber.StatusOK, out)
}

// createUser handles POST /api/v1/users: an admin creates an account of any role, under
// the same rules as a sign-up.
func (s *server) createUser(c *fiber.Ctx) error {
	var req createUserRequest
	if err := decodeStrict(c.Body(), &req, false); err != nil {
		return err
	}
	role, ok := order.ParseRole(req.Role)
	if !ok {
		return order.Errorf(order.CodeValidation, "role must be shopper, operator or admin")
	}
	u, err := s.newUser(c, credentials{Username: req.Username, Password: req.Password}, role)
	if err != nil {
		return err
	}
	s.logger(c).Info("user created", slog.String("user", u.Username), slog.String("role", u.Role), slog.String("by", principal(c).Subject))
	c.Location("/api/v1/users/" + u.Username)
	return respond(c, fiber.StatusCreated, userFor(u))
}

// updateUser handles PATCH /api/v1/users/{username}: change the role, disable or enable.
// Disabling revokes the user's refresh tokens at once. An admin cannot change or disable
// its own account, so that the last admin cannot lock everyone out by mistake.
func (s *server) updateUser(c *fiber.Ctx) error {
	var req updateUserRequest
	if err := decodeStrict(c.Body(), &req, false); err != nil {
		return err
	}
	if req.Role == nil && req.Disabled == nil {
		return order.Errorf(order.CodeValidation, "give role, disabled or both")
	}
	var role order.Role
	if req.Role != nil {
		r, ok := order.ParseRole(*req.Role)
		if !ok {
			return order.Errorf(order.CodeValidation, "role must be shopper, operator or admin")
		}
		role = r
	}
	name := c.Params("username")
	if name == principal(c).Subject {
		return order.Errorf(order.CodeValidation, "an admin cannot change its own account")
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.RequestTimeout)
	defer cancel()
	u, err := s.store.GetUser(ctx, name)
	switch {
	case errors.Is(err, persistence.ErrNotFound):
		return order.Errorf(order.CodeNotFound, "user %s not found", truncate(name, 64))
	case err != nil:
		return fmt.Errorf("loading user: %w", err)
	}
	if role != "" {
		u.Role = string(role)
	}
	if req.Disabled != nil {
		u.Disabled = *req.Disabled
	}
	if err := s.store.PutUser(ctx, u); err != nil {
		return fmt.Errorf("updating user %s: %w", u.Username, err)
	}
	if u.Disabled {
		if err := s.store.RevokeUserRefreshTokens(ctx, u.Username); err != nil {
			return fmt.Errorf("revoking the sessions of %s: %w", u.Username, err)
		}
	}
	s.logger(c).Info("user updated", slog.String("user", u.Username), slog.String("role", u.Role),
		slog.Bool("disabled", u.Disabled), slog.String("by", principal(c).Subject))
	return respond(c, fiber.StatusOK, userFor(u))
}
