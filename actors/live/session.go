package live

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"
	"github.com/ordermesh/ordermesh/actors/orderpb"
	"github.com/ordermesh/ordermesh/persistence"
)

// DefaultBuffer is the default SessionConfig.Buffer.
const DefaultBuffer = 256

// SessionConfig configures one client's session.
type SessionConfig struct {
	// Buffer is how many changes may wait for the client; one more ends the session with
	// ErrTooSlow (default DefaultBuffer).
	Buffer int
	// Deliver sends one change to the client. It is called on the session's goroutine,
	// per order in version order, each version once; fromStore says it was read back
	// from the store (a replay or a gap fill) rather than pushed live. An error ends the
	// session with it.
	Deliver func(c Change, fromStore bool) error
	// Subscribed, if set, is told on the session's goroutine when a subscription is in
	// place, after what it replayed: each order's last delivered version, or all = true.
	Subscribed func(orders map[string]uint64, all bool) error
}

// Session is one client's subscriptions and their version bookkeeping. Run owns its
// state; the other methods hand it work and are safe from any goroutine.
type Session struct {
	hub    *Hub
	cfg    SessionConfig
	queue  chan Change   // live changes from the hub; bounded
	ctrl   chan func()   // subscribe / unsubscribe, run on Run's goroutine
	resync chan struct{} // capacity 1: a pending re-check
	ended  chan struct{}
	once   sync.Once
	err    error // why it ended; written before ended is closed

	// Owned by Run's goroutine.
	tracks     map[string]*track   // every order the session has delivered or subscribed to
	registered map[string]struct{} // orders subscribed one by one (in the hub's byOrder)
	all        bool
}

// track is what a session knows of one order.
type track struct {
	last     uint64     // the last version delivered (or claimed by the client on subscribe)
	view     order.View // the view delivered at last, if it was (Version == last); the base of a gap fill
	explicit bool       // subscribed by id, not only through the all-orders subscription
	seen     time.Time  // last change seen (all-orders subscriptions forget idle orders)
}

// NewSession opens a session on the hub; run Run. It fails with ErrDraining once the
// hub is draining.
func (h *Hub) NewSession(cfg SessionConfig) (*Session, error) {
	if cfg.Buffer <= 0 {
		cfg.Buffer = DefaultBuffer
	}
	if cfg.Deliver == nil {
		return nil, errors.New("live: SessionConfig.Deliver is required")
	}
	s := &Session{
		hub: h, cfg: cfg, queue: make(chan Change, cfg.Buffer), ctrl: make(chan func()), resync: make(chan struct{}, 1),
		ended: make(chan struct{}), tracks: map[string]*track{}, registered: map[string]struct{}{},
	}
	if err := h.add(s); err != nil {
		return nil, err
	}
	return s, nil
}

// Done is closed when the session has ended (or is ending: Run may still be inside
// Deliver, e.g. writing to a client that stopped reading); Err then says why.
func (s *Session) Done() <-chan struct{} { return s.ended }

// Err is why the session ended; nil while it runs.
func (s *Session) Err() error {
	select {
	case <-s.ended:
		return s.err
	default:
		return nil
	}
}

// Close ends the session with ErrClosed (if it has not ended already).
func (s *Session) Close() { s.end(ErrClosed) }

func (s *Session) end(err error) {
	s.once.Do(func() {
		s.err = err
		close(s.ended)
	})
}

// offer queues a live change without waiting; a full queue ends the session.
func (s *Session) offer(c Change) {
	select {
	case s.queue <- c:
	default:
		s.end(ErrTooSlow)
	}
}

