package baseline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// sweeperSubject is the "by" of the expiries the sweeper writes, as ordermesh's sweeper.
const sweeperSubject = "sweeper"

// expireSQL closes PAYING orders whose deadline is at or before $1, with their
// PaymentExpired events, in one statement. $2 limits it to one order (empty: any), $3 is
// the batch size.
//
// SKIP LOCKED lets several baseline processes sweep at once without queueing behind each
// other, and skips an order a command holds right now (pay confirmed at the last moment):
// the locked row is re-checked when the next sweep reaches it. Rows are locked in deadline
// order and never waited for, so the sweep cannot deadlock with commands.
//
// The key is order.ExpiryKey of the deadline, computed in SQL (EXTRACT(EPOCH) is exact
// numeric since PostgreSQL 14; deadlines are microseconds), so an expiry is recorded with
// the key an ordermesh grain would use.
var expireSQL = `
WITH due AS (
	SELECT id, payment_deadline FROM baseline_orders
	WHERE payment_deadline <= $1 AND status = 'PAYING' AND ($2::text = '' OR id = $2)
	ORDER BY payment_deadline, id
	LIMIT $3
	FOR UPDATE SKIP LOCKED
), u AS (
	UPDATE baseline_orders o
	SET status = 'CLOSED', version = o.version + 1, payment_deadline = NULL, updated_at = $1
	FROM due
	WHERE o.id = due.id
	RETURNING o.id, o.customer, o.version, o.lines, o.currency, o.total, o.created_at, due.payment_deadline AS deadline
), ev AS (
	INSERT INTO baseline_order_events (order_id, version, type, from_status, to_status, idempotency_key, node, at, payload)
	SELECT id, version, 'PaymentExpired', 'PAYING', 'CLOSED',
		'expire:' || ((EXTRACT(EPOCH FROM deadline) * 1000000)::bigint * 1000)::text, $4, $1, $5
	FROM u
), ` + releaseCTEs + `, te AS (
	-- The payment's task is moot (tasks.go).
	UPDATE baseline_tasks t
	SET state = 'cancelled', last_error = 'the order is CLOSED', lease_until = NULL, updated_at = $1
	FROM u
	WHERE t.order_id = u.id AND t.kind = 'payment' AND t.state IN ('pending', 'running', 'dead')
)
SELECT id, customer, version, lines, currency, total, created_at FROM u`

// releaseCTEs give back the units of the orders u closed (reserved -= n per sku), in the
// statement that closes them.
var releaseCTEs = moveStockCTEs("true", "reserved = s.reserved - l.qty, version = s.version + 1, updated_at = $1")

// moveStockCTEs are the CTEs that move the stock of the orders the CTE u returned (those
// of its rows for which cond holds): l, their units per sku; lk, which locks those skus'
// rows in sku order; and st, the update of those rows with set (s is the row, l.qty the
// units). Every transaction that changes stock rows locks them in sku order (a create's
// reservations too, see quantities), so two of them that touch the same skus wait for
// each other instead of deadlocking: an UPDATE ... FROM locks rows in whatever order its
// join produces them, and PostgreSQL breaks a deadlock only after deadlock_timeout (1 s),
// by failing one of the transactions.
func moveStockCTEs(cond, set string) string {
	return `l AS (
	SELECT x.sku, sum(x.qty)::bigint AS qty
	FROM u, jsonb_to_recordset(u.lines) AS x(sku text, qty bigint)
	WHERE ` + cond + `
	GROUP BY x.sku
), lk AS MATERIALIZED (
	SELECT s.sku FROM baseline_stock s WHERE s.sku IN (SELECT sku FROM l) ORDER BY s.sku FOR UPDATE
), st AS (
	UPDATE baseline_stock s SET ` + set + `
	FROM l JOIN lk ON lk.sku = l.sku
	WHERE s.sku = l.sku
)`
}

// expireOrdersSQL closes CREATED orders older than the order timeout ($2 is now minus
// the timeout) with their OrderExpired events, releasing their stock, in one statement;
// SKIP LOCKED as expireSQL. $3 is the batch size.
var expireOrdersSQL = `
WITH due AS (
	SELECT id FROM baseline_orders
	WHERE status = 'CREATED' AND created_at <= $2
	ORDER BY created_at, id
	LIMIT $3
	FOR UPDATE SKIP LOCKED
), u AS (
	UPDATE baseline_orders o
	SET status = 'CLOSED', version = o.version + 1, updated_at = $1
	FROM due
	WHERE o.id = due.id
	RETURNING o.id, o.version, o.lines
), ev AS (
	INSERT INTO baseline_order_events (order_id, version, type, from_status, to_status, idempotency_key, node, at, payload)
	SELECT id, version, $6, 'CREATED', 'CLOSED', $7, $4, $1, $5
	FROM u
), ` + releaseCTEs + `
SELECT count(*) FROM u`

// expire runs expireSQL at time at for up to limit orders (only order id, unless empty).
func (s *Service) expire(ctx context.Context, at time.Time, id string, limit int) ([]order.Order, error) {
	rows, err := s.pool.Query(ctx, expireSQL, at, id, limit, s.opts.Node, s.expiryPayload)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (order.Order, error) {
		var o order.Order
		var version int64
		var lines []byte
		var created pgtype.Timestamptz
		if err := row.Scan(&o.ID, &o.Customer, &version, &lines, &o.Currency, &o.Total, &created); err != nil {
			return o, err
		}
		o.Status, o.Version, o.CreatedAt, o.UpdatedAt = order.StatusClosed, uint64(version), utc(created), at
		if err := json.Unmarshal(lines, &o.Lines); err != nil {
			return o, fmt.Errorf("decoding lines of order %s: %w", o.ID, err)
		}
		return o, nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// expireOne is ExpirePayment through Execute: the sweep statement for one order.
func (s *Service) expireOne(ctx context.Context, c order.Command) (order.Result, bool, error) {
	xs, err := s.expire(ctx, c.At, c.OrderID, 1)
	if err != nil {
		return order.Result{}, false, storeError(c.OrderID, "expiring", err)
	}
	if len(xs) == 0 {
		return order.Result{}, false, nil
	}
	return order.Result{View: xs[0].View()}, true, nil
}

// Sweep expires every payment whose deadline has passed by the service's clock, and
// every CREATED order older than the order timeout, in statements of up to
// Options.SweepBatch orders, and returns how many orders it closed.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	total := 0
	for {
		var n int
		now := s.now()
		err := s.pool.QueryRow(ctx, expireOrdersSQL, now, now.Add(-s.opts.OrderTimeout), s.opts.SweepBatch,
			s.opts.Node, s.orderExpiryPayload, string(order.EvtExpired), orderExpiryKey).Scan(&n)
		if err != nil {
			return total, fmt.Errorf("sweeping order deadlines: %w", err)
		}
		total += n
		if n < s.opts.SweepBatch {
			break
		}
	}
	for {
		xs, err := s.expire(ctx, s.now(), "", s.opts.SweepBatch)
		if err != nil {
			return total, fmt.Errorf("sweeping payment deadlines: %w", err)
		}
		total += len(xs)
		if len(xs) < s.opts.SweepBatch {
			return total, nil
		}
	}
}

// runSweeper sweeps every SweepInterval until ctx ends.
func (s *Service) runSweeper(ctx context.Context) {
	defer close(s.swept)
	t := time.NewTicker(s.opts.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := s.Sweep(ctx); err != nil && !errors.Is(err, context.Canceled) {
				s.opts.Logger.Warn("baseline payment sweep failed", "err", err)
			}
		}
	}
}
