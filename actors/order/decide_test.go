package order_test

import (
	"errors"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/ordermesh/ordermesh/actors/order"
)

func assertAppError(tb testing.TB, err error) {
	tb.Helper()
	var e *Error
	if !errors.As(err, &e) {
		tb.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	if e.Code == CodeOK || e.Code == CodeInternal || e.Message == "" {
		tb.Errorf("error %+v: want a non-internal code and a message", e)
	}
}

func wantCode(tb testing.TB, d Decision, err error, want Code) {
	tb.Helper()
	if got := ErrorCode(err); got != want {
		tb.Fatalf("got code %d (%v, decision %+v), want %d", got, err, d, want)
	}
	if err != nil {
		assertAppError(tb, err)
		if d.Events != nil || d.Replay != nil {
			tb.Errorf("an error came with a decision: %+v", d)
		}
	}
}

// wantReplay decides c on o and requires a replay with no events.
func wantReplay(tb testing.TB, o *Order, c Command) KeyResult {
	tb.Helper()
	d, err := Decide(o, c)
	if err != nil {
		tb.Fatalf("want a replay, got %v", err)
	}
	if d.Replay == nil || len(d.Events) != 0 {
		tb.Fatalf("want a replay and no events, got %+v", d)
	}
	return *d.Replay
}

// TestDecideCheckOrder checks the documented order of Decide's checks: malformed (400),
// role (403), not found or invisible (404), key reused (422), illegal (409), content (422).
// Each case breaks several rules at once; the earliest must win.
func TestDecideCheckOrder(t *testing.T) {
	// keys setup-0 (Create), setup-1 (ConfirmStock), setup-2 (SubmitPayment), setup-3 (ConfirmPayment)
	paid := orderIn(t, StatusPaid)
	rejected := orderIn(t, StatusRejected) // keys setup-0 (Create), setup-1 (RejectStock)
	var none Order
	long := strings.Repeat("r", MaxReason+1)
	at := t0.Add(time.Hour)
	with := func(c Command, f func(*Command)) Command { f(&c); return c }
	cases := []struct {
		name string
		o    Order
		c    Command
		want Code
	}{
		{"400 empty key before 403 and 404", none, cmdOn(&none, CmdShip, alice, "", at), CodeInvalidRequest},
		{"400 key too long before 404", paid, cmdOn(&paid, CmdCancel, bob, strings.Repeat("k", MaxKeyLen+1), at), CodeInvalidRequest},
		{"400 unknown command before 403", none, cmdOn(&none, "Teleport", sys, "k", at), CodeInvalidRequest},
		{"400 empty key before long reason", paid, with(cmdOn(&paid, CmdShip, oper, "", at), func(c *Command) { c.Reason = long }), CodeInvalidRequest},
		{"400 unknown command before long reason", paid, with(cmdOn(&paid, "Teleport", oper, "k", at), func(c *Command) { c.Reason = long }), CodeInvalidRequest},
		{"403 role before 404 (missing)", none, cmdOn(&none, CmdShip, alice, "k", at), CodeForbidden},
		{"403 role before 404 (invisible)", paid, cmdOn(&paid, CmdShip, bob, "k", at), CodeForbidden},
		{"403 role before key reuse", paid, cmdOn(&paid, CmdExpirePayment, oper, "setup-2", at), CodeForbidden},
		{"403 role before key reuse (confirm stock)", paid, cmdOn(&paid, CmdConfirmStock, oper, "setup-1", at), CodeForbidden},
		{"403 create by operator on existing order", paid, with(createCmd(oper, "setup-0", at), func(c *Command) { c.OrderID = paid.ID }), CodeForbidden},
		{"403 role before long reason", paid, with(cmdOn(&paid, CmdRefund, alice, "k", at), func(c *Command) { c.Reason = long }), CodeForbidden},
		{"404 missing order", none, cmdOn(&none, CmdCancel, oper, "k", at), CodeNotFound},
		{"404 invisible before key reuse", paid, cmdOn(&paid, CmdCancel, bob, "setup-2", at), CodeNotFound},
		{"404 invisible before replay", paid, cmdOn(&paid, CmdSubmitPayment, bob, "setup-2", at), CodeNotFound},
		{"404 invisible before long reason", paid, with(cmdOn(&paid, CmdCancel, bob, "k", at), func(c *Command) { c.Reason = long }), CodeNotFound},
		{"422 key reused before 409", paid, cmdOn(&paid, CmdCancel, alice, "setup-2", at), CodeKeyReused},
		{"422 system key reused before 409", paid, cmdOn(&paid, CmdRejectStock, sys, "setup-1", at), CodeKeyReused},
		{"422 create key reused with other content before out of stock", rejected,
			with(createCmd(alice, "setup-0", at), func(c *Command) { c.Lines = c.Lines[:1] }), CodeKeyReused},
		{"409 rejected order created by another key", rejected,
			with(createCmd(alice, "fresh", at), func(c *Command) { c.OrderID = rejected.ID }), CodeAlreadyExists},
		{"409 other shopper's create on a rejected order", rejected,
			with(createCmd(bob, "setup-0", at), func(c *Command) { c.OrderID = rejected.ID }), CodeAlreadyExists},
		{"422 create key reused with other content before content check", paid,
			with(createCmd(alice, "setup-0", at), func(c *Command) { c.Lines = nil }), CodeKeyReused},
		{"409 existing order before create content", paid,
			with(createCmd(alice, "fresh", at), func(c *Command) { c.OrderID, c.Lines = paid.ID, nil }), CodeAlreadyExists},
		{"409 illegal before long reason", paid, with(cmdOn(&paid, CmdCancel, oper, "k", at), func(c *Command) { c.Reason = long }), CodeIllegalTransition},
		{"400 missing payment timeout before 409", paid, with(cmdOn(&paid, CmdSubmitPayment, alice, "k", at), func(c *Command) { c.PaymentTimeout = 0 }), CodeInvalidRequest},
		{"400 missing order timeout before 409", paid, with(cmdOn(&paid, CmdConfirmStock, sys, "k", at), func(c *Command) { c.OrderTimeout = 0 }), CodeInvalidRequest},
		{"400 negative order timeout before 403", paid, with(cmdOn(&paid, CmdConfirmStock, alice, "k", at), func(c *Command) { c.OrderTimeout = -time.Minute }), CodeInvalidRequest},
		{"400 missing order timeout before 404", none, with(cmdOn(&none, CmdConfirmStock, sys, "k", at), func(c *Command) { c.OrderTimeout = 0 }), CodeInvalidRequest},
		{"409 expire before 422 long reason", paid, with(cmdOn(&paid, CmdExpire, sys, "k", at), func(c *Command) { c.Reason = long }), CodeIllegalTransition},
		{"422 long rejection on a reserving order", orderIn(t, StatusReserving),
			with(cmdOn(&none, CmdRejectStock, sys, "k", at), func(c *Command) { c.Reason = long }), CodeValidation},
		{"422 long reason on a legal command", paid, with(cmdOn(&paid, CmdRefund, oper, "k", at), func(c *Command) { c.Reason = long }), CodeValidation},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := deepCopyOrder(tc.o)
			d, err := Decide(&tc.o, tc.c)
			assertOrderUnchanged(t, before, tc.o)
			wantCode(t, d, err, tc.want)
		})
	}
	t.Run("replay before 409", func(t *testing.T) {
		r := wantReplay(t, &paid, cmdOn(&paid, CmdSubmitPayment, alice, "setup-2", at))
		if r.Status != StatusPaying || r.Version != 3 {
			t.Errorf("replay = %+v, want the PAYING result at version 3", r)
		}
		r = wantReplay(t, &paid, cmdOn(&paid, CmdConfirmStock, sys, "setup-1", at))
		if r.Status != StatusCreated || r.Version != 2 {
			t.Errorf("replay = %+v, want the CREATED result at version 2", r)
		}
	})
	t.Run("out of stock before 409 and content", func(t *testing.T) {
		d, err := Decide(&rejected, createCmd(alice, "setup-0", at))
		wantCode(t, d, err, CodeOutOfStock)
		if msg := ErrorMessage(err); msg != outOfStock {
			t.Errorf("message %q, want the rejection %q", msg, outOfStock)
		}
	})
}

