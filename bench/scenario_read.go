package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// readScenario: gets and lists, with a small share of creates so there is data to read.
type readScenario struct {
	mu   sync.Mutex
	pool []ownedOrder
}

type ownedOrder struct {
	id    string
	owner *Account
}

// listShare of the reads are lists; the rest are gets of known orders.
const listShare = 0.2

func (s *readScenario) requestsPerArrival() float64 { return 1 }

// setup creates a few orders per shopper so the first gets have something to read.
func (s *readScenario) setup(ctx context.Context, r *runner) error {
	for i := range 2 * len(r.shoppers) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.create(r, i, fmt.Sprint("setup", i), r.clock.Now())
	}
	return nil
}

func (s *readScenario) create(r *runner, i int, tag string, intended time.Time) {
	as := r.shopper(i)
	resp, _ := r.exec(createCall(as, r.key("read", tag), r.sessionRand(i)), intended)
	var v orderView
	if resp.OK() && json.Unmarshal(resp.Data, &v) == nil && v.ID != "" {
		s.mu.Lock()
		s.pool = append(s.pool, ownedOrder{id: v.ID, owner: as})
		s.mu.Unlock()
	}
}

func (s *readScenario) arrive(_ context.Context, r *runner, i int, intended time.Time) {
	rng := r.sessionRand(i)
	x := rng.Float64()
	s.mu.Lock()
	n := len(s.pool)
	var o ownedOrder
	if n > 0 {
		o = s.pool[rng.IntN(n)]
	}
	s.mu.Unlock()
	switch {
	case n == 0 || x < r.cfg.ReadCreateShare:
		s.create(r, i, fmt.Sprint(i), intended)
	case x < r.cfg.ReadCreateShare+listShare:
		c := call{op: OpList, as: r.shopper(i), method: http.MethodGet, path: "/api/v1/orders?limit=20"}
		if rng.IntN(2) == 0 {
			c.as, c.path = r.operator, "/api/v1/orders?status=CREATED&limit=20"
		}
		r.exec(c, intended)
	default:
		as := o.owner
		if rng.IntN(2) == 0 {
			as = r.operator
		}
		r.exec(call{op: OpGet, order: o.id, as: as, method: http.MethodGet, path: "/api/v1/orders/" + o.id}, intended)
	}
}
