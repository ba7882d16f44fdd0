package cluster

import (
	"path/filepath"
	"sync"
	"testing"

	"github.com/ordermesh/ordermesh/actors/live"
	"github.com/ordermesh/ordermesh/actors/order"
)

// The node publishes each committed change once, as the store has it, with the order's
// view at its version; and the wire form of a change survives the trip.
func TestGrainsPublishWhatTheyCommit(t *testing.T) {
	store := openStore(t, filepath.Join(t.TempDir(), "push.db"))
	var mu sync.Mutex
	var got []live.Change
	n := startNodeConfig(t, store, func(c *Config) {
		c.Push = &Push{Publish: func(ch live.Change) { mu.Lock(); got = append(got, ch); mu.Unlock() }}
	})
	v := create(t, n, "push-1")
	mustExec(t, n, v.ID, order.CmdSubmitPayment, "push-2", alice)
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 3 {
		t.Fatalf("%d changes published, want 3 (created, stock reserved, payment submitted)", len(got))
	}
	stored, err := store.OrderEvents(t.Context(), v.ID)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range got {
		if c.Version() != uint64(i+1) || c.View.Version != c.Version() || c.Committed.IsZero() {
			t.Errorf("change %d: version %d, view version %d, committed %v", i, c.Version(), c.View.Version, c.Committed)
		}
		s := stored[i]
		if c.Event.Type != s.Type || c.Event.IdempotencyKey != s.IdempotencyKey || c.Event.Node != s.Node || !c.Event.At.Equal(s.At) {
			t.Errorf("change %d: %+v, stored %+v", i, c.Event, s)
		}
		back := changeFromPB(changeToPB(c))
		if back.Event.Type != c.Event.Type || string(back.Event.Payload) != string(c.Event.Payload) || !back.Event.At.Equal(c.Event.At) ||
			back.View.Status != c.View.Status || back.View.Total != c.View.Total || !back.Committed.Equal(c.Committed) {
			t.Errorf("change %d after the wire: %+v, want %+v", i, back, c)
		}
	}
}
