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
	"github.com/ordermesh/ordermesh/persistence/keyset"
)

var _ persistence.Stocks = (*Store)(nil)

// writeStockSQL applies one StockWrite in one statement (one implicit transaction, one
// round trip, however many holdings and events it carries). The sku row is inserted if
// the expected version is 0 and it does not exist yet (ON CONFLICT DO NOTHING: a racing
// first insert waits for the winner and then finds the row, so the loser sees no row
// written rather than a unique violation), or updated only where the stored version is
// the expected one. Holdings are upserted and events appended only if the row was
// written; the statement returns how many rows it wrote, 0 meaning a conflict.
const writeStockSQL = `
WITH updated AS (
	UPDATE stock SET on_hand = $3::bigint, reserved = $4::bigint, version = $5::bigint,
		snapshot = $6::bytea, updated_at = $7::timestamptz
	WHERE $2::bigint > 0 AND sku = $1::text AND version = $2::bigint
	RETURNING sku
), inserted AS (
	INSERT INTO stock (sku, on_hand, reserved, version, snapshot, updated_at)
	SELECT $1::text, $3::bigint, $4::bigint, $5::bigint, $6::bytea, $7::timestamptz
	WHERE $2::bigint = 0
	ON CONFLICT (sku) DO NOTHING
	RETURNING sku
), written AS (
	SELECT sku FROM updated UNION ALL SELECT sku FROM inserted
), holdings AS (
	INSERT INTO stock_holdings (sku, order_id, qty, state, version, updated_at)
	SELECT $1::text, h.* FROM unnest($8::text[], $9::bigint[], $10::text[], $11::bigint[], $12::timestamptz[])
		AS h(order_id, qty, state, version, updated_at)
	WHERE EXISTS (SELECT 1 FROM written)
	ON CONFLICT (sku, order_id) DO UPDATE SET qty = EXCLUDED.qty, state = EXCLUDED.state,
		version = EXCLUDED.version, updated_at = EXCLUDED.updated_at
), events AS (
	INSERT INTO stock_events (sku, version, type, order_id, qty, from_state, to_state, delta, idempotency_key, node, at, payload)
	SELECT $1::text, e.* FROM unnest($13::bigint[], $14::text[], $15::text[], $16::bigint[], $17::text[], $18::text[],
		$19::bigint[], $20::text[], $21::text[], $22::timestamptz[], $23::bytea[])
		AS e(version, type, order_id, qty, from_state, to_state, delta, idempotency_key, node, at, payload)
	WHERE EXISTS (SELECT 1 FROM written)
)
SELECT count(*) FROM written`

// stockParams returns the parameters of writeStockSQL for w: the row, then one array a
// column of the holdings and of the events.
func stockParams(w persistence.StockWrite) []any {
	st := w.Stock
	snapshot := st.Snapshot
	if snapshot == nil {
		snapshot = []byte{}
	}
	n := len(w.Holdings)
	hOrder, hQty, hState := make([]string, n), make([]int64, n), make([]string, n)
	hVersion, hUpdated := make([]int64, n), make([]pgtype.Timestamptz, n)
	for i, h := range w.Holdings {
		hOrder[i], hQty[i], hState[i], hVersion[i], hUpdated[i] = h.OrderID, h.Qty, h.State, h.Version, timestamptz(h.UpdatedAt)
	}
	n = len(w.Events)
	eVersion, eQty, eDelta := make([]int64, n), make([]int64, n), make([]int64, n)
	eType, eOrder, eFrom, eTo := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	eKey, eNode := make([]string, n), make([]string, n)
	eAt, ePayload := make([]pgtype.Timestamptz, n), make([][]byte, n)
	for i, e := range w.Events {
		eVersion[i], eType[i], eOrder[i], eQty[i], eFrom[i], eTo[i] = e.Version, e.Type, e.OrderID, e.Qty, e.From, e.To
		eDelta[i], eKey[i], eNode[i], eAt[i], ePayload[i] = e.Delta, e.IdempotencyKey, e.Node, timestamptz(e.At), e.Payload
	}
	return []any{st.SKU, w.ExpectedVersion, st.OnHand, st.Reserved, st.Version, snapshot, timestamptz(st.UpdatedAt),
		hOrder, hQty, hState, hVersion, hUpdated,
		eVersion, eType, eOrder, eQty, eFrom, eTo, eDelta, eKey, eNode, eAt, ePayload}
}

// WriteStock applies w and returns once it is committed: nil, persistence.ErrConflict if
// the stored version is not w.ExpectedVersion (for 0: the sku has a row already),
// persistence.ErrInvalid for content no store can keep, or another error. Nothing of a
// failed write is applied. It joins the orders' group commit: the writes of skus and of
// orders queued together are committed in one transaction (see flush). If ctx ends while
// the write is being committed, it may or may not have been applied.
func (s *Store) WriteStock(ctx context.Context, w persistence.StockWrite) error {
	w, err := normalize.Stock(w, s.now())
	if err != nil {
		return err
	}
	return s.queue.SubmitStock(ctx, w)
}

