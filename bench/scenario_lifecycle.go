package bench

import (
	"context"
	"encoding/json"
	mrand "math/rand/v2"
	"time"
)

// lifecycleScenario: each arrival is one order taken through create → pay → confirm →
// ship → deliver, with configurable shares of cancels, failed payments and refunds. Steps
// of one order are dependent: step k is intended to start when step k-1 completed.
type lifecycleScenario struct {
	perArrival float64
}

// lifecycleStep is one command of a planned lifecycle; asOperator picks the account.
type lifecycleStep struct {
	op         string
	asOperator bool
}

// planLifecycle chooses the commands after create for one order.
func planLifecycle(rng *mrand.Rand, cfg Config) []lifecycleStep {
	shop := func(op string) lifecycleStep { return lifecycleStep{op: op} }
	oper := func(op string) lifecycleStep { return lifecycleStep{op: op, asOperator: true} }
	if rng.Float64() < cfg.CancelShare {
		if rng.IntN(2) == 0 {
			return []lifecycleStep{shop(OpCancel)}
		}
		return []lifecycleStep{shop(OpPay), shop(OpCancel)}
	}
	steps := []lifecycleStep{shop(OpPay)}
	if rng.Float64() < cfg.FailShare {
		steps = append(steps, oper(OpFailPayment), shop(OpPay))
	}
	steps = append(steps, oper(OpConfirm))
	refund := rng.Float64() < cfg.RefundShare
	if refund && rng.IntN(2) == 0 {
		return append(steps, oper(OpRefund))
	}
	steps = append(steps, oper(OpShip), oper(OpDeliver))
	if refund {
		steps = append(steps, oper(OpRefund))
	}
	return steps
}

func (s *lifecycleScenario) requestsPerArrival() float64 { return s.perArrival }

// setup estimates the mean lifecycle length from the shares, so the arrival rate of
// lifecycles turns into the requested rate of commands.
func (s *lifecycleScenario) setup(_ context.Context, r *runner) error {
	s.perArrival = meanLifecycleLength(r.cfg)
	if r.cfg.Provider {
		s.perArrival = meanProviderLength(r.cfg)
	}
	return nil
}

func meanLifecycleLength(cfg Config) float64 {
	const samples = 4000
	rng := mrand.New(mrand.NewPCG(1, 2))
	total := 0
	for range samples {
		total += 1 + len(planLifecycle(rng, cfg))
	}
	return float64(total) / samples
}

func (s *lifecycleScenario) arrive(ctx context.Context, r *runner, i int, intended time.Time) {
	if r.cfg.Provider {
		s.arriveProvider(ctx, r, i, intended)
		return
	}
	rng := r.sessionRand(i)
	shopper := r.shopper(i)
	steps := planLifecycle(rng, r.cfg)
	v, t, ok := r.create(shopper, i, rng, intended)
	if !ok {
		return
	}
	var resp Response
	for k, st := range steps {
		if ctx.Err() != nil {
			return // the run is over: in-flight steps finish, new ones do not start
		}
		as := shopper
		if st.asOperator {
			as = r.operator
		}
		c := command(st.op, v.ID, as, r.key(i, k, st.op))
		if st.op == OpCancel || st.op == OpRefund {
			c.body = map[string]string{"reason": "bench"}
		}
		if resp, t = r.exec(c, t); !resp.OK() {
			return
		}
	}
}

// create sends arrival i's create of a random basket as shopper, intended at intended,
// and returns the order, the create's completion, and whether it was created.
func (r *runner) create(shopper *Account, i int, rng *mrand.Rand, intended time.Time) (orderView, time.Time, bool) {
	resp, t := r.exec(createCall(shopper, r.key(i, "create"), rng), intended)
	var v orderView
	if !resp.OK() || json.Unmarshal(resp.Data, &v) != nil || v.ID == "" {
		return v, t, false
	}
	return v, t, true
}
