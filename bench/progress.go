package bench

import (
	"context"
	"fmt"
	"io"
	"time"
)

// progress prints the previous second's rate, errors and latency each second until ctx
// is done. It reports second s-1 at s, by when nearly all of its samples are in.
func progress(ctx context.Context, w io.Writer, rec *Recorder, start time.Time) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			sec := int(now.Sub(start)/time.Second) - 1
			if sec < 0 {
				continue
			}
			p := rec.Second(sec)
			fmt.Fprintf(w, "[%4ds] %7.1f req/s  errors %-4d p50 %8.2fms  p99 %8.2fms\n",
				sec+1, float64(p.Count), p.Errors, p.P50Ms, p.P99Ms)
		}
	}
}
