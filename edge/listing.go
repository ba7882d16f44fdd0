package edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"
	"github.com/ordermesh/ordermesh/actors/orderpb"

	"github.com/gofiber/fiber/v2"

	"github.com/ordermesh/ordermesh/persistence"
)

// Page sizes of GET /api/v1/orders.
const (
	defaultPageSize = 50
	maxPageSize     = 200
)

type orderListResponse struct {
	Orders     []order.View `json:"orders"`
	NextCursor string       `json:"next_cursor"`
}

// listOrders handles GET /api/v1/orders?status=&customer=&cursor=&limit=. It reads the
// store, not the grains: a listing may be a moment behind, an order's own page is not.
// Shoppers always get their own orders only; operators and admins may filter by customer.
func (s *server) listOrders(c *fiber.Ctx) error {
	p := principal(c)
	q := persistence.OrderQuery{Limit: defaultPageSize, Customer: c.Query("customer")}
	if !p.SeesAllOrders() {
		q.Customer = p.Subject
	}
	if st := c.Query("status"); st != "" {
		status, ok := order.ParseStatus(st)
		if !ok {
			return order.Errorf(order.CodeInvalidRequest, "unknown status %q", truncate(st, 32))
		}
		q.Status = string(status)
	}
	scope := q.Customer + "\x00" + q.Status
	var err error
	if q.Limit, q.Cursor, err = s.pageParams(c, scope); err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.RequestTimeout)
	defer cancel()
	page, err := s.store.ListOrders(ctx, q)
	if err != nil {
		return listError("orders", err)
	}
	out := orderListResponse{Orders: make([]order.View, 0, len(page.Orders)), NextCursor: s.cursors.sign(page.NextCursor, scope)}
	for _, row := range page.Orders {
		o, err := orderpb.DecodeSnapshot(row.Snapshot)
		if err != nil {
			return fmt.Errorf("listing orders: order %s: %w", row.ID, err)
		}
		out.Orders = append(out.Orders, o.View())
	}
	return respond(c, fiber.StatusOK, out)
}

// pageParams reads the limit and cursor query parameters of a listing whose filters make
// scope: the page size (defaultPageSize when absent) and the store's cursor behind the
// client's, which must have been issued for the same scope.
func (s *server) pageParams(c *fiber.Ctx, scope string) (limit int, cursor string, err error) {
	limit = defaultPageSize
	if l := c.Query("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxPageSize {
			return 0, "", order.Errorf(order.CodeInvalidRequest, "limit must be an integer from 1 to %d", maxPageSize)
		}
		limit = n
	}
	if cur := c.Query("cursor"); cur != "" {
		raw, ok := s.cursors.open(cur, scope)
		if !ok {
			return 0, "", order.Errorf(order.CodeInvalidRequest, "invalid cursor; use next_cursor of the previous page with the same filters")
		}
		cursor = raw
	}
	return limit, cursor, nil
}

// listError is the error of a listing of what the store refused.
func listError(what string, err error) error {
	if errors.Is(err, persistence.ErrBadCursor) {
		// Signed by us yet refused by the store: a cursor from before a store migration.
		return order.Errorf(order.CodeInvalidRequest, "expired cursor; start again from the first page")
	}
	return fmt.Errorf("listing %s: %w", what, err)
}

// eventResponse is one event of an order's history. Staff (operators and admins) see every
// field as stored. A shopper sees its own actions and what became of its order, but not
// the shop's inside: see eventFor.
type eventResponse struct {
	Version        int64           `json:"version"`
	Type           string          `json:"type"`
	From           string          `json:"from"`
	To             string          `json:"to"`
	At             time.Time       `json:"at"`
	By             string          `json:"by"`
	Reason         string          `json:"reason,omitempty"`
	IdempotencyKey string          `json:"idempotency_key,omitempty"`
	Node           string          `json:"node,omitempty"`
	Payload        json.RawMessage `json:"payload,omitempty"`
}

// Who a shopper is told did something that it did not do itself.
const (
	byStaff  = "staff"  // an operator or admin: their user names are not the shopper's business
	bySystem = "system" // the node itself, e.g. an expired payment
)

// shopperPayload is what a shopper sees of an event's payload: what it ordered and until
// when it may pay. Never the fingerprint, the actor's user name or a staff reason.
type shopperPayload struct {
	Lines           []order.Line `json:"items,omitempty"`
	Currency        string       `json:"currency,omitempty"`
	Total           int64        `json:"total,omitempty"`
	PaymentDeadline time.Time    `json:"payment_deadline,omitzero"`
}

// eventFor is what principal p sees of stored event e. Staff see all of it. A shopper sees
// type, version, from, to and at of every event; who acted only where it was the shopper
// itself (otherwise "staff" or "system"); the reason and idempotency key only of its own
// actions, since a reason staff wrote (for a failed payment, a cancel, a refund) is an
// internal note and staff keys are theirs; never the node or the fingerprint.
func eventFor(e persistence.Event, p order.Principal, log *slog.Logger) eventResponse {
	out := eventResponse{Version: e.Version, Type: e.Type, From: e.From, To: e.To, At: e.At}
	var payload order.Payload
	readable := json.Unmarshal(e.Payload, &payload) == nil
	if !readable {
		// An unreadable payload must not make the whole history unreadable.
		log.Warn("event payload is not JSON", "version", e.Version)
	}
	if p.SeesAllOrders() {
		out.By, out.Reason, out.IdempotencyKey, out.Node = payload.By, payload.Reason, e.IdempotencyKey, e.Node
		if readable {
			out.Payload = json.RawMessage(e.Payload)
		}
		return out
	}
	switch {
	case readable && payload.By == p.Subject:
		out.By, out.Reason, out.IdempotencyKey = payload.By, payload.Reason, e.IdempotencyKey
	case systemEvent(order.EventType(e.Type)):
		out.By = bySystem
	default:
		out.By = byStaff
	}
	if len(payload.Lines) > 0 || !payload.PaymentDeadline.IsZero() {
		// Marshalling these plain fields cannot fail.
		out.Payload, _ = json.Marshal(shopperPayload{
			Lines: payload.Lines, Currency: payload.Currency, Total: payload.Total, PaymentDeadline: payload.PaymentDeadline,
		})
	}
	return out
}

// systemEvent reports whether only the node itself records events of type t.
func systemEvent(t order.EventType) bool {
	tr, ok := order.TransitionForEvent(t)
	return ok && len(tr.Roles) == 1 && tr.Roles[0] == order.RoleSystem
}

type eventListResponse struct {
	Events []eventResponse `json:"events"`
}

// orderEvents handles GET /api/v1/orders/{id}/events: the order's history from the store.
func (s *server) orderEvents(c *fiber.Ctx) error {
	id, err := s.orderIDParam(c)
	if err != nil {
		return err
	}
	p := principal(c)
	ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.RequestTimeout)
	defer cancel()
	row, err := s.store.LoadOrder(ctx, id)
	switch {
	case errors.Is(err, persistence.ErrNotFound):
		return notFound(id)
	case err != nil:
		return fmt.Errorf("loading order %s: %w", id, err)
	}
	if !p.SeesAllOrders() && row.Customer != p.Subject {
		return notFound(id)
	}
	events, err := s.store.OrderEvents(ctx, id)
	if err != nil {
		return fmt.Errorf("loading events of order %s: %w", id, err)
	}
	out := eventListResponse{Events: make([]eventResponse, len(events))}
	for i, e := range events {
		out.Events[i] = eventFor(e, p, s.logger(c))
	}
	return respond(c, fiber.StatusOK, out)
}
