package stock

import (
	"context"
	"time"
)

// View is what operators and the catalog see of a sku's stock.
type View struct {
	SKU       string    `json:"sku"`
	OnHand    int64     `json:"on_hand"`
	Reserved  int64     `json:"reserved"`
	Available int64     `json:"available"`
	Version   uint64    `json:"version"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// View returns the operators' view of s.
func (s *Stock) View() View {
	return View{SKU: s.SKU, OnHand: s.OnHand, Reserved: s.Reserved, Available: s.Available(), Version: s.Version, UpdatedAt: s.UpdatedAt}
}

// Result answers a command: the stock as the command left it and, for a holding command,
// the order's holding after it. Replayed is true when the command had been applied before
// (or, for a compensation, there was nothing to undo) and nothing changed.
type Result struct {
	View     View
	Holding  Holding
	Replayed bool
}

// Service is how the rest of the system talks to the stock of skus, wherever their
// grains live. Errors are *order.Error; order.CodeUnavailable means "retry the same
// command" (every command is idempotent: holding commands by their order id, Adjust by
// its key). A Reserve refused for want of stock returns the Result (its Holding is
// HoldRefused) together with an order.CodeOutOfStock error naming the sku.
type Service interface {
	// Execute delivers c to the sku's grain and waits for the durable result.
	Execute(ctx context.Context, c Command, requestID string) (Result, error)
	// Get returns the current stock of a sku (all zero for a sku never stocked).
	Get(ctx context.Context, sku, requestID string) (View, error)
}
