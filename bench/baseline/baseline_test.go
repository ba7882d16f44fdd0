package baseline_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"
	"github.com/ordermesh/ordermesh/actors/orderpb"

	"github.com/ordermesh/ordermesh/bench/baseline"
	"github.com/ordermesh/ordermesh/edge"
	"github.com/ordermesh/ordermesh/persistence"
	"github.com/ordermesh/ordermesh/persistence/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// The service must fit behind the edge exactly where an ordermesh node does.
var (
	_ order.Service = (*baseline.Service)(nil)
	_ edge.Store    = (*baseline.Service)(nil)
)

var (
	alice = order.Principal{Subject: "alice", Role: order.RoleShopper}
	bob   = order.Principal{Subject: "bob", Role: order.RoleShopper}
	olga  = order.Principal{Subject: "olga", Role: order.RoleOperator}
	timer = order.Principal{Subject: "sweeper", Role: order.RoleSystem}
)

var teaLines = []order.Line{
	{SKU: "tea-sencha", Name: "Sencha", Qty: 2, UnitPrice: 1290},
	{SKU: "mug-stoneware", Name: "Mug", Qty: 1, UnitPrice: 1850},
}

// clock is a test clock that moves only when told to.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock {
	return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// open returns a service on a fresh database, with the background sweeper off and a test
// clock, unless opts say otherwise.
func open(t testing.TB, opts baseline.Options) (*baseline.Service, *clock) {
	t.Helper()
	return openAt(t, pgtest.URL(t), opts)
}

