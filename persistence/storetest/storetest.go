// Package storetest is the conformance suite every persistence.Store implementation
// passes. An implementation's test calls Run with a function that opens a fresh, empty
// store for each subtest.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/persistence"
)

// Run runs the conformance suite. open must return a new, empty store and arrange for it
// to be closed when t ends; the suite may close it earlier itself, so Close must be safe
// to call twice.
func Run(t *testing.T, open func(t *testing.T) persistence.Store) {
	runAll(t, open, []suiteTest[persistence.Store]{
		{"CreateAndLoad", testCreateAndLoad},
		{"ConflictingCreate", testConflictingCreate},
		{"Update", testUpdate},
		{"RewriteInPlace", testRewriteInPlace},
		{"InvalidWrites", testInvalidWrites},
		{"InvalidContentFailsAlone", testInvalidContent},
		{"EventByKey", testEventByKey},
		{"OrderEventsAfter", testOrderEventsAfter},
		{"NotFound", testNotFound},
		{"TimesUTCMicroseconds", testTimes},
		{"ConcurrentWriters", testConcurrentWriters},
		{"RacingSameOrder", testRacingSameOrder},
		{"ListOrders", testListOrders},
		{"BadCursor", testBadCursor},
		{"DuePayments", testDuePayments},
		{"Users", testUsers},
		{"Accounts", testAccounts},
		{"RefreshTokens", testRefreshTokens},
		{"Secrets", testSecrets},
		{"ObserveBatches", testObserveBatches},
		{"Close", testClose},
	})
}

// suiteTest is one test of a suite, run on a fresh store of type S.
type suiteTest[S any] struct {
	name string
	fn   func(t *testing.T, s S)
}

// runAll runs each test as a subtest on a store of its own from open.
func runAll[S any](t *testing.T, open func(t *testing.T) S, tests []suiteTest[S]) {
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, open(t))
		})
	}
}

// base is an arbitrary fixed instant; tests derive every time from it.
var base = time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.UTC)

func order(id string, version int64, status string) persistence.Order {
	return persistence.Order{
		ID:        id,
		Customer:  "alice",
		Status:    status,
		Version:   version,
		Snapshot:  []byte(fmt.Sprintf(`{"id":%q,"v":%d}`, id, version)),
		CreatedAt: base,
		UpdatedAt: base.Add(time.Duration(version) * time.Second),
	}
}

func event(id string, version int64, from, to, node string) persistence.Event {
	return persistence.Event{
		OrderID:        id,
		Version:        version,
		Type:           "To" + to,
		From:           from,
		To:             to,
		IdempotencyKey: fmt.Sprintf("key-%s-%d-%s", id, version, node),
		Node:           node,
		At:             base.Add(time.Duration(version) * time.Second),
		Payload:        []byte(fmt.Sprintf(`{"v":%d}`, version)),
	}
}

// transition is the write moving id from version v-1 to v.
func transition(id string, v int64, node string) persistence.Write {
	return persistence.Write{
		Order:           order(id, v, fmt.Sprintf("S%d", v)),
		ExpectedVersion: v - 1,
		Events:          []persistence.Event{event(id, v, fmt.Sprintf("S%d", v-1), fmt.Sprintf("S%d", v), node)},
	}
}

func mustWrite(t *testing.T, s persistence.Store, w persistence.Write) {
	t.Helper()
	if err := s.WriteOrder(context.Background(), w); err != nil {
		t.Fatalf("WriteOrder(%s, expected %d): %v", w.Order.ID, w.ExpectedVersion, err)
	}
}

func mustLoad(t *testing.T, s persistence.Store, id string) persistence.Order {
	t.Helper()
	o, err := s.LoadOrder(context.Background(), id)
	if err != nil {
		t.Fatalf("LoadOrder(%s): %v", id, err)
	}
	return o
}

func mustEvents(t *testing.T, s persistence.Store, id string) []persistence.Event {
	t.Helper()
	evs, err := s.OrderEvents(context.Background(), id)
	if err != nil {
		t.Fatalf("OrderEvents(%s): %v", id, err)
	}
	return evs
}

func sameTime(a, b time.Time) bool {
	return a.Equal(b) && a.Location() == b.Location()
}

