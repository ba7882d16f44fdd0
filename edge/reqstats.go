package edge

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// RequestStats keeps the rate and the latency percentiles of the requests a node served
// in the last StatsWindow, for the cluster view. Prometheus has the full histograms; this
// is the cheap live figure every member reports to the others.
//
// It is a ring of per-second slots, each a count and a latency histogram of atomic
// counters: recording a request is two atomic adds, with no lock for concurrent requests
// to queue on. The slot of a new second is zeroed by the first request of that second;
// a request that lands in it while it is being zeroed may be lost, an error of a few
// requests in a second that only a live figure can afford.
type RequestStats struct {
	now   func() time.Time
	slots [statsSlots]statsSlot
}

// StatsWindow is how far back RequestStats looks: the last complete seconds, so that the
// figures do not dip at the start of every second.
const StatsWindow = 10 * time.Second

const (
	windowSeconds = int64(StatsWindow / time.Second)
	// statsSlots: the window, the second being filled, and one spare, so that the slot
	// being recycled for a new second is never one the window reads.
	statsSlots = windowSeconds + 2
)

// Latency buckets, log-linear over microseconds: below 4 µs one bucket per µs, above four
// buckets per power of two, so a bucket is at most a quarter wider than its lower bound.
// Anything from 2^latencyMaxExp µs (about 134 s) up shares the last bucket.
const (
	latencyMaxExp  = 27
	latencyBuckets = 4 + (latencyMaxExp-2)*4
)

type statsSlot struct {
	sec   atomic.Int64 // the Unix second counted here
	count atomic.Uint64
	hist  [latencyBuckets]atomic.Uint32
}

// RequestLoad is what RequestStats reports: requests per second over the window and the
// median and 99th percentile latency of those requests, in milliseconds (0 without any).
type RequestLoad struct {
	RequestsPerSecond float64
	LatencyP50Ms      float64
	LatencyP99Ms      float64
}

// NewRequestStats returns empty stats; now = nil is time.Now.
func NewRequestStats(now func() time.Time) *RequestStats {
	if now == nil {
		now = time.Now
	}
	return &RequestStats{now: now}
}

// Record counts one request that took d.
func (r *RequestStats) Record(d time.Duration) {
	sec := r.now().Unix()
	slot := &r.slots[uint64(sec)%uint64(statsSlots)]
	for {
		cur := slot.sec.Load()
		if cur == sec {
			break
		}
		if cur > sec {
			return // a request that finished just before a second rolled over: too late
		}
		if slot.sec.CompareAndSwap(cur, sec) {
			slot.count.Store(0)
			for i := range slot.hist {
				slot.hist[i].Store(0)
			}
			break
		}
	}
	slot.count.Add(1)
	slot.hist[latencyBucket(d)].Add(1)
}

// Load sums the complete seconds of the window.
func (r *RequestStats) Load() RequestLoad {
	now := r.now().Unix()
	var total uint64
	var hist [latencyBuckets]uint64
	for sec := now - windowSeconds; sec < now; sec++ {
		slot := &r.slots[uint64(sec)%uint64(statsSlots)]
		if slot.sec.Load() != sec {
			continue // no request in that second
		}
		total += slot.count.Load()
		for i := range slot.hist {
			hist[i] += uint64(slot.hist[i].Load())
		}
	}
	if total == 0 {
		return RequestLoad{}
	}
	return RequestLoad{
		RequestsPerSecond: float64(total) / float64(windowSeconds),
		LatencyP50Ms:      quantileMs(&hist, 0.50),
		LatencyP99Ms:      quantileMs(&hist, 0.99),
	}
}

// latencyBucket is the histogram bucket of d.
func latencyBucket(d time.Duration) int {
	us := uint64(max(d.Microseconds(), 0))
	if us < 4 {
		return int(us)
	}
	e := bits.Len64(us) - 1 // 2^e <= us < 2^(e+1), e >= 2
	if e >= latencyMaxExp {
		return latencyBuckets - 1
	}
	sub := int(us>>(e-2)) & 3
	return 4 + (e-2)*4 + sub
}

// bucketMidMs is the middle of bucket i in milliseconds.
func bucketMidMs(i int) float64 {
	if i < 4 {
		return (float64(i) + 0.5) / 1000
	}
	e, sub := (i-4)/4+2, (i-4)%4
	lo := float64(uint64(4+sub) << (e - 2))
	hi := float64(uint64(5+sub) << (e - 2))
	return (lo + hi) / 2 / 1000
}

// quantileMs is the q-quantile of the counts in hist, as its bucket's middle.
func quantileMs(hist *[latencyBuckets]uint64, q float64) float64 {
	var total uint64
	for _, n := range hist {
		total += n
	}
	rank := uint64(q*float64(total) + 0.5) // the rank-th smallest, 1-based
	rank = min(max(rank, 1), total)
	var seen uint64
	for i, n := range hist {
		seen += n
		if seen >= rank {
			return bucketMidMs(i)
		}
	}
	return bucketMidMs(latencyBuckets - 1)
}
