package edge

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/gofiber/fiber/v2"

	"github.com/ordermesh/ordermesh/actors/order"
	"github.com/ordermesh/ordermesh/actors/stock"
)

// The inventory endpoints: operators read the stock of every catalog sku and adjust the
// units on hand through the sku's grain (stock.Service). A sku that is not in the catalog
// is not found, whatever the stock service knows of it. A node without a stock service
// (Deps.Stock nil) answers them with errNoInventory.

// maxFanOut bounds the stock reads one request runs at once (the inventory listing and
// the catalog read every sku of the catalog).
const maxFanOut = 16

// errNoInventory answers the inventory endpoints of a node without a stock service.
var errNoInventory = order.Errorf(order.CodeUnavailable, "this node serves no inventory")

type adjustRequest struct {
	Delta  int64  `json:"delta"`
	Reason string `json:"reason"`
}

type inventoryResponse struct {
	Items []stock.View `json:"items"`
}

// listInventory handles GET /api/v1/inventory: the stock of every catalog sku, in
// catalog order, read concurrently. Each read is retried while its grain is unavailable,
// all under the request's deadline; a sku that still cannot be read fails the request.
func (s *server) listInventory(c *fiber.Ctx) error {
	if s.stock == nil {
		return errNoInventory
	}
	products := s.catalog.Products()
	k, cancel := s.callsOf(c)
	defer cancel()
	views := make([]stock.View, len(products))
	errs := make([]error, len(products))
	fanOut(len(products), func(i int) {
		views[i], errs[i] = s.stockView(k, products[i].SKU)
	})
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("reading the stock of sku %s: %w", products[i].SKU, err)
		}
	}
	return respond(c, fiber.StatusOK, inventoryResponse{Items: views})
}

// getInventory handles GET /api/v1/inventory/{sku}: the stock of one catalog sku.
func (s *server) getInventory(c *fiber.Ctx) error {
	sku, err := s.skuParam(c)
	if err != nil {
		return err
	}
	k, cancel := s.callsOf(c)
	defer cancel()
	v, err := s.stockView(k, sku)
	if err != nil {
		return fmt.Errorf("reading the stock of sku %s: %w", sku, err)
	}
	return respond(c, fiber.StatusOK, v)
}

// adjustInventory handles POST /api/v1/inventory/{sku}/adjust: a stock.CmdAdjust with
// the caller's Idempotency-Key, retried while the grain is unavailable like an order
// command. The answer is the stock after the adjustment, 200 for the first request and
// for a replay (marked with Idempotent-Replayed). The domain refuses the rest: a delta of
// 0 or out of range and a long reason (422), the key reused for another adjustment (422
// 42201), fewer units left on hand than are reserved (409 40902).
func (s *server) adjustInventory(c *fiber.Ctx) error {
	sku, err := s.skuParam(c)
	if err != nil {
		return err
	}
	var req adjustRequest
	if err := decodeStrict(c.Body(), &req, false); err != nil {
		return err
	}
	key, err := idempotencyKey(c)
	if err != nil {
		return err
	}
	cmd := stock.Command{Type: stock.CmdAdjust, SKU: sku, Delta: req.Delta, Key: key, Reason: req.Reason, By: principal(c)}
	k, cancel := s.callsOf(c)
	defer cancel()
	res, err := call(k, func(ctx context.Context, requestID string) (stock.Result, error) {
		return s.stock.Execute(ctx, cmd, requestID)
	})
	if err != nil {
		return fmt.Errorf("adjusting the stock of sku %s: %w", sku, err)
	}
	markReplay(c, res.Replayed)
	return respond(c, fiber.StatusOK, res.View)
}

// stockView reads the stock of sku with k, retried while its grain is unavailable. It
// touches no fiber.Ctx, so a fan-out may call it concurrently.
func (s *server) stockView(k calls, sku string) (stock.View, error) {
	v, err := call(k, func(ctx context.Context, requestID string) (stock.View, error) {
		return s.stock.Get(ctx, sku, requestID)
	})
	if err == nil && v.SKU == "" {
		v.SKU = sku // a sku never stocked may come back all zero
	}
	return v, err
}

// skuParam returns the {sku} path parameter, which must name a product of the catalog:
// anything else is not found. A node without inventory has none (errNoInventory).
func (s *server) skuParam(c *fiber.Ctx) (string, error) {
	if s.stock == nil {
		return "", errNoInventory
	}
	sku := c.Params("sku")
	if _, ok := s.catalog.Lookup(sku); !ok {
		return "", order.Errorf(order.CodeNotFound, "sku %s not found", truncate(sku, 64))
	}
	c.Locals(localLogger, s.logger(c).With(slog.String("sku", sku)))
	return sku, nil
}

// fanOut runs f(0) to f(n-1) concurrently, at most maxFanOut at a time, and returns when
// all of them have.
func fanOut(n int, f func(i int)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxFanOut)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			f(i)
		})
	}
	wg.Wait()
}