func diffOrder(got, want persistence.Order) string {
	var d []string
	if got.ID != want.ID || got.Customer != want.Customer || got.Status != want.Status || got.Version != want.Version {
		d = append(d, fmt.Sprintf("row %s/%s/%s/v%d, want %s/%s/%s/v%d", got.ID, got.Customer, got.Status, got.Version,
			want.ID, want.Customer, want.Status, want.Version))
	}
	if string(got.Snapshot) != string(want.Snapshot) {
		d = append(d, fmt.Sprintf("snapshot %q, want %q", got.Snapshot, want.Snapshot))
	}
	for _, f := range []struct {
		name      string
		got, want time.Time
	}{
		{"PaymentDeadline", got.PaymentDeadline, want.PaymentDeadline},
		{"CreatedAt", got.CreatedAt, want.CreatedAt},
		{"UpdatedAt", got.UpdatedAt, want.UpdatedAt},
	} {
		if !sameTime(f.got, f.want) {
			d = append(d, fmt.Sprintf("%s %v, want %v", f.name, f.got, f.want))
		}
	}
	return strings.Join(d, "; ")
}

func diffEvents(got, want []persistence.Event) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d events, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.OrderID != w.OrderID || g.Version != w.Version || g.Type != w.Type || g.From != w.From || g.To != w.To ||
			g.IdempotencyKey != w.IdempotencyKey || g.Node != w.Node || !sameTime(g.At, w.At) ||
			string(g.Payload) != string(w.Payload) {
			return fmt.Sprintf("event %d = %+v, want %+v", i, g, w)
		}
	}
	return ""
}

func testCreateAndLoad(t *testing.T, s persistence.Store) {
	w := transition("o1", 1, "n1")
	w.Order.PaymentDeadline = base.Add(time.Hour)
	mustWrite(t, s, w)
	if d := diffOrder(mustLoad(t, s, "o1"), w.Order); d != "" {
		t.Error(d)
	}
	if d := diffEvents(mustEvents(t, s, "o1"), w.Events); d != "" {
		t.Error(d)
	}
	// A write may carry several events, and none.
	multi := persistence.Write{
		Order:           order("o2", 2, "S2"),
		ExpectedVersion: 0,
		Events:          []persistence.Event{event("o2", 1, "", "S1", "n1"), event("o2", 2, "S1", "S2", "n1")},
	}
	mustWrite(t, s, multi)
	if d := diffEvents(mustEvents(t, s, "o2"), multi.Events); d != "" {
		t.Error(d)
	}
	mustWrite(t, s, persistence.Write{Order: order("o3", 1, "S1")})
	if evs := mustEvents(t, s, "o3"); len(evs) != 0 {
		t.Errorf("OrderEvents(o3) = %d events, want none", len(evs))
	}
}

func testConflictingCreate(t *testing.T, s persistence.Store) {
	first := transition("o1", 1, "n1")
	mustWrite(t, s, first)
	second := transition("o1", 1, "n2")
	second.Order.Customer = "mallory"
	if err := s.WriteOrder(context.Background(), second); !errors.Is(err, persistence.ErrConflict) {
		t.Fatalf("second create: err = %v, want ErrConflict", err)
	}
	if d := diffOrder(mustLoad(t, s, "o1"), first.Order); d != "" {
		t.Error("order changed by conflicting create:", d)
	}
	if d := diffEvents(mustEvents(t, s, "o1"), first.Events); d != "" {
		t.Error("events changed by conflicting create:", d)
	}
}

func testUpdate(t *testing.T, s persistence.Store) {
	ctx := context.Background()
	w1 := transition("o1", 1, "n1")
	mustWrite(t, s, w1)
	w2 := transition("o1", 2, "n1")
	w2.Order.PaymentDeadline = base.Add(time.Minute)
	w2.Order.CreatedAt = base.Add(time.Hour) // ignored: creation time never changes
	mustWrite(t, s, w2)
	want := w2.Order
	want.CreatedAt = w1.Order.CreatedAt
	if d := diffOrder(mustLoad(t, s, "o1"), want); d != "" {
		t.Error(d)
	}

	tests := []struct {
		name     string
		expected int64
	}{
		{"stale", 1},
		{"ahead", 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := transition("o1", tt.expected+1, "n2")
			w.Order.Status = "WRONG"
			if err := s.WriteOrder(ctx, w); !errors.Is(err, persistence.ErrConflict) {
				t.Fatalf("err = %v, want ErrConflict", err)
			}
			if d := diffOrder(mustLoad(t, s, "o1"), want); d != "" {
				t.Error("order changed by conflicting update:", d)
			}
			if d := diffEvents(mustEvents(t, s, "o1"), append(slices.Clone(w1.Events), w2.Events...)); d != "" {
				t.Error("events changed by conflicting update:", d)
			}
		})
	}
	t.Run("missing order", func(t *testing.T) {
		if err := s.WriteOrder(ctx, transition("nope", 4, "n1")); !errors.Is(err, persistence.ErrConflict) {
			t.Fatalf("err = %v, want ErrConflict", err)
		}
		if _, err := s.LoadOrder(ctx, "nope"); !errors.Is(err, persistence.ErrNotFound) {
			t.Fatalf("LoadOrder after failed update: err = %v, want ErrNotFound", err)
		}
	})
	t.Run("clear deadline", func(t *testing.T) {
		w3 := transition("o1", 3, "n1")
		mustWrite(t, s, w3)
		if got := mustLoad(t, s, "o1").PaymentDeadline; !got.IsZero() {
			t.Errorf("PaymentDeadline = %v, want zero", got)
		}
	})
}

