package bench

import (
	"math/rand/v2"
	"testing"
)

func TestPlanLifecycleFollowsTheShares(t *testing.T) {
	cfg := DefaultConfig()
	cfg.CancelShare, cfg.FailShare, cfg.RefundShare = 0, 0, 0
	if got := meanLifecycleLength(cfg); got != 5 {
		t.Fatalf("no cancels, failures or refunds: mean length %v, want 5 (create pay confirm ship deliver)", got)
	}
	cfg = DefaultConfig()
	rng := rand.New(rand.NewPCG(7, 7))
	counts := map[string]int{}
	const n = 20000
	for range n {
		state := stateCreated
		for _, st := range planLifecycle(rng, cfg) {
			counts[st.op]++
			ev, _ := eventForOp(st.op)
			to, ok := legal(state, ev)
			if !ok {
				t.Fatalf("planned %s in %s", st.op, state)
			}
			state = to
		}
	}
	near := func(op string, share float64) {
		if got := float64(counts[op]) / n; got < share*0.85 || got > share*1.15 {
			t.Errorf("%s in %.3f of lifecycles, want about %.3f", op, got, share)
		}
	}
	near(OpCancel, cfg.CancelShare)
	near(OpFailPayment, (1-cfg.CancelShare)*cfg.FailShare)
	near(OpRefund, (1-cfg.CancelShare)*cfg.RefundShare)
}
