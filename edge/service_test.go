package edge

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"
	"github.com/ordermesh/ordermesh/actors/orderpb"

	"github.com/ordermesh/ordermesh/persistence"
)

// localService is a real, in-process order.Service: one mutex plays the grain's mailbox,
// order.Decide and order.Evolve are the domain logic, and every accepted command is
// written to the store before it is answered, as the grain does. Only placement and
// passivation are missing, which the edge cannot see anyway.
type localService struct {
	store persistence.Orders
	now   func() time.Time
	node  string

	mu          sync.Mutex
	orders      map[string]order.Order
	unavailable int               // the next n calls fail with CodeUnavailable, like a moving grain
	panicOn     order.CommandType // a command that makes Execute panic
	soldOut     map[string]bool   // skus a create is refused for, out of stock (CodeOutOfStock)
	requestIDs  []string          // request ids seen, newest last
	commands    []order.Command   // commands Execute got, newest last
}

func newLocalService(store persistence.Orders, now func() time.Time) *localService {
	return &localService{store: store, now: now, node: "node-test", orders: map[string]order.Order{}}
}

// failNext makes the next n calls answer CodeUnavailable.
func (s *localService) failNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unavailable = n
}

// sellOut makes creates of orders with sku refused for want of stock, as the node's
// reservation refuses them: CodeOutOfStock naming the sku, and nothing recorded.
func (s *localService) sellOut(sku string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.soldOut == nil {
		s.soldOut = map[string]bool{}
	}
	s.soldOut[sku] = true
}

func (s *localService) lastRequestID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.requestIDs) == 0 {
		return ""
	}
	return s.requestIDs[len(s.requestIDs)-1]
}

// executed returns the commands Execute got so far, oldest first.
func (s *localService) executed() []order.Command {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.commands)
}

func (s *localService) enter(requestID string) error {
	s.requestIDs = append(s.requestIDs, requestID)
	if s.unavailable > 0 {
		s.unavailable--
		return order.Unavailable(order.ReasonMoved, "grain is moving")
	}
	return nil
}

func (s *localService) Execute(ctx context.Context, c order.Command, requestID string) (order.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter(requestID); err != nil {
		return order.Result{}, err
	}
	s.commands = append(s.commands, c)
	if c.Type == s.panicOn && c.Type != "" {
		panic("injected panic")
	}
	o := s.orders[c.OrderID]
	c.At = s.now().UTC()
	c.PaymentTimeout = 15 * time.Minute // the grain's setting
	d, err := order.Decide(&o, c)
	if err != nil {
		return order.Result{}, err
	}
	if d.Replay != nil {
		return order.Result{View: o.ViewAt(*d.Replay), Replayed: true}, nil
	}
	next := o
	events := d.Events
	var refused error
	if c.Type == order.CmdCreate {
		// The reservation saga, as the grain runs it: the order stands, or is rejected
		// when a line's sku is sold out.
		created := order.Evolve(o, events[0])
		saga := order.Command{Type: order.CmdConfirmStock, OrderID: c.OrderID, Key: "reserve-stock",
			By: order.Principal{Subject: "saga", Role: order.RoleSystem}, At: c.At, OrderTimeout: 30 * time.Minute}
		for _, l := range c.Lines {
			if s.soldOut[l.SKU] && refused == nil {
				refused = order.Errorf(order.CodeOutOfStock, "out of stock: sku %s has fewer than %d available", l.SKU, l.Qty)
				saga.Type, saga.Reason = order.CmdRejectStock, order.ErrorMessage(refused)
			}
		}
		sd, err := order.Decide(&created, saga)
		if err != nil {
			return order.Result{}, err
		}
		events = append(events, sd.Events...)
	}
	w := persistence.Write{ExpectedVersion: int64(o.Version)}
	for _, e := range events {
		next = order.Evolve(next, e)
		payload, err := json.Marshal(order.PayloadOf(e)) // as the grain stores it
		if err != nil {
			return order.Result{}, fmt.Errorf("encoding event: %w", err)
		}
		w.Events = append(w.Events, persistence.Event{
			OrderID: e.OrderID, Version: int64(e.Version), Type: string(e.Type), From: string(e.From), To: string(e.To),
			IdempotencyKey: e.Key, Node: s.node, At: e.At, Payload: payload,
		})
	}
	snap, err := orderpb.EncodeSnapshot(&next)
	if err != nil {
		return order.Result{}, fmt.Errorf("encoding snapshot: %w", err)
	}
	w.Order = persistence.Order{
		ID: next.ID, Customer: next.Customer, Status: string(next.Status), Version: int64(next.Version),
		Snapshot: snap, PaymentDeadline: next.Deadline(), CreatedAt: next.CreatedAt, UpdatedAt: next.UpdatedAt,
	}
	if err := s.store.WriteOrder(ctx, w); err != nil {
		return order.Result{}, fmt.Errorf("writing order %s: %w", next.ID, err)
	}
	s.orders[next.ID] = next
	if refused != nil {
		return order.Result{}, refused
	}
	return order.Result{View: next.View()}, nil
}

func (s *localService) Get(_ context.Context, id string, by order.Principal, requestID string) (order.View, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter(requestID); err != nil {
		return order.View{}, err
	}
	o, ok := s.orders[id]
	if !ok || !o.Exists() || !order.CanView(by, &o) {
		return order.View{}, order.Errorf(order.CodeNotFound, "order %s not found", id)
	}
	return o.View(), nil
}

// fakeClock is a settable clock, so token expiry is tested without sleeping.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