func testInvalidWrites(t *testing.T, s persistence.Store) {
	ctx := context.Background()
	tests := []struct {
		name string
		w    persistence.Write
	}{
		{"empty id", persistence.Write{Order: order("", 1, "S1")}},
		{"negative expected", persistence.Write{Order: order("o1", 1, "S1"), ExpectedVersion: -1}},
		{"version below expected", persistence.Write{Order: order("o1", 1, "S1"), ExpectedVersion: 2}},
		{"in place with events", persistence.Write{Order: order("o1", 1, "S1"), ExpectedVersion: 1,
			Events: []persistence.Event{event("o1", 1, "", "S1", "n1")}}},
		{"event version too high", persistence.Write{Order: order("o1", 1, "S1"),
			Events: []persistence.Event{event("o1", 2, "", "S1", "n1")}}},
		{"event version too low", persistence.Write{Order: order("o1", 1, "S1"),
			Events: []persistence.Event{event("o1", 0, "", "S1", "n1")}}},
		{"repeated event version", persistence.Write{Order: order("o1", 2, "S1"),
			Events: []persistence.Event{event("o1", 1, "", "S1", "n1"), event("o1", 1, "", "S1", "n1")}}},
		{"event of another order", persistence.Write{Order: order("o1", 1, "S1"),
			Events: []persistence.Event{event("o2", 1, "", "S1", "n1")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.WriteOrder(ctx, tt.w)
			if !errors.Is(err, persistence.ErrInvalid) || errors.Is(err, persistence.ErrConflict) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			if _, err := s.LoadOrder(ctx, "o1"); !errors.Is(err, persistence.ErrNotFound) {
				t.Fatalf("LoadOrder after invalid write: err = %v, want ErrNotFound", err)
			}
		})
	}
}

// testInvalidContent sends writes whose text a database cannot keep (NUL, invalid UTF-8,
// in any string column) together with 200 good writes, as concurrent grains would: each
// bad write fails alone with ErrInvalid and leaves nothing behind, and every good write
// succeeds. Both stores refuse the same strings, so either behaves like the other.
func testInvalidContent(t *testing.T, s persistence.Store) {
	ctx := context.Background()
	bad := map[string]func(w *persistence.Write){
		"nul-in-key":        func(w *persistence.Write) { w.Events[0].IdempotencyKey = "k\x00" },
		"utf8-in-key":       func(w *persistence.Write) { w.Events[0].IdempotencyKey = "k\xff" },
		"nul-in-customer":   func(w *persistence.Write) { w.Order.Customer = "\x00" },
		"utf8-in-status":    func(w *persistence.Write) { w.Order.Status = "S\xc3" },
		"nul-in-event-type": func(w *persistence.Write) { w.Events[0].Type = "To\x00" },
		"utf8-in-node":      func(w *persistence.Write) { w.Events[0].Node = "\xfe" },
		"nul-in-id":         func(w *persistence.Write) { w.Order.ID += "\x00"; w.Events[0].OrderID = w.Order.ID },
	}
	const good = 200
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(map[string]error, good+len(bad))
	var mu sync.Mutex
	send := func(id string, w persistence.Write) {
		defer wg.Done()
		<-start
		err := s.WriteOrder(ctx, w)
		mu.Lock()
		errs[id] = err
		mu.Unlock()
	}
	for i := range good {
		id := fmt.Sprintf("good-%03d", i)
		wg.Add(1)
		go send(id, transition(id, 1, "n1"))
	}
	for id, spoil := range bad {
		w := transition(id, 1, "n1")
		spoil(&w)
		wg.Add(1)
		go send(id, w)
	}
	close(start)
	wg.Wait()
	for id := range bad {
		if err := errs[id]; !errors.Is(err, persistence.ErrInvalid) || errors.Is(err, persistence.ErrConflict) {
			t.Errorf("%s: err = %v, want ErrInvalid", id, err)
		}
		// (The id "nul-in-id\x00" cannot even be asked for from PostgreSQL; its valid
		// prefix stands for it.)
		if _, err := s.LoadOrder(ctx, id); !errors.Is(err, persistence.ErrNotFound) {
			t.Errorf("%s: LoadOrder = %v, want ErrNotFound", id, err)
		}
		if evs := mustEvents(t, s, id); len(evs) != 0 {
			t.Errorf("%s: %d events stored", id, len(evs))
		}
	}
	for i := range good {
		id := fmt.Sprintf("good-%03d", i)
		if err := errs[id]; err != nil {
			t.Errorf("%s failed beside the bad writes: %v", id, err)
			continue
		}
		if o := mustLoad(t, s, id); o.Version != 1 {
			t.Errorf("%s at version %d", id, o.Version)
		}
	}
	if err := s.PutUser(ctx, persistence.User{Username: "nul\x00", Role: "shopper"}); !errors.Is(err, persistence.ErrInvalid) {
		t.Errorf("PutUser with NUL in the name: err = %v, want ErrInvalid", err)
	}
	// Valid UTF-8 beyond ASCII is kept byte for byte.
	w := transition("zoë", 1, "n1")
	w.Order.Customer, w.Events[0].IdempotencyKey = "zoë ☕", "ключ"
	mustWrite(t, s, w)
	if o := mustLoad(t, s, "zoë"); o.Customer != "zoë ☕" {
		t.Errorf("customer %q, want %q", o.Customer, "zoë ☕")
	}
	if d := diffEvents(mustEvents(t, s, "zoë"), w.Events); d != "" {
		t.Error(d)
	}
}

// testEventByKey: the newest event an order recorded with a key, and ErrNotFound for a
// key the order never saw (even if another order did).
func testEventByKey(t *testing.T, s persistence.Store) {
	ctx := context.Background()
	w1, w2, w3 := transition("o1", 1, "n1"), transition("o1", 2, "n1"), transition("o1", 3, "n1")
	w3.Events[0].IdempotencyKey = w1.Events[0].IdempotencyKey // a key reused long after
	for _, w := range []persistence.Write{w1, w2, w3, transition("o2", 1, "n1")} {
		mustWrite(t, s, w)
	}
	for _, tt := range []struct {
		key  string
		want persistence.Event
	}{
		{w2.Events[0].IdempotencyKey, w2.Events[0]},
		{w1.Events[0].IdempotencyKey, w3.Events[0]},
	} {
		got, err := s.EventByKey(ctx, "o1", tt.key)
		if err != nil {
			t.Fatalf("EventByKey(o1, %s): %v", tt.key, err)
		}
		if d := diffEvents([]persistence.Event{got}, []persistence.Event{tt.want}); d != "" {
			t.Errorf("EventByKey(o1, %s): %s", tt.key, d)
		}
	}
	for _, tt := range []struct{ id, key string }{
		{"o1", "never"},
		{"o1", transition("o2", 1, "n1").Events[0].IdempotencyKey},
		{"missing", w2.Events[0].IdempotencyKey},
	} {
		if _, err := s.EventByKey(ctx, tt.id, tt.key); !errors.Is(err, persistence.ErrNotFound) {
			t.Errorf("EventByKey(%s, %s): err = %v, want ErrNotFound", tt.id, tt.key, err)
		}
	}
}

// testOrderEventsAfter: the events above a version, in order, and only those of the order
// asked for.
func testOrderEventsAfter(t *testing.T, s persistence.Store) {
	ctx := context.Background()
	var all []persistence.Event
	for v := int64(1); v <= 5; v++ {
		w := transition("o1", v, "n1")
		mustWrite(t, s, w)
		all = append(all, w.Events...)
		mustWrite(t, s, transition("o2", v, "n1")) // a neighbour in the key range
	}
	for _, tt := range []struct {
		after int64
		want  []persistence.Event
	}{
		{-1, all}, {0, all}, {1, all[1:]}, {3, all[3:]}, {4, all[4:]}, {5, nil}, {99, nil},
	} {
		evs, err := s.OrderEventsAfter(ctx, "o1", tt.after)
		if err != nil {
			t.Fatalf("OrderEventsAfter(o1, %d): %v", tt.after, err)
		}
		if d := diffEvents(evs, tt.want); d != "" {
			t.Errorf("OrderEventsAfter(o1, %d): %s", tt.after, d)
		}
	}
	if evs, err := s.OrderEventsAfter(ctx, "missing", 0); err != nil || len(evs) != 0 {
		t.Errorf("OrderEventsAfter(missing, 0) = %v, %v; want none, nil", evs, err)
	}
}

func testNotFound(t *testing.T, s persistence.Store) {
	ctx := context.Background()
	if _, err := s.LoadOrder(ctx, "missing"); !errors.Is(err, persistence.ErrNotFound) {
		t.Errorf("LoadOrder: err = %v, want ErrNotFound", err)
	}
	evs, err := s.OrderEvents(ctx, "missing")
	if err != nil || len(evs) != 0 {
		t.Errorf("OrderEvents = %v, %v; want none, nil", evs, err)
	}
	page, err := s.ListOrders(ctx, persistence.OrderQuery{})
	if err != nil || len(page.Orders) != 0 || page.NextCursor != "" {
		t.Errorf("ListOrders on empty store = %+v, %v", page, err)
	}
}

func testTimes(t *testing.T, s persistence.Store) {
	loc := time.FixedZone("UTC+5:30", 5*3600+1800)
	created := time.Date(2026, 1, 2, 3, 4, 5, 123456789, loc)
	w := transition("o1", 1, "n1")
	w.Order.CreatedAt = created
	w.Order.UpdatedAt = created.Add(time.Nanosecond)
	w.Order.PaymentDeadline = created.Add(200 * time.Nanosecond)
	w.Events[0].At = created.Add(1100 * time.Nanosecond)
	mustWrite(t, s, w)
	micro := func(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }
	o := mustLoad(t, s, "o1")
	for _, f := range []struct {
		name      string
		got, want time.Time
	}{
		{"CreatedAt", o.CreatedAt, micro(created)},
		{"UpdatedAt", o.UpdatedAt, micro(created)},
		{"PaymentDeadline", o.PaymentDeadline, micro(created)},
		{"event At", mustEvents(t, s, "o1")[0].At, micro(created).Add(time.Microsecond)},
	} {
		if !sameTime(f.got, f.want) {
			t.Errorf("%s = %v, want %v (UTC, microseconds)", f.name, f.got, f.want)
		}
	}

	// Zero times are filled in by the store with the current time.
	zero := persistence.Write{Order: order("o2", 1, "S1"), Events: []persistence.Event{event("o2", 1, "", "S1", "n1")}}
	zero.Order.CreatedAt, zero.Order.UpdatedAt, zero.Events[0].At = time.Time{}, time.Time{}, time.Time{}
	before := time.Now().Add(-time.Second)
	mustWrite(t, s, zero)
	o2 := mustLoad(t, s, "o2")
	at := mustEvents(t, s, "o2")[0].At
	for _, got := range []time.Time{o2.CreatedAt, o2.UpdatedAt, at} {
		if got.Before(before) || got.Location() != time.UTC {
			t.Errorf("defaulted time = %v, want now in UTC", got)
		}
	}
}

// testConcurrentWriters has many orders advanced concurrently, as grains do: every write
// must succeed, and every history must be complete and contiguous.
func testConcurrentWriters(t *testing.T, s persistence.Store) {
	const orders, transitions = 200, 20
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, orders)
	for i := range orders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("order-%03d", i)
			for v := int64(1); v <= transitions; v++ {
				if err := s.WriteOrder(ctx, transition(id, v, "n1")); err != nil {
					errs <- fmt.Errorf("%s v%d: %w", id, v, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i := range orders {
		id := fmt.Sprintf("order-%03d", i)
		if o := mustLoad(t, s, id); o.Version != transitions || o.Status != fmt.Sprintf("S%d", transitions) {
			t.Errorf("%s at version %d status %s, want %d", id, o.Version, o.Status, transitions)
		}
		evs := mustEvents(t, s, id)
		if len(evs) != transitions {
			t.Errorf("%s has %d events, want %d", id, len(evs), transitions)
			continue
		}
		for j, e := range evs {
			if e.Version != int64(j+1) || e.To != fmt.Sprintf("S%d", j+1) {
				t.Errorf("%s event %d is version %d to %s", id, j, e.Version, e.To)
			}
		}
	}
}

// testRacingSameOrder models duplicate activations: several writers race on each order
// with the same expected version. Exactly one wins each round, the losers get
// ErrConflict, and uncontended orders written at the same time are unaffected.
func testRacingSameOrder(t *testing.T, s persistence.Store) {
	const hot, racers, rounds, calm = 10, 6, 8, 20
	ctx := context.Background()
	type outcome struct {
		id    string
		racer int
		err   error
	}
	for round := int64(1); round <= rounds; round++ {
		var wg sync.WaitGroup
		results := make(chan outcome, hot*racers+calm)
		start := make(chan struct{})
		for h := range hot {
			for r := range racers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					id := fmt.Sprintf("hot-%d", h)
					<-start
					results <- outcome{id, r, s.WriteOrder(ctx, transition(id, round, fmt.Sprintf("racer-%d", r)))}
				}()
			}
		}
		for c := range calm {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := fmt.Sprintf("calm-%d", c)
				<-start
				results <- outcome{id, -1, s.WriteOrder(ctx, transition(id, round, "calm"))}
			}()
		}
		close(start)
		wg.Wait()
		close(results)
		winners := make(map[string]int)
		for res := range results {
			switch {
			case res.err == nil:
				winners[res.id]++
			case res.racer < 0:
				t.Errorf("round %d: uncontended %s failed: %v", round, res.id, res.err)
			case !errors.Is(res.err, persistence.ErrConflict):
				t.Errorf("round %d: %s racer %d: err = %v, want nil or ErrConflict", round, res.id, res.racer, res.err)
			}
		}
		for h := range hot {
			id := fmt.Sprintf("hot-%d", h)
			if winners[id] != 1 {
				t.Fatalf("round %d: %s had %d winners, want exactly 1", round, id, winners[id])
			}
		}
	}
	for h := range hot {
		id := fmt.Sprintf("hot-%d", h)
		o := mustLoad(t, s, id)
		evs := mustEvents(t, s, id)
		if o.Version != rounds || len(evs) != rounds {
			t.Errorf("%s: version %d with %d events, want %d", id, o.Version, len(evs), rounds)
		}
		for j, e := range evs {
			if e.Version != int64(j+1) {
				t.Errorf("%s: event %d has version %d", id, j, e.Version)
			}
		}
	}
}

