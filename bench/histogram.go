package bench

import (
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds from 1µs to 60s. Per-operation histograms keep 3
// significant digits; the per-second ones behind the progress line and the chart keep 2,
// which is plenty for a plot and keeps a long run's memory at ~20 KiB per second instead of
// ~150 KiB.
const (
	histMin     = 1
	histMax     = int64(60 * time.Second / time.Microsecond)
	histSigFigs = 3
	secSigFigs  = 2
)

func newHistogram() *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, histSigFigs) }

func newSecondHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(histMin, histMax, secSigFigs)
}

// recordLatency clamps d into the histogram's range: a latency beyond 60s is recorded as
// 60s rather than dropped, so a stalled server still shows up at the top of the tail.
func recordLatency(h *hdrhistogram.Histogram, d time.Duration) {
	us := d.Microseconds()
	if us < histMin {
		us = histMin
	}
	if us > histMax {
		us = histMax
	}
	_ = h.RecordValue(us) // cannot fail: the value is in range
}

// mergeHistograms returns one histogram holding every sample of hs.
func mergeHistograms(hs ...*hdrhistogram.Histogram) *hdrhistogram.Histogram {
	out := newHistogram()
	for _, h := range hs {
		if h != nil {
			out.Merge(h)
		}
	}
	return out
}

// Millis converts a histogram value (µs) to milliseconds for reports.
func millis(us int64) float64 { return float64(us) / 1000 }
