package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/ordermesh/ordermesh/persistence"
	"github.com/ordermesh/ordermesh/persistence/internal/normalize"
	"github.com/ordermesh/ordermesh/persistence/keyset"
)

const orderColumns = `id, customer, status, version, snapshot, payment_deadline, created_at, updated_at`

type scanner interface{ Scan(dest ...any) error }

const eventColumns = `order_id, version, type, from_status, to_status, idempotency_key, node, at, payload`

func scanEvent(row scanner) (persistence.Event, error) {
	var e persistence.Event
	var at sql.NullInt64
	if err := row.Scan(&e.OrderID, &e.Version, &e.Type, &e.From, &e.To, &e.IdempotencyKey, &e.Node, &at, &e.Payload); err != nil {
		return e, err
	}
	e.At = fromMicros(at)
	return e, nil
}

func scanOrder(row scanner) (persistence.Order, error) {
	var o persistence.Order
	var deadline, created, updated sql.NullInt64
	if err := row.Scan(&o.ID, &o.Customer, &o.Status, &o.Version, &o.Snapshot, &deadline, &created, &updated); err != nil {
		return o, err
	}
	o.PaymentDeadline = fromMicros(deadline)
	o.CreatedAt = fromMicros(created)
	o.UpdatedAt = fromMicros(updated)
	return o, nil
}

// LoadOrder returns the latest snapshot of an order, or persistence.ErrNotFound.
func (s *Store) LoadOrder(ctx context.Context, id string) (persistence.Order, error) {
	release, err := s.enter()
	if err != nil {
		return persistence.Order{}, err
	}
	defer release()
	o, err := scanOrder(s.read.QueryRowContext(ctx, `SELECT `+orderColumns+` FROM orders WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return persistence.Order{}, fmt.Errorf("loading order %s: %w", id, persistence.ErrNotFound)
	}
	if err != nil {
		return persistence.Order{}, fmt.Errorf("loading order %s: %w", id, err)
	}
	return o, nil
}

// ListOrders returns a page of orders, newest by creation first (ties broken by id,
// descending). A cursor not made by this package yields persistence.ErrBadCursor.
func (s *Store) ListOrders(ctx context.Context, q persistence.OrderQuery) (persistence.OrderPage, error) {
	query, args, limit, err := keyset.Select("orders", orderColumns, q, keyset.SQLite)
	if err != nil {
		return persistence.OrderPage{}, err
	}

	release, err := s.enter()
	if err != nil {
		return persistence.OrderPage{}, err
	}
	defer release()
	rows, err := s.read.QueryContext(ctx, query, args...)
	if err != nil {
		return persistence.OrderPage{}, fmt.Errorf("listing orders: %w", err)
	}
	defer rows.Close()
	var orders []persistence.Order
	for rows.Next() {
		o, err := scanOrder(rows)
		if err != nil {
			return persistence.OrderPage{}, fmt.Errorf("listing orders: scanning: %w", err)
		}
		orders = append(orders, o)
	}
	if err := rows.Err(); err != nil {
		return persistence.OrderPage{}, fmt.Errorf("listing orders: %w", err)
	}
	return keyset.Page(orders, limit), nil
}

// OrderEvents returns an order's events in version order (empty if it has none).
func (s *Store) OrderEvents(ctx context.Context, id string) ([]persistence.Event, error) {
	return s.OrderEventsAfter(ctx, id, 0)
}

// OrderEventsAfter returns the events of order id with a version above after, in
// version order (empty if there are none): a range scan of the primary key
// (order_id, version).
func (s *Store) OrderEventsAfter(ctx context.Context, id string, after int64) ([]persistence.Event, error) {
	release, err := s.enter()
	if err != nil {
		return nil, err
	}
	defer release()
	rows, err := s.read.QueryContext(ctx, `SELECT `+eventColumns+` FROM order_events WHERE order_id = ? AND version > ? ORDER BY version`, id, after)
	if err != nil {
		return nil, fmt.Errorf("reading events of order %s: %w", id, err)
	}
	defer rows.Close()
	events := []persistence.Event{}
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, fmt.Errorf("reading events of order %s: scanning: %w", id, err)
		}
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading events of order %s: %w", id, err)
	}
	return events, nil
}

// EventByKey returns the newest event of order id recorded with idempotency key, or
// persistence.ErrNotFound. The index order_events_key makes it one index probe.
func (s *Store) EventByKey(ctx context.Context, id, key string) (persistence.Event, error) {
	release, err := s.enter()
	if err != nil {
		return persistence.Event{}, err
	}
	defer release()
	e, err := scanEvent(s.read.QueryRowContext(ctx, `SELECT `+eventColumns+` FROM order_events
		WHERE order_id = ? AND idempotency_key = ? ORDER BY version DESC LIMIT 1`, id, key))
	if errors.Is(err, sql.ErrNoRows) {
		return persistence.Event{}, fmt.Errorf("reading event of order %s by key: %w", id, persistence.ErrNotFound)
	}
	if err != nil {
		return persistence.Event{}, fmt.Errorf("reading event of order %s by key: %w", id, err)
	}
	return e, nil
}

// DuePayments returns up to limit orders (clamped like ListOrders) whose payment deadline
// is at or before now and whose (deadline, id) is after after's, earliest first.
func (s *Store) DuePayments(ctx context.Context, now time.Time, after persistence.Due, limit int) ([]persistence.Due, error) {
	release, err := s.enter()
	if err != nil {
		return nil, err
	}
	defer release()
	rows, err := s.read.QueryContext(ctx, `SELECT id, payment_deadline FROM orders
		WHERE payment_deadline IS NOT NULL AND payment_deadline <= ? AND (payment_deadline, id) > (?, ?)
		ORDER BY payment_deadline, id LIMIT ?`,
		normalize.Time(now).UnixMicro(), normalize.Time(after.Deadline).UnixMicro(), after.OrderID, keyset.Limit(limit))
	if err != nil {
		return nil, fmt.Errorf("finding due payments: %w", err)
	}
	defer rows.Close()
	due := []persistence.Due{}
	for rows.Next() {
		var d persistence.Due
		var deadline sql.NullInt64
		if err := rows.Scan(&d.OrderID, &deadline); err != nil {
			return nil, fmt.Errorf("finding due payments: scanning: %w", err)
		}
		d.Deadline = fromMicros(deadline)
		due = append(due, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("finding due payments: %w", err)
	}
	return due, nil
}

// GetUser returns a user by name, or persistence.ErrNotFound.
func (s *Store) GetUser(ctx context.Context, username string) (persistence.User, error) {
	release, err := s.enter()
	if err != nil {
		return persistence.User{}, err
	}
	defer release()
	var u persistence.User
	var created sql.NullInt64
	err = s.read.QueryRowContext(ctx, `SELECT username, password_hash, role, created_at, disabled FROM users WHERE username = ?`,
		username).Scan(&u.Username, &u.PasswordHash, &u.Role, &created, &u.Disabled)
	if errors.Is(err, sql.ErrNoRows) {
		return persistence.User{}, fmt.Errorf("getting user %s: %w", username, persistence.ErrNotFound)
	}
	if err != nil {
		return persistence.User{}, fmt.Errorf("getting user %s: %w", username, err)
	}
	u.CreatedAt = fromMicros(created)
	return u, nil
}
