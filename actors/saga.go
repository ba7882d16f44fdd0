package actors

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/ordermesh/ordermesh/actors/order"
	"github.com/ordermesh/ordermesh/actors/stock"
)

// The reservation saga and the stock that follows an order.
//
// An order holds the units of its lines from its creation until it closes, ships or is
// refunded. Its grain drives this, step by durable step, so that a node that dies at any
// point leaves nothing leaked and nothing half-reserved:
//
//  1. Create is persisted first, as RESERVING: the saga's intent is durable before any
//     stock moves, and the order's deadline (Order.Deadline) brings a sweeper back to it
//     if its node dies.
//  2. Every line's sku is asked to Reserve (in parallel). A sku keys the reservation by
//     the order's id, so asking again, after a failure or from a second activation,
//     never reserves twice, and a refusal is recorded and repeated alike.
//  3. All reserved: ConfirmStock is persisted and the order is CREATED. One refused:
//     every line is released (releasing what was refused or never reserved changes
//     nothing), then RejectStock is persisted and the order is REJECTED.
//
// A saga that stops in the middle is completed forward, never rolled back blindly: the
// next activation of the order (a retried create, any command, the sweeper at its
// deadline) runs steps 2 and 3 again, and the skus' recorded answers make the outcome the
// one the first run would have had.
//
// After the order leaves RESERVING every transition is persisted first and its stock
// effect (order.StockCommands of the new status: sell, ship, release, refund) applied
// after; the order records the version its stock follows (Order.StockVersion) with one
// more snapshot write. Until then its deadline is near, so a sweeper finishes what a
// dead node did not. A status that moves the same stock as the one it follows (SHIPPED
// to DELIVERED) needs neither: its stock is in place already (order.Evolve).

// stockCallTimeouts is how many store write timeouts one call to a sku may take: its
// grain queues the command behind the batch being written and then writes it.
const stockCallTimeouts = 2

// settle finishes whatever the order's stock still owes before the grain serves a
// command: a reservation saga that was interrupted, or a stock effect not yet applied.
func (g *grain) settle(ctx actor.Context, requestID string) error {
	if !g.order.Exists() {
		return nil
	}
	if g.order.Status == order.StatusReserving {
		return g.reserve(ctx, requestID)
	}
	return g.syncStock(ctx, requestID)
}

// reserve runs steps 2 and 3 of the saga for a RESERVING order.
func (g *grain) reserve(ctx actor.Context, requestID string) error {
	if g.order.Status != order.StatusReserving {
		return nil
	}
	var refused *order.Error
	reserved := g.tellLines(order.StockReserve, requestID)
	for i, r := range reserved {
		sku := g.order.Lines[i].SKU
		switch {
		case order.ErrorCode(r.err) == order.CodeOutOfStock:
			if refused == nil {
				refused = order.Errorf(order.CodeOutOfStock, "%s", order.ErrorMessage(r.err))
			}
		case r.err != nil:
			return fmt.Errorf("reserving sku %s: %w", sku, r.err)
		case g.cfg.Stock != nil && r.res.Holding.State != stock.HoldReserved:
			// Reserved once and released since: only this saga releases a RESERVING
			// order's units, after a refusal, so the order is refused.
			if refused == nil {
				refused = order.Errorf(order.CodeOutOfStock, "out of stock: sku %s is no longer reserved for this order", sku)
			}
		}
	}
	crashAt("saga-reserved")
	c := order.Command{Type: order.CmdConfirmStock, OrderID: g.id, Key: sagaKey, By: systemPrincipal}
	if refused != nil {
		// Release what is held: the lines whose sku reserved. A refused line holds
		// nothing, so a one-line order refused (a flash sale's usual loser) costs no
		// second call.
		held := func(i int) bool { return reserved[i].res.Holding.State == stock.HoldReserved }
		for i, r := range g.tellLinesIf(order.StockRelease, requestID, held) {
			if r.err != nil {
				return fmt.Errorf("releasing sku %s of a refused order: %w", g.order.Lines[i].SKU, r.err)
			}
		}
		crashAt("saga-released")
		c.Type, c.Reason = order.CmdRejectStock, refused.Message
	}
	reply, code := g.transition(ctx, c, requestID)
	if code != order.CodeOK {
		return &order.Error{Code: code, Message: reply.ErrorMessage, Reason: order.Reason(reply.RetryReason)}
	}
	return nil
}

