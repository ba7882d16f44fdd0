package bench

import (
	"context"
	"time"
)

// Clock is the harness's source of time, so tests can run the scheduler on virtual time.
type Clock interface {
	Now() time.Time
	// SleepUntil returns at t (at once if t has passed), or early with ctx's error.
	SleepUntil(ctx context.Context, t time.Time) error
}

// RealClock is the wall clock.
type RealClock struct{}

// Now returns time.Now().
func (RealClock) Now() time.Time { return time.Now() }

// SleepUntil sleeps until t or until ctx is done.
func (RealClock) SleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// Schedule is an open-loop arrival schedule: arrival i is due at Start + i/Rate, whatever
// happened to the arrivals before it. Each time is computed from i, not by adding
// intervals, so rounding never drifts the rate.
type Schedule struct {
	Start time.Time
	Rate  float64 // arrivals per second
}

// At returns the intended start of arrival i.
func (s Schedule) At(i int) time.Time {
	return s.Start.Add(time.Duration(float64(i) * float64(time.Second) / s.Rate))
}

// RunOpenLoop calls fire for every arrival of s that is due before end, each at (or, when
// the caller is behind, as soon as possible after) its intended time, and returns how many
// it fired. A slow fire delays the following arrivals' actual start but never their
// intended time, which is what latency is measured from: arrivals are never skipped.
// fire must not block for long; sessions run on their own goroutines.
func RunOpenLoop(ctx context.Context, clock Clock, s Schedule, end time.Time, fire func(i int, intended time.Time)) int {
	n := 0
	for i := 0; ; i++ {
		t := s.At(i)
		if !t.Before(end) {
			return n
		}
		if err := clock.SleepUntil(ctx, t); err != nil {
			return n
		}
		fire(i, t)
		n++
	}
}
