package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/ordermesh/ordermesh/persistence"
	"github.com/ordermesh/ordermesh/persistence/internal/normalize"
)

// CreateSecret stores sec unless its kind and id exist already, and reports whether it did.
func (s *Store) CreateSecret(ctx context.Context, sec persistence.Secret) (bool, error) {
	sec, err := normalize.Secret(sec, s.now())
	if err != nil {
		return false, err
	}
	release, err := s.enter()
	if err != nil {
		return false, err
	}
	defer release()
	tag, err := s.pool.Exec(ctx, `INSERT INTO secrets (kind, id, value, created_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (kind, id) DO NOTHING`, sec.Kind, sec.ID, sec.Value, sec.CreatedAt)
	if err != nil {
		return false, fmt.Errorf("creating secret %s/%s: %w", sec.Kind, sec.ID, err)
	}
	return tag.RowsAffected() == 1, nil
}

// Secrets returns the secrets of one kind, oldest first.
func (s *Store) Secrets(ctx context.Context, kind string) ([]persistence.Secret, error) {
	release, err := s.enter()
	if err != nil {
		return nil, err
	}
	defer release()
	rows, err := s.pool.Query(ctx, `SELECT kind, id, value, created_at FROM secrets WHERE kind = $1 ORDER BY created_at, id`, kind)
	if err != nil {
		return nil, fmt.Errorf("reading %s secrets: %w", kind, err)
	}
	defer rows.Close()
	var out []persistence.Secret
	for rows.Next() {
		var sec persistence.Secret
		var created pgtype.Timestamptz
		if err := rows.Scan(&sec.Kind, &sec.ID, &sec.Value, &created); err != nil {
			return nil, fmt.Errorf("reading %s secrets: %w", kind, err)
		}
		sec.CreatedAt = utc(created)
		out = append(out, sec)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading %s secrets: %w", kind, err)
	}
	return out, nil
}

// DeleteSecret removes a secret if it exists.
func (s *Store) DeleteSecret(ctx context.Context, kind, id string) error {
	release, err := s.enter()
	if err != nil {
		return err
	}
	defer release()
	if _, err := s.pool.Exec(ctx, `DELETE FROM secrets WHERE kind = $1 AND id = $2`, kind, id); err != nil {
		return fmt.Errorf("deleting secret %s/%s: %w", kind, id, err)
	}
	return nil
}
