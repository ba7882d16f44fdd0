package orderpb

import (
	"testing"

	"github.com/ordermesh/ordermesh/actors/order/ordertest"

	"github.com/ordermesh/ordermesh/actors/order"
)

// BenchmarkEncodeSnapshot: the snapshot written with every transition, for an order with
// a few keys and one with KeysKept keys.
func BenchmarkEncodeSnapshot(b *testing.B) {
	for _, tc := range []struct {
		name string
		o    order.Order
	}{
		{"few-keys", ordertest.PayingWithKeys(b)},
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
