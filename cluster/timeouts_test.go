package cluster

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/actors"
	"github.com/ordermesh/ordermesh/actors/order"
	"github.com/ordermesh/ordermesh/persistence"
)

func TestTimeoutsForLeaveRoomForEachOther(t *testing.T) {
	for _, request := range []time.Duration{200 * time.Millisecond, time.Second, 3 * time.Second, 10 * time.Second, 2 * time.Minute} {
		to := TimeoutsFor(request)
		if err := to.Check(); err != nil {
			t.Errorf("TimeoutsFor(%s) = %+v: %v", request, to, err)
		}
		if !(to.Request >= to.Retry+to.Attempt && to.Retry > to.Attempt && to.Attempt > 3*to.Write && to.Write > 0) {
			t.Errorf("TimeoutsFor(%s) = %+v breaks the chain", request, to)
		}
	}
	for _, bad := range []Timeouts{
		{Attempt: 2 * time.Second, Write: 5 * time.Second},
		{Attempt: 2 * time.Second, Write: 700 * time.Millisecond},
		{Retry: time.Second, Attempt: 2 * time.Second, Write: 500 * time.Millisecond},
		{Request: 5 * time.Second, Retry: 4 * time.Second, Attempt: 2 * time.Second, Write: 500 * time.Millisecond},
	} {
		if bad.Check() == nil {
			t.Errorf("%+v passes the check", bad)
		}
	}
}

func TestStartRejectsStoreTimeoutLongerThanAttempt(t *testing.T) {
	_, err := Start(Config{Remote: "127.0.0.1:0", RequestTimeout: 2 * time.Second, Grain: &actors.GrainConfig{WriteTimeout: 5 * time.Second}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil {
		t.Fatal("a node whose grains wait for the store longer than callers wait for them started")
	}
}

// slowStore holds every WriteOrder while blocked (ignoring its context, like a store
// stuck in an fsync), and counts LoadOrder calls: one per activation.
type slowStore struct {
	persistence.Orders
	mu      sync.Mutex
	loads   map[string]int
	blocked chan struct{} // non-nil while writes are held; closed to release them
}

func (s *slowStore) LoadOrder(ctx context.Context, id string) (persistence.Order, error) {
	s.mu.Lock()
	s.loads[id]++
	s.mu.Unlock()
	return s.Orders.LoadOrder(ctx, id)
}

func (s *slowStore) WriteOrder(ctx context.Context, w persistence.Write) error {
	s.mu.Lock()
	blocked := s.blocked
	s.mu.Unlock()
	if blocked != nil {
		<-blocked
		ctx = context.Background()
	}
	return s.Orders.WriteOrder(ctx, w)
}

func (s *slowStore) loadsOf(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loads[id]
}

// A call that gives up on a grain stuck in a store write must not leave that grain
// orphaned beside a second activation of the same order on the same node: retries queue
// behind the write in the one grain.
func TestSlowWriteKeepsOneActivation(t *testing.T) {
	store := &slowStore{Orders: openStore(t, filepath.Join(t.TempDir(), "om.db")), loads: map[string]int{}}
	n := startNodeConfig(t, store, func(c *Config) { c.RequestTimeout = 300 * time.Millisecond })
	o := create(t, n, "slow")

	release := make(chan struct{})
	store.mu.Lock()
	store.blocked = release
	store.mu.Unlock()
	if _, err := exec(n, o.ID, order.CmdSubmitPayment, "pay", alice); order.ErrorCode(err) != order.CodeUnavailable {
		t.Fatalf("payment during a stuck write: %v, want CodeUnavailable (timeout)", err)
	}
	for range 3 {
		if _, err := n.Get(context.Background(), o.ID, alice, "t"); order.ErrorCode(err) != order.CodeUnavailable {
			t.Fatalf("get during a stuck write: %v, want CodeUnavailable (timeout)", err)
		}
		if got := n.Activations(); got != 1 {
			t.Fatalf("%d activations during a stuck write, want 1", got)
		}
	}
	store.mu.Lock()
	store.blocked = nil
	store.mu.Unlock()
	close(release)

	res, err := exec(n, o.ID, order.CmdSubmitPayment, "pay", alice)
	if err != nil || !res.Replayed || res.View.Status != order.StatusPaying {
		t.Fatalf("payment retried after the write: %+v, %v", res, err)
	}
	if got := store.loadsOf(o.ID); got != 1 {
		t.Fatalf("order loaded %d times, want once (one activation)", got)
	}
	checkHistory(t, store, o.ID, order.EvtCreated, order.EvtStockReserved, order.EvtPaymentSubmitted)
}
