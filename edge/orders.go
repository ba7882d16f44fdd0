package edge

import (
	"context"
	"fmt"

	"github.com/ordermesh/ordermesh/actors/order"

	"github.com/gofiber/fiber/v2"
)

// HeaderIdempotencyKey names the client-chosen key every command carries.
const HeaderIdempotencyKey = "Idempotency-Key"

// HeaderReplayed is "true" on the answer to a command whose key had been seen: the
// response repeats the original one and nothing changed.
const HeaderReplayed = "Idempotent-Replayed"

type itemRequest struct {
	SKU string `json:"sku"`
	Qty int64  `json:"qty"`
}

type createOrderRequest struct {
	Items []itemRequest `json:"items"`
}

type actionRequest struct {
	Reason string `json:"reason"`
}

// createOrder handles POST /api/v1/orders. The order id is derived from the customer and
// the idempotency key, so a retried create reaches the same grain and gets the same order.
// Both the first answer and a replay are 201 with the same body; a replay is marked with
// the Idempotent-Replayed header.
func (s *server) createOrder(c *fiber.Ctx) error {
	var req createOrderRequest
	if err := decodeStrict(c.Body(), &req, false); err != nil {
		return err
	}
	key, err := idempotencyKey(c)
	if err != nil {
		return err
	}
	p := principal(c)
	if err := checkRole(order.CmdCreate, p); err != nil {
		return err
	}
	if len(req.Items) == 0 || len(req.Items) > order.MaxLines {
		return order.Errorf(order.CodeValidation, "an order needs 1 to %d items", order.MaxLines)
	}
	// Malformed text is a 400 before an unknown sku is a 422.
	for i, it := range req.Items {
		if err := order.CheckText(fmt.Sprintf("item %d: sku", i), it.SKU); err != nil {
			return err
		}
	}
	lines, err := s.catalog.price(req.Items)
	if err != nil {
		return err
	}
	cmd := order.Command{
		Type: order.CmdCreate, OrderID: order.OrderIDFor(p.Subject, key), Key: key, By: p,
		Lines: lines, Currency: s.catalog.Currency(),
	}
	res, err := s.execute(c, cmd)
	if err != nil {
		return err
	}
	markReplay(c, res.Replayed)
	c.Location("/api/v1/orders/" + res.View.ID)
	return respond(c, fiber.StatusCreated, res.View)
}

// orderAction handles POST /api/v1/orders/{id}/{action}, one route for every action of
// order.Table.
func (s *server) orderAction(c *fiber.Ctx, cmdType order.CommandType) error {
	id, err := s.orderIDParam(c)
	if err != nil {
		return err
	}
	var req actionRequest
	if err := decodeStrict(c.Body(), &req, true); err != nil {
		return err
	}
	key, err := idempotencyKey(c)
	if err != nil {
		return err
	}
	p := principal(c)
	// The table already knows the answer for a role; don't wake the grain to hear it.
	if err := checkRole(cmdType, p); err != nil {
		return err
	}
	res, err := s.execute(c, order.Command{Type: cmdType, OrderID: id, Key: key, By: p, Reason: req.Reason})
	if err != nil {
		return err
	}
	markReplay(c, res.Replayed)
	if cmdType == order.CmdSubmitPayment && !res.Replayed {
		s.submitPayment(c, id, res.View.Version)
	}
	return respond(c, fiber.StatusOK, res.View)
}

// getOrder handles GET /api/v1/orders/{id}: the current view, from the grain.
func (s *server) getOrder(c *fiber.Ctx) error {
	id, err := s.orderIDParam(c)
	if err != nil {
		return err
	}
	p := principal(c)
	k, cancel := s.callsOf(c)
	defer cancel()
	v, err := call(k, func(ctx context.Context, requestID string) (order.View, error) {
		return s.orders.Get(ctx, id, p, requestID)
	})
	if err != nil {
		return fmt.Errorf("getting order %s: %w", id, err)
	}
	// The service hides other customers' orders already; not relying on it alone keeps a
	// bug there from leaking an order here.
	if !p.SeesAllOrders() && v.Customer != p.Subject {
		return notFound(id)
	}
	return respond(c, fiber.StatusOK, v)
}

// execute sends cmd to its grain, retrying while the grain is unavailable, and counts
// the outcome. A command the grain would refuse for its text is refused here, at once.
func (s *server) execute(c *fiber.Ctx, cmd order.Command) (order.Result, error) {
	s.setOrderID(c, cmd.OrderID)
	if err := order.CheckCommand(cmd); err != nil {
		return order.Result{}, err
	}
	k, cancel := s.callsOf(c)
	defer cancel()
	res, err := call(k, func(ctx context.Context, requestID string) (order.Result, error) {
		return s.orders.Execute(ctx, cmd, requestID)
	})
	s.metrics.observeCommand(cmd.Type, err)
	if err != nil {
		return order.Result{}, fmt.Errorf("executing %s on order %s: %w", cmd.Type, cmd.OrderID, err)
	}
	return res, nil
}

// checkRole refuses early what order.Decide would refuse for the caller's role.
func checkRole(t order.CommandType, p order.Principal) error {
	if tr, ok := order.TransitionFor(t); ok && !tr.Allows(p.Role) {
		return order.Errorf(order.CodeForbidden, "role %q may not %s", p.Role, tr.Action)
	}
	return nil
}

// idempotencyKey returns the required Idempotency-Key header: 1 to order.MaxKeyLen
// printable ASCII characters (0x20 to 0x7E), stricter than the domain's rule because a
// header is ASCII; anything else is refused here, at once, before a grain is woken.
func idempotencyKey(c *fiber.Ctx) (string, error) {
	key := c.Get(HeaderIdempotencyKey)
	if key == "" || len(key) > order.MaxKeyLen || !printableASCII(key, 0x20) {
		return "", order.Errorf(order.CodeInvalidRequest, "an %s header of 1 to %d printable ASCII characters is required",
			HeaderIdempotencyKey, order.MaxKeyLen)
	}
	return key, nil
}

// orderIDParam returns the {id} path parameter. A malformed id cannot name an order, so it
// is "not found" like any other unknown id.
func (s *server) orderIDParam(c *fiber.Ctx) (string, error) {
	id := c.Params("id")
	if !validOrderID(id) {
		return "", notFound(truncate(id, 64))
	}
	s.setOrderID(c, id)
	return id, nil
}

// validOrderID accepts ^[A-Za-z0-9_-]{1,64}$, which covers every id OrderIDFor makes.
func validOrderID(id string) bool { return validID(id, order.MaxIDBytes) }

// validID accepts ^[A-Za-z0-9_-]{1,maxLen}$.
func validID(id string, maxLen int) bool {
	if id == "" || len(id) > maxLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		ch := id[i]
		if !('a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9' || ch == '_' || ch == '-') {
			return false
		}
	}
	return true
}

func notFound(id string) error {
	return order.Errorf(order.CodeNotFound, "order %s not found", id)
}

// markReplay marks the answer to a command whose key had been seen (HeaderReplayed).
func markReplay(c *fiber.Ctx, replayed bool) {
	if replayed {
		c.Set(HeaderReplayed, "true")
	}
}
