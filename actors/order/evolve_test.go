package order_test

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	. "github.com/ordermesh/ordermesh/actors/order"
)

// withSpareCapacity returns o with Keys and Lines moved into larger backing arrays whose
// unused tail holds sentinel values, so that an append in place by Evolve or Decide would
// overwrite them.
func withSpareCapacity(o Order) Order {
	keys := make([]KeyResult, len(o.Keys), len(o.Keys)+8)
	copy(keys, o.Keys)
	for i := len(o.Keys); i < cap(keys); i++ {
		keys[:cap(keys)][i] = KeyResult{Key: fmt.Sprintf("sentinel-%d", i)}
	}
	o.Keys = keys
	lines := make([]Line, len(o.Lines), len(o.Lines)+4)
	copy(lines, o.Lines)
	for i := len(o.Lines); i < cap(lines); i++ {
		lines[:cap(lines)][i] = Line{SKU: "sentinel"}
	}
	o.Lines = lines
	return o
}

func TestEvolveDoesNotModifyItsInput(t *testing.T) {
	bases := map[string]Order{"empty": {}}
	for _, st := range Statuses {
		bases[string(st)] = withSpareCapacity(orderIn(t, st))
	}
	bases["full keys"] = fullKeys(t)
	bases["full keys, spare capacity"] = withSpareCapacity(fullKeys(t))

	for name, base := range bases {
		for _, tr := range Table {
			for _, from := range tr.From {
				if from != base.Status {
					continue
				}
				e := Event{Type: tr.Event, OrderID: base.ID, Version: base.Version + 1, From: from, To: tr.To,
					At: t0.Add(time.Hour), Key: "evolve-key", By: "x", Fingerprint: 42}
				if tr.Event == EvtCreated {
					e.OrderID, e.Customer, e.Lines, e.Currency, e.Total = "o_1", "alice", testLines(), "EUR", testTotal
				}
				switch tr.Event {
				case EvtPaymentSubmitted:
					e.PaymentDeadline = e.At.Add(payTimeout)
				case EvtStockReserved:
					e.ExpiresAt = base.CreatedAt.Add(orderTimeout)
				case EvtRejected:
					e.Reason = outOfStock
				}
				t.Run(name+"/"+string(tr.Event), func(t *testing.T) {
					before := deepCopyOrder(base)
					evCopy := e
					n := Evolve(base, e)
					assertOrderUnchanged(t, before, base)
					if !reflect.DeepEqual(evCopy, e) {
						t.Errorf("event modified")
					}
					if n.Status != tr.To || n.Version != e.Version || !n.UpdatedAt.Equal(e.At) {
						t.Errorf("Evolve = %s@%d at %v", n.Status, n.Version, n.UpdatedAt)
					}
					if len(n.Keys) > KeysKept || n.Keys[len(n.Keys)-1].Key != "evolve-key" {
						t.Errorf("keys after evolve: %d, last %+v", len(n.Keys), n.Keys[len(n.Keys)-1])
					}
					wantFirst := base.Keys
					if base.Exists() && tr.Event == EvtStockReserved {
						// The create's answer moves to the reservation.
						first := base.Keys[0]
						first.Version, first.Status, first.At = e.Version, e.To, e.At
						wantFirst = []KeyResult{first}
					}
					if base.Exists() && n.Keys[0] != wantFirst[0] {
						t.Errorf("the create key was dropped or changed: %+v, want %+v", n.Keys[0], wantFirst[0])
					}
				})
			}
		}
	}
}

// TestEvolveBranches: two events applied to the same order give independent results (the
// classic bug: append into a shared backing array makes the second overwrite the first).
func TestEvolveBranches(t *testing.T) {
	t.Run("reserving", func(t *testing.T) {
		base := withSpareCapacity(orderIn(t, StatusReserving))
		a, _ := step(t, base, cmdOn(&base, CmdConfirmStock, sys, "a", t0.Add(time.Minute)))
		aCopy := deepCopyOrder(a)
		b, _ := step(t, base, cmdOn(&base, CmdRejectStock, sys, "b", t0.Add(time.Minute)))
		assertOrderUnchanged(t, aCopy, a)
		if a.Keys[0].Status != StatusCreated || a.Keys[0].Version != 2 || b.Keys[0].Status != StatusReserving || b.Keys[0].Version != 1 {
			t.Errorf("the create answers share memory: a %+v, b %+v", a.Keys[0], b.Keys[0])
		}
		if a.Status != StatusCreated || b.Status != StatusRejected || b.Rejection != outOfStock || a.Rejection != "" {
			t.Errorf("a %s, b %s %q", a.Status, b.Status, b.Rejection)
		}
	})
	for name, base := range map[string]Order{
		"spare capacity": withSpareCapacity(orderIn(t, StatusPaying)),
		"full keys":      fullKeys(t),
	} {
		t.Run(name, func(t *testing.T) {
			if base.Status != StatusPaying {
				t.Fatalf("base is %s", base.Status)
			}
			da, err := Decide(&base, cmdOn(&base, CmdConfirmPayment, oper, "a", t0.Add(2*time.Hour)))
			if err != nil {
				t.Fatal(err)
			}
			db, err := Decide(&base, cmdOn(&base, CmdCancel, alice, "b", t0.Add(2*time.Hour)))
			if err != nil {
				t.Fatal(err)
			}
			a := Evolve(base, da.Events[0])
			aCopy := deepCopyOrder(a)
			b := Evolve(base, db.Events[0])
			assertOrderUnchanged(t, aCopy, a)
			if a.Keys[len(a.Keys)-1].Key != "a" || b.Keys[len(b.Keys)-1].Key != "b" {
				t.Errorf("branches share keys: a ends %q, b ends %q", a.Keys[len(a.Keys)-1].Key, b.Keys[len(b.Keys)-1].Key)
			}
			if a.Status != StatusPaid || b.Status != StatusClosed {
				t.Errorf("a %s, b %s", a.Status, b.Status)
			}
		})
	}
}

