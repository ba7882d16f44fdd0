package order_test

import (
	"testing"
	"time"

	. "github.com/ordermesh/ordermesh/actors/order"
	"github.com/ordermesh/ordermesh/actors/order/ordertest"
)

// BenchmarkDecide: a legal transition (ConfirmPayment) on a PAYING order with a few keys.
func BenchmarkDecide(b *testing.B) {
	o := ordertest.PayingWithKeys(b)
	c := cmdOn(&o, CmdConfirmPayment, oper, "bench-confirm", t0.Add(time.Hour))
	b.ReportAllocs()
	for b.Loop() {
		d, err := Decide(&o, c)
		if err != nil || len(d.Events) != 1 {
			b.Fatal(d, err)
		}
	}
}

// BenchmarkDecideEvolve: decide and apply, as the grain does for every command.
func BenchmarkDecideEvolve(b *testing.B) {
	o := ordertest.PayingWithKeys(b)
	c := cmdOn(&o, CmdConfirmPayment, oper, "bench-confirm", t0.Add(time.Hour))
	b.ReportAllocs()
	for b.Loop() {
		d, err := Decide(&o, c)
		if err != nil {
			b.Fatal(err)
		}
		n := Evolve(o, d.Events[0])
		if n.Status != StatusPaid {
			b.Fatal(n.Status)
		}
	}
}
