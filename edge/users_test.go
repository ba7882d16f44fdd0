package edge

import (
	"context"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/ordermesh/ordermesh/persistence/sqlite"
)

func TestSeedDemoUsersIsIdempotent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "users.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()

	if err := SeedDemoUsers(ctx, store); err != nil {
		t.Fatalf("first seed: %v", err)
	}
	first := map[string]string{}
	for _, d := range demoUsers {
		u, err := store.GetUser(ctx, d.name)
		if err != nil {
			t.Fatalf("user %s: %v", d.name, err)
		}
		if u.Role != string(d.role) {
			t.Errorf("%s has role %s, want %s", d.name, u.Role, d.role)
		}
		if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(DemoPassword)) != nil {
			t.Errorf("%s: password does not match", d.name)
		}
		first[d.name] = u.PasswordHash
	}
	if err := SeedDemoUsers(ctx, store); err != nil {
		t.Fatalf("second seed: %v", err)
	}
	for _, d := range demoUsers {
		u, _ := store.GetUser(ctx, d.name)
		if u.PasswordHash != first[d.name] {
			t.Errorf("%s was rewritten by the second seed", d.name)
		}
	}
}
