package edge

import (
	"context"
	"sync/atomic"
	"time"
)

// InFlight counts the requests the edge is working on, so that a draining node can wait
// for exactly those and then close its connections, instead of waiting for idle
// keep-alive connections to time out.
type InFlight struct{ n atomic.Int64 }

// Count is the number of requests being served now.
func (f *InFlight) Count() int64 { return f.n.Load() }

// Wait returns once no request is being served, or when ctx ends.
func (f *InFlight) Wait(ctx context.Context) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for f.n.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}