// openAt is open on the database at url, which other services may share.
func openAt(t testing.TB, url string, opts baseline.Options) (*baseline.Service, *clock) {
	t.Helper()
	clk := newClock()
	if opts.Now == nil {
		opts.Now = clk.Now
	}
	if opts.SweepInterval == 0 {
		opts.SweepInterval = -1
	}
	s, err := baseline.Open(context.Background(), url, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	// Every test's orders find stock: the inventory has its own tests (stock_test.go).
	for _, sku := range []string{"tea-sencha", "mug-stoneware", "kettle-gooseneck"} {
		adjust(t, s, sku, plenty, "setup-"+sku)
	}
	return s, clk
}

// do runs one command and fails the test on an error.
func do(t testing.TB, s *baseline.Service, c order.Command) order.Result {
	t.Helper()
	res, err := s.Execute(context.Background(), c, "test")
	if err != nil {
		t.Fatalf("%s %s (key %q) by %s: %v", c.Type, c.OrderID, c.Key, c.By.Subject, err)
	}
	return res
}

// create creates an order of alice's, or by's, with key.
func create(t testing.TB, s *baseline.Service, by order.Principal, key string) order.View {
	t.Helper()
	return do(t, s, createCmd(by, key, teaLines)).View
}

func createCmd(by order.Principal, key string, lines []order.Line) order.Command {
	return order.Command{Type: order.CmdCreate, OrderID: order.OrderIDFor(by.Subject, key), Key: key, By: by,
		Lines: lines, Currency: "EUR"}
}

func cmd(typ order.CommandType, id, key string, by order.Principal) order.Command {
	return order.Command{Type: typ, OrderID: id, Key: key, By: by}
}

// wantCode runs c and checks that it fails with code (and message, if not empty).
func wantCode(t *testing.T, s *baseline.Service, c order.Command, code order.Code, message string) {
	t.Helper()
	_, err := s.Execute(context.Background(), c, "test")
	if got := order.ErrorCode(err); got != code {
		t.Fatalf("%s on %s by %s: code %d (%v), want %d", c.Type, c.OrderID, c.By.Subject, got, err, code)
	}
	if message != "" && order.ErrorMessage(err) != message {
		t.Fatalf("%s on %s: message %q, want %q", c.Type, c.OrderID, order.ErrorMessage(err), message)
	}
}

// checkHistory verifies what the bench checker verifies: versions 1..n without gaps, each
// event a legal transition from the previous state, no key applied twice, and the order
// row agreeing with the last event. It returns the events.
func checkHistory(t *testing.T, s *baseline.Service, id string) []persistence.Event {
	t.Helper()
	ctx := context.Background()
	events, err := s.OrderEvents(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	from := order.StatusNone
	keys := map[string]bool{}
	for i, e := range events {
		if e.Version != int64(i+1) {
			t.Fatalf("order %s: event %d has version %d", id, i, e.Version)
		}
		if order.Status(e.From) != from || !legal(from, order.EventType(e.Type), order.Status(e.To)) {
			t.Fatalf("order %s: event %d %s %s→%s is not legal after %s", id, e.Version, e.Type, e.From, e.To, from)
		}
		if keys[e.IdempotencyKey] {
			t.Fatalf("order %s: key %q applied twice", id, e.IdempotencyKey)
		}
		keys[e.IdempotencyKey] = true
		if !json.Valid(e.Payload) {
			t.Fatalf("order %s: event %d payload %q is not JSON", id, e.Version, e.Payload)
		}
		from = order.Status(e.To)
	}
	row, err := s.LoadOrder(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if row.Version != int64(len(events)) || row.Status != string(from) {
		t.Fatalf("order %s: row at version %d %s, events end at %d %s", id, row.Version, row.Status, len(events), from)
	}
	o, err := orderpb.DecodeSnapshot(row.Snapshot)
	if err != nil || o.Version != uint64(row.Version) || string(o.Status) != row.Status {
		t.Fatalf("order %s: snapshot %+v does not match row %+v (%v)", id, o, row, err)
	}
	return events
}

// legal is order.Legal plus the transitions of issue 9 that package order may not have
// yet (the contract's names): a create reserves its stock or is rejected, and a CREATED
// order that is never paid expires.
func legal(from order.Status, e order.EventType, to order.Status) bool {
	return order.Legal(from, e, to)
}

func statuses(events []persistence.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.To
	}
	return out
}

func TestLifecycleToDelivered(t *testing.T) {
	s, clk := open(t, baseline.Options{PaymentTimeout: 10 * time.Minute, Node: "b1"})
	v := create(t, s, alice, "k-create")
	if v.Status != order.StatusCreated || v.Version != 2 || v.Total != 2*1290+1850 || v.Customer != "alice" ||
		len(v.Lines) != 2 || v.Currency != "EUR" {
		t.Fatalf("created %+v", v)
	}
	id := v.ID

	clk.Advance(time.Second)
	paying := do(t, s, cmd(order.CmdSubmitPayment, id, "k-pay", alice)).View
	if paying.Status != order.StatusPaying || paying.Version != 3 || !paying.PaymentDeadline.Equal(clk.Now().Add(10*time.Minute)) {
		t.Fatalf("after pay %+v", paying)
	}
	steps := []struct {
		typ  order.CommandType
		want order.Status
	}{
		{order.CmdConfirmPayment, order.StatusPaid},
		{order.CmdShip, order.StatusShipped},
		{order.CmdDeliver, order.StatusDelivered},
	}
	for i, st := range steps {
		clk.Advance(time.Second)
		v := do(t, s, cmd(st.typ, id, fmt.Sprintf("k-%d", i), olga)).View
		if v.Status != st.want || v.Version != uint64(i+4) || !v.PaymentDeadline.IsZero() || !v.UpdatedAt.Equal(clk.Now()) {
			t.Fatalf("after %s: %+v", st.typ, v)
		}
		if got, want := fmt.Sprint(v.Actions), fmt.Sprint(order.ActionsFrom(st.want)); got != want {
			t.Fatalf("after %s: actions %s, want %s", st.typ, got, want)
		}
	}
	got, err := s.Get(context.Background(), id, alice, "test")
	if err != nil || got.Status != order.StatusDelivered || got.Version != 6 || got.Total != v.Total {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	events := checkHistory(t, s, id)
	if fmt.Sprint(statuses(events)) != "[RESERVING CREATED PAYING PAID SHIPPED DELIVERED]" {
		t.Fatalf("history %v", statuses(events))
	}
	if events[0].Node != "b1" || events[0].IdempotencyKey != "k-create" {
		t.Fatalf("first event %+v", events[0])
	}
	// The payloads are the grain's: the pay event carries the deadline, create the items.
	var pay struct {
		By       string    `json:"by"`
		Deadline time.Time `json:"payment_deadline"`
	}
	if err := json.Unmarshal(events[2].Payload, &pay); err != nil || pay.By != "alice" || !pay.Deadline.Equal(paying.PaymentDeadline) {
		t.Fatalf("pay payload %s (%v)", events[2].Payload, err)
	}
	var created struct {
		Items []order.Line `json:"items"`
		Total int64        `json:"total"`
	}
	if err := json.Unmarshal(events[0].Payload, &created); err != nil || len(created.Items) != 2 || created.Total != v.Total {
		t.Fatalf("create payload %s (%v)", events[0].Payload, err)
	}
}

func TestLifecycleToRefundedAndCancel(t *testing.T) {
	s, _ := open(t, baseline.Options{})
	id := create(t, s, alice, "refund-me").ID
	do(t, s, cmd(order.CmdSubmitPayment, id, "p", alice))
	do(t, s, cmd(order.CmdConfirmPayment, id, "c", olga))
	v := do(t, s, order.Command{Type: order.CmdRefund, OrderID: id, Key: "r", By: olga, Reason: "damaged"}).View
	if v.Status != order.StatusRefunded || v.Version != 5 || len(v.Actions) != 0 {
		t.Fatalf("after refund %+v", v)
	}
	if got := fmt.Sprint(statuses(checkHistory(t, s, id))); got != "[RESERVING CREATED PAYING PAID REFUNDED]" {
		t.Fatalf("history %s", got)
	}

	// Cancel has two From states; the event must record the one the order left.
	id2 := create(t, s, alice, "cancel-me").ID
	do(t, s, cmd(order.CmdSubmitPayment, id2, "p", alice))
	do(t, s, cmd(order.CmdFailPayment, id2, "f", olga))
	do(t, s, cmd(order.CmdSubmitPayment, id2, "p2", alice))
	do(t, s, cmd(order.CmdCancel, id2, "x", alice))
	events := checkHistory(t, s, id2)
	if last := events[len(events)-1]; last.From != "PAYING" || last.To != "CLOSED" {
		t.Fatalf("cancel event %+v", last)
	}
}

func TestReplay(t *testing.T) {
	s, clk := open(t, baseline.Options{})
	first := create(t, s, alice, "same")
	clk.Advance(time.Second)
	again := do(t, s, createCmd(alice, "same", teaLines))
	if !again.Replayed || !sameView(again.View, first) {
		t.Fatalf("create replay = %+v, want %+v replayed", again, first)
	}
	id := first.ID

	paid := do(t, s, cmd(order.CmdSubmitPayment, id, "pay-1", alice))
	clk.Advance(time.Second)
	rep := do(t, s, cmd(order.CmdSubmitPayment, id, "pay-1", alice))
	if paid.Replayed || !rep.Replayed || !sameView(rep.View, paid.View) {
		t.Fatalf("pay %+v, replay %+v", paid, rep)
	}
	// After the order moved on, the key still answers as of its own event.
	do(t, s, cmd(order.CmdConfirmPayment, id, "conf", olga))
	late := do(t, s, cmd(order.CmdSubmitPayment, id, "pay-1", alice))
	if !late.Replayed || !sameView(late.View, paid.View) {
		t.Fatalf("late replay %+v, want %+v", late.View, paid.View)
	}
	// A key is its caller's: the same request from another user is not a replay.
	ada := order.Principal{Subject: "ada", Role: order.RoleAdmin}
	wantCode(t, s, cmd(order.CmdConfirmPayment, id, "conf", ada), order.CodeKeyReused, "")
	if n := len(checkHistory(t, s, id)); n != 4 {
		t.Fatalf("%d events, want 4", n)
	}
}

func sameView(a, b order.View) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

func TestErrors(t *testing.T) {
	s, _ := open(t, baseline.Options{})
	id := create(t, s, alice, "o1").ID

	t.Run("illegal", func(t *testing.T) {
		wantCode(t, s, cmd(order.CmdShip, id, "s", olga), order.CodeIllegalTransition, "cannot ship an order that is CREATED")
		wantCode(t, s, cmd(order.CmdConfirmPayment, id, "c", olga), order.CodeIllegalTransition,
			"cannot confirm the payment of an order that is CREATED")
	})
	t.Run("not found", func(t *testing.T) {
		wantCode(t, s, cmd(order.CmdSubmitPayment, "o_nope", "k", alice), order.CodeNotFound, "order o_nope not found")
		// Another shopper's order does not exist for bob, whatever he tries.
		wantCode(t, s, cmd(order.CmdSubmitPayment, id, "k", bob), order.CodeNotFound, "")
		wantCode(t, s, cmd(order.CmdCancel, id, "k", bob), order.CodeNotFound, "")
		if _, err := s.Get(context.Background(), id, bob, "t"); order.ErrorCode(err) != order.CodeNotFound {
			t.Fatalf("bob Get: %v", err)
		}
		if _, err := s.Get(context.Background(), "o_nope", olga, "t"); order.ErrorCode(err) != order.CodeNotFound {
			t.Fatalf("Get unknown: %v", err)
		}
		if v, err := s.Get(context.Background(), id, olga, "t"); err != nil || v.ID != id {
			t.Fatalf("olga Get: %+v %v", v, err)
		}
	})
	t.Run("key reused", func(t *testing.T) {
		do(t, s, cmd(order.CmdSubmitPayment, id, "used", alice))
		wantCode(t, s, cmd(order.CmdCancel, id, "used", alice), order.CodeKeyReused, "")
		other := []order.Line{{SKU: "kettle-gooseneck", Name: "Kettle", Qty: 1, UnitPrice: 5900}}
		wantCode(t, s, createCmd(alice, "o1", other), order.CodeKeyReused, "")
	})
	t.Run("forbidden and malformed", func(t *testing.T) {
		wantCode(t, s, cmd(order.CmdShip, id, "k", alice), order.CodeForbidden, "")
		wantCode(t, s, cmd(order.CmdExpirePayment, id, "k", olga), order.CodeForbidden, "")
		wantCode(t, s, cmd(order.CmdShip, id, "", olga), order.CodeInvalidRequest, "")
		bad := createCmd(alice, "k", teaLines)
		bad.OrderID = "o_chosen_by_client"
		wantCode(t, s, bad, order.CodeInvalidRequest, "")
	})
	t.Run("validation", func(t *testing.T) {
		wantCode(t, s, createCmd(alice, "empty", nil), order.CodeValidation, "")
		long := make([]byte, order.MaxReason+1)
		for i := range long {
			long[i] = 'x'
		}
		c := cmd(order.CmdCancel, id, "long", alice)
		c.Reason = string(long)
		wantCode(t, s, c, order.CodeValidation, "")
		// Order-dependent errors come first, as in Decide.
		c.OrderID = "o_nope"
		wantCode(t, s, c, order.CodeNotFound, "")
	})
	checkHistory(t, s, id)
}

// TestMatchesDecide runs a long pseudo-random command sequence through the baseline and
// through an in-memory reference made of order.Decide and order.Evolve (what a grain
// does), and requires the same answer — view, replay flag, error code and message — for
// every command.
func TestMatchesDecide(t *testing.T) {
	s, clk := open(t, baseline.Options{PaymentTimeout: time.Minute})
	ref := map[string]*order.Order{}
	who := []order.Principal{alice, bob, olga}
	var ids []string
	seen := map[order.Code]int{} // answers by code; -1 counts replays
	cmds := []order.CommandType{order.CmdSubmitPayment, order.CmdConfirmPayment, order.CmdFailPayment,
		order.CmdCancel, order.CmdShip, order.CmdDeliver, order.CmdRefund}
	seed := uint64(42)
	rnd := func(n int) int { // xorshift: deterministic and dependency-free
		seed ^= seed << 13
		seed ^= seed >> 7
		seed ^= seed << 17
		return int(seed % uint64(n))
	}
	for i := range 400 {
		clk.Advance(time.Millisecond)
		by := who[rnd(len(who))]
		var c order.Command
		if len(ids) == 0 || rnd(6) == 0 {
			c = createCmd(by, fmt.Sprintf("c%d", rnd(8)), teaLines[:1+rnd(2)])
		} else {
			c = cmd(cmds[rnd(len(cmds))], ids[rnd(len(ids))], fmt.Sprintf("k%d", rnd(12)), by)
			if rnd(10) == 0 {
				c.Reason = "because"
			}
		}
		c.At = clk.Now()
		c.PaymentTimeout = time.Minute

		o := ref[c.OrderID]
		if o == nil {
			o = &order.Order{ID: c.OrderID}
		}
		var want order.Result
		d, wantErr := order.Decide(o, c)
		switch {
		case wantErr != nil:
		case d.Replay != nil:
			want = order.Result{View: o.ViewAt(*d.Replay), Replayed: true}
			if c.Type == order.CmdCreate { // answered as the create's stock reservation left it
				want.View.Status, want.View.Version = order.StatusCreated, 2
				want.View.Actions = order.ActionsFrom(order.StatusCreated)
			}
		default:
			next := *o
			for _, e := range d.Events {
				next = order.Evolve(next, e)
			}
			if c.Type == order.CmdCreate { // and its stock reserved (StockReserved, v2)
				next.Status, next.Version = order.StatusCreated, 2
			}
			ref[c.OrderID] = &next
			if !o.Exists() {
				ids = append(ids, c.OrderID)
			}
			want = order.Result{View: next.View()}
		}

		got, err := s.Execute(context.Background(), c, "test")
		seen[order.ErrorCode(err)]++
		if got.Replayed {
			seen[-1]++
		}
		if order.ErrorCode(err) != order.ErrorCode(wantErr) || order.ErrorMessage(err) != order.ErrorMessage(wantErr) {
			t.Fatalf("step %d %s on %s by %s key %s: error %v, want %v", i, c.Type, c.OrderID, c.By.Subject, c.Key, err, wantErr)
		}
		if got.Replayed != want.Replayed || !sameView(got.View, want.View) {
			t.Fatalf("step %d %s on %s by %s key %s:\n got %+v\nwant %+v", i, c.Type, c.OrderID, c.By.Subject, c.Key, got, want)
		}
	}
	// The sequence must reach every kind of answer, or it proves little.
	for _, code := range []order.Code{order.CodeOK, -1, order.CodeForbidden, order.CodeNotFound,
		order.CodeKeyReused, order.CodeIllegalTransition} {
		if seen[code] == 0 {
			t.Errorf("no command answered %d (-1: replay); answers: %v", code, seen)
		}
	}
	for _, id := range ids {
		checkHistory(t, s, id)
	}
}

// TestRacePayVersusCancel lets shoppers' pays and operators' cancels race on one order
// with distinct keys: the row lock and the status condition must let at most one pay and
// one cancel through, in a legal order, with a gap-free history; everyone else gets 409.
func TestRacePayVersusCancel(t *testing.T) {
	s, _ := open(t, baseline.Options{})
	for round := range 5 {
		id := create(t, s, alice, fmt.Sprintf("race-%d", round)).ID
		const racers = 20
		results := make([]error, racers)
		views := make([]order.View, racers)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range racers {
			wg.Go(func() {
				<-start
				c := cmd(order.CmdSubmitPayment, id, fmt.Sprintf("pay-%d", i), alice)
				if i%2 == 1 {
					c = cmd(order.CmdCancel, id, fmt.Sprintf("cancel-%d", i), olga)
				}
				res, err := s.Execute(context.Background(), c, "race")
				results[i], views[i] = err, res.View
			})
		}
		close(start)
		wg.Wait()
		wins := map[uint64]int{}
		pays, cancels := 0, 0
		for i, err := range results {
			switch order.ErrorCode(err) {
			case order.CodeOK:
				wins[views[i].Version]++
				if i%2 == 0 {
					pays++
				} else {
					cancels++
				}
			case order.CodeIllegalTransition:
			default:
				t.Fatalf("racer %d: %v", i, err)
			}
		}
		for v, n := range wins {
			if n != 1 {
				t.Fatalf("round %d: %d winners at version %d", round, n, v)
			}
		}
		events := checkHistory(t, s, id)
		if pays > 1 || cancels != 1 || len(events) != 2+pays+cancels {
			t.Fatalf("round %d: %d pays and %d cancels won, %d events (%v)", round, pays, cancels, len(events), statuses(events))
		}
	}
}

// TestRaceSameKey sends one command many times at once: exactly one applies, and every
// other answer is a replay of it.
func TestRaceSameKey(t *testing.T) {
	s, _ := open(t, baseline.Options{})
	id := create(t, s, alice, "hot").ID
	const racers = 16
	res := make([]order.Result, racers)
	errs := make([]error, racers)
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() {
			res[i], errs[i] = s.Execute(context.Background(), cmd(order.CmdSubmitPayment, id, "one", alice), "hot")
		})
	}
	wg.Wait()
	applied := 0
	for i := range racers {
		if errs[i] != nil {
			t.Fatalf("racer %d: %v", i, errs[i])
		}
		if !res[i].Replayed {
			applied++
		}
		if res[i].View.Version != 3 || res[i].View.Status != order.StatusPaying {
			t.Fatalf("racer %d saw %+v", i, res[i].View)
		}
	}
	if applied != 1 {
		t.Fatalf("%d racers applied the key, want 1", applied)
	}
	if n := len(checkHistory(t, s, id)); n != 3 {
		t.Fatalf("%d events, want 3", n)
	}
}

// TestRaceKeyAcrossCycle retries one pay while an operator fails the payment, so the
// order can be back in CREATED when a retry of the already applied key arrives — the case
// that only the UNIQUE (order_id, idempotency_key) constraint catches. Every pay must be
// answered (applied once, replayed otherwise), never an error, and the key applied once.
func TestRaceKeyAcrossCycle(t *testing.T) {
	s, _ := open(t, baseline.Options{})
	for round := range 10 {
		id := create(t, s, alice, fmt.Sprintf("cycle-%d", round)).ID
		const racers = 8
		res := make([]order.Result, racers)
		errs := make([]error, racers)
		var failErr error
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range racers {
			wg.Go(func() {
				<-start
				res[i], errs[i] = s.Execute(context.Background(), cmd(order.CmdSubmitPayment, id, "K", alice), "cycle")
			})
		}
		wg.Go(func() {
			<-start
			for i := range 20 {
				_, failErr = s.Execute(context.Background(), cmd(order.CmdFailPayment, id, fmt.Sprintf("F%d", i), olga), "cycle")
				if failErr == nil {
					return
				}
			}
		})
		close(start)
		wg.Wait()
		applied := 0
		for i := range racers {
			if errs[i] != nil {
				t.Fatalf("round %d racer %d: %v", round, i, errs[i])
			}
			if !res[i].Replayed {
				applied++
			}
			if res[i].View.Version != 3 || res[i].View.Status != order.StatusPaying {
				t.Fatalf("round %d racer %d saw %+v", round, i, res[i].View)
			}
		}
		if applied != 1 {
			t.Fatalf("round %d: key applied by %d racers", round, applied)
		}
		if c := order.ErrorCode(failErr); c != order.CodeOK && c != order.CodeIllegalTransition {
			t.Fatalf("round %d: fail payment: %v", round, failErr)
		}
		checkHistory(t, s, id)
	}
}

// TestSweeperExpiresPassedDeadlines moves the clock past deadlines instead of sleeping:
// the sweep expires exactly the PAYING orders whose deadline passed, in batches, with the
// grain's expiry key, and leaves a paid order alone.
func TestSweeperExpiresPassedDeadlines(t *testing.T) {
	s, clk := open(t, baseline.Options{PaymentTimeout: time.Minute, SweepBatch: 2})
	ctx := context.Background()
	var ids []string
	for i := range 5 {
		id := create(t, s, alice, fmt.Sprintf("exp-%d", i)).ID
		do(t, s, cmd(order.CmdSubmitPayment, id, "pay", alice))
		ids = append(ids, id)
		clk.Advance(time.Second)
	}
	// One of them is paid in time and must not be touched.
	do(t, s, cmd(order.CmdConfirmPayment, ids[4], "conf", olga))
	deadline := clk.Now().Add(-5 * time.Second).Add(time.Minute) // of ids[0]

	if n, err := s.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("early sweep expired %d (%v)", n, err)
	}
	// A timer firing too early gets the grain's answer.
	wantCode(t, s, cmd(order.CmdExpirePayment, ids[0], "-", timer), order.CodeIllegalTransition,
		"the payment deadline "+deadline.Format(time.RFC3339)+" has not passed")

	clk.Advance(time.Minute)
	due, err := s.DuePayments(ctx, clk.Now(), persistence.Due{}, 100)
	if err != nil || len(due) != 4 || due[0].OrderID != ids[0] {
		t.Fatalf("DuePayments = %v, %v", due, err)
	}
	// Expiring one through Execute is the same statement for one order.
	v := do(t, s, cmd(order.CmdExpirePayment, ids[0], "-", timer)).View
	if v.Status != order.StatusClosed || v.Version != 4 || !v.PaymentDeadline.IsZero() {
		t.Fatalf("expired %+v", v)
	}
	// Batches of 2: the sweep loops until a short batch.
	if n, err := s.Sweep(ctx); err != nil || n != 3 {
		t.Fatalf("sweep expired %d (%v), want 3", n, err)
	}
	if n, err := s.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("second sweep expired %d (%v)", n, err)
	}
	for i, id := range ids[:4] {
		events := checkHistory(t, s, id)
		last := events[len(events)-1]
		wantKey := order.ExpiryKey(deadline.Add(time.Duration(i) * time.Second))
		if last.Type != string(order.EvtPaymentExpired) || last.From != "PAYING" || last.IdempotencyKey != wantKey {
			t.Fatalf("order %d: last event %+v, want PaymentExpired with key %s", i, last, wantKey)
		}
	}
	if v, _ := s.Get(ctx, ids[4], olga, "t"); v.Status != order.StatusPaid {
		t.Fatalf("paid order is %s", v.Status)
	}
	wantCode(t, s, cmd(order.CmdExpirePayment, ids[0], "-", timer), order.CodeIllegalTransition, "")
	wantCode(t, s, cmd(order.CmdSubmitPayment, ids[1], "pay-again", alice), order.CodeIllegalTransition, "")
}