// writeStockAlone applies one sku's write in a statement of its own, retrying deadlocks
// and serialization failures: what a batch falls back to when the server refused it.
func (s *Store) writeStockAlone(ctx context.Context, w *persistence.StockWrite) error {
	params := stockParams(*w)
	for attempt := 1; ; attempt++ {
		var written int64
		err := s.pool.QueryRow(ctx, writeStockSQL, params...).Scan(&written)
		switch {
		case err == nil:
			return stockOutcome(w, written)
		case attempt < maxAttempts && retryable(err):
			continue
		}
		return fmt.Errorf("writing sku %s: %w", w.Stock.SKU, classify(err))
	}
}

// stockOutcome is the outcome of a sku's write whose statement wrote written rows: none
// means the version fence held it back.
func stockOutcome(w *persistence.StockWrite, written int64) error {
	if written == 0 {
		return fmt.Errorf("writing sku %s at version %d: %w", w.Stock.SKU, w.ExpectedVersion, persistence.ErrConflict)
	}
	return nil
}

const (
	stockColumns        = `sku, on_hand, reserved, version, snapshot, updated_at`
	holdingColumns      = `sku, order_id, qty, state, version, updated_at`
	stockEventColumns   = `sku, version, type, order_id, qty, from_state, to_state, delta, idempotency_key, node, at, payload`
	liveHoldingsSQL     = `SELECT ` + holdingColumns + ` FROM stock_holdings WHERE sku = $1 AND (state = ANY($2::text[]) OR updated_at >= $3) ORDER BY order_id`
	stockRowSQL         = `SELECT ` + stockColumns + ` FROM stock WHERE sku = $1`
	holdingOfSQL        = `SELECT ` + holdingColumns + ` FROM stock_holdings WHERE sku = $1 AND order_id = $2`
	listStockSQL        = `SELECT ` + stockColumns + ` FROM stock ORDER BY sku`
	stockEventsAfterSQL = `SELECT ` + stockEventColumns + ` FROM stock_events WHERE sku = $1 AND version > $2 ORDER BY version LIMIT $3`
)

func scanStock(row pgx.Row) (persistence.StockRecord, error) {
	var r persistence.StockRecord
	var updated pgtype.Timestamptz
	err := row.Scan(&r.SKU, &r.OnHand, &r.Reserved, &r.Version, &r.Snapshot, &updated)
	r.UpdatedAt = utc(updated)
	return r, err
}

func scanHolding(row pgx.Row) (persistence.Holding, error) {
	var h persistence.Holding
	var updated pgtype.Timestamptz
	err := row.Scan(&h.SKU, &h.OrderID, &h.Qty, &h.State, &h.Version, &updated)
	h.UpdatedAt = utc(updated)
	return h, err
}

func scanStockEvent(row pgx.Row) (persistence.StockEvent, error) {
	var e persistence.StockEvent
	var at pgtype.Timestamptz
	err := row.Scan(&e.SKU, &e.Version, &e.Type, &e.OrderID, &e.Qty, &e.From, &e.To, &e.Delta, &e.IdempotencyKey,
		&e.Node, &at, &e.Payload)
	e.At = utc(at)
	return e, err
}

// collect reads every row of rows with scan into a non-nil slice.
func collect[T any](rows pgx.Rows, err error, scan func(pgx.Row) (T, error)) ([]T, error) {
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (T, error) { return scan(r) })
	if out == nil && err == nil {
		out = []T{}
	}
	return out, err
}

// LoadStock returns the row of sku and its holdings whose state is one of live or that
// were updated at or after since (truncated to microseconds; the zero time selects every
// holding), ordered by order id, both read in one snapshot.
func (s *Store) LoadStock(ctx context.Context, sku string, live []string, since time.Time) (persistence.StockRecord, []persistence.Holding, error) {
	release, err := s.enter()
	if err != nil {
		return persistence.StockRecord{}, nil, err
	}
	defer release()
	if live == nil {
		live = []string{}
	}
	var row persistence.StockRecord
	var holdings []persistence.Holding
	err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		if row, err = scanStock(tx.QueryRow(ctx, stockRowSQL, sku)); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, liveHoldingsSQL, sku, live, normalize.Time(since))
		holdings, err = collect(rows, err, scanHolding)
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return persistence.StockRecord{}, nil, fmt.Errorf("loading sku %s: %w", sku, persistence.ErrNotFound)
	}
	if err != nil {
		return persistence.StockRecord{}, nil, fmt.Errorf("loading sku %s: %w", sku, err)
	}
	return row, holdings, nil
}

// HoldingOf returns one order's holding of a sku, or persistence.ErrNotFound.
func (s *Store) HoldingOf(ctx context.Context, sku, orderID string) (persistence.Holding, error) {
	release, err := s.enter()
	if err != nil {
		return persistence.Holding{}, err
	}
	defer release()
	h, err := scanHolding(s.pool.QueryRow(ctx, holdingOfSQL, sku, orderID))
	if errors.Is(err, pgx.ErrNoRows) {
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
	rows, err := s.pool.Query(ctx, listStockSQL)
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
	rows, err := s.pool.Query(ctx, stockEventsAfterSQL, sku, after, keyset.Limit(limit))
	out, err := collect(rows, err, scanStockEvent)
	if err != nil {
		return nil, fmt.Errorf("reading events of sku %s: %w", sku, err)
	}
	return out, nil
}
