package baseline

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/ordermesh/ordermesh/actors/order"
	"github.com/ordermesh/ordermesh/actors/stock"
)

// Inventory, the classic way. A create is one transaction: the order row with its two
// events (OrderCreated, then StockReserved) and, per sku of its lines, the conditional
// update
//
//	UPDATE baseline_stock SET reserved = reserved + n WHERE sku = $1 AND on_hand - reserved >= n
//
// that the row lock serialises across every buyer of the sku. If one of them changes no
// row the transaction rolls back, and a second statement records the refusal: the order
// row in REJECTED with OrderCreated and OrderRejected, as ordermesh keeps its rejected
// orders, so that a retry with the same key gets the same 409 whatever the stock is by
// then. Releases (cancel, payment and order expiry), shipments and refunds are one more
// data-modifying CTE in the transition's own statement, so stock and order never
// disagree after a commit.
//
// The histories are a node's: OrderCreated then StockReserved or OrderRejected.
const (
	// reserveKey is the idempotency key of a create's second event, StockReserved or
	// OrderRejected, as a node records it.
	reserveKey = "reserve-stock"
	// orderExpiryKey is the key of OrderExpired: CLOSED is final, so an order expires
	// once and one key per order suffices.
	orderExpiryKey = "expire-order"
	// stockSubject is the "by" of the stock events of a create.
	stockSubject = "stock"
)

// createOrderSQL inserts an order that reserved its stock: the row at version 2 in
// CREATED, OrderCreated (v1, into RESERVING) and StockReserved (v2). ON CONFLICT: the id
// exists (a retried create), nothing is inserted and the caller rolls back.
const createOrderSQL = `
WITH o AS (
	INSERT INTO baseline_orders (id, customer, status, version, lines, currency, total, created_at, updated_at)
	VALUES ($1, $2, $3, 2, $4, $5, $6, $7, $7)
	ON CONFLICT (id) DO NOTHING
	RETURNING id
)
INSERT INTO baseline_order_events (order_id, version, type, from_status, to_status, idempotency_key, node, at, payload)
SELECT id, 1, $8::text, '', $9::text, $10::text, $11::text, $7::timestamptz, $12::bytea FROM o
UNION ALL
SELECT id, 2, $13::text, $9::text, $3::text, $14::text, $11::text, $7::timestamptz, $15::bytea FROM o`

// reserveSQL is the classic conditional update of one sku for one order.
const reserveSQL = `
UPDATE baseline_stock SET reserved = reserved + $2, version = version + 1, updated_at = $3
WHERE sku = $1 AND on_hand - reserved >= $2`

// lineQty is the units of one sku an order holds.
type lineQty struct {
	sku string
	qty int64
}

// quantities sums lines by sku, in sku order, so that every transaction locks the stock
// rows of a basket in the same order and two baskets cannot deadlock.
func quantities(lines []order.Line) []lineQty {
	var out []lineQty
	for _, l := range lines {
		if i := slices.IndexFunc(out, func(q lineQty) bool { return q.sku == l.SKU }); i >= 0 {
			out[i].qty += l.Qty
			continue
		}
		out = append(out, lineQty{l.SKU, l.Qty})
	}
	slices.SortFunc(out, func(a, b lineQty) int { return cmp.Compare(a.sku, b.sku) })
	return out
}

// outOfStock is the refusal of a create, in the words of the stock domain.
func outOfStock(sku string, qty int64) *order.Error {
	return order.Errorf(order.CodeOutOfStock, "out of stock: sku %s has fewer than %d available", sku, qty)
}

