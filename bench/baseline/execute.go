package baseline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// transitionSQL is the classic conditional update and its event, in one statement.
//
// prev locks the row only if it is in one of the transition's From states (and, for a
// shopper, is the shopper's own). Locking first matters twice: under READ COMMITTED a
// waiting statement re-checks those conditions against the row as the winner left it, so
// of two racing commands the loser sees the new status and changes nothing; and prev's
// status is the state the order actually left, which the event records (Cancel has two
// From states, and UPDATE ... RETURNING shows only new values before PostgreSQL 18).
//
// The NOT EXISTS refuses a key already applied to this order. It reads the statement's
// snapshot, so in a rare race (the same key retried while the order went around the
// CREATED/PAYING cycle) it can miss a key committed meanwhile; the UNIQUE constraint on
// (order_id, idempotency_key) then aborts the whole statement, and the slow path answers
// the replay. The constraint, not this check, is the guarantee; the check just keeps the
// common replay from costing an error.
//
// The stock of the order's lines moves in the same statement: released (reserved -= n)
// when the order leaves one of the statuses $11 (cancel, refund before shipping), and
// shipped (on_hand -= n too) when $12.
var transitionSQL = `
WITH prev AS (
	SELECT id, status FROM baseline_orders
	WHERE id = $1 AND status = ANY($2::text[]) AND ($3::text = '' OR customer = $3)
	FOR UPDATE
), u AS (
	UPDATE baseline_orders o
	SET status = $4, version = o.version + 1, payment_deadline = $5, updated_at = $6
	FROM prev
	WHERE o.id = prev.id
	  AND NOT EXISTS (SELECT 1 FROM baseline_order_events e WHERE e.order_id = $1 AND e.idempotency_key = $7)
	RETURNING o.customer, o.version, o.lines, o.currency, o.total, o.created_at, prev.status AS from_status
), ev AS (
	INSERT INTO baseline_order_events (order_id, version, type, from_status, to_status, idempotency_key, node, at, payload)
	SELECT $1, version, $8, from_status, $4, $7, $9, $6, $10 FROM u
), ` + moveStockCTEs("u.from_status = ANY($11::text[])",
	"reserved = s.reserved - l.qty, on_hand = s.on_hand - CASE WHEN $12 THEN l.qty ELSE 0 END, version = s.version + 1, updated_at = $6") + `, te AS (
	-- The tasks the transition makes moot (tasks.go), in the same statement: leaving
	-- PAYING cancels the payment's task, leaving PAID ends the fulfilment's (done when
	-- the order ships).
	UPDATE baseline_tasks t
	SET state = CASE WHEN t.kind = 'fulfilment' AND $4 = 'SHIPPED' THEN 'done' ELSE 'cancelled' END,
		last_error = CASE WHEN t.kind = 'fulfilment' AND $4 = 'SHIPPED' THEN 'shipped' ELSE 'the order is ' || $4 END,
		lease_until = NULL, updated_at = $6
	FROM u
	WHERE t.order_id = $1 AND t.state IN ('pending', 'running', 'dead')
	  AND t.kind = CASE u.from_status WHEN 'PAYING' THEN 'payment' WHEN 'PAID' THEN 'fulfilment' END
), ti AS (
	-- The task the transition causes: entering PAYING, the payment intent to submit (its
	-- id is payment.IntentID of the order at the new version); entering PAID, the
	-- warehouse.Task to fulfil.
	INSERT INTO baseline_tasks (id, kind, order_id, state, next_at, payload, created_at, updated_at)
	SELECT x.id, x.kind, $1, 'pending', $6, x.payload, $6, $6
	FROM u, LATERAL (
		SELECT 'pay_' || $1 || '_' || u.version AS id, 'payment' AS kind,
			jsonb_build_object('id', 'pay_' || $1 || '_' || u.version, 'order_id', $1::text, 'customer', u.customer,
				'amount', u.total, 'currency', u.currency) AS payload
		WHERE $4 = 'PAYING'
		UNION ALL
		SELECT 'fulfil_' || $1, 'fulfilment',
			jsonb_build_object('id', 'fulfil_' || $1, 'order_id', $1::text, 'customer', u.customer, 'lines', u.lines)
		WHERE $4 = 'PAID'
	) x
	ON CONFLICT (id) DO NOTHING
)
SELECT customer, version, lines, currency, total, created_at FROM u`