func TestDecideKeyAndReasonLimits(t *testing.T) {
	o := orderIn(t, StatusCreated)
	at := t0.Add(time.Hour)
	c := cmdOn(&o, CmdCancel, alice, strings.Repeat("k", MaxKeyLen), at)
	c.Reason = strings.Repeat("r", MaxReason)
	n, e := step(t, o, c)
	if e.Reason != c.Reason || n.Status != StatusClosed {
		t.Errorf("cancel with the longest key and reason: %+v", e)
	}
	c.Reason += "r"
	c.Key = "other"
	d, err := Decide(&o, c)
	wantCode(t, d, err, CodeValidation)
}

func TestCreate(t *testing.T) {
	c := createCmd(alice, "create-1", t0)
	c.Reason = "gift"
	var o Order
	n, e := step(t, o, c)
	if e.Type != EvtCreated || e.Version != 1 || e.From != StatusNone || e.To != StatusReserving || !e.ExpiresAt.IsZero() {
		t.Errorf("event = %+v", e)
	}
	if e.OrderID != OrderIDFor("alice", "create-1") || e.Customer != "alice" || e.By != "alice" ||
		e.Currency != "EUR" || e.Total != testTotal || !reflect.DeepEqual(e.Lines, testLines()) {
		t.Errorf("event payload = %+v", e)
	}
	c.Lines[0].Qty = 99 // the event must not share the command's lines
	if e.Lines[0].Qty != 2 {
		t.Error("the OrderCreated event aliases the command's Lines")
	}
	want := Order{
		ID: e.OrderID, Customer: "alice", Status: StatusReserving, Version: 1, Lines: testLines(), Currency: "EUR",
		Total: testTotal, CreatedAt: t0, UpdatedAt: t0,
		Keys: []KeyResult{{Key: "create-1", Command: CmdCreate, Fingerprint: e.Fingerprint, Version: 1, Status: StatusReserving, At: t0}},
	}
	if !reflect.DeepEqual(n, want) {
		t.Errorf("order after create:\n got %+v\nwant %+v", n, want)
	}
	v := n.View()
	if v.Total != testTotal || v.Status != StatusReserving || !slices.Equal(v.Actions, []string{}) ||
		!v.PaymentDeadline.IsZero() || !v.ExpiresAt.IsZero() {
		t.Errorf("view = %+v", v)
	}
	// Until the node has reserved the stock, the order is due again soon.
	if n.StockSynced() || !n.Deadline().Equal(t0.Add(StockRetry)) {
		t.Errorf("a reserving order: synced %v, deadline %v; want unsynced, due at %v", n.StockSynced(), n.Deadline(), t0.Add(StockRetry))
	}
	// A retry while the reservation is in flight answers the order as it is: v1 RESERVING.
	retry := c
	retry.Lines, retry.At = testLines(), t0.Add(time.Second)
	if r := wantReplay(t, &n, retry); r.Version != 1 || r.Status != StatusReserving {
		t.Errorf("create replay while reserving = %+v", r)
	}
	for _, r := range []Principal{oper, adm, sys} {
		d, err := Decide(&o, createCmd(r, "create-1", t0))
		wantCode(t, d, err, CodeForbidden)
	}
}

