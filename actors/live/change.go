// Package live pushes committed order changes to the clients of one node (the edge's
// WebSocket /ws). The node's grains publish every committed change to the node's Hub, and
// peers forward theirs (package cluster, over actor remoting); that fan-out is best
// effort. What makes delivery exactly once and in version order is the bookkeeping of
// each Session: it remembers the last version it delivered of every order, drops what it
// has seen, and fills every gap from the store, which holds every committed event. So a
// change lost with a killed node, or still in flight while its grain moves, is read back
// from the store as soon as a later change of the order arrives, the cluster's topology
// changes, or the periodic re-check runs.
//
// The package imports neither the actor framework nor the web framework.
package live

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"
	"github.com/ordermesh/ordermesh/persistence"
)

// Change is one committed transition of an order: the event as the store keeps it, and
// the order right after it.
type Change struct {
	Event persistence.Event
	View  order.View
	// Committed is when the grain saw the write durable; zero for changes read back from
	// the store. Push latency is measured from it.
	Committed time.Time
}

// OrderID is the order the change belongs to.
func (c Change) OrderID() string { return c.Event.OrderID }

// Version is the order's version after the change.
func (c Change) Version() uint64 { return uint64(c.Event.Version) }

// ChangeOf builds the change a grain on node has just committed: e as the grain stored
// it, and v, the order after it (a decision has one event, so v is at e's version).
func ChangeOf(v order.View, e order.Event, node string, committed time.Time) (Change, error) {
	payload, err := json.Marshal(order.PayloadOf(e))
	if err != nil {
		return Change{}, fmt.Errorf("payload of order %s version %d: %w", e.OrderID, e.Version, err)
	}
	return Change{
		Event: persistence.Event{
			OrderID: e.OrderID, Version: int64(e.Version), Type: string(e.Type), From: string(e.From), To: string(e.To),
			IdempotencyKey: e.Key, Node: node, At: e.At, Payload: payload,
		},
		View:      v,
		Committed: committed,
	}, nil
}

// History rebuilds the changes of an order from stored events that follow o, each with
// the view right after it. events are in version order, as
// persistence.Orders.OrderEventsAfter(o.Version) returns them; o is the zero Order for a
// whole history, or the order at the version the events follow, of which only the
// fields of its view count (see OrderOf). The store keeps only the latest snapshot, so
// the views are replayed with order.Evolve.
func History(o order.Order, events []persistence.Event) ([]Change, error) {
	out := make([]Change, 0, len(events))
	for _, se := range events {
		e, err := eventOf(se)
		if err != nil {
			return nil, err
		}
		if e.Version != o.Version+1 {
			return nil, fmt.Errorf("order %s: stored event %d follows version %d", se.OrderID, e.Version, o.Version)
		}
		o = order.Evolve(o, e)
		out = append(out, Change{Event: se, View: o.View()})
	}
	return out, nil
}

// OrderOf is the order at view v, as far as History needs it: what its views show (an
// order's id, customer, lines, currency, total and creation time never change; the rest
// comes from each event). It remembers no idempotency keys.
func OrderOf(v order.View) order.Order {
	return order.Order{
		ID: v.ID, Customer: v.Customer, Status: v.Status, Version: v.Version, Lines: v.Lines, Currency: v.Currency,
		Total: v.Total, PaymentDeadline: v.PaymentDeadline, ExpiresAt: v.ExpiresAt, CreatedAt: v.CreatedAt, UpdatedAt: v.UpdatedAt,
	}
}

// eventOf turns a stored event back into the domain event it recorded.
func eventOf(se persistence.Event) (order.Event, error) {
	var p order.Payload
	if err := json.Unmarshal(se.Payload, &p); err != nil {
		return order.Event{}, fmt.Errorf("order %s: payload of event %d: %w", se.OrderID, se.Version, err)
	}
	at, deadline, expires := se.At.UTC(), p.PaymentDeadline, p.ExpiresAt
	if !deadline.IsZero() {
		deadline = deadline.UTC()
	}
	if !expires.IsZero() {
		expires = expires.UTC()
	}
	return order.Event{
		Type: order.EventType(se.Type), OrderID: se.OrderID, Version: uint64(se.Version),
		From: order.Status(se.From), To: order.Status(se.To), At: at, Key: se.IdempotencyKey,
		By: p.By, Fingerprint: p.Fingerprint, Customer: p.Customer, Lines: p.Lines, Currency: p.Currency,
		Total: p.Total, PaymentDeadline: deadline, ExpiresAt: expires, Reason: p.Reason,
	}, nil
}
