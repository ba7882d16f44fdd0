package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/ordermesh/ordermesh/persistence"
	"github.com/ordermesh/ordermesh/persistence/sqlite"
	"github.com/ordermesh/ordermesh/persistence/storetest"
)

func openTemp(t testing.TB) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "nested", "ordermesh.db"))
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
	storetest.Run(t, func(t *testing.T) persistence.Store { return openTemp(t) })
}

func TestStocksConformance(t *testing.T) {
	storetest.RunStocks(t, func(t *testing.T) persistence.Stocks { return openTemp(t) })
}

func TestJobsConformance(t *testing.T) {
	storetest.RunJobs(t, func(t *testing.T) storetest.JobStore { return openTemp(t) })
}

func BenchmarkWriteStock(b *testing.B) {
	storetest.BenchmarkWriteStock(b, openTemp(b), 500)
}

func BenchmarkWriteTransitions(b *testing.B) {
	for _, orders := range []int{1, 64, 256} {
		b.Run(fmt.Sprintf("orders=%d", orders), func(b *testing.B) {
			storetest.BenchmarkWriteTransitions(b, openTemp(b), orders)
		})
	}
}

func BenchmarkWriteTransitionsWithJobs(b *testing.B) {
	for _, orders := range []int{1, 64, 256} {
		b.Run(fmt.Sprintf("orders=%d", orders), func(b *testing.B) {
			storetest.BenchmarkWriteTransitionsWithJobs(b, openTemp(b), orders)
		})
	}
}

// TestReopen checks that migrations apply once and data survives a clean reopen.
func TestReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "reopen.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WriteOrder(ctx, persistence.Write{Order: persistence.Order{ID: "o1", Status: "CREATED", Version: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("reopening: %v", err)
	}
	defer s.Close()
	if o, err := s.LoadOrder(ctx, "o1"); err != nil || o.Version != 1 {
		t.Fatalf("LoadOrder after reopen = %+v, %v", o, err)
	}
}
