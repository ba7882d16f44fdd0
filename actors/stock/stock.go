// Package stock is the inventory domain of one sku: the units on hand, the units reserved
// for live orders, and each order's holding, with a transition table for holdings, the
// pure Decide and Evolve, and DecideBatch, which decides many commands in a row against
// one state in memory. It imports only the standard library and actors/order (for its
// errors, codes and principals). Time comes in with each command.
//
// Counting: Reserved is the sum of the live holdings (HoldReserved and HoldSold): units
// held for orders that are not yet shipped, released or refunded. Available is
// OnHand - Reserved and never negative. OnHand moves only by Ship (down by the holding)
// and Adjust (by its delta).
package stock

import (
	"maps"
	"slices"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"
)

// Limits.
const (
	// MaxOnHand bounds the units on hand of one sku, so that counters cannot overflow.
	MaxOnHand = 1_000_000_000
	// KeysKept is how many Adjust idempotency keys a sku remembers (its snapshot), as
	// order.KeysKept does for an order. An older key may be forgotten and then counts as
	// new.
	KeysKept = 64
)

// Holding is what one order holds of a sku: Qty units in State, since Version.
type Holding struct {
	Qty     int64
	State   HoldingState
	Version uint64 // the sku's version after the holding's last event
}

// AdjustKey remembers what one Adjust key did, so that a repeat of it returns the same
// answer and changes nothing.
type AdjustKey struct {
	Key         string
	Fingerprint uint64 // of the request, to refuse the same key for a different request
	Version     uint64
	OnHand      int64 // the units on hand right after the adjustment
	At          time.Time
}

// Stock is the state of one sku, as a grain holds it and saves it in its snapshot.
type Stock struct {
	SKU      string
	OnHand   int64
	Reserved int64
	Version  uint64 // number of events applied
	// UpdatedAt is the time of the last event applied.
	UpdatedAt time.Time
	Holdings  map[string]Holding // by order id; every order that ever sent a holding command that was recorded
	Keys      []AdjustKey        // Adjust keys, oldest first, at most KeysKept
}

// New returns the empty stock of sku: nothing on hand, nothing reserved, version 0.
func New(sku string) Stock { return Stock{SKU: sku} }

// Available is the number of units that may still be reserved: OnHand - Reserved.
func (s *Stock) Available() int64 { return s.OnHand - s.Reserved }

// Holding returns order id's holding of this sku; State is HoldNone if it has none.
func (s *Stock) Holding(orderID string) Holding { return s.Holdings[orderID] }

// FindKey returns the remembered result of an Adjust key.
func (s *Stock) FindKey(key string) (AdjustKey, bool) {
	for i := len(s.Keys) - 1; i >= 0; i-- {
		if s.Keys[i].Key == key {
			return s.Keys[i], true
		}
	}
	return AdjustKey{}, false
}

// Clone returns a copy of s that shares nothing mutable with it.
func (s Stock) Clone() Stock {
	s.Holdings = maps.Clone(s.Holdings)
	s.Keys = slices.Clone(s.Keys)
	return s
}

// Command asks a sku's stock to change. Time comes in with the command (At), so Decide
// stays pure; the host stamps it from its clock.
type Command struct {
	Type    CommandType
	SKU     string
	OrderID string // the holding commands: the order whose holding this is (its idempotency key)
	Qty     int64  // Reserve: units to reserve, 1 to order.MaxQty
	Delta   int64  // Adjust: signed change of the units on hand, not 0
	Key     string // Adjust: idempotency key chosen by the operator
	Reason  string // optional, at most order.MaxReason bytes
	By      order.Principal
	At      time.Time
}

// Event is one accepted change to a sku's stock. Version numbers run 1, 2, 3, ... per sku.
type Event struct {
	Type     EventType
	SKU      string
	Version  uint64
	At       time.Time
	By       string
	Reason   string
	OrderID  string       // holding events
	Qty      int64        // holding events: the units of the holding
	From, To HoldingState // holding events

	Delta       int64  // StockAdjusted
	Key         string // StockAdjusted
	Fingerprint uint64 // StockAdjusted
}

// Decision is the outcome of Decide: events to persist and then apply (none for a repeat
// or a no-op), and, for a Reserve that is refused, the out-of-stock error. A refused
// Reserve comes with an EvtReserveRefused event the first time (persist it, so that a
// repeat is refused alike whatever the stock is then) and without one on a repeat.
type Decision struct {
	Events  []Event
	Replay  bool         // nothing to do: the command was applied before, or there is nothing to undo
	Refused *order.Error // order.CodeOutOfStock; nil unless a Reserve was refused
}

// Err returns the refusal of a Reserve as an error, or nil.
func (d Decision) Err() error {
	if d.Refused == nil {
		return nil
	}
	return d.Refused
}
