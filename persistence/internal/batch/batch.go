// Package batch is the queue behind group commit: WriteOrder calls enqueue and wait,
// flusher goroutines take everything queued (up to a cap) and complete each request.
package batch

import (
	"context"
	"sync"

	"github.com/ordermesh/ordermesh/persistence"
)

// Request is one queued write waiting for its outcome: an order's (Write) or, if Stock is
// set, a sku's.
type Request struct {
	Ctx   context.Context
	Write persistence.Write
	Stock *persistence.StockWrite
	done  chan error
}

// NewRequest returns a request for w on behalf of ctx. Submit makes one per write; a
// store's tests make their own to hand a batch to the store's writer directly.
func NewRequest(ctx context.Context, w persistence.Write) *Request {
	return &Request{Ctx: ctx, Write: w, done: make(chan error, 1)}
}

// NewStockRequest is NewRequest for a sku's write.
func NewStockRequest(ctx context.Context, w persistence.StockWrite) *Request {
	return &Request{Ctx: ctx, Stock: &w, done: make(chan error, 1)}
}

// key is what no two writes of one batch share (with Take's distinct): the order, or the
// sku.
func (r *Request) key() string {
	if r.Stock != nil {
		return "\x00stock\x00" + r.Stock.Stock.SKU
	}
	return r.Write.Order.ID
}

// Wait returns the outcome Complete delivers.
func (r *Request) Wait() error { return <-r.done }

// Complete delivers the outcome of r. It must be called exactly once per taken request.
func (r *Request) Complete(err error) { r.done <- err }

// Queue collects pending writes. The zero value is not usable; call New.
type Queue struct {
	mu      sync.Mutex
	cond    *sync.Cond
	pending []*Request
	closed  bool

	// inflight counts the batches taken and not yet Done; overlapAt, when above 0, is
	// the backlog at which Take hands out a batch while another is still in flight.
	inflight, overlapAt int
}

// New returns an empty, open queue.
func New() *Queue {
	q := &Queue{}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// Submit enqueues w and waits for a flusher to complete it. It returns
// persistence.ErrClosed once Close was called. If ctx ends first, Submit returns
// ctx.Err(); a write still queued is then skipped, but one already being written may
// still be applied: the caller must treat the outcome as unknown and reload.
func (q *Queue) Submit(ctx context.Context, w persistence.Write) error {
	return q.submit(NewRequest(ctx, w))
}

// SubmitStock is Submit for a sku's write: a store that takes both commits them together,
// an order's and a sku's writes sharing a transaction.
func (q *Queue) SubmitStock(ctx context.Context, w persistence.StockWrite) error {
	return q.submit(NewStockRequest(ctx, w))
}

func (q *Queue) submit(r *Request) error {
	ctx := r.Ctx
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return persistence.ErrClosed
	}
	q.pending = append(q.pending, r)
	q.mu.Unlock()
	q.cond.Signal()
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// HoldWhileBusy makes the queue's batching adaptive: while a batch is being written, Take
// hands out another only once n writes are queued; until then the writes wait for the
// batch in flight to finish and go together in the next one. An idle store writes a lone
// write at once (nothing is in flight); a busy one writes fewer, fuller batches; and a
// backlog of n or more (the database keeps up no longer with one batch at a time) gets
// several batches in flight again. Call it before the first Take; without it every
// flusher takes whatever is queued.
func (q *Queue) HoldWhileBusy(n int) {
	q.mu.Lock()
	q.overlapAt = n
	q.mu.Unlock()
}

// Done tells the queue that a batch Take returned has been written (whatever the outcome).
// Every batch taken must be Done.
func (q *Queue) Done() {
	q.mu.Lock()
	q.inflight--
	q.mu.Unlock()
	q.cond.Broadcast()
}

// held reports whether Take must wait although writes are queued (see HoldWhileBusy).
func (q *Queue) held() bool {
	return q.overlapAt > 0 && q.inflight > 0 && len(q.pending) < q.overlapAt && !q.closed
}

// Take blocks until writes are queued and returns up to max of them in arrival order;
// call Done once they are written.
// With distinct set, no two returned writes share an order id (or a sku): a later write
// for one already in the batch stays queued, ahead of newer writes, for the next batch. Requests
// whose context already ended are completed with its error and not returned. Take
// returns ok=false once the queue is closed and drained.
func (q *Queue) Take(max int, distinct bool) (reqs []*Request, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		for len(q.pending) == 0 || q.held() {
			if q.closed && len(q.pending) == 0 {
				return nil, false
			}
			q.cond.Wait()
		}
		var ids map[string]struct{}
		if distinct {
			ids = make(map[string]struct{}, min(len(q.pending), max))
		}
		rest := q.pending[:0]
		for i, r := range q.pending {
			if len(reqs) == max {
				rest = append(rest, q.pending[i:]...)
				break
			}
			if err := r.Ctx.Err(); err != nil {
				r.Complete(err)
				continue
			}
			if distinct {
				k := r.key()
				if _, dup := ids[k]; dup {
					rest = append(rest, r)
					continue
				}
				ids[k] = struct{}{}
			}
			reqs = append(reqs, r)
		}
		clear(q.pending[len(rest):])
		q.pending = rest
		if len(q.pending) > 0 {
			// Wake another flusher for what is left.
			q.cond.Signal()
		}
		if len(reqs) > 0 {
			q.inflight++
			return reqs, true
		}
	}
}

// Close makes further Submit calls fail with persistence.ErrClosed and lets Take drain
// what is already queued.
func (q *Queue) Close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Broadcast()
}
