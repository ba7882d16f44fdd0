package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/ordermesh/ordermesh/persistence"
	"github.com/ordermesh/ordermesh/persistence/pgtest"
	"github.com/ordermesh/ordermesh/persistence/postgres"
	"github.com/ordermesh/ordermesh/persistence/storetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func openFresh(t testing.TB) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("closing store: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) persistence.Store { return openFresh(t) })
}

func TestStocksConformance(t *testing.T) {
	storetest.RunStocks(t, func(t *testing.T) persistence.Stocks { return openFresh(t) })
}

func TestJobsConformance(t *testing.T) {
	storetest.RunJobs(t, func(t *testing.T) storetest.JobStore { return openFresh(t) })
}

func BenchmarkWriteStock(b *testing.B) {
	storetest.BenchmarkWriteStock(b, openFresh(b), 500)
}

func BenchmarkWriteTransitions(b *testing.B) {
	for _, orders := range []int{1, 64, 1024} {
		b.Run(fmt.Sprintf("orders=%d", orders), func(b *testing.B) {
			storetest.BenchmarkWriteTransitions(b, openFresh(b), orders)
		})
	}
}

func BenchmarkWriteTransitionsWithJobs(b *testing.B) {
	for _, orders := range []int{1, 64, 1024} {
		b.Run(fmt.Sprintf("orders=%d", orders), func(b *testing.B) {
			storetest.BenchmarkWriteTransitionsWithJobs(b, openFresh(b), orders)
		})
	}
}

// TestConcurrentOpen starts several stores on one fresh database at once, as nodes of a
// cluster do: the advisory lock must let exactly one apply the migrations.
func TestConcurrentOpen(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	const nodes = 4
	errs := make(chan error, nodes)
	stores := make(chan *postgres.Store, nodes)
	for range nodes {
		go func() {
			s, err := postgres.Open(ctx, url)
			if err == nil {
				stores <- s
			}
			errs <- err
		}()
	}
	for range nodes {
		if err := <-errs; err != nil {
			t.Errorf("Open: %v", err)
		}
	}
	close(stores)
	for s := range stores {
		if err := s.WriteOrder(ctx, persistence.Write{Order: persistence.Order{ID: "o1", Version: 1}}); err != nil &&
			!errors.Is(err, persistence.ErrConflict) {
			t.Errorf("WriteOrder: %v", err)
		}
		s.Close()
	}
}
