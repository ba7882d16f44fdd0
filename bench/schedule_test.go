package bench

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestOpenLoopKeepsTheIntendedRate(t *testing.T) {
	for _, rate := range []float64{1, 7, 100, 333, 1000} {
		clock := newFakeClock()
		start := clock.Now()
		var intended []time.Time
		n := RunOpenLoop(context.Background(), clock, Schedule{Start: start, Rate: rate}, start.Add(3*time.Second),
			func(i int, at time.Time) {
				if now := clock.Now(); !now.Equal(at) {
					t.Fatalf("rate %v: arrival %d fired at %v, intended %v", rate, i, now.Sub(start), at.Sub(start))
				}
				intended = append(intended, at)
			})
		if want := int(3 * rate); n != want || len(intended) != want {
			t.Fatalf("rate %v: %d arrivals in 3s, want %d", rate, n, want)
		}
		// No drift: arrival i is at exactly i/rate, however many came before.
		last := intended[len(intended)-1].Sub(start)
		if want := time.Duration(float64(len(intended)-1) / rate * float64(time.Second)); last != want {
			t.Fatalf("rate %v: last arrival at %v, want %v", rate, last, want)
		}
	}
}

func TestOpenLoopNeverSkipsArrivalsWhenBehind(t *testing.T) {
	clock := newFakeClock()
	start := clock.Now()
	var intended []time.Time
	n := RunOpenLoop(context.Background(), clock, Schedule{Start: start, Rate: 100}, start.Add(time.Second),
		func(i int, at time.Time) {
			intended = append(intended, at)
			clock.Advance(25 * time.Millisecond) // firing is slower than the schedule
		})
	if n != 100 {
		t.Fatalf("%d arrivals, want 100", n)
	}
	for i, at := range intended {
		if want := start.Add(time.Duration(i) * 10 * time.Millisecond); !at.Equal(want) {
			t.Fatalf("arrival %d intended at %v, want %v", i, at.Sub(start), want.Sub(start))
		}
	}
}

func TestOpenLoopStopsWhenCancelled(t *testing.T) {
	clock := newFakeClock()
	ctx, cancel := context.WithCancel(context.Background())
	n := RunOpenLoop(ctx, clock, Schedule{Start: clock.Now(), Rate: 10}, clock.Now().Add(time.Hour),
		func(i int, _ time.Time) {
			if i == 4 {
				cancel()
			}
		})
	if n != 5 {
		t.Fatalf("%d arrivals after cancel at the 5th, want 5", n)
	}
}

// A server that takes 100ms per request and a concurrency cap of 1, fed at 100 requests/s:
// each request waits for the one before, and its latency must include that wait.
func TestLatencyIsMeasuredFromIntendedStart(t *testing.T) {
	clock := newFakeClock()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		clock.Advance(100 * time.Millisecond)
		w.Write([]byte(`{"code":0,"message":"ok","data":{}}`))
	}))
	defer srv.Close()
	start := clock.Now()
	r := &runner{
		cfg: DefaultConfig(), clock: clock, lb: NewBalancer(16, 5*time.Second, []string{srv.URL}),
		rec: NewRecorder(start, start), sem: make(chan struct{}, 1), reqCtx: context.Background(),
	}
	const n = 5
	RunOpenLoop(context.Background(), clock, Schedule{Start: start, Rate: 100}, start.Add(n*10*time.Millisecond),
		func(i int, at time.Time) {
			r.exec(call{op: OpGet, method: http.MethodGet, path: "/x"}, at)
		})
	rep := buildReport(r.cfg, r, start, clock.Now(), n, nil)
	get, ok := rep.Op(OpGet)
	if !ok || get.Count != n {
		t.Fatalf("recorded %+v, want %d gets", get, n)
	}
	// Request i is intended at 10i ms and done at 100(i+1) ms: latency 100 + 90i ms.
	if get.MaxMs < 459 || get.MaxMs > 461 {
		t.Fatalf("max latency %.1fms, want 460ms (it includes 360ms of waiting)", get.MaxMs)
	}
	if get.P50Ms < 279 || get.P50Ms > 281 {
		t.Fatalf("p50 %.1fms, want 280ms", get.P50Ms)
	}
	if rep.Late != n-1 {
		t.Fatalf("late = %d, want %d (all but the first started after their intended time)", rep.Late, n-1)
	}
}