func TestEvolveFields(t *testing.T) {
	o := orderIn(t, StatusPaying)
	created := o.CreatedAt
	at := t0.Add(time.Hour)
	n, e := step(t, o, cmdOn(&o, CmdConfirmPayment, oper, "confirm", at))
	want := o
	want.Status, want.Version, want.UpdatedAt, want.PaymentDeadline = StatusPaid, o.Version+1, at, time.Time{}
	want.Keys = append(append([]KeyResult{}, o.Keys...), KeyResult{
		Key: "confirm", Command: CmdConfirmPayment, Fingerprint: e.Fingerprint, Version: o.Version + 1, Status: StatusPaid, At: at,
	})
	if !reflect.DeepEqual(n, want) {
		t.Errorf("Evolve:\n got %+v\nwant %+v", n, want)
	}
	if !n.CreatedAt.Equal(created) || n.Customer != "alice" || n.Total != testTotal {
		t.Errorf("Evolve changed the creation fields")
	}
	if !n.ExpiresAt.Equal(t0.Add(orderTimeout)) || n.StockVersion != 2 || n.Rejection != "" {
		t.Errorf("Evolve changed the reservation's fields: expires %v, stock version %d, rejection %q", n.ExpiresAt, n.StockVersion, n.Rejection)
	}
}

// TestEvolveStockFields: StockReserved sets ExpiresAt and StockVersion and moves the
// create's answer to itself; OrderRejected sets Rejection and StockVersion; every other
// event leaves all three as they are, and only a CREATED order shows its expiry.
func TestEvolveStockFields(t *testing.T) {
	reserving := orderIn(t, StatusReserving)
	at := t0.Add(2 * time.Minute)
	expires := t0.Add(orderTimeout) // from the creation, not from the confirmation
	c := cmdOn(&reserving, CmdConfirmStock, sys, "stock", at)
	n, e := step(t, reserving, c)
	if e.Type != EvtStockReserved || !e.ExpiresAt.Equal(expires) || e.Reason != "" || !e.PaymentDeadline.IsZero() {
		t.Fatalf("event %+v", e)
	}
	want := reserving
	want.Status, want.Version, want.UpdatedAt, want.ExpiresAt, want.StockVersion = StatusCreated, 2, at, expires, 2
	want.Keys = []KeyResult{
		{Key: "setup-0", Command: CmdCreate, Fingerprint: reserving.Keys[0].Fingerprint, Version: 2, Status: StatusCreated, At: at},
		{Key: "stock", Command: CmdConfirmStock, Fingerprint: Fingerprint(c), Version: 2, Status: StatusCreated, At: at},
	}
	if !reflect.DeepEqual(n, want) {
		t.Errorf("after StockReserved:\n got %+v\nwant %+v", n, want)
	}
	if v := n.View(); !v.ExpiresAt.Equal(expires) || v.Version != 2 || !slices.Equal(v.Actions, []string{"pay", "cancel"}) {
		t.Errorf("view %+v", v)
	}

	r := cmdOn(&reserving, CmdRejectStock, sys, "stock", at)
	n, e = step(t, reserving, r)
	if e.Type != EvtRejected || e.Reason != outOfStock || !e.ExpiresAt.IsZero() {
		t.Fatalf("event %+v", e)
	}
	want = reserving
	want.Status, want.Version, want.UpdatedAt, want.Rejection, want.StockVersion = StatusRejected, 2, at, outOfStock, 2
	want.Keys = append(slices.Clone(reserving.Keys), KeyResult{
		Key: "stock", Command: CmdRejectStock, Fingerprint: Fingerprint(r), Version: 2, Status: StatusRejected, At: at})
	if !reflect.DeepEqual(n, want) {
		t.Errorf("after OrderRejected:\n got %+v\nwant %+v", n, want)
	}
	if v := n.View(); !v.ExpiresAt.IsZero() || len(v.Actions) != 0 || v.Status != StatusRejected {
		t.Errorf("view %+v", v)
	}

	// Every later event keeps ExpiresAt and StockVersion; the view shows the expiry only
	// while CREATED (also again after a failed payment).
	for _, st := range []Status{StatusCreated, StatusPaying, StatusPaid, StatusShipped, StatusDelivered, StatusClosed, StatusRefunded} {
		o := orderIn(t, st)
		if !o.ExpiresAt.Equal(expires) || o.StockVersion != 2 || o.Rejection != "" {
			t.Errorf("%s: expires %v, stock version %d, rejection %q", st, o.ExpiresAt, o.StockVersion, o.Rejection)
		}
		if got := o.View().ExpiresAt; got.IsZero() != (st != StatusCreated) {
			t.Errorf("%s: view shows expires_at %v", st, got)
		}
	}
	paying := orderIn(t, StatusPaying)
	failed, _ := step(t, paying, cmdOn(&paying, CmdFailPayment, oper, "fail", t0.Add(time.Hour)))
	if !failed.View().ExpiresAt.Equal(expires) {
		t.Errorf("after a failed payment the view shows expires_at %v, want %v", failed.View().ExpiresAt, expires)
	}
	if r, _ := failed.FindKey("setup-2"); !failed.ViewAt(r).ExpiresAt.IsZero() {
		t.Errorf("the PAYING answer shows an expiry: %+v", failed.ViewAt(r))
	}
}

