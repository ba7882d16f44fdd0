package edge

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"

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
