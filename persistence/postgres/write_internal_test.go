package postgres

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/persistence"
	"github.com/ordermesh/ordermesh/persistence/internal/batch"
	"github.com/ordermesh/ordermesh/persistence/pgtest"
)

// goodWrite creates order id with one event.
func goodWrite(id string) persistence.Write {
	at := time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)
	return persistence.Write{
		Order: persistence.Order{ID: id, Customer: "alice", Status: "CREATED", Version: 1, Snapshot: []byte("s"),
			CreatedAt: at, UpdatedAt: at},
		Events: []persistence.Event{{OrderID: id, Version: 1, Type: "OrderCreated", To: "CREATED",
			IdempotencyKey: "key-" + id, Node: "n1", At: at, Payload: []byte(`{}`)}},
	}
}

// refusedBatch is 200 good writes, every tenth with a job, with, among them, writes whose
// text (of the order, an event or a job) PostgreSQL itself refuses. They bypass normalize,
// which would refuse them first in production, so the database's own refusal and the
// batch's isolation of it are what is tested.
func refusedBatch(t *testing.T) (reqs []*batch.Request, bad map[string]bool) {
	bad = map[string]bool{}
	for i := range 200 {
		id := fmt.Sprintf("good-%03d", i)
		w := goodWrite(id)
		if i%10 == 0 {
			w.Jobs = []persistence.Job{{ID: "job-" + id, Kind: "fulfilment", OrderID: id, State: persistence.JobPending,
				NextAt: w.Order.CreatedAt, CreatedAt: w.Order.CreatedAt, UpdatedAt: w.Order.CreatedAt}}
		}
		switch i {
		case 17:
			w.Events[0].IdempotencyKey = "nul\x00key"
		case 99:
			w.Order.Customer = "bad\xffutf8"
		case 150:
			w.Order.Status = "\x00"
		case 120:
			w.Jobs[0].Kind = "nul\x00kind"
		}
		if i == 17 || i == 99 || i == 150 || i == 120 {
			id = fmt.Sprintf("bad-%03d", i)
			w.Order.ID, w.Events[0].OrderID = id, id
			for j := range w.Jobs {
				w.Jobs[j].OrderID = id
			}
			bad[id] = true
		}
		reqs = append(reqs, batch.NewRequest(context.Background(), w))
	}
	return reqs, bad
}

