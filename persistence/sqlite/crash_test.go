package sqlite_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/ordermesh/ordermesh/persistence"
	"github.com/ordermesh/ordermesh/persistence/sqlite"
)

// crashChildEnv names the database a child process writes to until it is killed.
const crashChildEnv = "ORDERMESH_SQLITE_CRASH_CHILD"

// TestAcknowledgedWritesSurviveKill runs writers in a child process, SIGKILLs it after
// some writes were acknowledged, and checks that every acknowledged write is in the file.
func TestAcknowledgedWritesSurviveKill(t *testing.T) {
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(path)
		return
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestAcknowledgedWritesSurviveKill$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := make(map[string]int64)
	lines := bufio.NewScanner(out)
	for n := 0; n < 2000 && lines.Scan(); n++ {
		var id string
		var v int64
		if _, err := fmt.Sscanf(lines.Text(), "ack %s %d", &id, &v); err != nil {
			continue // test framework output
		}
		acked[id] = max(acked[id], v)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if len(acked) == 0 {
		t.Fatal("child acknowledged no writes")
	}

	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for id, v := range acked {
		o, err := s.LoadOrder(context.Background(), id)
		if err != nil {
			t.Fatalf("acknowledged order %s v%d: %v", id, v, err)
		}
		if o.Version < v {
			t.Errorf("order %s at version %d, but version %d was acknowledged", id, o.Version, v)
		}
		evs, err := s.OrderEvents(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(evs)) != o.Version {
			t.Errorf("order %s at version %d has %d events", id, o.Version, len(evs))
		}
	}
}

// crashChild writes transitions from 16 goroutines and prints each acknowledgement,
// forever: the parent kills it.
func crashChild(path string) {
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("crash-%02d", i)
			for v := int64(1); ; v++ {
				w := persistence.Write{
					Order:           persistence.Order{ID: id, Customer: "c", Status: "S", Version: v},
					ExpectedVersion: v - 1,
					Events:          []persistence.Event{{Version: v, Type: "T", From: "S", To: "S"}},
				}
				if err := s.WriteOrder(context.Background(), w); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				mu.Lock()
				fmt.Fprintf(out, "ack %s %d\n", id, v)
				out.Flush()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}
