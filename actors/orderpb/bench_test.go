package orderpb

import (
	"strconv"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"
)

// benchPaying returns a PAYING order that has already seen a few keys (two pay/fail rounds).
func benchPaying(b *testing.B) order.Order {
	o := orderIn(b, order.StatusCreated)
	at := t0
	for i := range 4 {
		at = at.Add(time.Minute)
		typ, by := order.CmdSubmitPayment, alice
		if i%2 == 1 {
			typ, by = order.CmdFailPayment, oper
		}
		o, _ = step(b, o, cmdOn(&o, typ, by, "bench-"+strconv.Itoa(i), at))
	}
	o, _ = step(b, o, cmdOn(&o, order.CmdSubmitPayment, alice, "bench-pay", at.Add(time.Minute)))
	if o.Status != order.StatusPaying || len(o.Keys) != 6 {
		b.Fatalf("setup: %s with %d keys", o.Status, len(o.Keys))
	}
	return o
}

// BenchmarkDecide: a legal transition (ConfirmPayment) on a PAYING order with a few keys.
func BenchmarkDecide(b *testing.B) {
	o := benchPaying(b)
	c := cmdOn(&o, order.CmdConfirmPayment, oper, "bench-confirm", t0.Add(time.Hour))
	b.ReportAllocs()
	for b.Loop() {
		d, err := order.Decide(&o, c)
		if err != nil || len(d.Events) != 1 {
			b.Fatal(d, err)
		}
	}
}

// BenchmarkDecideEvolve: decide and apply, as the grain does for every command.
func BenchmarkDecideEvolve(b *testing.B) {
	o := benchPaying(b)
	c := cmdOn(&o, order.CmdConfirmPayment, oper, "bench-confirm", t0.Add(time.Hour))
	b.ReportAllocs()
	for b.Loop() {
		d, err := order.Decide(&o, c)
		if err != nil {
			b.Fatal(err)
		}
		n := order.Evolve(o, d.Events[0])
		if n.Status != order.StatusPaid {
			b.Fatal(n.Status)
		}
	}
}

// BenchmarkEncodeSnapshot: the snapshot written with every transition, for an order with
// a few keys and one with KeysKept keys.
func BenchmarkEncodeSnapshot(b *testing.B) {
	for _, tc := range []struct {
		name string
		o    order.Order
	}{
		{"few-keys", benchPaying(b)},
		{"full-keys", fullKeys(b)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			var size int
			for b.Loop() {
				buf, err := EncodeSnapshot(&tc.o)
				if err != nil {
					b.Fatal(err)
				}
				size = len(buf)
			}
			b.ReportMetric(float64(size), "bytes/snapshot")
		})
	}
}

// BenchmarkDecodeSnapshot: the snapshot read on every grain activation.
func BenchmarkDecodeSnapshot(b *testing.B) {
	o := fullKeys(b)
	buf, err := EncodeSnapshot(&o)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeSnapshot(buf); err != nil {
			b.Fatal(err)
		}
	}
}
