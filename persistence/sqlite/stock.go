package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ordermesh/ordermesh/persistence"
	"github.com/ordermesh/ordermesh/persistence/internal/normalize"
	"github.com/ordermesh/ordermesh/persistence/keyset"
)

var _ persistence.Stocks = (*Store)(nil)

const (
	insertStockSQL = `INSERT INTO stock (sku, on_hand, reserved, version, snapshot, updated_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (sku) DO NOTHING`
	updateStockSQL = `UPDATE stock SET on_hand = ?, reserved = ?, version = ?, snapshot = ?, updated_at = ?
		WHERE sku = ? AND version = ?`
	upsertHoldingSQL = `INSERT INTO stock_holdings (sku, order_id, qty, state, version, updated_at)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (sku, order_id) DO UPDATE SET qty = excluded.qty, state = excluded.state,
			version = excluded.version, updated_at = excluded.updated_at`
	insertStockEventSQL = `INSERT INTO stock_events (sku, version, type, order_id, qty, from_state, to_state, delta,
		idempotency_key, node, at, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
)

// WriteStock applies w in one transaction on the write connection and returns once it is
// committed: nil, persistence.ErrConflict if the stored version is not w.ExpectedVersion
// (for 0: the sku has a row already), persistence.ErrInvalid for content no store can
// keep, or another error. Nothing of a failed write is applied.
//
// The write connection is the store's only one, shared with the group-commit writer: the
// transaction waits for it between two order batches, so it never meets SQLITE_BUSY from
// this process, and it commits with the same WAL and synchronous=FULL settings. It is not
// batched with other skus' writes: one write already carries a sku's batch of commands.
func (s *Store) WriteStock(ctx context.Context, w persistence.StockWrite) error {
	w, err := normalize.Stock(w, s.now())
	if err != nil {
		return err
	}
	release, err := s.enter()
	if err != nil {
		return err
	}
	defer release()
	if err := s.writeStock(ctx, w); err != nil {
		return fmt.Errorf("writing sku %s: %w", w.Stock.SKU, err)
	}
	return nil
}

func (s *Store) writeStock(ctx context.Context, w persistence.StockWrite) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	defer tx.Rollback()
	st := w.Stock
	var res sql.Result
	if w.ExpectedVersion == 0 {
		res, err = tx.ExecContext(ctx, insertStockSQL, st.SKU, st.OnHand, st.Reserved, st.Version, nonNil(st.Snapshot),
			st.UpdatedAt.UnixMicro())
	} else {
		res, err = tx.ExecContext(ctx, updateStockSQL, st.OnHand, st.Reserved, st.Version, nonNil(st.Snapshot),
			st.UpdatedAt.UnixMicro(), st.SKU, w.ExpectedVersion)
	}
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("at version %d: %w", w.ExpectedVersion, errors.Join(persistence.ErrConflict, err))
	}
	if len(w.Holdings) > 0 {
		stmt, err := tx.PrepareContext(ctx, upsertHoldingSQL)
		if err != nil {
			return fmt.Errorf("preparing holdings: %w", err)
		}
		defer stmt.Close()
		for _, h := range w.Holdings {
			if _, err := stmt.ExecContext(ctx, st.SKU, h.OrderID, h.Qty, h.State, h.Version, h.UpdatedAt.UnixMicro()); err != nil {
				return fmt.Errorf("writing holding of order %s: %w", h.OrderID, err)
			}
		}
	}
	if len(w.Events) > 0 {
		stmt, err := tx.PrepareContext(ctx, insertStockEventSQL)
		if err != nil {
			return fmt.Errorf("preparing events: %w", err)
		}
		defer stmt.Close()
		for _, e := range w.Events {
			if _, err := stmt.ExecContext(ctx, st.SKU, e.Version, e.Type, e.OrderID, e.Qty, e.From, e.To, e.Delta,
				e.IdempotencyKey, e.Node, e.At.UnixMicro(), e.Payload); err != nil {
				return fmt.Errorf("writing event %d: %w", e.Version, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing: %w", err)
	}
	return nil
}

const (
	stockColumns        = `sku, on_hand, reserved, version, snapshot, updated_at`
	holdingColumns      = `sku, order_id, qty, state, version, updated_at`
	stockEventColumns   = `sku, version, type, order_id, qty, from_state, to_state, delta, idempotency_key, node, at, payload`
	stockRowSQL         = `SELECT ` + stockColumns + ` FROM stock WHERE sku = ?`
	holdingOfSQL        = `SELECT ` + holdingColumns + ` FROM stock_holdings WHERE sku = ? AND order_id = ?`
	listStockSQL        = `SELECT ` + stockColumns + ` FROM stock ORDER BY sku`
	stockEventsAfterSQL = `SELECT ` + stockEventColumns + ` FROM stock_events WHERE sku = ? AND version > ? ORDER BY version LIMIT ?`
)

// liveHoldingsSQL selects the holdings of a sku in one of n states or updated at or
// after a time: parameters sku, the n states, then the time.
func liveHoldingsSQL(n int) string {
	where := `updated_at >= ?`
	if n > 0 {
		where = `state IN (` + strings.Repeat("?, ", n-1) + `?) OR ` + where
	}
	return `SELECT ` + holdingColumns + ` FROM stock_holdings WHERE sku = ? AND (` + where + `) ORDER BY order_id`
}

func scanStock(row scanner) (persistence.StockRecord, error) {
	var r persistence.StockRecord
	var updated sql.NullInt64
	err := row.Scan(&r.SKU, &r.OnHand, &r.Reserved, &r.Version, &r.Snapshot, &updated)
	r.UpdatedAt = fromMicros(updated)
	return r, err
}

func scanHolding(row scanner) (persistence.Holding, error) {
	var h persistence.Holding
	var updated sql.NullInt64
	err := row.Scan(&h.SKU, &h.OrderID, &h.Qty, &h.State, &h.Version, &updated)
	h.UpdatedAt = fromMicros(updated)
	return h, err
}

func scanStockEvent(row scanner) (persistence.StockEvent, error) {
	var e persistence.StockEvent
	var at sql.NullInt64
	err := row.Scan(&e.SKU, &e.Version, &e.Type, &e.OrderID, &e.Qty, &e.From, &e.To, &e.Delta, &e.IdempotencyKey,
		&e.Node, &at, &e.Payload)
	e.At = fromMicros(at)
	return e, err
}

// collect reads every row of rows with scan into a non-nil slice and closes rows.
func collect[T any](rows *sql.Rows, err error, scan func(scanner) (T, error)) ([]T, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// LoadStock returns the row of sku and its holdings whose state is one of live or that
// were updated at or after since (truncated to microseconds; the zero time selects every
// holding), ordered by order id, both read in one read transaction (one snapshot).
func (s *Store) LoadStock(ctx context.Context, sku string, live []string, since time.Time) (persistence.StockRecord, []persistence.Holding, error) {
	release, err := s.enter()
	if err != nil {
		return persistence.StockRecord{}, nil, err
	}
	defer release()
	row, holdings, err := s.loadStock(ctx, sku, live, since)
	if errors.Is(err, sql.ErrNoRows) {
		return persistence.StockRecord{}, nil, fmt.Errorf("loading sku %s: %w", sku, persistence.ErrNotFound)
	}
	if err != nil {
		return persistence.StockRecord{}, nil, fmt.Errorf("loading sku %s: %w", sku, err)
	}
	return row, holdings, nil
}

func (s *Store) loadStock(ctx context.Context, sku string, live []string, since time.Time) (persistence.StockRecord, []persistence.Holding, error) {
	tx, err := s.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return persistence.StockRecord{}, nil, err
	}
	defer tx.Rollback()
	row, err := scanStock(tx.QueryRowContext(ctx, stockRowSQL, sku))
	if err != nil {
		return persistence.StockRecord{}, nil, err
	}
	args := make([]any, 0, len(live)+2)
	args = append(args, sku)
	for _, state := range live {
		args = append(args, state)
	}
	args = append(args, normalize.Time(since).UnixMicro())
	rows, err := tx.QueryContext(ctx, liveHoldingsSQL(len(live)), args...)
	holdings, err := collect(rows, err, scanHolding)
	return row, holdings, err
}

// HoldingOf returns one order's holding of a sku, or persistence.ErrNotFound.
func (s *Store) HoldingOf(ctx context.Context, sku, orderID string) (persistence.Holding, error) {
	release, err := s.enter()
	if err != nil {
		return persistence.Holding{}, err
	}
	defer release()
	h, err := scanHolding(s.read.QueryRowContext(ctx, holdingOfSQL, sku, orderID))
	if errors.Is(err, sql.ErrNoRows) {
		return persistence.Holding{}, fmt.Errorf("reading holding of order %s in sku %s: %w", orderID, sku, persistence.ErrNotFound)
	}
	if err != nil {
		return persistence.Holding{}, fmt.Errorf("reading holding of order %s in sku %s: %w", orderID, sku, err)
	}
	return h, nil
}

// ListStock returns every sku's row, ordered by sku.
func (s *Store) ListStock(ctx context.Context) ([]persistence.StockRecord, error) {
	release, err := s.enter()
	if err != nil {
		return nil, err
	}
	defer release()
	rows, err := s.read.QueryContext(ctx, listStockSQL)
	out, err := collect(rows, err, scanStock)
	if err != nil {
		return nil, fmt.Errorf("listing stock: %w", err)
	}
	return out, nil
}

// StockEvents returns up to limit (clamped like ListOrders) events of sku with a version
// above after, in version order: a range scan of the primary key (sku, version).
func (s *Store) StockEvents(ctx context.Context, sku string, after int64, limit int) ([]persistence.StockEvent, error) {
	release, err := s.enter()
	if err != nil {
		return nil, err
	}
	defer release()
	rows, err := s.read.QueryContext(ctx, stockEventsAfterSQL, sku, after, keyset.Limit(limit))
	out, err := collect(rows, err, scanStockEvent)
	if err != nil {
		return nil, fmt.Errorf("reading events of sku %s: %w", sku, err)
	}
	return out, nil
}