func testListOrders(t *testing.T, s persistence.Store) {
	ctx := context.Background()
	customers := []string{"alice", "bob", "carol"}
	statuses := []string{"CREATED", "PAID", "SHIPPED", "CLOSED"}
	var all []persistence.Order
	for i := range 61 {
		o := order(fmt.Sprintf("o%02d", i), 1, statuses[i%len(statuses)])
		o.Customer = customers[i%len(customers)]
		// Groups of three share a creation time, so ties must be broken by id.
		o.CreatedAt = base.Add(time.Duration(i/3) * time.Millisecond)
		mustWrite(t, s, persistence.Write{Order: o})
		all = append(all, o)
	}
	slices.SortFunc(all, func(a, b persistence.Order) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	filter := func(customer, status string) []string {
		var ids []string
		for _, o := range all {
			if (customer == "" || o.Customer == customer) && (status == "" || o.Status == status) {
				ids = append(ids, o.ID)
			}
		}
		return ids
	}

	tests := []struct {
		name             string
		customer, status string
		limit            int
		wantPageSize     int
	}{
		{"all default limit", "", "", 0, 50},
		{"all one per page", "", "", 1, 1},
		{"all pages of 7", "", "", 7, 7},
		{"all in one page", "", "", 1000, 1000},
		{"clamped above max", "", "", 5000, 1000},
		{"customer", "bob", "", 4, 4},
		{"status", "", "PAID", 3, 3},
		{"customer and status", "alice", "CLOSED", 2, 2},
		{"no match", "dave", "", 10, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := filter(tt.customer, tt.status)
			var got []string
			cursor := ""
			for pages := 0; ; pages++ {
				if pages > len(all)+1 {
					t.Fatal("pagination does not end")
				}
				page, err := s.ListOrders(ctx, persistence.OrderQuery{
					Customer: tt.customer, Status: tt.status, Cursor: cursor, Limit: tt.limit})
				if err != nil {
					t.Fatalf("ListOrders page %d: %v", pages, err)
				}
				if len(page.Orders) > tt.wantPageSize {
					t.Fatalf("page %d has %d orders, limit %d", pages, len(page.Orders), tt.wantPageSize)
				}
				if page.NextCursor != "" && len(page.Orders) != tt.wantPageSize {
					t.Fatalf("page %d has %d orders and a next cursor; want full pages before the last", pages, len(page.Orders))
				}
				for _, o := range page.Orders {
					got = append(got, o.ID)
				}
				if page.NextCursor == "" {
					break
				}
				cursor = page.NextCursor
			}
			if !slices.Equal(got, want) {
				t.Errorf("listed %v\nwant   %v", got, want)
			}
		})
	}

	t.Run("rows are complete", func(t *testing.T) {
		page, err := s.ListOrders(ctx, persistence.OrderQuery{Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Orders) != 1 {
			t.Fatalf("got %d orders, want 1", len(page.Orders))
		}
		if d := diffOrder(page.Orders[0], all[0]); d != "" {
			t.Error(d)
		}
	})
}

func testBadCursor(t *testing.T, s persistence.Store) {
	tests := []struct{ name, cursor string }{
		{"not base64", "!!!not-a-cursor"},
		{"too short", "AQ"},
		{"unknown format version", "CQAAAAAAAAABbzE"},
		{"no id", "AQAAAAAAAAAB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.ListOrders(context.Background(), persistence.OrderQuery{Cursor: tt.cursor})
			if !errors.Is(err, persistence.ErrBadCursor) {
				t.Errorf("err = %v, want ErrBadCursor", err)
			}
		})
	}
}