func TestCreateValidation(t *testing.T) {
	line := func(sku string, qty, price int64) Line { return Line{SKU: sku, Name: "x", Qty: qty, UnitPrice: price} }
	// many returns n lines like l, each with its own sku.
	many := func(n int, l Line) []Line {
		out := make([]Line, n)
		for i := range out {
			out[i] = l
			out[i].SKU = l.SKU + itoa(i)
		}
		return out
	}
	invalid := []struct {
		name     string
		lines    []Line
		currency string
		code     Code
	}{
		{"no lines", nil, "EUR", CodeValidation},
		{"empty lines", []Line{}, "EUR", CodeValidation},
		{"too many lines", many(MaxLines+1, line("a", 1, 1)), "EUR", CodeValidation},
		{"qty 0", []Line{line("a", 0, 1)}, "EUR", CodeValidation},
		{"qty negative", []Line{line("a", 1, 1), line("b", -1, 1)}, "EUR", CodeValidation},
		{"qty over max", []Line{line("a", MaxQty+1, 1)}, "EUR", CodeValidation},
		{"qty huge", []Line{line("a", math.MaxInt64, 1)}, "EUR", CodeValidation},
		{"missing sku", []Line{line("a", 1, 1), line("", 1, 1)}, "EUR", CodeValidation},
		{"missing currency", []Line{line("a", 1, 1)}, "", CodeValidation},
		{"negative price", []Line{line("a", 1, -1)}, "EUR", CodeValidation},
		{"price over range", []Line{line("a", 1, MaxTotalValue+1)}, "EUR", CodeValidation},
		{"price max int", []Line{line("a", 1, math.MaxInt64)}, "EUR", CodeValidation},
		{"same sku twice", []Line{line("a", 1, 1), line("b", 1, 1), line("a", 1, 1)}, "EUR", CodeDuplicateItem},
		{"same sku, other price", []Line{line("a", 1, 1), line("a", 2, 5)}, "EUR", CodeDuplicateItem},
		{"total qty over max", many(MaxTotalQty/MaxQty+1, line("a", MaxQty, 0)), "EUR", CodeOrderTooLarge},
		{"100 lines of max qty", many(MaxLines, line("a", MaxQty, 1)), "EUR", CodeOrderTooLarge},
		{"total value over max", []Line{line("a", 1, MaxTotalValue), line("b", 1, 1)}, "EUR", CodeOrderTooLarge},
		{"largest lines over max value", many(2, line("a", MaxQty, MaxTotalValue)), "EUR", CodeOrderTooLarge},
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			c := createCmd(alice, "k", t0)
			c.Lines, c.Currency = tc.lines, tc.currency
			var o Order
			d, err := Decide(&o, c)
			wantCode(t, d, err, tc.code)
			if _, verr := ValidateLines(tc.lines, tc.currency); ErrorCode(verr) != tc.code {
				t.Errorf("ValidateLines: %v, want code %d", verr, tc.code)
			}
		})
	}
	valid := []struct {
		name  string
		lines []Line
		total int64
	}{
		{"one line", []Line{line("a", 3, 250)}, 750},
		{"free item", []Line{line("a", 1, 0), line("b", 2, 10)}, 20},
		{"max lines", many(MaxLines, line("a", 1, 7)), 700},
		{"max qty", []Line{line("a", MaxQty, 3)}, 3 * MaxQty},
		{"max total qty", many(MaxTotalQty/MaxQty, line("a", MaxQty, 1)), MaxTotalQty},
		{"max total value", []Line{line("a", 1, MaxTotalValue)}, MaxTotalValue},
		{"max total value in parts", []Line{line("a", 2, MaxTotalValue/4), line("b", 1, MaxTotalValue/2)}, MaxTotalValue},
	}
	for _, tc := range valid {
		t.Run(tc.name, func(t *testing.T) {
			c := createCmd(alice, "k", t0)
			c.Lines = tc.lines
			n, e := step(t, Order{}, c)
			if e.Total != tc.total || n.Total != tc.total || n.View().Total != tc.total {
				t.Errorf("total = %d (order %d), want %d", e.Total, n.Total, tc.total)
			}
		})
	}
}

