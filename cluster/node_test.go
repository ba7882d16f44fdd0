package cluster

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"

	"github.com/ordermesh/ordermesh/actors"
	"github.com/ordermesh/ordermesh/persistence"
	"github.com/ordermesh/ordermesh/persistence/pgtest"
	"github.com/ordermesh/ordermesh/persistence/postgres"
	"github.com/ordermesh/ordermesh/persistence/sqlite"
)

var (
	alice = order.Principal{Subject: "alice", Role: order.RoleShopper}
	olga  = order.Principal{Subject: "olga", Role: order.RoleOperator}
)

// fakeClock is a clock tests move by hand, with timers that fire when it passes them.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	at      time.Time
	f       func()
	stopped bool
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

// Advance moves the clock and runs the timers it passes.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []func()
	kept := c.timers[:0]
	for _, t := range c.timers {
		switch {
		case t.stopped:
		case !t.at.After(c.now):
			due = append(due, t.f)
		default:
			kept = append(kept, t)
		}
	}
	c.timers = kept
	c.mu.Unlock()
	for _, f := range due {
		f()
	}
}

// AfterFunc is time.AfterFunc on the fake clock (actors.GrainConfig.AfterFunc).
func (c *fakeClock) AfterFunc(d time.Duration, f func()) func() bool {
	if d <= 0 {
		f()
		return func() bool { return false }
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		was := !t.stopped
		t.stopped = true
		return was
	}
}

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func openPostgres(t testing.TB, url string) persistence.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openStore(t testing.TB, path string) persistence.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func startNode(t testing.TB, store persistence.Orders, tweak func(*actors.GrainConfig)) *Node {
	t.Helper()
	return startNodeConfig(t, store, func(c *Config) {
		if tweak != nil {
			tweak(c.Grain)
		}
	})
}

// startNodeConfig starts a node alone on store, with the node's config adjusted by tweak.
func startNodeConfig(t testing.TB, store persistence.Orders, tweak func(*Config)) *Node {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	g := &actors.GrainConfig{
		Store: store, Now: time.Now, PaymentTimeout: time.Hour, OrderTimeout: 1000 * time.Hour, IdleTimeout: time.Minute, Logger: logger,
	}
	cfg := Config{Remote: "127.0.0.1:0", Grain: g, Logger: logger, RequestTimeout: 2 * time.Second}
	if tweak != nil {
		tweak(&cfg)
	}
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.Stop(ctx)
	})
	return n
}

// create places an order for alice with key; an unavailable answer (a loaded machine can
// outlast a test's short request timeout) is retried with the same key, as the API says.
func create(t *testing.T, svc order.Service, key string) order.View {
	t.Helper()
	for try := 0; ; try++ {
		res, err := svc.Execute(context.Background(), order.Command{
			Type: order.CmdCreate, OrderID: order.OrderIDFor(alice.Subject, key), Key: key, By: alice,
			Lines: []order.Line{{SKU: "tea", Name: "Tea", Qty: 2, UnitPrice: 450}}, Currency: "EUR",
		}, "test")
		if err == nil {
			return res.View
		}
		if order.ErrorCode(err) != order.CodeUnavailable || try == 20 {
			t.Fatalf("create: %v", err)
		}
	}
}

func exec(svc order.Service, id string, c order.CommandType, key string, by order.Principal) (order.Result, error) {
	return svc.Execute(context.Background(), order.Command{Type: c, OrderID: id, Key: key, By: by}, "test")
}

func mustExec(t *testing.T, svc order.Service, id string, c order.CommandType, key string, by order.Principal) order.View {
	t.Helper()
	res, err := exec(svc, id, c, key, by)
	if err != nil {
		t.Fatalf("%s: %v", c, err)
	}
	return res.View
}

// eventually polls cond until it holds or the deadline passes; it waits for the system to
// reach a state, it does not time anything.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func checkHistory(t *testing.T, store persistence.Orders, id string, want ...order.EventType) {
	t.Helper()
	events, err := store.OrderEvents(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != len(want) {
		t.Fatalf("order %s has %d events, want %d: %+v", id, len(events), len(want), events)
	}
	from := order.StatusNone
	for i, e := range events {
		if e.Version != int64(i+1) {
			t.Errorf("event %d has version %d", i, e.Version)
		}
		if e.Type != string(want[i]) {
			t.Errorf("event %d is %s, want %s", i, e.Type, want[i])
		}
		if order.Status(e.From) != from || !order.Legal(from, order.EventType(e.Type), order.Status(e.To)) {
			t.Errorf("event %d %s %s->%s is not a legal step from %s", i, e.Type, e.From, e.To, from)
		}
		from = order.Status(e.To)
	}
}

