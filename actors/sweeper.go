package actors

import (
	"context"
	"log/slog"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"

	"github.com/ordermesh/ordermesh/persistence"
	"github.com/ordermesh/ordermesh/persistence/keyset"
)

// sweepPages bounds the store pages one sweep reads. Due orders that other nodes own are
// read and skipped; past this many pages the sweep stops and the next one carries on
// from where it stopped, so a large backlog of others' orders costs each sweep bounded
// reads and still never hides this node's own orders behind it.
const sweepPages = 10

// defaultSweepCallTimeout bounds one ExpirePayment call when CallTimeout is not set.
const defaultSweepCallTimeout = 5 * time.Second

// Sweeper fires payment deadlines that no active grain is watching: orders whose grain
// passivated while PAYING, or whose node restarted or died. It asks the store for due
// deadlines and sends ExpirePayment through the cluster; the grain derives the
// idempotency key from the deadline, so a deadline expires once however often it is swept.
//
// It pages through the due deadlines in (deadline, id) order with a cursor that outlives
// a sweep: each sweep carries on after the last deadline the previous one looked at, and
// starts over from the earliest after reaching the end. So every node works through the
// orders it owns, however many due orders of other nodes come first. A Sweeper is not
// safe for concurrent use; Run sweeps one at a time.
type Sweeper struct {
	Store    persistence.Orders
	Orders   order.Service
	Now      func() time.Time
	Interval time.Duration
	// Batch is the page size of the store query, and the most orders one sweep expires
	// (clamped like a listing's page size).
	Batch int
	// CallTimeout bounds each ExpirePayment call (default 5s), so one order that does
	// not answer does not hold up the others.
	CallTimeout time.Duration
	// Owns, if set, limits the sweep to the orders this node is responsible for, so the
	// nodes of a cluster do not all sweep the same orders.
	Owns   func(orderID string) bool
	Logger *slog.Logger

	cursor persistence.Due // where the next sweep carries on; zero = the earliest
}

// Run sweeps every Interval until ctx ends; it returns promptly when ctx ends, even in
// the middle of a sweep.
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

// Sweep sends ExpirePayment to up to Batch due orders this node owns, reading at most
// sweepPages pages from where the last sweep stopped, and returns how many orders it
// expired. It stops at once, with ctx's error, when ctx ends.
func (s *Sweeper) Sweep(ctx context.Context) (int, error) {
	// Clamped as the store clamps it, so a short page means the end.
	batch := keyset.Limit(s.Batch)
	now, expired, sent := s.Now(), 0, 0
	for range sweepPages {
		due, err := s.Store.DuePayments(ctx, now, s.cursor, batch)
		if err != nil {
			return expired, err
		}
		for _, d := range due {
			if err := ctx.Err(); err != nil {
				return expired, err
			}
			if sent >= batch {
				return expired, nil // the rest of the page is read again next time
			}
			// Past it whether it is expired now or not: one that fails is retried when
			// the cursor comes round again, after the others had their turn.
			s.cursor = d
			if s.Owns != nil && !s.Owns(d.OrderID) {
				continue
			}
			sent++
			if s.expire(ctx, d.OrderID) {
				expired++
			}
		}
		if len(due) < batch {
			s.cursor = persistence.Due{} // reached the end: the next sweep starts over
			return expired, nil
		}
	}
	return expired, nil
}

// expire sends ExpirePayment to one order and reports whether it expired. It gives up
// when ctx ends or after CallTimeout, leaving the call to finish on its own: a call to a
// grain is bounded by the cluster's attempt timeout, but not every Service honours
// cancellation, and shutdown must not wait for it.
func (s *Sweeper) expire(ctx context.Context, id string) bool {
	timeout := s.CallTimeout
	if timeout <= 0 {
		timeout = defaultSweepCallTimeout
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		// Key is filled in by the grain from the deadline it expires.
		system := order.Principal{Subject: "sweeper", Role: order.RoleSystem}
		_, err := s.Orders.Execute(cctx, order.Command{Type: order.CmdExpirePayment, OrderID: id, Key: "-", By: system}, "sweeper")
		done <- err
	}()
	var err error
	select {
	case err = <-done:
	case <-cctx.Done():
		err = cctx.Err()
	}
	switch order.ErrorCode(err) {
	case order.CodeOK:
		return true
	case order.CodeIllegalTransition, order.CodeNotFound:
		// Paid, cancelled or expired meanwhile: nothing to do.
	default:
		if ctx.Err() == nil {
			s.Logger.Warn("expiring payment", "order_id", id, "err", err)
		}
	}
	return false
}
