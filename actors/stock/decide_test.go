package stock_test

import (
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/ordermesh/ordermesh/actors/order"
	. "github.com/ordermesh/ordermesh/actors/stock"
)

func equalStock(a, b Stock) bool { return reflect.DeepEqual(a, b) }

func adjust(key string, delta int64) Command {
	return Command{Type: CmdAdjust, SKU: sku, Key: key, Delta: delta, By: oper, At: t0}
}

// run decides c on s and applies its events, failing on an error.
func run(t *testing.T, s Stock, c Command) (Stock, Decision) {
	t.Helper()
	d, err := Decide(&s, c)
	if err != nil {
		t.Fatalf("%s: %v", c.Type, err)
	}
	for _, e := range d.Events {
		s = Evolve(s, e)
	}
	return s, d
}

func TestReserveOutOfStockNamesTheSKUAndIsStable(t *testing.T) {
	s, _ := run(t, New(sku), adjust("in", 5))
	c := holdingCmd(CmdReserve, "o1")
	c.Qty = 6
	s, d := run(t, s, c)
	if order.ErrorCode(d.Err()) != order.CodeOutOfStock || !strings.Contains(order.ErrorMessage(d.Err()), sku) {
		t.Fatalf("refusal = %v", d.Err())
	}
	if s.Reserved != 0 || s.Holding("o1").State != HoldRefused || s.Version != 2 {
		t.Fatalf("after refusal: %+v", s)
	}
	// Stock comes in; the repeat is still refused and changes nothing.
	s, _ = run(t, s, adjust("more", 100))
	s2, d := run(t, s, c)
	if order.ErrorCode(d.Err()) != order.CodeOutOfStock || !d.Replay || !equalStock(s, s2) {
		t.Fatalf("repeat after restock: %+v", d)
	}
	// Another order gets the stock.
	c.OrderID = "o2"
	if s, d = run(t, s, c); d.Err() != nil || s.Reserved != 6 || s.Available() != 99 {
		t.Fatalf("o2: %+v %+v", d, s)
	}
}

func TestReserveRepeatReturnsTheOriginalOutcome(t *testing.T) {
	s, _ := run(t, New(sku), adjust("in", 5))
	c := holdingCmd(CmdReserve, "o1")
	s, _ = run(t, s, c)
	s, _ = run(t, s, adjust("out", -2)) // available is 0 now
	s2, d := run(t, s, c)
	if d.Err() != nil || !d.Replay || !equalStock(s, s2) {
		t.Fatalf("repeat after the stock changed: %+v", d)
	}
	c.Qty = 2
	if _, err := Decide(&s, c); order.ErrorCode(err) != order.CodeKeyReused {
		t.Fatalf("other qty for the same order: %v", err)
	}
}

func TestAdjust(t *testing.T) {
	s, _ := run(t, New(sku), adjust("in", 5))
	s, _ = run(t, s, holdingCmd(CmdReserve, "o1")) // 3 reserved
	for _, tc := range []struct {
		name string
		c    Command
		code order.Code
	}{
		{"below reserved", adjust("a", -3), order.CodeOutOfStock},
		{"below zero", adjust("b", -6), order.CodeOutOfStock},
		{"zero", adjust("c", 0), order.CodeValidation},
		{"too many", adjust("d", MaxOnHand), order.CodeValidation},
		{"huge delta", adjust("e", -MaxOnHand-1), order.CodeValidation},
		{"no key", adjust("", 1), order.CodeInvalidRequest},
		{"shopper", Command{Type: CmdAdjust, SKU: sku, Key: "f", Delta: 1, By: shop}, order.CodeForbidden},
		{"system", Command{Type: CmdAdjust, SKU: sku, Key: "f", Delta: 1, By: sys}, order.CodeForbidden},
		{"key reused", adjust("in", 6), order.CodeKeyReused},
		{"reason too long", Command{Type: CmdAdjust, SKU: sku, Key: "g", Delta: 1, By: adm, Reason: strings.Repeat("x", order.MaxReason+1)}, order.CodeValidation},
		{"control character", Command{Type: CmdAdjust, SKU: sku, Key: "g", Delta: 1, By: adm, Reason: "a\x00"}, order.CodeInvalidRequest},
		{"other sku", Command{Type: CmdAdjust, SKU: "mug", Key: "g", Delta: 1, By: adm}, order.CodeInvalidRequest},
		{"unknown", Command{Type: "Teleport", SKU: sku, Key: "g", By: adm}, order.CodeInvalidRequest},
	} {
		before := s.Clone()
		d, err := Decide(&s, tc.c)
		if order.ErrorCode(err) != tc.code || len(d.Events) != 0 || !equalStock(s, before) {
			t.Errorf("%s: %+v, %v; want code %d", tc.name, d, err, tc.code)
		}
	}
	if order.ErrorMessage(func() error { _, err := Decide(&s, adjust("a", -3)); return err }()) == "" {
		t.Fatal("no message")
	}
	s, _ = run(t, s, adjust("a", -2)) // down to exactly reserved
	if s.OnHand != 3 || s.Available() != 0 {
		t.Fatalf("after -2: %+v", s)
	}
	s2, d := run(t, s, adjust("a", -2))
	if !d.Replay || !equalStock(s, s2) {
		t.Fatalf("repeat: %+v", d)
	}
}

