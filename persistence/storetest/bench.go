package storetest

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/persistence"
)

// BenchmarkWriteTransitions measures durable transitions per second with orders
// concurrent writers, each owning one order and writing its next transition (snapshot
// of about 200 bytes plus one event) as soon as the previous one is acknowledged. b.N
// counts transitions across all writers. It reports "transitions/s".
func BenchmarkWriteTransitions(b *testing.B, s persistence.Store, orders int) {
	benchmarkTransitions(b, s, orders, false)
}

// BenchmarkWriteTransitionsWithJobs is BenchmarkWriteTransitions with the outbox: every
// transition also inserts a job and ends the one the previous transition inserted, as an
// order entering and leaving PAYING does.
func BenchmarkWriteTransitionsWithJobs(b *testing.B, s persistence.Store, orders int) {
	benchmarkTransitions(b, s, orders, true)
}

func benchmarkTransitions(b *testing.B, s persistence.Store, orders int, jobs bool) {
	ctx := context.Background()
	snapshot := bytes.Repeat([]byte("x"), 200)
	payload := []byte(`{"items":3}`)
	// Cheap to build, so the benchmark measures the store rather than fmt.
	write := func(id string, v int64) error {
		from, to := "S"+strconv.FormatInt(v-1, 10), "S"+strconv.FormatInt(v, 10)
		w := persistence.Write{
			Order: persistence.Order{ID: id, Customer: "bench", Status: to, Version: v, Snapshot: snapshot,
				CreatedAt: base, UpdatedAt: base},
			ExpectedVersion: v - 1,
			Events: []persistence.Event{{OrderID: id, Version: v, Type: "Bench", From: from, To: to,
				IdempotencyKey: id + "/" + to, Node: "bench", At: base, Payload: payload}},
		}
		if jobs {
			w.Jobs = []persistence.Job{{ID: id + "/" + to, Kind: "bench", OrderID: id, NextAt: base, Payload: payload,
				CreatedAt: base, UpdatedAt: base}}
			w.EndJobs = []persistence.JobEnd{{ID: id + "/" + from, State: persistence.JobCancelled, Note: "moved on"}}
		}
		return s.WriteOrder(ctx, w)
	}
	for i := range orders {
		if err := write(fmt.Sprintf("bench-%05d", i), 1); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for i := range orders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("bench-%05d", i)
			for v := int64(2); next.Add(1) <= int64(b.N); v++ {
				if err := write(id, v); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "transitions/s")
}

// BenchmarkWriteStock measures one sku's batch writes: each WriteStock carries events
// holding events (each reserving for a new order, so as many holdings upserted), as a
// stock grain writes a batch of commands. It reports "events/s".
func BenchmarkWriteStock(b *testing.B, s persistence.Stocks, events int) {
	ctx := context.Background()
	writes := make([]persistence.StockWrite, b.N)
	for i := range writes {
		writes[i] = stockWrite("bench", int64(i*events), int64(events), "RESERVED")
	}
	b.ResetTimer()
	start := time.Now()
	for _, w := range writes {
		if err := s.WriteStock(ctx, w); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N*events)/elapsed.Seconds(), "events/s")
}