func TestLifecycleThroughGrain(t *testing.T) {
	store := openStore(t, filepath.Join(t.TempDir(), "om.db"))
	n := startNode(t, store, nil)
	o := create(t, n, "k1")
	if o.Status != order.StatusCreated || o.Version != 2 || o.Total != 900 {
		t.Fatalf("created %+v", o)
	}
	mustExec(t, n, o.ID, order.CmdSubmitPayment, "k2", alice)
	mustExec(t, n, o.ID, order.CmdConfirmPayment, "k3", olga)
	mustExec(t, n, o.ID, order.CmdShip, "k4", olga)
	v := mustExec(t, n, o.ID, order.CmdDeliver, "k5", olga)
	if v.Status != order.StatusDelivered || v.Version != 6 {
		t.Fatalf("delivered %+v", v)
	}
	// A replayed key answers as the first time and changes nothing.
	res, err := exec(n, o.ID, order.CmdSubmitPayment, "k2", alice)
	if err != nil || !res.Replayed || res.View.Status != order.StatusPaying || res.View.Version != 3 {
		t.Fatalf("replay = %+v, %v", res, err)
	}
	// Illegal, forbidden, unknown.
	if _, err := exec(n, o.ID, order.CmdShip, "k6", olga); order.ErrorCode(err) != order.CodeIllegalTransition {
		t.Fatalf("ship delivered order: %v", err)
	}
	if _, err := exec(n, o.ID, order.CmdShip, "k7", alice); order.ErrorCode(err) != order.CodeForbidden {
		t.Fatalf("shopper ships: %v", err)
	}
	if _, err := n.Get(context.Background(), "o_unknown", olga, "t"); order.ErrorCode(err) != order.CodeNotFound {
		t.Fatalf("unknown order: %v", err)
	}
	bob := order.Principal{Subject: "bob", Role: order.RoleShopper}
	if _, err := n.Get(context.Background(), o.ID, bob, "t"); order.ErrorCode(err) != order.CodeNotFound {
		t.Fatalf("bob sees alice's order: %v", err)
	}
	checkHistory(t, store, o.ID, order.EvtCreated, order.EvtStockReserved, order.EvtPaymentSubmitted, order.EvtPaymentConfirmed, order.EvtShipped, order.EvtDelivered)
}

// Racing commands on one order are applied one at a time: exactly one payment wins.
func TestRacingCommandsOneWinner(t *testing.T) {
	store := openStore(t, filepath.Join(t.TempDir(), "om.db"))
	n := startNode(t, store, nil)
	o := create(t, n, "race")
	var wins, illegal atomic.Int32
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := order.CmdSubmitPayment
			if i%2 == 1 {
				cmd = order.CmdCancel
			}
			_, err := exec(n, o.ID, cmd, "race-"+string(rune('a'+i%26))+string(rune('a'+i/26)), alice)
			switch order.ErrorCode(err) {
			case order.CodeOK:
				wins.Add(1)
			case order.CodeIllegalTransition:
				illegal.Add(1)
			default:
				t.Errorf("unexpected: %v", err)
			}
		}()
	}
	wg.Wait()
	// Pay then cancel is a legal path too, so one or two may win; never more.
	events, _ := store.OrderEvents(context.Background(), o.ID)
	if int(wins.Load()) != len(events)-2 || wins.Load() < 1 || wins.Load() > 2 {
		t.Fatalf("wins=%d illegal=%d events=%d", wins.Load(), illegal.Load(), len(events))
	}
}

// Two live activations of one order on two nodes: the store's version fence rejects the
// stale one, and a retry (same key) reaches a fresh activation that sees the latest state.
// The two nodes run alone (each owns every order in its own view), which is the worst
// case a topology change can produce.
func TestVersionFenceRejectsStaleActivation(t *testing.T) {
	stores := map[string]func(t *testing.T) (persistence.Store, persistence.Store){
		"embedded": func(t *testing.T) (persistence.Store, persistence.Store) {
			path := filepath.Join(t.TempDir(), "om.db")
			return openStore(t, path), openStore(t, path)
		},
		"postgres": func(t *testing.T) (persistence.Store, persistence.Store) {
			url := pgtest.URL(t)
			return openPostgres(t, url), openPostgres(t, url)
		},
	}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			storeA, storeB := open(t)
			a := startNode(t, storeA, nil)
			b := startNode(t, storeB, nil)

			o := create(t, a, "fence")
			if _, err := b.Get(context.Background(), o.ID, alice, "t"); err != nil { // b activates at version 2
				t.Fatal(err)
			}
			mustExec(t, a, o.ID, order.CmdSubmitPayment, "pay", alice) // a moves it to version 3

			_, err := exec(b, o.ID, order.CmdCancel, "cancel", alice)
			if order.ErrorCode(err) != order.CodeUnavailable {
				t.Fatalf("stale activation answered %v, want CodeUnavailable", err)
			}
			var v order.View
			eventually(t, 10*time.Second, "a fresh activation on b", func() bool {
				res, err := exec(b, o.ID, order.CmdCancel, "cancel", alice)
				v = res.View
				return err == nil
			})
			if v.Status != order.StatusClosed || v.Version != 4 {
				t.Fatalf("after retry: %+v", v)
			}
			checkHistory(t, storeA, o.ID, order.EvtCreated, order.EvtStockReserved, order.EvtPaymentSubmitted, order.EvtCancelled)
		})
	}
}

