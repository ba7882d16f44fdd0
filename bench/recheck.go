package bench

import (
	"context"
	"fmt"
)

// Recheck runs the consistency check of a finished run again, from its ack log, against
// cfg.Targets as cfg.User (with cfg.Provider, the fulfilment check too). Races are rebuilt from the acks (see RacesFromAcks).
func Recheck(ctx context.Context, cfg Config, acks []Ack) (CheckResult, error) {
	cfg = withDefaults(cfg)
	lb := NewBalancer(4, cfg.Timeout, cfg.Targets)
	defer lb.Close()
	lb.Probe(ctx)
	op, err := Login(ctx, lb, cfg.User, cfg.Password)
	if err != nil {
		return CheckResult{}, fmt.Errorf("rechecking: %w", err)
	}
	res, err := checkRun(ctx, cfg, lb, op, acks, RacesFromAcks(acks))
	if err != nil {
		return CheckResult{}, fmt.Errorf("rechecking: %w", err)
	}
	return res, nil
}