// resolveSQL is the slow path's one query: the order as it is now, and what the command's
// idempotency key did to it, if anything.
const resolveSQL = `
SELECT o.customer, o.status, o.version, o.lines, o.currency, o.total, o.payment_deadline, o.created_at, o.updated_at,
	e.type, e.version, e.to_status, e.at, e.payload
FROM baseline_orders o
LEFT JOIN baseline_order_events e ON e.order_id = o.id AND e.idempotency_key = $2
WHERE o.id = $1`

// getSQL reads one order.
const getSQL = `
SELECT customer, status, version, lines, currency, total, payment_deadline, created_at, updated_at
FROM baseline_orders WHERE id = $1`

// maxAttempts bounds how often a command whose fast statement lost a race, yet is legal
// when the slow path looks (the order changed twice in between), is tried again before
// the caller is told to retry.
const maxAttempts = 3

// Execute runs one command as one statement. Validation is ordermesh's: the transition
// table and order.Decide, in Decide's order (400, 403, 404, 422 key reused, 409, 422).
// For CmdCreate, c.OrderID must be order.OrderIDFor(c.By.Subject, c.Key). c.At is
// ignored: the service stamps commands with its clock, as a grain does. Database failures
// whose outcome a retry can settle are CodeUnavailable (retrying with the same key is
// safe: an applied command is then answered as a replay).
func (s *Service) Execute(ctx context.Context, c order.Command, requestID string) (order.Result, error) {
	c.PaymentTimeout = s.opts.PaymentTimeout
	if c.Type == order.CmdCreate {
		return s.create(ctx, c)
	}
	// Decide on an order that does not exist answers every check that does not depend on
	// the order (malformed command, role) and otherwise says "not found": the table
	// stays the only place that knows who may do what.
	if _, err := order.Decide(&order.Order{ID: c.OrderID}, c); order.ErrorCode(err) != order.CodeNotFound {
		return order.Result{}, err
	}
	for range maxAttempts {
		c.At = s.now()
		var (
			res     order.Result
			applied bool
			err     error
		)
		switch {
		case c.Type == order.CmdExpirePayment:
			res, applied, err = s.expireOne(ctx, c)
		case len(c.Reason) > order.MaxReason:
			// Invalid, but which error comes first (404, 422 key reused, 409) depends on
			// the order: let the slow path and Decide say.
		default:
			res, applied, err = s.transition(ctx, c)
		}
		if err != nil || applied {
			return res, err
		}
		res, retry, err := s.resolve(ctx, c)
		if !retry {
			return res, err
		}
	}
	return order.Result{}, order.Unavailable(order.ReasonMoved,
		"order %s changed while the command ran; retry with the same Idempotency-Key", c.OrderID)
}

// create inserts a new order and reserves its stock (createWithStock). Decide on the
// empty order validates the lines and computes the OrderCreated event, exactly as for a
// grain's first command.
func (s *Service) create(ctx context.Context, c order.Command) (order.Result, error) {
	if want := order.OrderIDFor(c.By.Subject, c.Key); c.OrderID != want {
		return order.Result{}, order.Errorf(order.CodeInvalidRequest, "a new order's id must be derived from its customer and key")
	}
	c.At = s.now()
	d, err := order.Decide(&order.Order{}, c)
	if err != nil {
		return order.Result{}, err
	}
	return s.createWithStock(ctx, c, d.Events[0])
}