// TestBatchIsolatesRefusedRows hands the flusher one batch in which PostgreSQL refuses
// the rows of four writes: those fail alone, with persistence.ErrInvalid, and every other
// write of the batch commits, jobs included.
func TestBatchIsolatesRefusedRows(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	reqs, bad := refusedBatch(t)
	s.flush(reqs)
	for _, r := range reqs {
		id := r.Write.Order.ID
		err := r.Wait()
		if bad[id] {
			if !errors.Is(err, persistence.ErrInvalid) || errors.Is(err, persistence.ErrConflict) {
				t.Errorf("%s: err = %v, want ErrInvalid", id, err)
			}
			if _, err := s.LoadOrder(ctx, id); !errors.Is(err, persistence.ErrNotFound) {
				t.Errorf("%s was stored: %v", id, err)
			}
			for _, j := range r.Write.Jobs {
				if _, err := s.GetJob(ctx, j.ID); !errors.Is(err, persistence.ErrNotFound) {
					t.Errorf("%s: its job %s was stored: %v", id, j.ID, err)
				}
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: good write failed with its batch: %v", id, err)
		} else if evs, err := s.OrderEvents(ctx, id); err != nil || len(evs) != 1 {
			t.Errorf("%s: events %v, %v", id, evs, err)
		}
		for _, j := range r.Write.Jobs {
			if _, err := s.GetJob(ctx, j.ID); err != nil {
				t.Errorf("%s: job %s: %v", id, j.ID, err)
			}
		}
	}
}

// TestBatchLostConnectionFailsAll: a batch that gets no answer from the server (here its
// context has ended) fails every write, and none of them as invalid: their content is
// not at fault, and the caller must treat the outcome as unknown.
func TestBatchLostConnectionFailsAll(t *testing.T) {
	s, err := Open(context.Background(), pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	reqs, _ := refusedBatch(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	results, err := s.writeIsolated(ctx, reqs)
	if err == nil || errors.Is(err, persistence.ErrInvalid) {
		t.Fatalf("batch err = %v, want a failure that is not ErrInvalid", err)
	}
	for i, err := range results {
		if err == nil || errors.Is(err, persistence.ErrInvalid) || errors.Is(err, persistence.ErrConflict) {
			t.Errorf("write %d: err = %v, want the batch's failure", i, err)
		}
	}
}

// adjustWrite stocks sku (new, expected version 0) with one adjustment event keyed key.
func adjustWrite(sku, key string, expected int64) persistence.StockWrite {
	at := time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)
	v := expected + 1
	return persistence.StockWrite{
		Stock:           persistence.StockRecord{SKU: sku, OnHand: 10 * v, Version: v, Snapshot: []byte(`{}`), UpdatedAt: at},
		ExpectedVersion: expected,
		Events: []persistence.StockEvent{{SKU: sku, Version: v, Type: "StockAdjusted", Delta: 10, IdempotencyKey: key,
			Node: "n1", At: at, Payload: []byte(`{}`)}},
	}
}

// TestOrdersAndSkusCommitTogether hands the flusher batches that mix orders' and skus'
// writes. They commit together; a sku whose row PostgreSQL refuses fails alone with
// ErrInvalid, and the orders of its batch still commit (not conflict: the refused
// transaction applied nothing of them); a sku behind its version fence fails alone with
// ErrConflict.
func TestOrdersAndSkusCommitTogether(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	flush := func(reqs ...*batch.Request) []error {
		s.flush(reqs)
		errs := make([]error, len(reqs))
		for i, r := range reqs {
			errs[i] = r.Wait()
		}
		return errs
	}
	bg := context.Background()

	errs := flush(batch.NewRequest(bg, goodWrite("o-1")), batch.NewStockRequest(bg, adjustWrite("tea", "k1", 0)),
		batch.NewRequest(bg, goodWrite("o-2")), batch.NewStockRequest(bg, adjustWrite("rice", "k1", 0)))
	for i, err := range errs {
		if err != nil {
			t.Errorf("first batch, write %d: %v", i, err)
		}
	}

	bad := adjustWrite("soy", "nul\x00key", 0)
	errs = flush(batch.NewRequest(bg, goodWrite("o-3")), batch.NewStockRequest(bg, bad),
		batch.NewStockRequest(bg, adjustWrite("tea", "k2", 1)), batch.NewRequest(bg, goodWrite("o-4")))
	if errs[0] != nil || errs[3] != nil || errs[2] != nil {
		t.Errorf("good writes beside a refused sku: %v", errs)
	}
	if !errors.Is(errs[1], persistence.ErrInvalid) {
		t.Errorf("refused sku: %v, want ErrInvalid", errs[1])
	}
	if _, _, err := s.LoadStock(ctx, "soy", nil, time.Time{}); !errors.Is(err, persistence.ErrNotFound) {
		t.Errorf("the refused sku was stored: %v", err)
	}

	errs = flush(batch.NewRequest(bg, goodWrite("o-5")), batch.NewStockRequest(bg, adjustWrite("rice", "k9", 5)))
	if errs[0] != nil || !errors.Is(errs[1], persistence.ErrConflict) {
		t.Errorf("a sku behind its fence: %v, want nil and ErrConflict", errs)
	}

	for _, id := range []string{"o-1", "o-2", "o-3", "o-4", "o-5"} {
		if _, err := s.LoadOrder(ctx, id); err != nil {
			t.Errorf("order %s: %v", id, err)
		}
	}
	for sku, version := range map[string]int64{"tea": 2, "rice": 1} {
		if row, _, err := s.LoadStock(ctx, sku, nil, time.Time{}); err != nil || row.Version != version {
			t.Errorf("sku %s: version %d, %v; want %d", sku, row.Version, err, version)
		}
	}
}
