package bench

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

func TestHistogramsMergeLikeOneHistogram(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	whole := newHistogram()
	workers := []*hdrhistogram.Histogram{newHistogram(), newHistogram(), newHistogram(), newHistogram()}
	for i := range 100_000 {
		d := time.Duration(rng.ExpFloat64() * float64(3*time.Millisecond))
		if i%1000 == 0 {
			d = time.Duration(rng.IntN(2000)) * time.Millisecond // a tail
		}
		recordLatency(whole, d)
		recordLatency(workers[i%len(workers)], d)
	}
	merged := mergeHistograms(workers...)
	if merged.TotalCount() != whole.TotalCount() || merged.Max() != whole.Max() || merged.Min() != whole.Min() {
		t.Fatalf("merged count/min/max %d/%d/%d, want %d/%d/%d",
			merged.TotalCount(), merged.Min(), merged.Max(), whole.TotalCount(), whole.Min(), whole.Max())
	}
	for _, q := range []float64{50, 90, 99, 99.9, 100} {
		if m, w := merged.ValueAtQuantile(q), whole.ValueAtQuantile(q); m != w {
			t.Fatalf("p%v: merged %d, whole %d", q, m, w)
		}
	}
}

func TestRecordLatencyClampsOutOfRange(t *testing.T) {
	h := newHistogram()
	recordLatency(h, 0)
	recordLatency(h, 5*time.Minute)
	if h.TotalCount() != 2 || h.Min() != histMin || h.ValueAtQuantile(100) < histMax*999/1000 {
		t.Fatalf("count %d min %d max %d: out-of-range latencies must be clamped, not dropped", h.TotalCount(), h.Min(), h.Max())
	}
}

func TestRecorderSplitsWarmupAndSeconds(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rec := NewRecorder(start, start.Add(time.Second))
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	rec.Record(Sample{Op: OpPay, Intended: at(500), Done: at(510)})                                     // warm-up: timeline only
	rec.Record(Sample{Op: OpPay, Intended: at(1500), Done: at(1520)})                                   // second 1
	rec.Record(Sample{Op: OpPay, Intended: at(1990), Done: at(2030), Code: "40900"})                    // second 2, error
	rec.Record(Sample{Op: OpCancel, Intended: at(2100), Done: at(2200), Code: "40900", Expected: true}) // expected
	for sec, want := range []int64{1, 1, 2} {
		if p := rec.Second(sec); p.Count != want {
			t.Fatalf("second %d: count %d, want %d", sec, p.Count, want)
		}
	}
	if p := rec.Second(2); p.Errors != 1 {
		t.Fatalf("second 2: %d errors, want 1 (the expected refusal is not an error)", p.Errors)
	}
	r := &runner{rec: rec, lb: NewBalancer(1, time.Second, []string{"http://x"})}
	rep := buildReport(Config{Duration: 2 * time.Second}, r, start, at(3000), 4, nil)
	pay, _ := rep.Op(OpPay)
	cancel, _ := rep.Op(OpCancel)
	if pay.Count != 2 || pay.Errors != 1 || pay.ByCode["40900"] != 1 || pay.Throughput != 1 {
		t.Fatalf("pay = %+v", pay)
	}
	if cancel.Errors != 0 || cancel.Expected["40900"] != 1 {
		t.Fatalf("cancel = %+v", cancel)
	}
	if rep.Total.Count != 3 || rep.Total.Errors != 1 || rep.Total.MaxMs < 99.9 || rep.Total.MaxMs > 100.1 {
		t.Fatalf("total = %+v", rep.Total)
	}
}