// transition runs transitionSQL. applied is false when it changed nothing, for whatever
// reason (unknown order, not the shopper's, wrong state, key seen): the slow path finds
// out which.
func (s *Service) transition(ctx context.Context, c order.Command) (order.Result, bool, error) {
	t, _ := order.TransitionFor(c.Type) // Decide accepted the type
	from := make([]string, len(t.From))
	for i, st := range t.From {
		from[i] = string(st)
	}
	customer := ""
	if !c.By.SeesAllOrders() {
		customer = c.By.Subject
	}
	// Decide's rule for the event (actors/decide.go): the deadline is the command's time
	// plus the timeout; microseconds, because that is what the column keeps and every
	// later read returns.
	var deadline time.Time
	if c.Type == order.CmdSubmitPayment {
		deadline = c.At.Add(c.PaymentTimeout).Truncate(time.Microsecond)
	}
	payload, err := json.Marshal(order.Payload{
		By: c.By.Subject, Fingerprint: order.Fingerprint(c), PaymentDeadline: deadline, Reason: c.Reason,
	})
	if err != nil {
		return order.Result{}, false, fmt.Errorf("%s order %s: encoding payload: %w", c.Type, c.OrderID, err)
	}
	o := order.Order{ID: c.OrderID, Status: t.To, PaymentDeadline: deadline, UpdatedAt: c.At}
	var version int64
	var lines []byte
	var created pgtype.Timestamptz
	release, ship := stockEffect(c.Type)
	err = s.pool.QueryRow(ctx, transitionSQL,
		c.OrderID, from, customer, string(t.To), timestamptz(deadline), c.At, c.Key,
		string(t.Event), s.opts.Node, payload, release, ship,
	).Scan(&o.Customer, &version, &lines, &o.Currency, &o.Total, &created)
	switch {
	case errors.Is(err, pgx.ErrNoRows), isUniqueViolation(err):
		return order.Result{}, false, nil
	case err != nil:
		return order.Result{}, false, storeError(c.OrderID, "writing", err)
	}
	o.Version, o.CreatedAt = uint64(version), utc(created)
	if err := json.Unmarshal(lines, &o.Lines); err != nil {
		return order.Result{}, false, fmt.Errorf("%s order %s: decoding lines: %w", c.Type, c.OrderID, err)
	}
	return order.Result{View: o.View()}, true, nil
}

// resolve is the slow path: the fast statement changed nothing, so read the order and
// what the command's key did, and let Decide give ordermesh's answer — not found, a
// replay of the key's original result, key reused, or an illegal transition. retry is
// true when Decide finds the command legal after all: the order changed between the
// statement and this read, and the fast path should run again.
func (s *Service) resolve(ctx context.Context, c order.Command) (res order.Result, retry bool, err error) {
	o, found, err := s.loadWithKey(ctx, c.OrderID, c.Key)
	if err != nil {
		return order.Result{}, false, err
	}
	if !found {
		o = order.Order{ID: c.OrderID}
	}
	if c.Type == order.CmdExpirePayment && c.By.Role == order.RoleSystem {
		// As in the grain: an expiry's key is derived from the deadline it ends, so it
		// can never have been applied while that deadline is still armed.
		c.Key = order.ExpiryKey(o.PaymentDeadline)
	}
	d, err := order.Decide(&o, c)
	switch {
	case err != nil:
		return order.Result{}, false, err
	case d.Replay != nil:
		return order.Result{View: o.ViewAt(*d.Replay), Replayed: true}, false, nil
	default:
		return order.Result{}, true, nil
	}
}

