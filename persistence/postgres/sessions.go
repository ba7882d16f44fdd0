package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/ordermesh/ordermesh/persistence"
	"github.com/ordermesh/ordermesh/persistence/internal/normalize"
)

// CreateUser stores u unless its name is taken (persistence.ErrConflict).
func (s *Store) CreateUser(ctx context.Context, u persistence.User) error {
	u, err := normalize.User(u, s.now())
	if err != nil {
		return err
	}
	release, err := s.enter()
	if err != nil {
		return err
	}
	defer release()
	tag, err := s.pool.Exec(ctx, `INSERT INTO users (username, password_hash, role, created_at, disabled)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT (username) DO NOTHING`,
		u.Username, u.PasswordHash, u.Role, u.CreatedAt, u.Disabled)
	if err != nil {
		return fmt.Errorf("creating user %s: %w", u.Username, err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("creating user %s: %w", u.Username, persistence.ErrConflict)
	}
	return nil
}

// ListUsers returns every user, ordered by name.
func (s *Store) ListUsers(ctx context.Context) ([]persistence.User, error) {
	release, err := s.enter()
	if err != nil {
		return nil, err
	}
	defer release()
	rows, err := s.pool.Query(ctx, `SELECT username, password_hash, role, created_at, disabled FROM users ORDER BY username`)
	if err != nil {
		return nil, fmt.Errorf("listing users: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (persistence.User, error) {
		var u persistence.User
		var created pgtype.Timestamptz
		err := r.Scan(&u.Username, &u.PasswordHash, &u.Role, &created, &u.Disabled)
		u.CreatedAt = utc(created)
		return u, err
	})
	if err != nil {
		return nil, fmt.Errorf("listing users: %w", err)
	}
	if out == nil {
		out = []persistence.User{}
	}
	return out, nil
}

// CreateRefreshToken stores the first token of a family.
func (s *Store) CreateRefreshToken(ctx context.Context, t persistence.RefreshToken) error {
	t, err := normalize.RefreshToken(t, s.now())
	if err != nil {
		return err
	}
	release, err := s.enter()
	if err != nil {
		return err
	}
	defer release()
	if _, err := s.pool.Exec(ctx, `INSERT INTO refresh_tokens (hash, family, username, issued_at, expires_at, revoked)
		VALUES ($1, $2, $3, $4, $5, $6)`, t.Hash, t.Family, t.Username, t.IssuedAt, t.ExpiresAt, t.Revoked); err != nil {
		return fmt.Errorf("creating refresh token of %s: %w", t.Username, err)
	}
	return nil
}

// RotateRefreshToken replaces old by next in one transaction. The conditional UPDATE
// locks the row: a racer's UPDATE waits for this transaction and then, re-checking its
// condition against the committed row, finds it used, so exactly one caller wins. The
// loser's family revocation runs after the winner committed, so it reaches the
// winner's new token too.
func (s *Store) RotateRefreshToken(ctx context.Context, old []byte, next persistence.RefreshToken) (persistence.RefreshToken, error) {
	next.Family, next.Username = "-", "-" // filled in from old below; placeholders pass validation
	next, err := normalize.RefreshToken(next, s.now())
	if err != nil {
		return persistence.RefreshToken{}, err
	}
	release, err := s.enter()
	if err != nil {
		return persistence.RefreshToken{}, err
	}
	defer release()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return persistence.RefreshToken{}, fmt.Errorf("rotating refresh token: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	tag, err := tx.Exec(ctx, `UPDATE refresh_tokens SET replaced_by = $1
		WHERE hash = $2 AND replaced_by IS NULL AND NOT revoked AND expires_at > $3`, next.Hash, old, next.IssuedAt)
	if err != nil {
		return persistence.RefreshToken{}, fmt.Errorf("rotating refresh token: %w", err)
	}
	prev, err := scanRefreshToken(tx.QueryRow(ctx, `SELECT `+refreshColumns+` FROM refresh_tokens WHERE hash = $1`, old))
	if err != nil {
		return persistence.RefreshToken{}, fmt.Errorf("rotating refresh token: %w", err)
	}
	if tag.RowsAffected() == 0 {
		if prev.ReplacedBy == nil {
			return persistence.RefreshToken{}, fmt.Errorf("rotating refresh token: %w", persistence.ErrTokenRevoked)
		}
		// Reuse: revoke the family, successors included, and commit that.
		if _, err := tx.Exec(ctx, `UPDATE refresh_tokens SET revoked = true WHERE family = $1`, prev.Family); err != nil {
			return persistence.RefreshToken{}, fmt.Errorf("revoking refresh family: %w", err)
		}
		if err := tx.Commit(ctx); err != nil {
			return persistence.RefreshToken{}, fmt.Errorf("revoking refresh family: %w", err)
		}
		return persistence.RefreshToken{}, fmt.Errorf("rotating refresh token: %w", persistence.ErrTokenReused)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO refresh_tokens (hash, family, username, issued_at, expires_at, revoked)
		VALUES ($1, $2, $3, $4, $5, false)`, next.Hash, prev.Family, prev.Username, next.IssuedAt, next.ExpiresAt); err != nil {
		return persistence.RefreshToken{}, fmt.Errorf("rotating refresh token: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return persistence.RefreshToken{}, fmt.Errorf("rotating refresh token: %w", err)
	}
	return prev, nil
}

// RevokeRefreshFamily revokes the family of the token with hash h.
func (s *Store) RevokeRefreshFamily(ctx context.Context, h []byte) error {
	release, err := s.enter()
	if err != nil {
		return err
	}
	defer release()
	tag, err := s.pool.Exec(ctx, `UPDATE refresh_tokens SET revoked = true
		WHERE family = (SELECT family FROM refresh_tokens WHERE hash = $1)`, h)
	if err != nil {
		return fmt.Errorf("revoking refresh family: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("revoking refresh family: %w", persistence.ErrNotFound)
	}
	return nil
}

// RevokeUserRefreshTokens revokes every token of a user.
func (s *Store) RevokeUserRefreshTokens(ctx context.Context, username string) error {
	release, err := s.enter()
	if err != nil {
		return err
	}
	defer release()
	if _, err := s.pool.Exec(ctx, `UPDATE refresh_tokens SET revoked = true WHERE username = $1`, username); err != nil {
		return fmt.Errorf("revoking refresh tokens of %s: %w", username, err)
	}
	return nil
}

// DeleteExpiredRefreshTokens removes tokens that expired before now.
func (s *Store) DeleteExpiredRefreshTokens(ctx context.Context, now time.Time) (int64, error) {
	release, err := s.enter()
	if err != nil {
		return 0, err
	}
	defer release()
	tag, err := s.pool.Exec(ctx, `DELETE FROM refresh_tokens WHERE expires_at < $1`, normalize.Time(now))
	if err != nil {
		return 0, fmt.Errorf("deleting expired refresh tokens: %w", err)
	}
	return tag.RowsAffected(), nil
}

const refreshColumns = `hash, family, username, issued_at, expires_at, replaced_by, revoked`

func scanRefreshToken(row pgx.Row) (persistence.RefreshToken, error) {
	var t persistence.RefreshToken
	var issued, expires pgtype.Timestamptz
	err := row.Scan(&t.Hash, &t.Family, &t.Username, &issued, &expires, &t.ReplacedBy, &t.Revoked)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, persistence.ErrNotFound
	}
	if err != nil {
		return t, err
	}
	t.IssuedAt, t.ExpiresAt = utc(issued), utc(expires)
	return t, nil
}