func testDuePayments(t *testing.T, s persistence.Store) {
	ctx := context.Background()
	now := base.Add(24 * time.Hour)
	deadlines := map[string]time.Duration{
		"late-2h": -2 * time.Hour, "late-1h": -time.Hour, "exactly": 0, "later-1h": time.Hour,
	}
	for id, d := range deadlines {
		w := transition(id, 1, "n1")
		w.Order.PaymentDeadline = now.Add(d)
		mustWrite(t, s, w)
	}
	mustWrite(t, s, transition("no-deadline", 1, "n1"))
	due := func(t *testing.T, at time.Time, after persistence.Due, limit int) []string {
		t.Helper()
		got, err := s.DuePayments(ctx, at, after, limit)
		if err != nil {
			t.Fatal(err)
		}
		ids := []string{}
		for _, d := range got {
			if want := now.Add(deadlines[d.OrderID]); !d.Deadline.Equal(want) || d.Deadline.Location() != time.UTC {
				t.Errorf("deadline of %s = %v, want %v in UTC", d.OrderID, d.Deadline, want)
			}
			ids = append(ids, d.OrderID)
		}
		return ids
	}

	tests := []struct {
		name  string
		now   time.Time
		after persistence.Due
		limit int
		want  []string
	}{
		{"all due, earliest first", now, persistence.Due{}, 10, []string{"late-2h", "late-1h", "exactly"}},
		{"limited", now, persistence.Due{}, 2, []string{"late-2h", "late-1h"}},
		{"nothing due yet", now.Add(-3 * time.Hour), persistence.Due{}, 10, []string{}},
		{"everything due later", now.Add(2 * time.Hour), persistence.Due{}, 10, []string{"late-2h", "late-1h", "exactly", "later-1h"}},
		{"after a due one", now, persistence.Due{OrderID: "late-2h", Deadline: now.Add(-2 * time.Hour)}, 10, []string{"late-1h", "exactly"}},
		{"after the last", now, persistence.Due{OrderID: "exactly", Deadline: now}, 10, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := due(t, tt.now, tt.after, tt.limit); !slices.Equal(got, tt.want) {
				t.Errorf("DuePayments = %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("disarmed deadline", func(t *testing.T) {
		mustWrite(t, s, transition("late-2h", 2, "n1")) // no deadline any more
		if got, want := due(t, now, persistence.Due{}, 10), []string{"late-1h", "exactly"}; !slices.Equal(got, want) {
			t.Errorf("DuePayments = %v, want %v", got, want)
		}
	})
	t.Run("pages through equal deadlines by id", func(t *testing.T) {
		at := now.Add(-30 * time.Minute)
		var want []string
		for i := range 5 {
			id := fmt.Sprintf("tie-%d", i)
			w := transition(id, 1, "n1")
			w.Order.PaymentDeadline = at
			mustWrite(t, s, w)
			deadlines[id] = -30 * time.Minute
			want = append(want, id)
		}
		want = append(want, "exactly")
		var got []string
		after := persistence.Due{OrderID: "late-1h", Deadline: now.Add(-time.Hour)}
		for range 10 {
			page, err := s.DuePayments(ctx, now, after, 2)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			for _, d := range page {
				got = append(got, d.OrderID)
			}
			after = page[len(page)-1]
		}
		if !slices.Equal(got, want) {
			t.Errorf("pages = %v, want %v", got, want)
		}
	})
}

func testUsers(t *testing.T, s persistence.Store) {
	ctx := context.Background()
	if _, err := s.GetUser(ctx, "ann"); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("GetUser before PutUser: err = %v, want ErrNotFound", err)
	}
	u := persistence.User{Username: "ann", PasswordHash: "$2a$10$hash", Role: "shopper", CreatedAt: base.Add(123 * time.Nanosecond)}
	if err := s.PutUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetUser(ctx, "ann")
	if err != nil {
		t.Fatal(err)
	}
	u.CreatedAt = base
	if got != u {
		t.Errorf("GetUser = %+v, want %+v", got, u)
	}
	replaced := persistence.User{Username: "ann", PasswordHash: "$2a$10$other", Role: "operator"}
	if err := s.PutUser(ctx, replaced); err != nil {
		t.Fatal(err)
	}
	got, err = s.GetUser(ctx, "ann")
	if err != nil {
		t.Fatal(err)
	}
	replaced.CreatedAt = base // creation time is kept on replace
	if got != replaced {
		t.Errorf("after replace GetUser = %+v, want %+v", got, replaced)
	}
	if err := s.PutUser(ctx, persistence.User{}); err == nil {
		t.Error("PutUser with empty username succeeded")
	}
}

// testClose checks that Close lets racing writes finish (each either succeeds or reports
// ErrClosed, nothing else) and that everything fails with ErrClosed afterwards.
func testClose(t *testing.T, s persistence.Store) {
	ctx := context.Background()
	mustWrite(t, s, transition("o1", 1, "n1"))
	const writers = 50
	var wg sync.WaitGroup
	errs := make([]error, writers)
	start := make(chan struct{})
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = s.WriteOrder(ctx, transition(fmt.Sprintf("racing-%d", i), 1, "n1"))
		}()
	}
	close(start)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil && !errors.Is(err, persistence.ErrClosed) {
			t.Errorf("write %d racing Close: err = %v, want nil or ErrClosed", i, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.WriteOrder(ctx, transition("o1", 2, "n1")); !errors.Is(err, persistence.ErrClosed) {
		t.Errorf("WriteOrder after Close: err = %v, want ErrClosed", err)
	}
	if _, err := s.LoadOrder(ctx, "o1"); !errors.Is(err, persistence.ErrClosed) {
		t.Errorf("LoadOrder after Close: err = %v, want ErrClosed", err)
	}
	if err := s.PutUser(ctx, persistence.User{Username: "ann"}); !errors.Is(err, persistence.ErrClosed) {
		t.Errorf("PutUser after Close: err = %v, want ErrClosed", err)
	}
}

// testObserveBatches: a store that reports its batches (for metrics) reports every write
// exactly once, in batches of at least one.
func testObserveBatches(t *testing.T, s persistence.Store) {
	o, ok := s.(interface {
		ObserveBatches(persistence.BatchObserver)
	})
	if !ok {
		t.Skip("the store does not report batches")
	}
	var mu sync.Mutex
	writes, batches := 0, 0
	o.ObserveBatches(func(n int, took time.Duration, err error) {
		mu.Lock()
		defer mu.Unlock()
		if n < 1 || took < 0 || err != nil {
			t.Errorf("batch of %d took %s: %v", n, took, err)
		}
		writes += n
		batches++
	})
	const orders = 40
	var wg sync.WaitGroup
	for i := range orders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.WriteOrder(context.Background(), transition(fmt.Sprintf("obs-%d", i), 1, "n1")); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	o.ObserveBatches(nil)
	mu.Lock()
	defer mu.Unlock()
	if writes != orders || batches < 1 || batches > orders {
		t.Fatalf("observed %d writes in %d batches, want %d writes", writes, batches, orders)
	}
}

// testRewriteInPlace: a write without events at the stored version replaces the row (its
// snapshot and deadline) and adds no event; at a stale version it is a conflict.
func testRewriteInPlace(t *testing.T, s persistence.Store) {
	ctx := context.Background()
	first := persistence.Write{Order: order("o1", 1, "S1"), Events: []persistence.Event{event("o1", 1, "", "S1", "n1")}}
	if err := s.WriteOrder(ctx, first); err != nil {
		t.Fatal(err)
	}
	again := order("o1", 1, "S1")
	again.Snapshot = []byte("rewritten")
	again.PaymentDeadline = time.Time{}
	if err := s.WriteOrder(ctx, persistence.Write{Order: again, ExpectedVersion: 1}); err != nil {
		t.Fatalf("rewrite in place: %v", err)
	}
	got, err := s.LoadOrder(ctx, "o1")
	if err != nil || got.Version != 1 || string(got.Snapshot) != "rewritten" {
		t.Fatalf("after the rewrite: %+v, %v", got, err)
	}
	if events, err := s.OrderEvents(ctx, "o1"); err != nil || len(events) != 1 {
		t.Fatalf("events after the rewrite: %d, %v; want 1", len(events), err)
	}
	stale := order("o1", 2, "S1")
	if err := s.WriteOrder(ctx, persistence.Write{Order: stale, ExpectedVersion: 2}); !errors.Is(err, persistence.ErrConflict) {
		t.Fatalf("rewrite at a version the order does not have: %v, want ErrConflict", err)
	}
}
