package live

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"
	"github.com/ordermesh/ordermesh/actors/orderpb"
	"github.com/ordermesh/ordermesh/persistence"
)

// memStore keeps events in memory; only what the hub reads is implemented.
type memStore struct {
	persistence.Orders
	mu     sync.Mutex
	events map[string][]persistence.Event
	reads  []string // "id>after" for every OrderEventsAfter
	loads  int      // LoadOrder calls
	// gate, if set, is called inside OrderEventsAfter after the events were copied and
	// before they are returned (to run something "during" a replay).
	gate func()
}

func newMemStore() *memStore { return &memStore{events: map[string][]persistence.Event{}} }

func (m *memStore) OrderEventsAfter(_ context.Context, id string, after int64) ([]persistence.Event, error) {
	m.mu.Lock()
	m.reads = append(m.reads, fmt.Sprintf("%s>%d", id, after))
	out := []persistence.Event{}
	for _, e := range m.events[id] {
		if e.Version > after {
			out = append(out, e)
		}
	}
	gate := m.gate
	m.mu.Unlock()
	if gate != nil {
		gate()
	}
	return out, nil
}

// LoadOrder returns the order's row with its snapshot, rebuilt from its events.
func (m *memStore) LoadOrder(_ context.Context, id string) (persistence.Order, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.loads++
	ev := m.events[id]
	if len(ev) == 0 {
		return persistence.Order{}, persistence.ErrNotFound
	}
	var o order.Order
	for _, se := range ev {
		e, err := eventOf(se)
		if err != nil {
			return persistence.Order{}, err
		}
		o = order.Evolve(o, e)
	}
	snap, err := orderpb.EncodeSnapshot(&o)
	if err != nil {
		return persistence.Order{}, err
	}
	return persistence.Order{ID: id, Version: ev[len(ev)-1].Version, Snapshot: snap}, nil
}

// log returns the store reads so far and forgets them.
func (m *memStore) log() (reads []string, loads int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	reads, loads = m.reads, m.loads
	m.reads, m.loads = nil, 0
	return reads, loads
}

