package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

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
	res, err := s.write.ExecContext(ctx, `INSERT INTO users (username, password_hash, role, created_at, disabled)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT (username) DO NOTHING`,
		u.Username, u.PasswordHash, u.Role, u.CreatedAt.UnixMicro(), u.Disabled)
	if err != nil {
		return fmt.Errorf("creating user %s: %w", u.Username, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("creating user %s: %w", u.Username, errors.Join(persistence.ErrConflict, err))
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
	rows, err := s.read.QueryContext(ctx, `SELECT username, password_hash, role, created_at, disabled FROM users ORDER BY username`)
	if err != nil {
		return nil, fmt.Errorf("listing users: %w", err)
	}
	defer rows.Close()
	out := []persistence.User{}
	for rows.Next() {
		var u persistence.User
		var created sql.NullInt64
		if err := rows.Scan(&u.Username, &u.PasswordHash, &u.Role, &created, &u.Disabled); err != nil {
			return nil, fmt.Errorf("listing users: %w", err)
		}
		u.CreatedAt = fromMicros(created)
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing users: %w", err)
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
	if _, err := s.write.ExecContext(ctx, `INSERT INTO refresh_tokens (hash, family, username, issued_at, expires_at, revoked)
		VALUES (?, ?, ?, ?, ?, ?)`, t.Hash, t.Family, t.Username, t.IssuedAt.UnixMicro(), t.ExpiresAt.UnixMicro(), t.Revoked); err != nil {
		return fmt.Errorf("creating refresh token of %s: %w", t.Username, err)
	}
	return nil
}

// RotateRefreshToken replaces old by next in one transaction. The conditional UPDATE
// comes first, so the transaction takes SQLite's write lock before it reads anything:
// racers serialize on it, and exactly one finds the token unused.
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
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return persistence.RefreshToken{}, fmt.Errorf("rotating refresh token: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE refresh_tokens SET replaced_by = ?
		WHERE hash = ? AND replaced_by IS NULL AND revoked = 0 AND expires_at > ?`, next.Hash, old, next.IssuedAt.UnixMicro())
	if err != nil {
		return persistence.RefreshToken{}, fmt.Errorf("rotating refresh token: %w", err)
	}
	won, err := res.RowsAffected()
	if err != nil {
		return persistence.RefreshToken{}, fmt.Errorf("rotating refresh token: %w", err)
	}
	prev, err := scanRefreshToken(tx.QueryRowContext(ctx, `SELECT `+refreshColumns+` FROM refresh_tokens WHERE hash = ?`, old))
	if err != nil {
		return persistence.RefreshToken{}, fmt.Errorf("rotating refresh token: %w", err)
	}
	if won == 0 {
		if prev.ReplacedBy == nil {
			return persistence.RefreshToken{}, fmt.Errorf("rotating refresh token: %w", persistence.ErrTokenRevoked)
		}
		// Reuse: revoke the family, successors included, and commit that.
		if _, err := tx.ExecContext(ctx, `UPDATE refresh_tokens SET revoked = 1 WHERE family = ?`, prev.Family); err != nil {
			return persistence.RefreshToken{}, fmt.Errorf("revoking refresh family: %w", err)
		}
		if err := tx.Commit(); err != nil {
			return persistence.RefreshToken{}, fmt.Errorf("revoking refresh family: %w", err)
		}
		return persistence.RefreshToken{}, fmt.Errorf("rotating refresh token: %w", persistence.ErrTokenReused)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO refresh_tokens (hash, family, username, issued_at, expires_at, revoked)
		VALUES (?, ?, ?, ?, ?, 0)`, next.Hash, prev.Family, prev.Username, next.IssuedAt.UnixMicro(), next.ExpiresAt.UnixMicro()); err != nil {
		return persistence.RefreshToken{}, fmt.Errorf("rotating refresh token: %w", err)
	}
	if err := tx.Commit(); err != nil {
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
	res, err := s.write.ExecContext(ctx, `UPDATE refresh_tokens SET revoked = 1
		WHERE family = (SELECT family FROM refresh_tokens WHERE hash = ?)`, h)
	if err != nil {
		return fmt.Errorf("revoking refresh family: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("revoking refresh family: %w", errors.Join(persistence.ErrNotFound, err))
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
	if _, err := s.write.ExecContext(ctx, `UPDATE refresh_tokens SET revoked = 1 WHERE username = ?`, username); err != nil {
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
	res, err := s.write.ExecContext(ctx, `DELETE FROM refresh_tokens WHERE expires_at < ?`, normalize.Time(now).UnixMicro())
	if err != nil {
		return 0, fmt.Errorf("deleting expired refresh tokens: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("deleting expired refresh tokens: %w", err)
	}
	return n, nil
}

const refreshColumns = `hash, family, username, issued_at, expires_at, replaced_by, revoked`

func scanRefreshToken(row *sql.Row) (persistence.RefreshToken, error) {
	var t persistence.RefreshToken
	var issued, expires sql.NullInt64
	err := row.Scan(&t.Hash, &t.Family, &t.Username, &issued, &expires, &t.ReplacedBy, &t.Revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return t, persistence.ErrNotFound
	}
	if err != nil {
		return t, err
	}
	t.IssuedAt, t.ExpiresAt = fromMicros(issued), fromMicros(expires)
	return t, nil
}