func TestOrderIDFor(t *testing.T) {
	id := OrderIDFor("alice", "k1")
	if id != OrderIDFor("alice", "k1") {
		t.Error("OrderIDFor is not deterministic")
	}
	if !strings.HasPrefix(id, "o_") || len(id) > MaxIDBytes || len(id) != 2+24 {
		t.Errorf("OrderIDFor = %q: want o_ and 24 base32hex characters", id)
	}
	if strings.ContainsFunc(id[2:], func(r rune) bool { return !strings.ContainsRune("0123456789ABCDEFGHIJKLMNOPQRSTUV", r) }) {
		t.Errorf("OrderIDFor = %q: not base32hex", id)
	}
	ids := map[string]string{}
	for _, in := range [][2]string{{"alice", "k1"}, {"bob", "k1"}, {"alice", "k2"}, {"alic", "ek1"}, {"alice\x00k", "1"}, {"", "alicek1"}, {"alicek1", ""}} {
		got := OrderIDFor(in[0], in[1])
		if prev, dup := ids[got]; dup {
			t.Errorf("OrderIDFor(%q, %q) = OrderIDFor of %s = %s", in[0], in[1], prev, got)
		}
		ids[got] = in[0] + "|" + in[1]
	}
}

// TestIdempotentReplay: the same key and command return the original result, with no
// events, even after the order moved on.
func TestIdempotentReplay(t *testing.T) {
	var o Order
	type done struct {
		c    Command
		view View
	}
	var history []done
	do := func(c Command) {
		t.Helper()
		o, _ = step(t, o, c)
		history = append(history, done{c, o.View()})
	}
	do(createCmd(alice, "c", t0))
	do(cmdOn(&o, CmdConfirmStock, sys, "stock", t0.Add(30*time.Second)))
	// The create answers as its reservation left it: v2 CREATED, with its expiry.
	history[0].view = o.View()
	if v := history[0].view; v.Version != 2 || v.Status != StatusCreated || !v.ExpiresAt.Equal(t0.Add(orderTimeout)) {
		t.Fatalf("view after ConfirmStock = %+v", v)
	}
	do(cmdOn(&o, CmdSubmitPayment, alice, "pay", t0.Add(1*time.Minute)))
	do(cmdOn(&o, CmdFailPayment, oper, "fail", t0.Add(2*time.Minute)))
	do(cmdOn(&o, CmdSubmitPayment, alice, "pay-again", t0.Add(3*time.Minute)))
	do(cmdOn(&o, CmdConfirmPayment, oper, "confirm", t0.Add(4*time.Minute)))
	do(cmdOn(&o, CmdShip, adm, "ship", t0.Add(5*time.Minute)))
	do(cmdOn(&o, CmdDeliver, oper, "deliver", t0.Add(6*time.Minute)))
	do(cmdOn(&o, CmdRefund, oper, "refund", t0.Add(7*time.Minute)))

	for _, h := range history {
		t.Run(h.c.Key, func(t *testing.T) {
			retry := h.c
			retry.At = t0.Add(24 * time.Hour) // the retry arrives later; the result must not change
			before := deepCopyOrder(o)
			r := wantReplay(t, &o, retry)
			assertOrderUnchanged(t, before, o)
			if r.Key != h.c.Key || r.Command != h.c.Type || r.Fingerprint != Fingerprint(h.c) {
				t.Errorf("replayed key result %+v", r)
			}
			if got := o.ViewAt(r); !reflect.DeepEqual(got, h.view) {
				t.Errorf("ViewAt = %+v\nwant the original view %+v", got, h.view)
			}
		})
	}
	if o.Status != StatusRefunded || o.Version != uint64(len(history)) {
		t.Fatalf("order = %s@%d", o.Status, o.Version)
	}

	t.Run("same key, different command", func(t *testing.T) {
		d, err := Decide(&o, cmdOn(&o, CmdCancel, alice, "pay", t0))
		wantCode(t, d, err, CodeKeyReused)
		d, err = Decide(&o, cmdOn(&o, CmdShip, oper, "refund", t0))
		wantCode(t, d, err, CodeKeyReused)
		d, err = Decide(&o, cmdOn(&o, CmdSubmitPayment, alice, "c", t0))
		wantCode(t, d, err, CodeKeyReused)
		d, err = Decide(&o, cmdOn(&o, CmdRejectStock, sys, "stock", t0))
		wantCode(t, d, err, CodeKeyReused)
		d, err = Decide(&o, cmdOn(&o, CmdConfirmStock, sys, "c", t0))
		wantCode(t, d, err, CodeKeyReused)
	})
	t.Run("same key, different content", func(t *testing.T) {
		c := cmdOn(&o, CmdRefund, oper, "refund", t0)
		c.Reason = "changed my mind"
		d, err := Decide(&o, c)
		wantCode(t, d, err, CodeKeyReused)
		cc := createCmd(alice, "c", t0)
		cc.Lines[0].Qty++
		d, err = Decide(&o, cc)
		wantCode(t, d, err, CodeKeyReused)
		cc = createCmd(alice, "c", t0)
		cc.Currency = "USD"
		d, err = Decide(&o, cc)
		wantCode(t, d, err, CodeKeyReused)
		c = cmdOn(&o, CmdConfirmStock, sys, "stock", t0)
		c.Reason = "other"
		d, err = Decide(&o, c)
		wantCode(t, d, err, CodeKeyReused)
	})
	t.Run("any system principal retries the node's own command", func(t *testing.T) {
		c := cmdOn(&o, CmdConfirmStock, Principal{Subject: "node-2", Role: RoleSystem}, "stock", t0)
		c.OrderTimeout = time.Hour // not part of the request's fingerprint: the first answer stands
		if r := wantReplay(t, &o, c); r.Version != 2 || r.Status != StatusCreated {
			t.Errorf("replay %+v", r)
		}
	})
	t.Run("another user's request with the same key is refused", func(t *testing.T) {
		// root (admin) shipped; another admin, or an operator, retrying it is not root.
		d, err := Decide(&o, cmdOn(&o, CmdShip, Principal{Subject: "ada", Role: RoleAdmin}, "ship", t0))
		wantCode(t, d, err, CodeKeyReused)
		d, err = Decide(&o, cmdOn(&o, CmdShip, oper, "ship", t0))
		wantCode(t, d, err, CodeKeyReused)
	})
	t.Run("another shopper cannot replay", func(t *testing.T) {
		d, err := Decide(&o, cmdOn(&o, CmdSubmitPayment, bob, "pay", t0))
		wantCode(t, d, err, CodeNotFound)
		cc := createCmd(bob, "c", t0)
		cc.OrderID = o.ID
		d, err = Decide(&o, cc)
		if ErrorCode(err) == CodeOK {
			t.Fatalf("bob replayed alice's create: %+v", d)
		}
	})
}