func TestHoldingCommandChecks(t *testing.T) {
	s, _ := run(t, New(sku), adjust("in", 5))
	for _, tc := range []struct {
		name string
		c    Command
		code order.Code
	}{
		{"operator reserves", Command{Type: CmdReserve, SKU: sku, OrderID: "o", Qty: 1, By: oper}, order.CodeForbidden},
		{"shopper releases", Command{Type: CmdRelease, SKU: sku, OrderID: "o", By: shop}, order.CodeForbidden},
		{"no order id", Command{Type: CmdReserve, SKU: sku, Qty: 1, By: sys}, order.CodeInvalidRequest},
		{"long order id", Command{Type: CmdSell, SKU: sku, OrderID: strings.Repeat("o", order.MaxIDBytes+1), By: sys}, order.CodeInvalidRequest},
		{"qty 0", Command{Type: CmdReserve, SKU: sku, OrderID: "o", By: sys}, order.CodeValidation},
		{"qty over", Command{Type: CmdReserve, SKU: sku, OrderID: "o", Qty: order.MaxQty + 1, By: sys}, order.CodeValidation},
		{"ship unsold", Command{Type: CmdShip, SKU: sku, OrderID: "o", By: sys}, order.CodeIllegalTransition},
	} {
		if _, err := Decide(&s, tc.c); order.ErrorCode(err) != tc.code {
			t.Errorf("%s: %v; want code %d", tc.name, err, tc.code)
		}
	}
}

func TestLifecycleCounters(t *testing.T) {
	s, _ := run(t, New(sku), adjust("in", 10))
	for _, o := range []string{"a", "b", "c"} {
		s, _ = run(t, s, holdingCmd(CmdReserve, o))
	}
	s, _ = run(t, s, holdingCmd(CmdRelease, "a"))
	s, _ = run(t, s, holdingCmd(CmdSell, "b"))
	s, _ = run(t, s, holdingCmd(CmdSell, "c"))
	if s.OnHand != 10 || s.Reserved != 6 {
		t.Fatalf("sold: %+v", s)
	}
	s, _ = run(t, s, holdingCmd(CmdShip, "b"))
	if s.OnHand != 7 || s.Reserved != 3 {
		t.Fatalf("shipped: %+v", s)
	}
	s, _ = run(t, s, holdingCmd(CmdRefund, "c"))
	if s.OnHand != 7 || s.Reserved != 0 {
		t.Fatalf("refunded before shipping: %+v", s)
	}
	s2, d := run(t, s, holdingCmd(CmdRefund, "b"))
	if !d.Replay || !equalStock(s, s2) {
		t.Fatalf("refund after shipping changed stock: %+v", s2)
	}
}

func TestKeysKept(t *testing.T) {
	s := New(sku)
	for i := range KeysKept + 5 {
		s, _ = run(t, s, adjust("k"+strconv.Itoa(i), 1))
	}
	if len(s.Keys) != KeysKept || s.Keys[0].Key != "k5" {
		t.Fatalf("keys: %d, first %q", len(s.Keys), s.Keys[0].Key)
	}
	if k, ok := s.FindKey("k" + strconv.Itoa(KeysKept+4)); !ok || k.OnHand != KeysKept+5 {
		t.Fatalf("newest key: %+v %v", k, ok)
	}
}
