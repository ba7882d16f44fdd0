package baseline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"
	"github.com/ordermesh/ordermesh/actors/orderpb"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/ordermesh/ordermesh/persistence"
	"github.com/ordermesh/ordermesh/persistence/keyset"
)

// The reads of edge.Store. The edge builds its order views from persistence.Order
// snapshots, so the baseline hands it orderpb.EncodeSnapshot of the order its columns
// describe: the edge code that lists ordermesh's orders lists the baseline's unchanged.

// errReadOnly is WriteOrder's answer: orders change only through Execute.
var errReadOnly = errors.New("baseline: orders are written only through Execute")

const orderColumns = `id, customer, status, version, lines, currency, total, payment_deadline, created_at, updated_at`

// scanOrder reads one row of orderColumns as the edge expects it.
func scanOrder(row pgx.Row) (persistence.Order, error) {
	var id string
	var r orderRow
	if err := row.Scan(&id, &r.customer, &r.status, &r.version, &r.lines, &r.currency, &r.total,
		&r.deadline, &r.created, &r.updated); err != nil {
		return persistence.Order{}, err
	}
	o, err := r.order(id)
	if err != nil {
		return persistence.Order{}, err
	}
	return record(&o)
}

// record is the persistence form of o, with o's snapshot.
func record(o *order.Order) (persistence.Order, error) {
	snap, err := orderpb.EncodeSnapshot(o)
	if err != nil {
		return persistence.Order{}, fmt.Errorf("encoding snapshot of order %s: %w", o.ID, err)
	}
	return persistence.Order{
		ID: o.ID, Customer: o.Customer, Status: string(o.Status), Version: int64(o.Version), Snapshot: snap,
		PaymentDeadline: o.PaymentDeadline, CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt,
	}, nil
}

// LoadOrder returns an order with a snapshot built from its row, or
// persistence.ErrNotFound. The snapshot remembers no idempotency keys.
func (s *Service) LoadOrder(ctx context.Context, id string) (persistence.Order, error) {
	o, err := scanOrder(s.pool.QueryRow(ctx, `SELECT `+orderColumns+` FROM baseline_orders WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return persistence.Order{}, fmt.Errorf("loading order %s: %w", id, persistence.ErrNotFound)
	}
	if err != nil {
		return persistence.Order{}, fmt.Errorf("loading order %s: %w", id, err)
	}
	return o, nil
}

// WriteOrder always fails: the baseline's writes are its statements, run by Execute.
func (s *Service) WriteOrder(context.Context, persistence.Write) error {
	return errReadOnly
}

// ListOrders returns a page of orders, newest by creation first (ties broken by id,
// descending), with the same keyset pagination as the ordermesh stores. A cursor not made
// by this package yields persistence.ErrBadCursor.
func (s *Service) ListOrders(ctx context.Context, q persistence.OrderQuery) (persistence.OrderPage, error) {
	query, args, limit, err := keyset.Select("baseline_orders", orderColumns, q, keyset.Postgres)
	if err != nil {
		return persistence.OrderPage{}, err
	}

	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return persistence.OrderPage{}, fmt.Errorf("listing orders: %w", err)
	}
	orders, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (persistence.Order, error) { return scanOrder(row) })
	if err != nil {
		return persistence.OrderPage{}, fmt.Errorf("listing orders: %w", err)
	}
	return keyset.Page(orders, limit), nil
}

// OrderEvents returns an order's events in version order (empty if it has none).
func (s *Service) OrderEvents(ctx context.Context, id string) ([]persistence.Event, error) {
	return s.OrderEventsAfter(ctx, id, 0)
}

// OrderEventsAfter returns the events of order id with a version above after, in
// version order (empty if there are none).
func (s *Service) OrderEventsAfter(ctx context.Context, id string, after int64) ([]persistence.Event, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+eventColumns+` FROM baseline_order_events WHERE order_id = $1 AND version > $2 ORDER BY version`, id, after)
	if err != nil {
		return nil, fmt.Errorf("reading events of order %s: %w", id, err)
	}
	events, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (persistence.Event, error) { return scanEvent(row) })
	if err != nil {
		return nil, fmt.Errorf("reading events of order %s: %w", id, err)
	}
	if events == nil {
		events = []persistence.Event{}
	}
	return events, nil
}

// EventByKey returns the event of order id recorded with idempotency key (the UNIQUE
// constraint allows one), or persistence.ErrNotFound.
func (s *Service) EventByKey(ctx context.Context, id, key string) (persistence.Event, error) {
	e, err := scanEvent(s.pool.QueryRow(ctx, `SELECT `+eventColumns+` FROM baseline_order_events
		WHERE order_id = $1 AND idempotency_key = $2`, id, key))
	if errors.Is(err, pgx.ErrNoRows) {
		return persistence.Event{}, fmt.Errorf("reading event of order %s by key: %w", id, persistence.ErrNotFound)
	}
	if err != nil {
		return persistence.Event{}, fmt.Errorf("reading event of order %s by key: %w", id, err)
	}
	return e, nil
}

const eventColumns = `order_id, version, type, from_status, to_status, idempotency_key, node, at, payload`

func scanEvent(row pgx.Row) (persistence.Event, error) {
	var e persistence.Event
	var at pgtype.Timestamptz
	err := row.Scan(&e.OrderID, &e.Version, &e.Type, &e.From, &e.To, &e.IdempotencyKey, &e.Node, &at, &e.Payload)
	e.At = utc(at)
	return e, err
}

// DuePayments returns up to limit orders (clamped like ListOrders) whose payment deadline
// is at or before now and whose (deadline, id) is after after's, earliest first.
func (s *Service) DuePayments(ctx context.Context, now time.Time, after persistence.Due, limit int) ([]persistence.Due, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, payment_deadline FROM baseline_orders
		WHERE payment_deadline IS NOT NULL AND payment_deadline <= $1 AND (payment_deadline, id) > ($2, $3)
		ORDER BY payment_deadline, id LIMIT $4`, now.UTC(), after.Deadline.UTC(), after.OrderID, keyset.Limit(limit))
	if err != nil {
		return nil, fmt.Errorf("finding due payments: %w", err)
	}
	due, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (persistence.Due, error) {
		var d persistence.Due
		err := row.Scan(&d.OrderID, &d.Deadline)
		d.Deadline = d.Deadline.UTC()
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("finding due payments: %w", err)
	}
	if due == nil {
		due = []persistence.Due{}
	}
	return due, nil
}
