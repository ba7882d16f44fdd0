package live

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/ordermesh/ordermesh/persistence"
)

// Errors a Session ends with, besides its Deliver's and the store's.
var (
	// ErrTooSlow: the session's buffer of changes waiting for its client was full when
	// another one arrived. The hub never waits for a client, so it drops the client.
	ErrTooSlow = errors.New("live: client too slow: its send buffer is full")
	// ErrDraining: the node is leaving; clients reconnect to another node and resubscribe
	// with the last versions they have.
	ErrDraining = errors.New("live: node draining")
	// ErrClosed: the session was closed by its owner.
	ErrClosed = errors.New("live: session closed")
)

// Defaults for zero HubConfig fields.
const (
	DefaultStoreTimeout  = 5 * time.Second
	DefaultRecheckWindow = 10 * time.Minute
	DefaultForgetAfter   = time.Hour
)

// HubConfig configures a Hub.
type HubConfig struct {
	// Store is read to replay what a client missed and to fill gaps.
	Store persistence.Orders
	// ResyncEvery, if positive, makes every session re-check its orders against the
	// store that often (Resync), for changes whose live copy was lost and that no later
	// change has revealed yet. Topology changes trigger a re-check anyway.
	ResyncEvery time.Duration
	// StoreTimeout bounds each store read (default DefaultStoreTimeout).
	StoreTimeout time.Duration
	// RecheckWindow: a re-check of an all-orders subscription covers the orders it saw a
	// change of within this window (default DefaultRecheckWindow); it cannot know about
	// the others.
	RecheckWindow time.Duration
	// ForgetAfter: an all-orders subscription forgets the version of an order it has
	// seen no change of for this long (default DefaultForgetAfter), so its memory stays
	// bounded by the cluster's recent activity.
	ForgetAfter time.Duration
	Logger      *slog.Logger // nil = slog.Default()
	Now         func() time.Time
}

// Hub routes the committed changes of the cluster to the sessions of one node. Publish
// never blocks: a session that cannot take a change right now is ended with ErrTooSlow.
type Hub struct {
	cfg HubConfig

	mu       sync.RWMutex
	sessions map[*Session]struct{}
	byOrder  map[string]map[*Session]struct{} // orders subscribed one by one
	all      map[*Session]struct{}            // subscriptions to every order
	draining bool
}

// NewHub returns a hub; run Run for the periodic re-check.
func NewHub(cfg HubConfig) *Hub {
	if cfg.StoreTimeout <= 0 {
		cfg.StoreTimeout = DefaultStoreTimeout
	}
	if cfg.RecheckWindow <= 0 {
		cfg.RecheckWindow = DefaultRecheckWindow
	}
	if cfg.ForgetAfter <= 0 {
		cfg.ForgetAfter = DefaultForgetAfter
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Hub{
		cfg: cfg, sessions: map[*Session]struct{}{}, byOrder: map[string]map[*Session]struct{}{}, all: map[*Session]struct{}{},
	}
}

// Publish hands a committed change to every session subscribed to its order. It is
// called on grain goroutines and by the cluster's fan-out, so it never waits.
func (h *Hub) Publish(c Change) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	subs := h.byOrder[c.OrderID()]
	for s := range subs {
		s.offer(c)
	}
	for s := range h.all {
		if _, ok := subs[s]; !ok {
			s.offer(c)
		}
	}
}

// Resync asks every session to re-check its orders against the store: call it when the
// cluster's topology changed (a node drained, died or joined), since changes in flight
// from a node that died are lost and may be the last of their orders for a while.
func (h *Hub) Resync() {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for s := range h.sessions {
		select {
		case s.resync <- struct{}{}:
		default: // one is pending already
		}
	}
}

// Run re-checks every session each HubConfig.ResyncEvery until ctx ends.
func (h *Hub) Run(ctx context.Context) {
	if h.cfg.ResyncEvery <= 0 {
		return
	}
	t := time.NewTicker(h.cfg.ResyncEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			h.Resync()
		}
	}
}

// Drain ends every session with ErrDraining and refuses new ones: the node is leaving.
func (h *Hub) Drain() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.draining = true
	for s := range h.sessions {
		s.end(ErrDraining)
	}
}

// Draining reports whether Drain was called.
func (h *Hub) Draining() bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.draining
}

// Sessions is the number of sessions open on the hub.
func (h *Hub) Sessions() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.sessions)
}

func (h *Hub) add(s *Session) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.draining {
		return ErrDraining
	}
	h.sessions[s] = struct{}{}
	return nil
}

func (h *Hub) remove(s *Session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.sessions, s)
	delete(h.all, s)
	for id := range s.registered {
		h.unregisterLocked(s, id)
	}
}

func (h *Hub) register(s *Session, ids []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range ids {
		subs := h.byOrder[id]
		if subs == nil {
			subs = map[*Session]struct{}{}
			h.byOrder[id] = subs
		}
		subs[s] = struct{}{}
	}
}

func (h *Hub) unregister(s *Session, ids []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range ids {
		h.unregisterLocked(s, id)
	}
}

func (h *Hub) unregisterLocked(s *Session, id string) {
	if subs := h.byOrder[id]; subs != nil {
		delete(subs, s)
		if len(subs) == 0 {
			delete(h.byOrder, id)
		}
	}
}

func (h *Hub) setAll(s *Session, on bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if on {
		h.all[s] = struct{}{}
	} else {
		delete(h.all, s)
	}
}
