package batch

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/ordermesh/ordermesh/persistence"
)

// enqueue adds writes for ids without waiting for their outcome.
func enqueue(q *Queue, ctx context.Context, ids ...string) {
	for _, id := range ids {
		q.pending = append(q.pending, &Request{Ctx: ctx, Write: persistence.Write{Order: persistence.Order{ID: id}},
			done: make(chan error, 1)})
	}
}

func ids(reqs []*Request) []string {
	var out []string
	for _, r := range reqs {
		out = append(out, r.Write.Order.ID)
	}
	return out
}

func TestTake(t *testing.T) {
	tests := []struct {
		name     string
		queued   []string
		max      int
		distinct bool
		batches  [][]string
	}{
		{"all at once", []string{"a", "b", "c"}, 10, false, [][]string{{"a", "b", "c"}}},
		{"capped", []string{"a", "b", "c"}, 2, false, [][]string{{"a", "b"}, {"c"}}},
		{"repeats allowed", []string{"a", "a", "b"}, 10, false, [][]string{{"a", "a", "b"}}},
		{"distinct defers repeats in order", []string{"a", "a", "b", "a", "c"}, 10, true,
			[][]string{{"a", "b", "c"}, {"a"}, {"a"}}},
		{"distinct and capped", []string{"a", "a", "b", "c"}, 2, true, [][]string{{"a", "b"}, {"a", "c"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := New()
			enqueue(q, context.Background(), tt.queued...)
			q.Close()
			var got [][]string
			for {
				reqs, ok := q.Take(tt.max, tt.distinct)
				if !ok {
					break
				}
				got = append(got, ids(reqs))
			}
			if !slices.EqualFunc(got, tt.batches, slices.Equal) {
				t.Errorf("batches %v, want %v", got, tt.batches)
			}
		})
	}
}

func TestTakeSkipsCanceled(t *testing.T) {
	q := New()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	enqueue(q, ctx, "gone")
	canceled := q.pending[0]
	enqueue(q, context.Background(), "kept")
	reqs, ok := q.Take(10, true)
	if !ok || !slices.Equal(ids(reqs), []string{"kept"}) {
		t.Fatalf("Take = %v, %v; want [kept]", ids(reqs), ok)
	}
	if err := <-canceled.done; !errors.Is(err, context.Canceled) {
		t.Errorf("canceled request completed with %v", err)
	}
}

func TestSubmitAfterClose(t *testing.T) {
	q := New()
	q.Close()
	if err := q.Submit(context.Background(), persistence.Write{}); !errors.Is(err, persistence.ErrClosed) {
		t.Errorf("Submit after Close = %v, want ErrClosed", err)
	}
	if _, ok := q.Take(1, false); ok {
		t.Error("Take on a closed, empty queue returned ok")
	}
}

// With HoldWhileBusy, a lone write goes out at once; while it is in flight the next
// writes wait and go together when it is Done, unless the backlog reaches the threshold;
// Close lets a held flusher drain.
func TestHoldWhileBusy(t *testing.T) {
	q := New()
	q.HoldWhileBusy(3)
	ctx := context.Background()
	enqueue(q, ctx, "a")
	if got, _ := q.Take(10, true); !slices.Equal(ids(got), []string{"a"}) {
		t.Fatalf("idle: took %v, want [a] at once", ids(got))
	}
	taken := make(chan []string)
	go func() {
		got, _ := q.Take(10, true)
		taken <- ids(got)
	}()
	q.mu.Lock()
	enqueue(q, ctx, "b", "c")
	q.mu.Unlock()
	q.cond.Broadcast()
	q.mu.Lock()
	held := q.held()
	q.mu.Unlock()
	if !held {
		t.Fatal("[b c] may go out while [a] is in flight and the backlog is under 3")
	}
	q.Done()
	if got := <-taken; !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("after Done: took %v, want [b c] in one batch", got)
	}

	// b and c are in flight; a backlog of 3 gets a second batch out.
	go func() {
		got, _ := q.Take(10, true)
		taken <- ids(got)
	}()
	q.mu.Lock()
	enqueue(q, ctx, "d", "e", "f")
	q.mu.Unlock()
	q.cond.Broadcast()
	if got := <-taken; !slices.Equal(got, []string{"d", "e", "f"}) {
		t.Fatalf("backlog of 3: took %v, want [d e f]", got)
	}

	// Two batches in flight, one write queued: Close releases it.
	go func() {
		got, _ := q.Take(10, true)
		taken <- ids(got)
	}()
	q.mu.Lock()
	enqueue(q, ctx, "g")
	q.mu.Unlock()
	q.Close()
	if got := <-taken; !slices.Equal(got, []string{"g"}) {
		t.Fatalf("after Close: took %v, want [g]", got)
	}
}