func TestPassivatedGrainReloads(t *testing.T) {
	store := openStore(t, filepath.Join(t.TempDir(), "om.db"))
	n := startNode(t, store, func(g *actors.GrainConfig) { g.IdleTimeout = 50 * time.Millisecond })
	o := create(t, n, "idle")
	mustExec(t, n, o.ID, order.CmdSubmitPayment, "pay", alice)
	eventually(t, 5*time.Second, "passivation", func() bool { return n.Activations() == 0 })
	v, err := n.Get(context.Background(), o.ID, alice, "t")
	if err != nil || v.Status != order.StatusPaying || v.Version != 3 {
		t.Fatalf("reloaded %+v, %v", v, err)
	}
}

func TestActiveGrainExpiresPayment(t *testing.T) {
	store := openStore(t, filepath.Join(t.TempDir(), "om.db"))
	n := startNode(t, store, func(g *actors.GrainConfig) { g.PaymentTimeout = 100 * time.Millisecond })
	o := create(t, n, "timer")
	mustExec(t, n, o.ID, order.CmdSubmitPayment, "pay", alice)
	eventually(t, 5*time.Second, "expiry", func() bool {
		v, err := n.Get(context.Background(), o.ID, alice, "t")
		return err == nil && v.Status == order.StatusClosed
	})
	checkHistory(t, store, o.ID, order.EvtCreated, order.EvtStockReserved, order.EvtPaymentSubmitted, order.EvtPaymentExpired)
}

func TestSweeperExpiresPassivatedOrders(t *testing.T) {
	store := openStore(t, filepath.Join(t.TempDir(), "om.db"))
	clock := &fakeClock{now: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	n := startNode(t, store, func(g *actors.GrainConfig) {
		g.Now = clock.Now
		g.IdleTimeout = 50 * time.Millisecond
	})
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	sw := &actors.Sweeper{Store: store, Orders: n, Now: clock.Now, Batch: 100, Logger: logger}
	o := create(t, n, "sweep")
	mustExec(t, n, o.ID, order.CmdSubmitPayment, "pay", alice)
	eventually(t, 5*time.Second, "passivation", func() bool { return n.Activations() == 0 })

	if got, err := sw.Sweep(context.Background()); err != nil || got != 0 {
		t.Fatalf("sweep before the deadline expired %d, %v", got, err)
	}
	clock.Advance(time.Hour)
	if got, err := sw.Sweep(context.Background()); err != nil || got != 1 {
		t.Fatalf("sweep after the deadline expired %d, %v", got, err)
	}
	if got, err := sw.Sweep(context.Background()); err != nil || got != 0 {
		t.Fatalf("second sweep expired %d, %v", got, err)
	}
	checkHistory(t, store, o.ID, order.EvtCreated, order.EvtStockReserved, order.EvtPaymentSubmitted, order.EvtPaymentExpired)
}

// A PAYING order whose grain passivated (no sweeper here) expires at its deadline by the
// timer of the grain that reactivates it, whatever message reactivated it.
func TestReloadedPayingOrderExpiresByItsTimer(t *testing.T) {
	for _, tt := range []struct {
		name             string
		beforeReactivate time.Duration // of the hour the payment may take
	}{
		{"deadline ahead", 30 * time.Minute},
		{"deadline passed while passivated", 2 * time.Hour},
	} {
		t.Run(tt.name, func(t *testing.T) {
			store := openStore(t, filepath.Join(t.TempDir(), "om.db"))
			clock := &fakeClock{now: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
			n := startNodeConfig(t, store, func(c *Config) {
				c.MaxGrains = 1 // each new activation passivates the previous grain
				c.Grain.Now, c.Grain.AfterFunc, c.Grain.PaymentTimeout = clock.Now, clock.AfterFunc, time.Hour
			})
			o := create(t, n, "paying")
			mustExec(t, n, o.ID, order.CmdSubmitPayment, "pay", alice)
			create(t, n, "other") // passivates o's grain, and its timer with it
			evictions := n.Evictions()

			clock.Advance(tt.beforeReactivate)
			if _, err := n.Get(context.Background(), o.ID, olga, "t"); err != nil {
				t.Fatal(err)
			}
			if n.Evictions() != evictions+1 {
				t.Fatalf("o's grain was not reactivated by the read (evictions %d, before %d)", n.Evictions(), evictions)
			}
			if tt.beforeReactivate < time.Hour {
				clock.Advance(time.Hour - tt.beforeReactivate)
			}
			eventually(t, 10*time.Second, "expiry by the reactivated grain's timer", func() bool {
				v, err := n.Get(context.Background(), o.ID, olga, "t")
				return err == nil && v.Status == order.StatusClosed
			})
			checkHistory(t, store, o.ID, order.EvtCreated, order.EvtStockReserved, order.EvtPaymentSubmitted, order.EvtPaymentExpired)
		})
	}
}
