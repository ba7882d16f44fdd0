package storetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/persistence"
)

// testAccounts checks create-if-absent users, listing, and the disabled flag.
func testAccounts(t *testing.T, s persistence.Store) {
	ctx := context.Background()
	if got, err := s.ListUsers(ctx); err != nil || len(got) != 0 {
		t.Fatalf("ListUsers of an empty store = %v, %v", got, err)
	}
	// Sign-ups racing for one name: exactly one wins, the others get ErrConflict.
	const racers = 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.CreateUser(ctx, persistence.User{Username: "zoe", PasswordHash: fmt.Sprintf("h%d", i), Role: "shopper"})
			switch {
			case err == nil:
				mu.Lock()
				wins++
				mu.Unlock()
			case !errors.Is(err, persistence.ErrConflict):
				t.Errorf("CreateUser racer %d: %v, want nil or ErrConflict", i, err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d racers created zoe, want exactly 1", wins)
	}
	if err := s.CreateUser(ctx, persistence.User{Username: "amy", PasswordHash: "h", Role: "admin", CreatedAt: base}); err != nil {
		t.Fatal(err)
	}
	u, err := s.GetUser(ctx, "amy")
	if err != nil || u.Disabled || u.Role != "admin" || !u.CreatedAt.Equal(base) {
		t.Fatalf("GetUser(amy) = %+v, %v", u, err)
	}
	u.Disabled = true
	if err := s.PutUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetUser(ctx, "amy"); err != nil || got != u {
		t.Fatalf("after disabling GetUser = %+v, %v; want %+v", got, err, u)
	}
	all, err := s.ListUsers(ctx)
	if err != nil || len(all) != 2 || all[0] != u || all[1].Username != "zoe" || all[1].Disabled {
		t.Fatalf("ListUsers = %+v, %v; want amy (disabled) then zoe", all, err)
	}
	if err := s.CreateUser(ctx, persistence.User{}); !errors.Is(err, persistence.ErrInvalid) {
		t.Errorf("CreateUser of an empty user = %v, want ErrInvalid", err)
	}
}

func hashOf(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// testRefreshTokens checks rotation, reuse detection with family revocation, racing
// rotations, expiry, logout and revoking a user's tokens.
func testRefreshTokens(t *testing.T, s persistence.Store) {
	ctx := context.Background()
	day := 24 * time.Hour
	first := persistence.RefreshToken{Hash: hashOf("t1"), Family: "fam-a", Username: "ann", IssuedAt: base, ExpiresAt: base.Add(day)}
	if err := s.CreateRefreshToken(ctx, first); err != nil {
		t.Fatal(err)
	}
	next := func(name string, at time.Time) persistence.RefreshToken {
		return persistence.RefreshToken{Hash: hashOf(name), IssuedAt: at, ExpiresAt: at.Add(day)}
	}

	// t1 -> t2: the old row comes back, the new one joins the family.
	prev, err := s.RotateRefreshToken(ctx, hashOf("t1"), next("t2", base.Add(time.Minute)))
	if err != nil || prev.Family != "fam-a" || prev.Username != "ann" || !prev.IssuedAt.Equal(base) || !prev.ExpiresAt.Equal(base.Add(day)) {
		t.Fatalf("rotating t1 = %+v, %v", prev, err)
	}
	// t2 -> t3 works; then t1 again is reuse, which revokes t3 as well.
	if _, err := s.RotateRefreshToken(ctx, hashOf("t2"), next("t3", base.Add(2*time.Minute))); err != nil {
		t.Fatalf("rotating t2: %v", err)
	}
	if _, err := s.RotateRefreshToken(ctx, hashOf("t1"), next("x1", base.Add(3*time.Minute))); !errors.Is(err, persistence.ErrTokenReused) {
		t.Fatalf("reusing t1 = %v, want ErrTokenReused", err)
	}
	if _, err := s.RotateRefreshToken(ctx, hashOf("t3"), next("t4", base.Add(4*time.Minute))); !errors.Is(err, persistence.ErrTokenRevoked) {
		t.Fatalf("rotating t3 after the family was revoked = %v, want ErrTokenRevoked", err)
	}
	if _, err := s.RotateRefreshToken(ctx, hashOf("x1"), next("x2", base.Add(5*time.Minute))); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("the reuse must not have stored its successor: %v", err)
	}
	if _, err := s.RotateRefreshToken(ctx, hashOf("nope"), next("y", base)); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("rotating an unknown token = %v, want ErrNotFound", err)
	}

	// Expired: refused, not rotated.
	if err := s.CreateRefreshToken(ctx, persistence.RefreshToken{Hash: hashOf("e1"), Family: "fam-e", Username: "ann", IssuedAt: base, ExpiresAt: base.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RotateRefreshToken(ctx, hashOf("e1"), next("e2", base.Add(time.Hour))); !errors.Is(err, persistence.ErrTokenRevoked) {
		t.Fatalf("rotating an expired token = %v, want ErrTokenRevoked", err)
	}

	// Two nodes rotate the same token at once: exactly one wins; the other is reuse,
	// and the family, the winner's new token included, is revoked.
	for round := range 3 {
		fam := fmt.Sprintf("race-%d", round)
		if err := s.CreateRefreshToken(ctx, persistence.RefreshToken{Hash: hashOf(fam), Family: fam, Username: "bo", IssuedAt: base, ExpiresAt: base.Add(day)}); err != nil {
			t.Fatal(err)
		}
		const racers = 4
		errs := make([]error, racers)
		var wg sync.WaitGroup
		for i := range racers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = s.RotateRefreshToken(ctx, hashOf(fam), next(fmt.Sprintf("%s-%d", fam, i), base.Add(time.Minute)))
			}()
		}
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner < 0:
				winner = i
			case err == nil:
				t.Fatalf("round %d: racers %d and %d both rotated the token", round, winner, i)
			case !errors.Is(err, persistence.ErrTokenReused) && !errors.Is(err, persistence.ErrTokenRevoked):
				t.Fatalf("round %d: racer %d: %v", round, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no racer rotated the token: %v", round, errs)
		}
		won := fmt.Sprintf("%s-%d", fam, winner)
		if _, err := s.RotateRefreshToken(ctx, hashOf(won), next(won+"-next", base.Add(2*time.Minute))); !errors.Is(err, persistence.ErrTokenRevoked) {
			t.Fatalf("round %d: the winner's token survived the reuse: %v", round, err)
		}
	}

	// Logout revokes the family; other families of the user stay.
	for _, f := range []string{"l1", "l2"} {
		if err := s.CreateRefreshToken(ctx, persistence.RefreshToken{Hash: hashOf(f), Family: f, Username: "cy", IssuedAt: base, ExpiresAt: base.Add(day)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RevokeRefreshFamily(ctx, hashOf("l1")); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeRefreshFamily(ctx, hashOf("unknown")); !errors.Is(err, persistence.ErrNotFound) {
		t.Errorf("revoking an unknown token = %v, want ErrNotFound", err)
	}
	if _, err := s.RotateRefreshToken(ctx, hashOf("l1"), next("l1b", base.Add(time.Minute))); !errors.Is(err, persistence.ErrTokenRevoked) {
		t.Fatalf("rotating a logged-out token = %v, want ErrTokenRevoked", err)
	}
	if _, err := s.RotateRefreshToken(ctx, hashOf("l2"), next("l2b", base.Add(time.Minute))); err != nil {
		t.Fatalf("another session of the user: %v", err)
	}
	// Disabling the user revokes all of them.
	if err := s.RevokeUserRefreshTokens(ctx, "cy"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RotateRefreshToken(ctx, hashOf("l2b"), next("l2c", base.Add(2*time.Minute))); !errors.Is(err, persistence.ErrTokenRevoked) {
		t.Fatalf("rotating a disabled user's token = %v, want ErrTokenRevoked", err)
	}

	// Cleanup: only expired rows go.
	n, err := s.DeleteExpiredRefreshTokens(ctx, base.Add(2*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("DeleteExpiredRefreshTokens = %d, %v; want the 1 expired token", n, err)
	}
	if _, err := s.RotateRefreshToken(ctx, hashOf("e1"), next("e3", base.Add(time.Hour))); !errors.Is(err, persistence.ErrNotFound) {
		t.Errorf("an expired token was not deleted: %v", err)
	}

	for _, bad := range []persistence.RefreshToken{
		{Hash: []byte("short"), Family: "f", Username: "u", IssuedAt: base, ExpiresAt: base.Add(day)},
		{Hash: hashOf("b1"), Username: "u", IssuedAt: base, ExpiresAt: base.Add(day)},
		{Hash: hashOf("b2"), Family: "f", Username: "u", IssuedAt: base, ExpiresAt: base},
	} {
		if err := s.CreateRefreshToken(ctx, bad); !errors.Is(err, persistence.ErrInvalid) {
			t.Errorf("CreateRefreshToken(%+v) = %v, want ErrInvalid", bad, err)
		}
	}
}