func TestRememberKey(t *testing.T) {
	mk := func(n int, first CommandType) []KeyResult {
		ks := make([]KeyResult, n)
		for i := range ks {
			ks[i] = KeyResult{Key: fmt.Sprint(i), Command: CmdFailPayment, Version: uint64(i + 1)}
		}
		if n > 0 {
			ks[0].Command = first
		}
		return ks
	}
	r := KeyResult{Key: "new", Command: CmdCancel}
	cases := []struct {
		name   string
		in     []KeyResult
		wantN  int
		first  string
		second string
	}{
		{"empty", nil, 1, "new", ""},
		{"one", mk(1, CmdCreate), 2, "0", "new"},
		{"below limit", mk(KeysKept-1, CmdCreate), KeysKept, "0", "1"},
		{"full, create first", mk(KeysKept, CmdCreate), KeysKept, "0", "2"},
		{"full, no create key", mk(KeysKept, CmdSubmitPayment), KeysKept, "1", "2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := append([]KeyResult(nil), tc.in...)
			out := RememberKey(tc.in, r)
			if !reflect.DeepEqual(before, tc.in) {
				t.Error("rememberKey modified its input")
			}
			if len(out) != tc.wantN || out[len(out)-1] != r || out[0].Key != tc.first || (tc.second != "" && out[1].Key != tc.second) {
				t.Errorf("rememberKey = %d keys, first %q, want %d keys, first %q then %q", len(out), out[0].Key, tc.wantN, tc.first, tc.second)
			}
			if len(tc.in) > 0 && &out[0] == &tc.in[0] {
				t.Error("rememberKey returned its input's backing array")
			}
		})
	}
	// A snapshot written when more keys were kept (KeysKept lowered in a later release, or a
	// hand-repaired row) must come back under the limit, as rememberKey's comment promises.
	t.Run("over the limit", func(t *testing.T) {
		out := RememberKey(mk(KeysKept+6, CmdCreate), r)
		if len(out) > KeysKept {
			t.Fatalf("rememberKey kept %d keys, want at most %d", len(out), KeysKept)
		}
		if out[0].Key != "0" || out[len(out)-1] != r {
			t.Errorf("first %q, last %+v", out[0].Key, out[len(out)-1])
		}
	})
}

// TestDecideDoesNotModifyTheOrder runs every command in every state (including replays
// and refusals) against orders whose slices have spare capacity.
func TestDecideDoesNotModifyTheOrder(t *testing.T) {
	for _, st := range allStates {
		o := withSpareCapacity(orderIn(t, st))
		keys := []string{"fresh", "setup-0", "setup-1"}
		for _, tr := range Table {
			for _, key := range keys {
				for _, by := range []Principal{alice, bob, oper, sys} {
					c := cmdOn(&o, tr.Command, by, key, t0.Add(time.Hour))
					if tr.Command == CmdCreate {
						c = createCmd(by, key, t0)
						c.OrderID = o.ID
					}
					before := deepCopyOrder(o)
					d, _ := Decide(&o, c)
					assertOrderUnchanged(t, before, o)
					for _, e := range d.Events {
						if len(e.Lines) > 0 && len(o.Lines) > 0 && &e.Lines[0] == &o.Lines[0] {
							t.Errorf("event aliases the order's lines")
						}
					}
				}
			}
		}
	}
}
