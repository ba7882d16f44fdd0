package sqlite_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/persistence"
	"github.com/ordermesh/ordermesh/persistence/sqlite"
)

// claimChildEnv names the database a child process claims jobs from.
const claimChildEnv = "ORDERMESH_SQLITE_CLAIM_CHILD"

// at is the time every job of TestClaimsAcrossProcesses is due at and claimed at.
var at = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

// TestClaimsAcrossProcesses has three processes share one database file, as the nodes of
// a local cluster do, and claim its jobs from several goroutines each while they also
// write orders: no job is claimed twice, and every job is claimed.
func TestClaimsAcrossProcesses(t *testing.T) {
	if path := os.Getenv(claimChildEnv); path != "" {
		claimChild(path)
		return
	}
	const jobs, processes = 300, 3
	path := filepath.Join(t.TempDir(), "shared.db")
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	for o := range jobs / 10 {
		id := fmt.Sprintf("o%02d", o)
		w := persistence.Write{Order: persistence.Order{ID: id, Status: "PAID", Version: 1}}
		for i := range 10 {
			w.Jobs = append(w.Jobs, persistence.Job{ID: fmt.Sprintf("%s-j%d", id, i), Kind: "fulfilment", NextAt: at})
		}
		if err := s.WriteOrder(context.Background(), w); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	claimed := map[string]int{}
	var wg, ready sync.WaitGroup
	var starts []io.WriteCloser
	for p := range processes {
		cmd := exec.Command(os.Args[0], "-test.run=^TestClaimsAcrossProcesses$")
		cmd.Env = append(os.Environ(), claimChildEnv+"="+path)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		start, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		starts = append(starts, start)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ready.Add(1)
		wg.Go(func() {
			// A process that ends without saying ready must not hold the others back.
			isReady := sync.OnceFunc(ready.Done)
			defer isReady()
			lines := bufio.NewScanner(out)
			for lines.Scan() {
				if lines.Text() == "ready" {
					isReady()
				}
				if id, ok := strings.CutPrefix(lines.Text(), "claimed "); ok {
					mu.Lock()
					if other, dup := claimed[id]; dup {
						t.Errorf("job %s claimed by processes %d and %d", id, other, p)
					}
					claimed[id] = p
					mu.Unlock()
				}
			}
			if err := cmd.Wait(); err != nil {
				t.Errorf("process %d: %v", p, err)
			}
		})
	}
	// Start them together, once each has opened the store.
	ready.Wait()
	for _, start := range starts {
		if err := start.Close(); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	per := map[int]int{}
	for _, p := range claimed {
		per[p]++
	}
	t.Logf("jobs claimed by each process: %v", per)
	if len(claimed) != jobs {
		t.Errorf("%d jobs claimed, want %d", len(claimed), jobs)
	}
}

// claimChild opens the store, says "ready" and waits for its standard input to close; then
// it claims jobs from 3 goroutines, a few at a time, and prints each, until none is left,
// while another goroutine keeps writing an order of its own.
func claimChild(path string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		fail(err)
	}
	defer s.Close()
	owner := fmt.Sprintf("pid-%d", os.Getpid())
	fmt.Println("ready")
	if _, err := io.Copy(io.Discard, os.Stdin); err != nil {
		fail(err)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var done atomic.Bool
	var writer sync.WaitGroup
	writer.Go(func() {
		for v := int64(1); !done.Load(); v++ {
			w := persistence.Write{Order: persistence.Order{ID: owner, Status: "S", Version: v}, ExpectedVersion: v - 1,
				Events: []persistence.Event{{Version: v, Type: "T"}}}
			if err := s.WriteOrder(context.Background(), w); err != nil {
				fail(err)
			}
		}
	})
	var claimers sync.WaitGroup
	for range 3 {
		claimers.Go(func() {
			for {
				jobs, err := s.ClaimJobs(context.Background(), "fulfilment", owner, at, at.Add(time.Hour), 2)
				if err != nil {
					fail(err)
				}
				if len(jobs) == 0 {
					return
				}
				mu.Lock()
				for _, j := range jobs {
					fmt.Fprintf(out, "claimed %s\n", j.ID)
				}
				out.Flush()
				mu.Unlock()
			}
		})
	}
	claimers.Wait()
	done.Store(true)
	writer.Wait()
}
