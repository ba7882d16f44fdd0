package edge

import (
	"math"
	"sync"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"
)

func TestRequestStatsWindow(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	r := NewRequestStats(clock.Now)
	if got := r.Load(); got != (RequestLoad{}) {
		t.Fatalf("empty stats: %+v", got)
	}
	// Ten seconds of 100 requests: 98 of 1 ms, 2 of 100 ms.
	for range 10 {
		for i := range 100 {
			d := time.Millisecond
			if i < 2 {
				d = 100 * time.Millisecond
			}
			r.Record(d)
		}
		clock.Advance(time.Second)
	}
	// The current second is not in the window: requests in it change nothing yet.
	r.Record(time.Minute)
	got := r.Load()
	if got.RequestsPerSecond != 100 {
		t.Errorf("rate %v, want 100", got.RequestsPerSecond)
	}
	within(t, "p50", got.LatencyP50Ms, 1)
	within(t, "p99", got.LatencyP99Ms, 100)

	// Eleven seconds on, the first ten have left the window; the minute-long one is in.
	clock.Advance(time.Second)
	got = r.Load()
	if got.RequestsPerSecond != 90.1 {
		t.Errorf("rate %v, want 90.1 (nine seconds of 100 and the one request)", got.RequestsPerSecond)
	}
	clock.Advance(StatsWindow)
	if got := r.Load(); got != (RequestLoad{}) {
		t.Errorf("after a quiet window: %+v, want zeros", got)
	}
}

// within checks a quantile against its exact value: a bucket is at most a quarter wide.
func within(t *testing.T, name string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > want/4 {
		t.Errorf("%s %vms, want %vms within a quarter", name, got, want)
	}
}

func TestLatencyBuckets(t *testing.T) {
	prev := -1
	for _, d := range []time.Duration{0, time.Microsecond, 3 * time.Microsecond, 4 * time.Microsecond,
		7 * time.Microsecond, time.Millisecond, 1500 * time.Microsecond, time.Second, time.Minute, time.Hour} {
		b := latencyBucket(d)
		if b < 0 || b >= latencyBuckets || b < prev {
			t.Fatalf("bucket of %v = %d (previous %d, %d buckets)", d, b, prev, latencyBuckets)
		}
		prev = b
		if d >= 4*time.Microsecond && d < time.Minute {
			within(t, d.String(), bucketMidMs(b), float64(d)/float64(time.Millisecond))
		}
	}
	if latencyBucket(-time.Second) != 0 {
		t.Error("a negative duration must count as 0")
	}
}

// Recording from many goroutines loses nothing within one second (run with -race).
func TestRequestStatsConcurrent(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	r := NewRequestStats(clock.Now)
	r.Record(time.Millisecond) // the slot of this second is claimed before the rush
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				r.Record(2 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	clock.Advance(time.Second)
	if got := r.Load().RequestsPerSecond; got != 800.1 {
		t.Errorf("rate %v, want 800.1", got)
	}
}

// The edge records every request but the WebSocket's, which the cluster view then shows.
func TestRequestStatsRecordsRequests(t *testing.T) {
	var stats *RequestStats
	h := newHarness(t, func(_ *Config, d *Deps) { stats = NewRequestStats(nil); d.Requests = stats })
	for range 5 {
		h.do(req{method: "GET", path: "/healthz"}).expect(t, 200, order.CodeOK)
	}
	h.do(req{method: "GET", path: "/api/v1/nope"}).expect(t, 404, order.CodeRouteNotFound)
	var total uint64
	for i := range stats.slots {
		total += stats.slots[i].count.Load()
	}
	if total != 6 {
		t.Errorf("recorded %d requests, want 6", total)
	}
}