// Run delivers changes until the session ends or ctx is done, and returns why.
func (s *Session) Run(ctx context.Context) error {
	defer s.hub.remove(s)
	for {
		select {
		case <-ctx.Done():
			s.end(ctx.Err())
		case <-s.ended:
		case op := <-s.ctrl:
			// Changes offered before the op was sent are handled first, so an op (a
			// subscribe, a test's sync) sees every change published before it; select
			// alone would pick among ready channels at random.
			s.drain(ctx)
			op()
			continue
		case c := <-s.queue:
			s.handle(ctx, c)
			continue
		case <-s.resync:
			s.recheck(ctx)
			continue
		}
		return s.err
	}
}

// drain handles the changes queued now, without waiting for more.
func (s *Session) drain(ctx context.Context) {
	for {
		select {
		case c := <-s.queue:
			s.handle(ctx, c)
		default:
			return
		}
	}
}

// do runs op on Run's goroutine, after the changes queued before it, and waits for it;
// it gives up when the session ends.
func (s *Session) do(ctx context.Context, op func()) error {
	done := make(chan struct{})
	select {
	case s.ctrl <- func() { defer close(done); op() }:
	case <-s.ended:
		return s.err
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return s.Err()
	case <-s.ended:
		return s.err
	}
}

// Subscribe subscribes to orders, each with the last version the client has (0 = none):
// the versions after it are replayed from the store, then changes follow live. It
// returns once the replay is delivered. Subscribing again to an order restarts it from
// the version given. Authorization is the caller's business.
func (s *Session) Subscribe(ctx context.Context, orders map[string]uint64) error {
	return s.do(ctx, func() {
		ids := make([]string, 0, len(orders))
		for id := range orders {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		// Registered before the store is read: a change committed meanwhile is then in
		// the queue, and the bookkeeping drops it as a duplicate if the read had it.
		s.hub.register(s, ids)
		got := make(map[string]uint64, len(ids))
		for _, id := range ids {
			s.registered[id] = struct{}{}
			t := s.tracks[id]
			if t == nil {
				t = &track{}
				s.tracks[id] = t
			}
			t.explicit, t.last, t.seen = true, orders[id], s.hub.cfg.Now()
			if err := s.fill(ctx, id, t); err != nil {
				s.end(err)
				return
			}
			got[id] = t.last
		}
		if s.cfg.Subscribed != nil {
			if err := s.cfg.Subscribed(got, false); err != nil {
				s.end(err)
			}
		}
	})
}

// SubscribeAll subscribes to the changes of every order. An order's first change seen
// starts its bookkeeping (nothing before it is replayed: the client asked for the
// stream, not the history); after that, gaps are filled from the store like for orders
// subscribed by id.
func (s *Session) SubscribeAll(ctx context.Context) error {
	return s.do(ctx, func() {
		s.hub.setAll(s, true)
		s.all = true
		if s.cfg.Subscribed != nil {
			if err := s.cfg.Subscribed(nil, true); err != nil {
				s.end(err)
			}
		}
	})
}

// Unsubscribe stops the subscriptions to orders by id. An order still comes through a
// subscription to all orders, if there is one.
func (s *Session) Unsubscribe(ctx context.Context, ids []string) error {
	return s.do(ctx, func() {
		s.hub.unregister(s, ids)
		for _, id := range ids {
			delete(s.registered, id)
			if t := s.tracks[id]; t != nil {
				if s.all {
					t.explicit = false
				} else {
					delete(s.tracks, id)
				}
			}
		}
	})
}

// UnsubscribeAll stops the subscription to all orders; those subscribed by id stay.
func (s *Session) UnsubscribeAll(ctx context.Context) error {
	return s.do(ctx, func() {
		s.hub.setAll(s, false)
		s.all = false
		for id, t := range s.tracks {
			if !t.explicit {
				delete(s.tracks, id)
			}
		}
	})
}

// handle applies the bookkeeping to one live change.
func (s *Session) handle(ctx context.Context, c Change) {
	id, v := c.OrderID(), c.Version()
	t := s.tracks[id]
	switch {
	case t != nil && (t.explicit || s.all):
	case t == nil && s.all:
		// First sight of an order on the all-orders stream: start at this change.
		t = &track{last: v - 1}
		s.tracks[id] = t
	default:
		return // unsubscribed while the change was queued
	}
	t.seen = s.hub.cfg.Now()
	switch {
	case v <= t.last: // a duplicate: seen live, or read back from the store already
	case v == t.last+1:
		if err := s.cfg.Deliver(c, false); err != nil {
			s.end(err)
			return
		}
		t.last, t.view = v, c.View
	default: // a gap: an earlier change is lost or still in flight; the store has it
		if err := s.fill(ctx, id, t); err != nil {
			s.end(err)
		}
	}
}

// fill delivers what the store has of order id after t.last. It reads only those events
// (OrderEventsAfter); their views are replayed from the view last delivered, or, when
// the session has delivered nothing of the order at t.last (the version a client
// subscribed with) or that view was PAYING, from the order's snapshot, whose unchanging
// fields (and expiry) are all a view needs besides the events.
func (s *Session) fill(ctx context.Context, id string, t *track) error {
	rctx, cancel := context.WithTimeout(ctx, s.hub.cfg.StoreTimeout)
	defer cancel()
	events, err := s.hub.cfg.Store.OrderEventsAfter(rctx, id, int64(t.last))
	if err != nil {
		return fmt.Errorf("live: reading the events of order %s after version %d: %w", id, t.last, err)
	}
	if len(events) == 0 {
		return nil
	}
	base, err := s.base(rctx, id, t)
	if err != nil {
		return err
	}
	changes, err := History(base, events)
	if err != nil {
		return fmt.Errorf("live: %w", err)
	}
	cancel()
	for _, c := range changes {
		if err := s.cfg.Deliver(c, true); err != nil {
			return err
		}
		t.last, t.view = c.Version(), c.View
	}
	return nil
}

// base is the order at version t.last, as History needs it.
func (s *Session) base(ctx context.Context, id string, t *track) (order.Order, error) {
	switch {
	case t.last == 0:
		return order.Order{}, nil
	case t.view.Version == t.last && t.view.ID == id && t.view.Status != order.StatusPaying:
		// A PAYING view hides the order's expiry, which a failed payment shows again:
		// that base comes from the snapshot, which keeps it.
		return OrderOf(t.view), nil
	}
	row, err := s.hub.cfg.Store.LoadOrder(ctx, id)
	if err != nil {
		return order.Order{}, fmt.Errorf("live: reading order %s: %w", id, err)
	}
	o, err := orderpb.DecodeSnapshot(row.Snapshot)
	if err != nil {
		return order.Order{}, fmt.Errorf("live: snapshot of order %s: %w", id, err)
	}
	o.Version, o.Keys = t.last, nil
	return o, nil
}

// recheck compares the orders the session follows with the store and fills what it
// missed; an all-orders subscription checks the orders it saw lately and forgets the
// ones idle for long.
func (s *Session) recheck(ctx context.Context) {
	now := s.hub.cfg.Now()
	ids := make([]string, 0, len(s.tracks))
	for id, t := range s.tracks {
		switch {
		case t.explicit || now.Sub(t.seen) < s.hub.cfg.RecheckWindow:
			ids = append(ids, id)
		case now.Sub(t.seen) > s.hub.cfg.ForgetAfter:
			delete(s.tracks, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		t := s.tracks[id]
		rctx, cancel := context.WithTimeout(ctx, s.hub.cfg.StoreTimeout)
		row, err := s.hub.cfg.Store.LoadOrder(rctx, id)
		cancel()
		switch {
		case errors.Is(err, persistence.ErrNotFound):
			continue
		case err != nil:
			s.end(fmt.Errorf("live: re-checking order %s: %w", id, err))
			return
		}
		if uint64(row.Version) > t.last {
			if err := s.fill(ctx, id, t); err != nil {
				s.end(err)
				return
			}
		}
	}
}
