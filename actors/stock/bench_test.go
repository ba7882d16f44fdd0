package stock_test

import (
	"strconv"
	"testing"

	. "github.com/ordermesh/ordermesh/actors/stock"
)

// stocked returns a sku with units on hand and n live reservations.
func stocked(b *testing.B, n int) Stock {
	s := New(sku)
	s.Apply(Event{Type: EvtAdjusted, SKU: sku, Version: 1, Delta: MaxOnHand / 2, Key: "init"})
	for i := range n {
		d, err := Decide(&s, Command{Type: CmdReserve, SKU: sku, OrderID: "old-" + strconv.Itoa(i), Qty: 1, By: sys, At: t0})
		if err != nil {
			b.Fatal(err)
		}
		s.Apply(d.Events[0])
	}
	return s
}

func BenchmarkDecideReserve(b *testing.B) {
	s := stocked(b, 1000)
	c := Command{Type: CmdReserve, SKU: sku, OrderID: "o_new", Qty: 2, By: sys, At: t0}
	b.ReportAllocs()
	for b.Loop() {
		if d, err := Decide(&s, c); err != nil || len(d.Events) != 1 {
			b.Fatal(d, err)
		}
	}
}

func BenchmarkDecideBatch1000(b *testing.B) {
	s := stocked(b, 1000)
	cmds := make([]Command, 1000)
	for i := range cmds {
		cmds[i] = Command{Type: CmdReserve, SKU: sku, OrderID: "o_" + strconv.Itoa(i), Qty: 2, By: sys, At: t0}
	}
	b.ReportAllocs()
	for b.Loop() {
		if bt := DecideBatch(s, cmds); len(bt.Events) != len(cmds) {
			b.Fatal(len(bt.Events))
		}
	}
}

// BenchmarkDecideBatchHotSku is the common case of a busy sku: a few commands decided
// against a sku that holds many orders' holdings.
func BenchmarkDecideBatchHotSku(b *testing.B) {
	s := stocked(b, 100_000)
	cmds := make([]Command, 8)
	for i := range cmds {
		cmds[i] = Command{Type: CmdReserve, SKU: sku, OrderID: "o_" + strconv.Itoa(i), Qty: 2, By: sys, At: t0}
	}
	cmds[7] = Command{Type: CmdSell, SKU: sku, OrderID: "old-7", By: sys, At: t0}
	b.ReportAllocs()
	for b.Loop() {
		if bt := DecideBatch(s, cmds); len(bt.Events) != len(cmds) {
			b.Fatal(len(bt.Events))
		}
	}
}