// createWithStock runs a validated create (e is its OrderCreated event): one transaction
// that inserts the order and reserves every line, or a rejected order when a sku is short.
func (s *Service) createWithStock(ctx context.Context, c order.Command, e order.Event) (order.Result, error) {
	lines, err := json.Marshal(e.Lines)
	if err != nil {
		return order.Result{}, fmt.Errorf("creating order %s: encoding lines: %w", c.OrderID, err)
	}
	created, err := json.Marshal(order.PayloadOf(e))
	if err != nil {
		return order.Result{}, fmt.Errorf("creating order %s: encoding payload: %w", c.OrderID, err)
	}
	reserved, _ := json.Marshal(order.Payload{By: stockSubject})
	qs := quantities(e.Lines)

	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return order.Result{}, storeError(c.OrderID, "creating", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit it does nothing
	b := &pgx.Batch{}
	b.Queue(createOrderSQL, e.OrderID, e.Customer, string(order.StatusCreated), lines, e.Currency, e.Total, e.At,
		string(order.EvtCreated), string(order.StatusReserving), e.Key, s.opts.Node, created,
		string(order.EvtStockReserved), reserveKey, reserved)
	for _, q := range qs {
		b.Queue(reserveSQL, q.sku, q.qty, e.At)
	}
	inserted, short, err := func() (bool, *lineQty, error) {
		br := tx.SendBatch(ctx, b)
		defer br.Close()
		tag, err := br.Exec()
		if err != nil {
			return false, nil, err
		}
		if tag.RowsAffected() == 0 {
			return false, nil, nil
		}
		for i := range qs {
			tag, err := br.Exec()
			if err != nil {
				return true, nil, err
			}
			if tag.RowsAffected() == 0 {
				return true, &qs[i], nil
			}
		}
		return true, nil, br.Close()
	}()
	switch {
	case err != nil && !isUniqueViolation(err):
		return order.Result{}, storeError(c.OrderID, "creating", err)
	case err != nil || !inserted:
		_ = tx.Rollback(ctx)
		return s.createReplay(ctx, c)
	case short != nil:
		_ = tx.Rollback(ctx)
		return s.reject(ctx, c, e, lines, created, short)
	}
	if err := tx.Commit(ctx); err != nil {
		return order.Result{}, storeError(c.OrderID, "creating", err)
	}
	o := order.Evolve(order.Order{}, e)
	o.Status, o.Version, o.UpdatedAt = order.StatusCreated, 2, e.At
	return order.Result{View: o.View()}, nil
}

// rejectSQL records a create refused for want of stock: the row in REJECTED at version
// 2, OrderCreated (v1, into RESERVING) and OrderRejected (v2), whose payload's reason is
// the refusal every retry is answered with.
const rejectSQL = createOrderSQL

// reject records the refusal of a create and returns it.
func (s *Service) reject(ctx context.Context, c order.Command, e order.Event, lines, created []byte, short *lineQty) (order.Result, error) {
	refusal := outOfStock(short.sku, short.qty)
	payload, _ := json.Marshal(order.Payload{By: stockSubject, Reason: refusal.Message})
	tag, err := s.pool.Exec(ctx, rejectSQL, e.OrderID, e.Customer, string(order.StatusRejected), lines, e.Currency, e.Total, e.At,
		string(order.EvtCreated), string(order.StatusReserving), e.Key, s.opts.Node, created,
		string(order.EvtRejected), reserveKey, payload)
	if err != nil && !isUniqueViolation(err) {
		return order.Result{}, storeError(c.OrderID, "creating", err)
	}
	if err != nil || tag.RowsAffected() == 0 {
		// A concurrent create with the same key got there first: answer as it did.
		return s.createReplay(ctx, c)
	}
	return order.Result{}, refusal
}

// createReplay answers a create whose id exists: key reused for another request (422),
// or a replay of the first answer, which is the order at version 2 (CREATED) or the
// out-of-stock refusal its OrderRejected event recorded.
func (s *Service) createReplay(ctx context.Context, c order.Command) (order.Result, error) {
	res, retry, err := s.resolve(ctx, c)
	if retry {
		// The order vanished between the insert and the read: only possible if someone
		// deleted it by hand.
		return order.Result{}, order.Unavailable(order.ReasonStore, "order %s could not be saved; retry", c.OrderID)
	}
	// A rejected order's create is refused again (order.Decide), with the message its
	// OrderRejected event recorded: the order row does not keep it.
	if err != nil && order.ErrorCode(err) != order.CodeOutOfStock {
		return res, err
	}
	ev, err := s.EventByKey(ctx, c.OrderID, reserveKey)
	if err != nil {
		return order.Result{}, storeError(c.OrderID, "reading", err)
	}
	if order.EventType(ev.Type) == order.EvtRejected {
		var p order.Payload
		if err := json.Unmarshal(ev.Payload, &p); err != nil {
			return order.Result{}, fmt.Errorf("reading order %s: decoding payload: %w", c.OrderID, err)
		}
		return order.Result{}, order.Errorf(order.CodeOutOfStock, "%s", p.Reason)
	}
	v := res.View
	v.Status, v.Version, v.UpdatedAt, v.PaymentDeadline = order.Status(ev.To), uint64(ev.Version), ev.At, time.Time{}
	v.Actions = order.ActionsFrom(v.Status)
	return order.Result{View: v, Replayed: true}, nil
}

// stockEffect is what a transition does to the stock of the order's lines, given the
// status it leaves: release (reserved -= n) when it leaves one of release; ship
// (on_hand -= n too) when ship is set.
func stockEffect(c order.CommandType) (release []string, ship bool) {
	switch c {
	case order.CmdCancel:
		return []string{string(order.StatusCreated), string(order.StatusPaying)}, false
	case order.CmdShip:
		return []string{string(order.StatusPaid)}, true
	case order.CmdRefund:
		// A refund from PAID returns the units; after delivery they left with the parcel.
		return []string{string(order.StatusPaid)}, false
	}
	// Pay, fail, confirm (sold units stay reserved until shipped), deliver: nothing.
	return []string{}, false
}

// Stocks is the baseline's stock.Service: operators' adjustments and reads of the
// baseline_stock rows. Reservations are not its commands: they are part of the order
// statements.
type Stocks struct{ s *Service }

var _ stock.Service = (*Stocks)(nil)

// Stock returns the stock service of s, for edge.Deps.Stock.
func (s *Service) Stock() *Stocks { return &Stocks{s: s} }

const stockColumns = `on_hand, reserved, version, updated_at`

// Execute runs an operator's Adjust (the only command the baseline's stock takes from
// outside): the sku's row is locked, the pure stock.Decide checks the command against it
// and its key's earlier result, and a conditional update applies it with its key row, in
// one transaction.
func (k *Stocks) Execute(ctx context.Context, c stock.Command, requestID string) (stock.Result, error) {
	if c.Type != stock.CmdAdjust {
		return stock.Result{}, order.Errorf(order.CodeInvalidRequest, "the baseline reserves stock with its orders; %s is not a command of its own", c.Type)
	}
	s := k.s
	c.At = s.now()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return stock.Result{}, storeError(c.SKU, "adjusting stock of", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit it does nothing
	st := stock.New(c.SKU)
	var updated pgtype.Timestamptz
	var version int64
	// An upsert that changes nothing but locks the row, creating it for a new sku.
	err = tx.QueryRow(ctx, `INSERT INTO baseline_stock (sku) VALUES ($1)
		ON CONFLICT (sku) DO UPDATE SET sku = EXCLUDED.sku RETURNING `+stockColumns, c.SKU).
		Scan(&st.OnHand, &st.Reserved, &version, &updated)
	if err != nil {
		return stock.Result{}, storeError(c.SKU, "adjusting stock of", err)
	}
	st.Version, st.UpdatedAt = uint64(version), utc(updated)
	var key stock.AdjustKey
	var fp, reserved int64
	var at pgtype.Timestamptz
	err = tx.QueryRow(ctx, `SELECT fingerprint, on_hand, reserved, version, at FROM baseline_stock_adjustments
		WHERE sku = $1 AND key = $2`, c.SKU, c.Key).Scan(&fp, &key.OnHand, &reserved, &version, &at)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return stock.Result{}, storeError(c.SKU, "adjusting stock of", err)
	default:
		key.Key, key.Fingerprint, key.Version, key.At = c.Key, uint64(fp), uint64(version), utc(at)
		st.Keys = []stock.AdjustKey{key}
	}
	d, err := stock.Decide(&st, c)
	if err != nil {
		return stock.Result{}, err
	}
	if d.Replay {
		return stock.Result{Replayed: true, View: stock.View{SKU: c.SKU, OnHand: key.OnHand, Reserved: reserved,
			Available: key.OnHand - reserved, Version: key.Version, UpdatedAt: key.At}}, nil
	}
	e := d.Events[0]
	var v stock.View
	err = tx.QueryRow(ctx, `UPDATE baseline_stock SET on_hand = on_hand + $2, version = version + 1, updated_at = $3
		WHERE sku = $1 AND on_hand + $2 >= reserved RETURNING `+stockColumns, c.SKU, c.Delta, c.At).
		Scan(&v.OnHand, &v.Reserved, &version, &updated)
	if errors.Is(err, pgx.ErrNoRows) {
		return stock.Result{}, order.Errorf(order.CodeOutOfStock, "out of stock: sku %s has %d units available, cannot remove %d",
			c.SKU, st.Available(), -c.Delta)
	}
	if err != nil {
		return stock.Result{}, storeError(c.SKU, "adjusting stock of", err)
	}
	v.SKU, v.Version, v.UpdatedAt, v.Available = c.SKU, uint64(version), utc(updated), v.OnHand-v.Reserved
	if _, err := tx.Exec(ctx, `INSERT INTO baseline_stock_adjustments
		(sku, key, fingerprint, delta, reason, by_subject, on_hand, reserved, version, at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		c.SKU, c.Key, int64(e.Fingerprint), c.Delta, c.Reason, c.By.Subject, v.OnHand, v.Reserved, int64(v.Version), c.At); err != nil {
		return stock.Result{}, storeError(c.SKU, "adjusting stock of", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return stock.Result{}, storeError(c.SKU, "adjusting stock of", err)
	}
	return stock.Result{View: v}, nil
}

// Get returns the stock of sku; all zero for a sku never stocked.
func (k *Stocks) Get(ctx context.Context, sku, requestID string) (stock.View, error) {
	v := stock.View{SKU: sku}
	var version int64
	var updated pgtype.Timestamptz
	err := k.s.pool.QueryRow(ctx, `SELECT `+stockColumns+` FROM baseline_stock WHERE sku = $1`, sku).
		Scan(&v.OnHand, &v.Reserved, &version, &updated)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return v, nil
	case err != nil:
		return stock.View{}, storeError(sku, "reading stock of", err)
	}
	v.Version, v.UpdatedAt, v.Available = uint64(version), utc(updated), v.OnHand-v.Reserved
	return v, nil
}
