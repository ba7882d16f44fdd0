package edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	if l := c.Query("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxPageSize {
			return order.Errorf(order.CodeInvalidRequest, "limit must be an integer from 1 to %d", maxPageSize)
		}
		q.Limit = n
	}
	scope := q.Customer + "\x00" + q.Status
	if cur := c.Query("cursor"); cur != "" {
		raw, ok := s.cursors.open(cur, scope)
		if !ok {
			return order.Errorf(order.CodeInvalidRequest, "invalid cursor; use next_cursor of the previous page with the same filters")
		}
		q.Cursor = raw
	}

	ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.RequestTimeout)
	defer cancel()
	page, err := s.store.ListOrders(ctx, q)
	switch {
	case errors.Is(err, persistence.ErrBadCursor):
		// Signed by us yet refused by the store: a cursor from before a store migration.
		return order.Errorf(order.CodeInvalidRequest, "expired cursor; start again from the first page")
	case err != nil:
		return fmt.Errorf("listing orders: %w", err)
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

type eventResponse struct {
	Version        int64           `json:"version"`
	Type           string          `json:"type"`
	From           string          `json:"from"`
	To             string          `json:"to"`
	At             time.Time       `json:"at"`
	IdempotencyKey string          `json:"idempotency_key"`
	Node           string          `json:"node"`
	Payload        json.RawMessage `json:"payload"`
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
		payload := json.RawMessage(e.Payload)
		if !json.Valid(payload) {
			// An unreadable payload must not make the whole history unreadable.
			s.logger(c).Warn("event payload is not JSON", "version", e.Version)
			payload = nil
		}
		out.Events[i] = eventResponse{
			Version: e.Version, Type: e.Type, From: e.From, To: e.To, At: e.At,
			IdempotencyKey: e.IdempotencyKey, Node: e.Node, Payload: payload,
		}
	}
	return respond(c, fiber.StatusOK, out)
}