// loadWithKey reads an order and, as its only remembered key, the result of key if that
// key was applied to it. found is false if the order does not exist.
func (s *Service) loadWithKey(ctx context.Context, id, key string) (o order.Order, found bool, err error) {
	var r orderRow
	var evType, evTo pgtype.Text
	var evVersion pgtype.Int8
	var evAt pgtype.Timestamptz
	var evPayload []byte
	err = s.pool.QueryRow(ctx, resolveSQL, id, key).Scan(
		&r.customer, &r.status, &r.version, &r.lines, &r.currency, &r.total, &r.deadline, &r.created, &r.updated,
		&evType, &evVersion, &evTo, &evAt, &evPayload)
	if errors.Is(err, pgx.ErrNoRows) {
		return order.Order{}, false, nil
	}
	if err != nil {
		return order.Order{}, false, storeError(id, "reading", err)
	}
	o, err = r.order(id)
	if err != nil {
		return order.Order{}, false, err
	}
	if !evType.Valid {
		return o, true, nil
	}
	kr, err := order.KeyResultOf(key, order.EventType(evType.String), uint64(evVersion.Int64),
		order.Status(evTo.String), utc(evAt), evPayload)
	if err != nil {
		return order.Order{}, false, fmt.Errorf("reading order %s: %w", id, err)
	}
	o.Keys = []order.KeyResult{kr}
	return o, true, nil
}

// Get returns the current view of an order the principal may see; CodeNotFound otherwise.
func (s *Service) Get(ctx context.Context, id string, by order.Principal, requestID string) (order.View, error) {
	o, found, err := s.load(ctx, id)
	if err != nil {
		return order.View{}, err
	}
	if !found || !order.CanView(by, &o) {
		return order.View{}, order.Errorf(order.CodeNotFound, "order %s not found", id)
	}
	return o.View(), nil
}

// load reads one order; found is false if it does not exist.
func (s *Service) load(ctx context.Context, id string) (order.Order, bool, error) {
	var r orderRow
	err := s.pool.QueryRow(ctx, getSQL, id).Scan(
		&r.customer, &r.status, &r.version, &r.lines, &r.currency, &r.total, &r.deadline, &r.created, &r.updated)
	if errors.Is(err, pgx.ErrNoRows) {
		return order.Order{}, false, nil
	}
	if err != nil {
		return order.Order{}, false, storeError(id, "reading", err)
	}
	o, err := r.order(id)
	return o, err == nil, err
}

// orderRow is the columns of baseline_orders other than id.
type orderRow struct {
	customer, status string
	version, total   int64
	lines            []byte
	currency         string
	deadline         pgtype.Timestamptz
	created, updated pgtype.Timestamptz
}

// order builds the domain value of a row. It remembers no idempotency keys: the
// baseline looks a key up in the events when it needs it.
func (r *orderRow) order(id string) (order.Order, error) {
	o := order.Order{
		ID: id, Customer: r.customer, Status: order.Status(r.status), Version: uint64(r.version),
		Currency: r.currency, Total: r.total,
		PaymentDeadline: utc(r.deadline), CreatedAt: utc(r.created), UpdatedAt: utc(r.updated),
	}
	if err := json.Unmarshal(r.lines, &o.Lines); err != nil {
		return order.Order{}, fmt.Errorf("reading order %s: decoding lines: %w", id, err)
	}
	return o, nil
}

// storeError classifies a failed statement. Failures a retry may cure (connection lost,
// server shutting down or overloaded, serialization) become CodeUnavailable, whose message
// the edge counts as a store retry ("could not be saved"); the cause stays in the chain
// for the log. Context errors and anything else (a bug) are returned wrapped as they are.
func storeError(id, doing string, err error) error {
	wrapped := fmt.Errorf("%s order %s: %w", doing, id, err)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return wrapped
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:2] {
		case "08", "40", "53", "57": // connection, rollback, resources, operator intervention
		default:
			return wrapped
		}
	}
	return fmt.Errorf("%w: %w", order.Unavailable(order.ReasonStore, "order %s could not be saved; retry with the same Idempotency-Key", id), wrapped)
}

// isUniqueViolation reports whether err is a unique_violation: a key or version that
// another statement wrote first.
func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

func timestamptz(t time.Time) pgtype.Timestamptz {
	return pgtype.Timestamptz{Time: t, Valid: !t.IsZero()}
}

func utc(t pgtype.Timestamptz) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time.UTC()
}