// TestBackgroundSweeper checks that Open's goroutine sweeps on its own and Close stops it.
func TestBackgroundSweeper(t *testing.T) {
	s, clk := open(t, baseline.Options{PaymentTimeout: time.Minute, SweepInterval: 10 * time.Millisecond})
	id := create(t, s, alice, "bg").ID
	do(t, s, cmd(order.CmdSubmitPayment, id, "pay", alice))
	clk.Advance(2 * time.Minute)
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := s.Get(context.Background(), id, alice, "t")
		if err != nil {
			t.Fatal(err)
		}
		if v.Status == order.StatusClosed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("order still %s after 10s of sweeping", v.Status)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestListing(t *testing.T) {
	s, clk := open(t, baseline.Options{})
	ctx := context.Background()
	var aliceIDs []string
	for i := range 5 {
		aliceIDs = append(aliceIDs, create(t, s, alice, fmt.Sprintf("l%d", i)).ID)
		create(t, s, bob, fmt.Sprintf("l%d", i))
		clk.Advance(time.Second)
	}
	do(t, s, cmd(order.CmdSubmitPayment, aliceIDs[1], "p", alice))

	var got []string
	q := persistence.OrderQuery{Customer: "alice", Limit: 2}
	for pages := 0; ; pages++ {
		page, err := s.ListOrders(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Orders {
			v, err := orderpb.DecodeSnapshot(o.Snapshot)
			if err != nil || v.ID != o.ID || v.Customer != "alice" || len(v.Lines) != 2 {
				t.Fatalf("row %+v decodes to %+v (%v)", o, v, err)
			}
			got = append(got, o.ID)
		}
		if page.NextCursor == "" {
			break
		}
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		q.Cursor = page.NextCursor
	}
	want := fmt.Sprint([]string{aliceIDs[4], aliceIDs[3], aliceIDs[2], aliceIDs[1], aliceIDs[0]})
	if fmt.Sprint(got) != want {
		t.Fatalf("alice's orders %v, want newest first %v", got, want)
	}
	page, err := s.ListOrders(ctx, persistence.OrderQuery{Status: "PAYING"})
	if err != nil || len(page.Orders) != 1 || page.Orders[0].ID != aliceIDs[1] {
		t.Fatalf("PAYING listing %+v, %v", page, err)
	}
	if page, err := s.ListOrders(ctx, persistence.OrderQuery{}); err != nil || len(page.Orders) != 10 {
		t.Fatalf("full listing: %d orders, %v", len(page.Orders), err)
	}
	for _, bad := range []string{"garbage!", "AA", "AQAAAAAAAAAA"} {
		if _, err := s.ListOrders(ctx, persistence.OrderQuery{Cursor: bad}); !errors.Is(err, persistence.ErrBadCursor) {
			t.Fatalf("cursor %q: %v, want ErrBadCursor", bad, err)
		}
	}
	if _, err := s.LoadOrder(ctx, "o_nope"); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("LoadOrder unknown: %v", err)
	}
	if ev, err := s.OrderEvents(ctx, "o_nope"); err != nil || ev == nil || len(ev) != 0 {
		t.Fatalf("OrderEvents unknown = %v, %v", ev, err)
	}
	if err := s.WriteOrder(ctx, persistence.Write{}); err == nil {
		t.Fatal("WriteOrder succeeded")
	}
}

// TestSharesDatabaseWithOrdermesh opens two baselines and reads ordermesh's users and
// secrets tables: the schema creation is idempotent and users and keys are shared.
func TestSharesDatabaseWithOrdermesh(t *testing.T) {
	url := pgtest.URL(t)
	ctx := context.Background()
	var svcs []*baseline.Service
	for range 2 {
		s, err := baseline.Open(ctx, url, baseline.Options{SweepInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		svcs = append(svcs, s)
	}
	if err := svcs[0].PutUser(ctx, persistence.User{Username: "ann", PasswordHash: "x", Role: "shopper"}); err != nil {
		t.Fatal(err)
	}
	if u, err := svcs[1].GetUser(ctx, "ann"); err != nil || u.Role != "shopper" {
		t.Fatalf("GetUser = %+v, %v", u, err)
	}
	// The signing keys too: a node's token is good on the baseline and back.
	key := persistence.Secret{Kind: "jwt", ID: "k0001", Value: []byte("a-key-of-at-least-thirty-two-bytes!")}
	if created, err := svcs[0].CreateSecret(ctx, key); err != nil || !created {
		t.Fatalf("CreateSecret = %v, %v", created, err)
	}
	if got, err := svcs[1].Secrets(ctx, "jwt"); err != nil || len(got) != 1 || string(got[0].Value) != string(key.Value) {
		t.Fatalf("Secrets = %+v, %v", got, err)
	}
	if err := svcs[1].DeleteSecret(ctx, "jwt", "k0001"); err != nil {
		t.Fatal(err)
	}
	if got, err := svcs[0].Secrets(ctx, "jwt"); err != nil || len(got) != 0 {
		t.Fatalf("Secrets after DeleteSecret = %+v, %v", got, err)
	}
	if err := svcs[0].Ping(ctx); err != nil {
		t.Fatal(err)
	}
}
