package actors

import (
	"context"
	"log/slog"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"

	"github.com/ordermesh/ordermesh/persistence"
)

// Sweeper fires payment deadlines that no active grain is watching: orders whose grain
// passivated while PAYING, or whose node restarted or died. It asks the store for due
// deadlines and sends ExpirePayment through the cluster; the grain derives the
// idempotency key from the deadline, so a deadline expires once however often it is swept.
type Sweeper struct {
	Store    persistence.Orders
	Orders   order.Service
	Now      func() time.Time
	Interval time.Duration
	Batch    int
	// Owns, if set, limits the sweep to the orders this node is responsible for, so the
	// nodes of a cluster do not all sweep the same orders.
	Owns   func(orderID string) bool
	Logger *slog.Logger
}

// Run sweeps every Interval until ctx ends.
func (s *Sweeper) Run(ctx context.Context) {
	t := time.NewTicker(s.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
				s.Logger.Warn("payment sweep failed", "err", err)
			}
		}
	}
}

// Sweep expires the due payments it finds once and returns how many orders it expired.
func (s *Sweeper) Sweep(ctx context.Context) (int, error) {
	due, err := s.Store.DuePayments(ctx, s.Now(), persistence.Due{}, s.Batch)
	if err != nil {
		return 0, err
	}
	expired := 0
	system := order.Principal{Subject: "sweeper", Role: order.RoleSystem}
	for _, d := range due {
		id := d.OrderID
		if s.Owns != nil && !s.Owns(id) {
			continue
		}
		// Key is filled in by the grain from the deadline it expires.
		_, err := s.Orders.Execute(ctx, order.Command{Type: order.CmdExpirePayment, OrderID: id, Key: "-", By: system}, "sweeper")
		switch order.ErrorCode(err) {
		case order.CodeOK:
			expired++
		case order.CodeIllegalTransition, order.CodeNotFound:
			// Paid, cancelled or expired meanwhile: nothing to do.
		default:
			s.Logger.Warn("expiring payment", "order_id", id, "err", err)
		}
	}
	return expired, nil
}