// TestCreateKeyKeptForever: the create key survives any number of later commands, at most
// KeysKept keys are kept, and the oldest other keys go first.
func TestCreateKeyKeptForever(t *testing.T) {
	if KeysKept != 64 {
		t.Errorf("KeysKept = %d, the design keeps 64 keys", KeysKept)
	}
	create := createCmd(alice, "create", t0)
	o := confirmed(t, create)
	created := o.View()
	at := t0
	var keys []string
	for i := range 2 * KeysKept {
		at = at.Add(time.Minute)
		key := "cycle-" + strings.Repeat("x", i%3) + string(rune('A'+i%26)) + "-" + itoa(i)
		typ, by := CmdSubmitPayment, alice
		if i%2 == 1 {
			typ, by = CmdFailPayment, oper
		}
		o, _ = step(t, o, cmdOn(&o, typ, by, key, at))
		keys = append(keys, key)
		if len(o.Keys) > KeysKept {
			t.Fatalf("after %d commands %d keys are kept, want at most %d", i+3, len(o.Keys), KeysKept)
		}
		if o.Keys[0].Key != "create" {
			t.Fatalf("after %d commands the first key is %q, want the create key", i+3, o.Keys[0].Key)
		}
	}
	if len(o.Keys) != KeysKept {
		t.Fatalf("%d keys kept, want %d", len(o.Keys), KeysKept)
	}
	if o.Version != 2*KeysKept+2 {
		t.Fatalf("version %d", o.Version)
	}
	// The kept keys are the create key and the newest KeysKept-1 others, oldest first.
	wantKept := append([]string{"create"}, keys[len(keys)-(KeysKept-1):]...)
	for i, k := range o.Keys {
		if k.Key != wantKept[i] {
			t.Fatalf("Keys[%d] = %q, want %q", i, k.Key, wantKept[i])
		}
		if i > 0 && k.Version <= o.Keys[i-1].Version {
			t.Fatalf("Keys not in version order at %d", i)
		}
	}
	if _, ok := o.FindKey("confirm-create"); ok {
		t.Fatal("the ConfirmStock key should have been forgotten")
	}
	r := wantReplay(t, &o, create)
	if got := o.ViewAt(r); !reflect.DeepEqual(got, created) || got.Version != 2 || got.Status != StatusCreated {
		t.Errorf("create replay view = %+v, want %+v (v2 CREATED)", got, created)
	}
	// A forgotten key is new again: the first SubmitPayment key, resent now (CREATED), pays.
	if _, ok := o.FindKey(keys[0]); ok {
		t.Fatalf("key %q should have been forgotten", keys[0])
	}
	if o.Status != StatusCreated {
		t.Fatalf("status %s", o.Status)
	}
	n, e := step(t, o, cmdOn(&o, CmdSubmitPayment, alice, keys[0], at.Add(time.Minute)))
	if e.Version != o.Version+1 || n.Keys[0].Key != "create" || len(n.Keys) != KeysKept {
		t.Errorf("after reusing a forgotten key: event %+v, %d keys, first %q", e, len(n.Keys), n.Keys[0].Key)
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

// TestRejectedCommandsDoNotConsumeKeys: a key whose command was refused can be used again.
func TestRejectedCommandsDoNotConsumeKeys(t *testing.T) {
	var o Order
	bad := createCmd(alice, "k", t0)
	bad.Lines = nil
	d, err := Decide(&o, bad)
	wantCode(t, d, err, CodeValidation)
	o, _ = step(t, o, createCmd(alice, "k", t0))
	// Refused while RESERVING: paying, expiring.
	for _, c := range []Command{cmdOn(&o, CmdSubmitPayment, alice, "k2", t0), cmdOn(&o, CmdExpire, sys, "k2", t0.Add(time.Hour))} {
		d, err := Decide(&o, c)
		wantCode(t, d, err, CodeIllegalTransition)
	}
	o, _ = step(t, o, cmdOn(&o, CmdConfirmStock, sys, "k1", t0))

	for _, rejected := range []struct {
		c    Command
		code Code
	}{
		{cmdOn(&o, CmdShip, oper, "k2", t0), CodeIllegalTransition},
		{cmdOn(&o, CmdConfirmStock, sys, "k2", t0), CodeIllegalTransition},
		{cmdOn(&o, CmdRejectStock, sys, "k2", t0), CodeIllegalTransition},
		{cmdOn(&o, CmdExpire, sys, "k2", t0), CodeIllegalTransition},
		{cmdOn(&o, CmdShip, alice, "k2", t0), CodeForbidden},
		{cmdOn(&o, CmdCancel, bob, "k2", t0), CodeNotFound},
		{cmdOn(&o, CmdExpirePayment, sys, "k2", t0), CodeIllegalTransition},
	} {
		d, err := Decide(&o, rejected.c)
		wantCode(t, d, err, rejected.code)
	}
	n, _ := step(t, o, cmdOn(&o, CmdSubmitPayment, alice, "k2", t0.Add(time.Minute)))
	if len(n.Keys) != 3 || n.Keys[2].Key != "k2" || n.Keys[2].Command != CmdSubmitPayment {
		t.Errorf("keys = %+v", n.Keys)
	}
}

func TestOwnership(t *testing.T) {
	o := orderIn(t, StatusCreated)
	for _, tc := range []struct {
		p    Principal
		want bool
	}{
		{alice, true}, {bob, false}, {Principal{Subject: "", Role: RoleShopper}, false},
		{Principal{Subject: "alice", Role: ""}, false}, {Principal{Subject: "alice", Role: "guest"}, false},
		{oper, true}, {adm, true}, {sys, true},
	} {
		if got := CanView(tc.p, &o); got != tc.want {
			t.Errorf("CanView(%+v) = %v, want %v", tc.p, got, tc.want)
		}
		if got := tc.p.SeesAllOrders(); got != (tc.want && tc.p.Role != RoleShopper) {
			t.Errorf("SeesAllOrders(%+v) = %v", tc.p, got)
		}
	}

	// Another shopper's order and a missing order give the same answer.
	c := cmdOn(&o, CmdCancel, bob, "k", t0.Add(time.Minute))
	_, errInvisible := Decide(&o, c)
	_, errMissing := Decide(&Order{}, c)
	if ErrorCode(errInvisible) != CodeNotFound || errInvisible.Error() != errMissing.Error() {
		t.Errorf("invisible: %v; missing: %v; want the same not-found error", errInvisible, errMissing)
	}
	d, err := Decide(&o, cmdOn(&o, CmdSubmitPayment, bob, "k", t0.Add(time.Minute)))
	wantCode(t, d, err, CodeNotFound)

	// The owner and staff may act.
	for _, p := range []Principal{alice, oper, adm} {
		n, _ := step(t, o, cmdOn(&o, CmdCancel, p, "k", t0.Add(time.Minute)))
		if n.Status != StatusClosed || n.Customer != "alice" {
			t.Errorf("%s cancel: %s, customer %q", p.Role, n.Status, n.Customer)
		}
	}
}

func TestPaymentDeadline(t *testing.T) {
	created := orderIn(t, StatusCreated)
	payAt := t0.Add(10 * time.Minute)
	deadline := payAt.Add(payTimeout)
	paying, e := step(t, created, cmdOn(&created, CmdSubmitPayment, alice, "pay", payAt))
	if !e.PaymentDeadline.Equal(deadline) || !paying.PaymentDeadline.Equal(deadline) || !paying.View().PaymentDeadline.Equal(deadline) {
		t.Fatalf("deadline: event %v, order %v, want %v", e.PaymentDeadline, paying.PaymentDeadline, deadline)
	}
	if k, _ := paying.FindKey("pay"); !k.Deadline.Equal(deadline) {
		t.Errorf("key result deadline %v", k.Deadline)
	}

	for _, tc := range []struct {
		name string
		c    Command
	}{
		{"zero", cmdOn(&created, CmdSubmitPayment, alice, "p0", payAt)},
		{"negative", cmdOn(&created, CmdSubmitPayment, alice, "p1", payAt)},
	} {
		tc.c.PaymentTimeout = map[string]time.Duration{"zero": 0, "negative": -time.Second}[tc.name]
		d, err := Decide(&created, tc.c)
		wantCode(t, d, err, CodeInvalidRequest)
	}

	expire := func(key string, at time.Time) Command { return cmdOn(&paying, CmdExpirePayment, sys, key, at) }
	t.Run("before the deadline", func(t *testing.T) {
		for _, at := range []time.Time{payAt, deadline.Add(-time.Nanosecond)} {
			d, err := Decide(&paying, expire("exp", at))
			wantCode(t, d, err, CodeIllegalTransition)
		}
	})
	t.Run("only the timer expires", func(t *testing.T) {
		for _, p := range []Principal{alice, oper, adm} {
			d, err := Decide(&paying, cmdOn(&paying, CmdExpirePayment, p, "exp", deadline))
			wantCode(t, d, err, CodeForbidden)
		}
	})
	for _, at := range []time.Time{deadline, deadline.Add(time.Nanosecond), deadline.Add(48 * time.Hour)} {
		t.Run("at or after the deadline "+at.Sub(deadline).String(), func(t *testing.T) {
			closed, e := step(t, paying, expire("exp", at))
			if e.Type != EvtPaymentExpired || closed.Status != StatusClosed || !closed.PaymentDeadline.IsZero() {
				t.Fatalf("event %s, order %s deadline %v", e.Type, closed.Status, closed.PaymentDeadline)
			}
			// The timer may fire twice (reactivation, second node): same key replays.
			r := wantReplay(t, &closed, expire("exp", at.Add(time.Hour)))
			if r.Status != StatusClosed || r.Version != closed.Version {
				t.Errorf("replay %+v", r)
			}
			d, err := Decide(&closed, expire("exp-2", at.Add(time.Hour)))
			wantCode(t, d, err, CodeIllegalTransition)
		})
	}

	t.Run("fail clears the deadline and allows paying again", func(t *testing.T) {
		failed, _ := step(t, paying, cmdOn(&paying, CmdFailPayment, oper, "fail", payAt.Add(time.Minute)))
		if failed.Status != StatusCreated || !failed.PaymentDeadline.IsZero() || !failed.View().PaymentDeadline.IsZero() {
			t.Fatalf("after fail: %s, deadline %v", failed.Status, failed.PaymentDeadline)
		}
		d, err := Decide(&failed, expire("exp", deadline.Add(time.Hour)))
		wantCode(t, d, err, CodeIllegalTransition)
		// The old pay key replays the old attempt; a new key pays again with a new deadline.
		r := wantReplay(t, &failed, cmdOn(&failed, CmdSubmitPayment, alice, "pay", payAt))
		if r.Status != StatusPaying || !r.Deadline.Equal(deadline) {
			t.Errorf("old pay replay %+v", r)
		}
		payAt2 := deadline.Add(time.Hour)
		deadline2 := payAt2.Add(payTimeout)
		again, _ := step(t, failed, cmdOn(&failed, CmdSubmitPayment, alice, "pay-2", payAt2))
		if !again.PaymentDeadline.Equal(deadline2) {
			t.Fatalf("second deadline %v, want %v", again.PaymentDeadline, deadline2)
		}
		d, err = Decide(&again, cmdOn(&again, CmdExpirePayment, sys, "exp", deadline2.Add(-time.Nanosecond)))
		wantCode(t, d, err, CodeIllegalTransition)
		closed, _ := step(t, again, cmdOn(&again, CmdExpirePayment, sys, "exp", deadline2))
		if closed.Status != StatusClosed {
			t.Errorf("status %s", closed.Status)
		}
	})
	t.Run("confirm and cancel clear the deadline", func(t *testing.T) {
		for _, c := range []Command{
			cmdOn(&paying, CmdConfirmPayment, oper, "x", payAt.Add(time.Minute)),
			cmdOn(&paying, CmdCancel, alice, "x", payAt.Add(time.Minute)),
		} {
			n, _ := step(t, paying, c)
			if !n.PaymentDeadline.IsZero() {
				t.Errorf("%s left deadline %v", c.Type, n.PaymentDeadline)
			}
			d, err := Decide(&n, cmdOn(&n, CmdExpirePayment, sys, "exp", deadline.Add(time.Hour)))
			wantCode(t, d, err, CodeIllegalTransition)
		}
	})
}

func TestFingerprint(t *testing.T) {
	base := createCmd(alice, "k", t0)
	fp := Fingerprint(base)
	same := base
	same.At, same.Key, same.OrderID = t0.Add(time.Hour), "other", "x"
	same.Lines = testLines()
	seen := KeyResult{Key: "k"}
	same.Seen = &seen
	if Fingerprint(same) != fp {
		t.Error("fingerprint depends on At, Key, OrderID, Seen or the identity of the Lines slice")
	}
	// Every system principal is one caller, so any timer may retry another's expiry.
	timer := Command{Type: CmdExpirePayment, By: Principal{Subject: "timer", Role: RoleSystem}}
	sweeper := timer
	sweeper.By.Subject = "sweeper"
	if Fingerprint(timer) != Fingerprint(sweeper) {
		t.Error("the fingerprint of a system command depends on the system principal's name")
	}
	variants := []func(c *Command){
		func(c *Command) { c.Type = CmdCancel },
		func(c *Command) { c.Currency = "USD" },
		func(c *Command) { c.Reason = "x" },
		func(c *Command) { c.Lines = c.Lines[:1] },
		func(c *Command) { c.Lines[0].SKU = "other" },
		func(c *Command) { c.Lines[0].Qty++ },
		func(c *Command) { c.Lines[1].UnitPrice++ },
		func(c *Command) { c.Lines[0], c.Lines[1] = c.Lines[1], c.Lines[0] },
		// The caller: another user, or the same name in another role.
		func(c *Command) { c.By = bob },
		func(c *Command) { c.By.Role = RoleOperator },
		// Length prefixes keep field boundaries apart.
		func(c *Command) { c.Currency, c.Reason = "EU", "R" },
	}
	for i, f := range variants {
		c := createCmd(alice, "k", t0)
		f(&c)
		if Fingerprint(c) == fp {
			t.Errorf("variant %d has the same fingerprint", i)
		}
	}
}