// commit appends the next event of order id to the store and returns its change, as a
// grain would publish it: created, then payment submitted and failed in turn.
func (m *memStore) commit(t *testing.T, id string) Change {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	v := uint64(len(m.events[id])) + 1
	at := time.Date(2026, 1, 1, 0, 0, int(v), 0, time.UTC)
	e := order.Event{OrderID: id, Version: v, At: at, Key: fmt.Sprintf("k%d", v), By: "alice"}
	switch {
	case v == 1:
		e.Type, e.To, e.Customer, e.Currency, e.Total = order.EvtCreated, order.StatusCreated, "alice", "EUR", 100
		e.Lines = []order.Line{{SKU: "tea", Name: "Tea", Qty: 1, UnitPrice: 100}}
	case v%2 == 0:
		e.Type, e.From, e.To, e.PaymentDeadline = order.EvtPaymentSubmitted, order.StatusCreated, order.StatusPaying, at.Add(time.Minute)
	default:
		e.Type, e.From, e.To = order.EvtPaymentFailed, order.StatusPaying, order.StatusCreated
	}
	c, err := ChangeOf(order.View{ID: id, Version: v, Status: e.To}, e, "node-1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	m.events[id] = append(m.events[id], c.Event)
	return c
}

// got is what a session delivered, in order.
type got struct {
	mu   sync.Mutex
	seen []string // "id@version" with "+store" when read back from the store
	more chan struct{}
}

func newGot() *got { return &got{more: make(chan struct{}, 1000)} }

func (g *got) deliver(c Change, fromStore bool) error {
	s := fmt.Sprintf("%s@%d", c.OrderID(), c.Version())
	if fromStore {
		s += "+store"
	}
	if c.View.Version != c.Version() {
		return fmt.Errorf("%s: view at version %d", s, c.View.Version)
	}
	g.mu.Lock()
	g.seen = append(g.seen, s)
	g.mu.Unlock()
	g.more <- struct{}{}
	return nil
}

// wait returns the deliveries once there are n of them.
func (g *got) wait(t *testing.T, n int) []string {
	t.Helper()
	for {
		g.mu.Lock()
		l := len(g.seen)
		out := slices.Clone(g.seen)
		g.mu.Unlock()
		if l >= n {
			return out
		}
		select {
		case <-g.more:
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d deliveries: %v", l, n, out)
		}
	}
}

func start(t *testing.T, h *Hub, cfg SessionConfig) (*Session, chan error) {
	t.Helper()
	s, err := h.NewSession(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done, finished := make(chan error, 1), make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { defer close(finished); done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-finished })
	return s, done
}

// sync waits until the session has handled everything published before it.
func syncSession(t *testing.T, s *Session) {
	t.Helper()
	if err := s.do(context.Background(), func() {}); err != nil {
		t.Fatal(err)
	}
}

func TestDuplicatesAreDropped(t *testing.T) {
	st := newMemStore()
	h := NewHub(HubConfig{Store: st})
	g := newGot()
	s, _ := start(t, h, SessionConfig{Deliver: g.deliver})
	c1, c2 := st.commit(t, "o1"), st.commit(t, "o1")
	if err := s.Subscribe(context.Background(), map[string]uint64{"o1": 0}); err != nil {
		t.Fatal(err)
	}
	h.Publish(c1)
	h.Publish(c2) // both replayed already
	c3 := st.commit(t, "o1")
	h.Publish(c3)
	h.Publish(c3)
	h.Publish(c2)
	syncSession(t, s)
	want := []string{"o1@1+store", "o1@2+store", "o1@3"}
	if out := g.wait(t, 3); !slices.Equal(out, want) {
		t.Fatalf("delivered %v, want %v", out, want)
	}
}

func TestGapsAreFilledFromTheStore(t *testing.T) {
	st := newMemStore()
	h := NewHub(HubConfig{Store: st})
	g := newGot()
	s, _ := start(t, h, SessionConfig{Deliver: g.deliver})
	st.commit(t, "o1")
	if err := s.Subscribe(context.Background(), map[string]uint64{"o1": 1}); err != nil {
		t.Fatal(err)
	}
	c2, c3, c4 := st.commit(t, "o1"), st.commit(t, "o1"), st.commit(t, "o1")
	h.Publish(c4) // 2 and 3 lost or late
	h.Publish(c2)
	h.Publish(c3)
	syncSession(t, s)
	c5 := st.commit(t, "o1")
	h.Publish(c5)
	syncSession(t, s)
	want := []string{"o1@2+store", "o1@3+store", "o1@4+store", "o1@5"}
	if out := g.wait(t, 4); !slices.Equal(out, want) {
		t.Fatalf("delivered %v, want %v", out, want)
	}
}

// A change committed while the subscription's replay reads the store comes either in
// the replay or live, never twice and never out of order, whichever the read saw.
func TestReplayRacingLiveChanges(t *testing.T) {
	for _, readSeesIt := range []bool{false, true} {
		t.Run(fmt.Sprintf("read_sees_it=%v", readSeesIt), func(t *testing.T) {
			st := newMemStore()
			h := NewHub(HubConfig{Store: st})
			g := newGot()
			s, _ := start(t, h, SessionConfig{Deliver: g.deliver})
			st.commit(t, "o1")
			st.commit(t, "o1")
			var once sync.Once
			st.gate = func() {
				once.Do(func() {
					// The replay has registered and is reading; a grain commits and publishes.
					c := st.commit(t, "o1")
					h.Publish(c)
					c4 := st.commit(t, "o1")
					h.Publish(c4)
				})
			}
			if readSeesIt {
				// The store read happens after the commits: move the gate before the copy.
				gate := st.gate
				st.gate = nil
				gate()
			}
			if err := s.Subscribe(context.Background(), map[string]uint64{"o1": 0}); err != nil {
				t.Fatal(err)
			}
			syncSession(t, s)
			out := g.wait(t, 4)
			var versions []string
			for _, o := range out {
				versions = append(versions, o[:4])
			}
			if want := []string{"o1@1", "o1@2", "o1@3", "o1@4"}; !slices.Equal(versions, want) {
				t.Fatalf("delivered %v, want versions %v", out, want)
			}
		})
	}
}

func TestAllOrdersStartsAtFirstSightThenFillsGaps(t *testing.T) {
	st := newMemStore()
	h := NewHub(HubConfig{Store: st})
	g := newGot()
	s, _ := start(t, h, SessionConfig{Deliver: g.deliver})
	st.commit(t, "a")
	a2 := st.commit(t, "a")
	if err := s.SubscribeAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.Publish(a2) // first sight of a: starts here, version 1 is not replayed
	b1 := st.commit(t, "b")
	h.Publish(b1)
	st.commit(t, "a")
	a4 := st.commit(t, "a")
	h.Publish(a4) // a@3 lost
	syncSession(t, s)
	want := []string{"a@2", "b@1", "a@3+store", "a@4+store"}
	if out := g.wait(t, 4); !slices.Equal(out, want) {
		t.Fatalf("delivered %v, want %v", out, want)
	}
}

func TestResyncFindsWhatNoLaterChangeRevealed(t *testing.T) {
	st := newMemStore()
	h := NewHub(HubConfig{Store: st})
	g := newGot()
	s, _ := start(t, h, SessionConfig{Deliver: g.deliver})
	st.commit(t, "o1")
	if err := s.Subscribe(context.Background(), map[string]uint64{"o1": 1}); err != nil {
		t.Fatal(err)
	}
	st.commit(t, "o1") // its node died before publishing it
	h.Resync()
	want := []string{"o1@2+store"}
	if out := g.wait(t, 1); !slices.Equal(out, want) {
		t.Fatalf("delivered %v, want %v", out, want)
	}
}

func TestUnsubscribeStopsDelivery(t *testing.T) {
	st := newMemStore()
	h := NewHub(HubConfig{Store: st})
	g := newGot()
	s, _ := start(t, h, SessionConfig{Deliver: g.deliver})
	if err := s.Subscribe(context.Background(), map[string]uint64{"o1": 0, "o2": 0}); err != nil {
		t.Fatal(err)
	}
	if err := s.Unsubscribe(context.Background(), []string{"o1"}); err != nil {
		t.Fatal(err)
	}
	h.Publish(st.commit(t, "o1"))
	h.Publish(st.commit(t, "o2"))
	syncSession(t, s)
	if out := g.wait(t, 1); !slices.Equal(out, []string{"o2@1"}) {
		t.Fatalf("delivered %v, want only o2@1", out)
	}
}

// A client that does not take its changes is dropped when its buffer is full, and
// Publish never waits for it: the other session gets everything.
func TestSlowSessionIsEndedWithoutSlowingOthers(t *testing.T) {
	st := newMemStore()
	h := NewHub(HubConfig{Store: st})
	stuck := make(chan struct{})
	defer close(stuck)
	slow, slowDone := start(t, h, SessionConfig{Buffer: 2, Deliver: func(Change, bool) error { <-stuck; return nil }})
	g := newGot()
	fast, _ := start(t, h, SessionConfig{Buffer: 100, Deliver: g.deliver})
	for _, s := range []*Session{slow, fast} {
		if err := s.SubscribeAll(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	for range 10 {
		h.Publish(st.commit(t, "o1"))
	}
	<-slow.Done()
	if !errors.Is(slow.Err(), ErrTooSlow) {
		t.Fatalf("slow session ended with %v, want ErrTooSlow", slow.Err())
	}
	if out := g.wait(t, 10); len(out) != 10 {
		t.Fatalf("fast session got %v", out)
	}
	select {
	case err := <-slowDone:
		t.Fatalf("Run of the slow session returned %v while its Deliver is blocked", err)
	default:
	}
}

func TestDrainEndsSessionsAndRefusesNewOnes(t *testing.T) {
	h := NewHub(HubConfig{Store: newMemStore()})
	s, done := start(t, h, SessionConfig{Deliver: func(Change, bool) error { return nil }})
	h.Drain()
	if err := <-done; !errors.Is(err, ErrDraining) {
		t.Fatalf("Run returned %v, want ErrDraining", err)
	}
	if !errors.Is(s.Err(), ErrDraining) {
		t.Fatalf("Err = %v", s.Err())
	}
	if _, err := h.NewSession(SessionConfig{Deliver: func(Change, bool) error { return nil }}); !errors.Is(err, ErrDraining) {
		t.Fatalf("NewSession while draining: %v", err)
	}
	if n := h.Sessions(); n != 0 {
		t.Fatalf("%d sessions left", n)
	}
}

// history commits n changes of order id and returns its whole history.
func history(t *testing.T, st *memStore, id string, n int) []Change {
	t.Helper()
	for range n {
		st.commit(t, id)
	}
	changes, err := History(order.Order{}, st.events[id])
	if err != nil {
		t.Fatal(err)
	}
	return changes
}

func TestHistoryRebuildsViews(t *testing.T) {
	changes := history(t, newMemStore(), "o1", 4)
	for i, c := range changes {
		if c.View.Version != uint64(i+1) || c.View.Customer != "alice" || c.View.Total != 100 {
			t.Errorf("change %d: view %+v", i+1, c.View)
		}
	}
	if changes[1].View.Status != order.StatusPaying || changes[1].View.PaymentDeadline.IsZero() {
		t.Errorf("view after payment submitted: %+v", changes[1].View)
	}
}

func TestHistoryFollowsAnOrder(t *testing.T) {
	st := newMemStore()
	whole := history(t, st, "o1", 4)
	tail, err := History(OrderOf(whole[1].View), st.events["o1"][2:])
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range tail {
		if !reflect.DeepEqual(c.View, whole[i+2].View) {
			t.Errorf("view at %d = %+v, want %+v", c.Version(), c.View, whole[i+2].View)
		}
	}
	if _, err := History(OrderOf(whole[0].View), st.events["o1"][2:]); err == nil {
		t.Error("History accepted events that do not follow the order")
	}
}

// Replays and gap fills read only the events the session is missing, and build their
// views from the last one delivered or, for the version a client subscribed with, from
// the snapshot.
func TestFillsReadOnlyWhatIsMissing(t *testing.T) {
	st := newMemStore()
	h := NewHub(HubConfig{Store: st})
	var views []order.View
	g := newGot()
	s, _ := start(t, h, SessionConfig{Deliver: func(c Change, fromStore bool) error {
		views = append(views, c.View)
		return g.deliver(c, fromStore)
	}})
	for range 3 {
		st.commit(t, "o1")
	}
	if err := s.Subscribe(context.Background(), map[string]uint64{"o1": 2}); err != nil {
		t.Fatal(err)
	}
	if reads, loads := st.log(); !slices.Equal(reads, []string{"o1>2"}) || loads != 1 {
		t.Fatalf("subscribing at version 2 read %v and %d snapshots; want o1>2 and one snapshot", reads, loads)
	}
	st.commit(t, "o1")
	c5 := st.commit(t, "o1")
	h.Publish(c5) // 4 lost
	syncSession(t, s)
	if reads, loads := st.log(); !slices.Equal(reads, []string{"o1>3"}) || loads != 0 {
		t.Fatalf("the gap fill read %v and %d snapshots; want o1>3 and none", reads, loads)
	}
	want := []string{"o1@3+store", "o1@4+store", "o1@5+store"}
	if out := g.wait(t, 3); !slices.Equal(out, want) {
		t.Fatalf("delivered %v, want %v", out, want)
	}
	whole := history(t, st, "o1", 0)
	for i, v := range views {
		if w := whole[i+2].View; !reflect.DeepEqual(v, w) {
			t.Errorf("view at %d = %+v, want %+v", v.Version, v, w)
		}
	}
}
