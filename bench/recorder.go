package bench

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Sample is one finished request.
type Sample struct {
	Op       string
	Intended time.Time // when the schedule meant it to start: latency is measured from here
	Done     time.Time
	Code     string // "" on success; the envelope code, or "transport"
	Expected bool   // a refusal the scenario expects (the loser of a race)
	Late     bool   // it could not start at its intended time (waited for a concurrency slot)
}

// opStats accumulates one operation over the measured part of a run.
type opStats struct {
	hist     *hdrhistogram.Histogram
	count    int64
	errors   map[string]int64
	expected map[string]int64
}

// secondStats accumulates every operation that completed within one second of the run.
type secondStats struct {
	hist   *hdrhistogram.Histogram
	count  int64
	errors int64
}

// Recorder aggregates samples from concurrent sessions. Samples whose intended start is
// before the end of the warm-up are counted only in the per-second timeline.
type Recorder struct {
	mu        sync.Mutex
	start     time.Time
	warmupEnd time.Time
	ops       map[string]*opStats
	seconds   []*secondStats // by completion second since start
	late      int64
}

// NewRecorder returns a recorder for a run that starts at start and measures from warmupEnd.
func NewRecorder(start, warmupEnd time.Time) *Recorder {
	return &Recorder{start: start, warmupEnd: warmupEnd, ops: map[string]*opStats{}}
}

// Record adds one sample.
func (r *Recorder) Record(s Sample) {
	lat := s.Done.Sub(s.Intended)
	r.mu.Lock()
	defer r.mu.Unlock()
	sec := int(s.Done.Sub(r.start) / time.Second)
	if sec < 0 {
		sec = 0
	}
	for len(r.seconds) <= sec {
		r.seconds = append(r.seconds, &secondStats{hist: newSecondHistogram()})
	}
	ss := r.seconds[sec]
	ss.count++
	if s.Code != "" && !s.Expected {
		ss.errors++
	}
	recordLatency(ss.hist, lat)

	if s.Intended.Before(r.warmupEnd) {
		return
	}
	st := r.ops[s.Op]
	if st == nil {
		st = &opStats{hist: newHistogram(), errors: map[string]int64{}, expected: map[string]int64{}}
		r.ops[s.Op] = st
	}
	st.count++
	recordLatency(st.hist, lat)
	switch {
	case s.Code == "":
	case s.Expected:
		st.expected[s.Code]++
	default:
		st.errors[s.Code]++
	}
	if s.Late {
		r.late++
	}
}

// Second returns the summary of second i of the run (zero if nothing completed in it).
func (r *Recorder) Second(i int) TimelinePoint {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := TimelinePoint{Second: i}
	if i < 0 || i >= len(r.seconds) {
		return p
	}
	ss := r.seconds[i]
	p.Count, p.Errors = ss.count, ss.errors
	if ss.count > 0 {
		p.P50Ms = millis(ss.hist.ValueAtQuantile(50))
		p.P99Ms = millis(ss.hist.ValueAtQuantile(99))
	}
	return p
}