// sagaKey is the idempotency key of the saga's outcome (ConfirmStock or RejectStock):
// an order's reservation ends once.
const sagaKey = "reserve-stock"

var systemPrincipal = order.Principal{Subject: "saga", Role: order.RoleSystem}

// syncStock applies the stock effect of the order's status, if it has not been applied,
// and records that it has (a snapshot write at the same version).
func (g *grain) syncStock(ctx actor.Context, requestID string) error {
	if g.order.StockSynced() {
		return nil
	}
	for _, sc := range order.StockCommands(g.order.Status) {
		for i, r := range g.tellLines(sc, requestID) {
			switch {
			case order.ErrorCode(r.err) == order.CodeIllegalTransition:
				// The holding is not where this order's history says it should be; sending
				// it again cannot help. Say so loudly and move on.
				g.cfg.Logger.Error("stock holding does not follow its order", "order_id", g.id, "status", g.order.Status,
					"sku", g.order.Lines[i].SKU, "command", sc, "err", r.err)
			case r.err != nil:
				return fmt.Errorf("%s sku %s: %w", sc, g.order.Lines[i].SKU, r.err)
			}
		}
	}
	crashAt("stock-applied")
	next := g.order
	next.StockVersion = next.Version
	if err := g.persist(next, int64(g.order.Version), nil); err != nil {
		if errors.Is(err, errUnstorable) {
			return err
		}
		// Unknown outcome: the stock moved, the mark may or may not be stored; either
		// way the next activation reloads and, at worst, tells the stock again.
		g.unavailable(ctx, order.ReasonStore, "order could not be saved")
		return err
	}
	g.order = next
	g.arm(ctx)
	return nil
}

// lineResult is the answer of one line's sku to a stock command.
type lineResult struct {
	res stock.Result
	err error
}

// tellLines sends the stock command sc for every line of the order, in parallel, and
// returns the answers in line order. Without a stock service every command succeeds.
func (g *grain) tellLines(sc order.StockCommand, requestID string) []lineResult {
	return g.tellLinesIf(sc, requestID, func(int) bool { return true })
}

// tellLinesIf is tellLines for the lines i for which send(i) holds; the others answer
// success without a call.
func (g *grain) tellLinesIf(sc order.StockCommand, requestID string, send func(i int) bool) []lineResult {
	out := make([]lineResult, len(g.order.Lines))
	if g.cfg.Stock == nil {
		return out
	}
	var wg sync.WaitGroup
	for i, l := range g.order.Lines {
		if !send(i) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := stock.Command{Type: stock.CommandType(sc), SKU: l.SKU, OrderID: g.id, By: systemPrincipal}
			if sc == order.StockReserve {
				c.Qty = l.Qty
			}
			cctx, cancel := context.WithTimeout(context.Background(), stockCallTimeouts*g.cfg.WriteTimeout)
			defer cancel()
			res, err := g.cfg.Stock.Execute(cctx, c, requestID)
			out[i] = lineResult{res: res, err: err}
		}()
	}
	wg.Wait()
	return out
}

// retryStock is the answer to a command whose order's stock could not be moved: "retry",
// with the reason the stock gave when it gave one.
func retryStock(err error, id string) *order.Error {
	reason := order.ErrorReason(err)
	if reason == "" {
		reason = order.ReasonOther
	}
	return order.Unavailable(reason, "the stock of order %s could not be moved (%s); retry with the same Idempotency-Key", id, order.ErrorMessage(err))
}
