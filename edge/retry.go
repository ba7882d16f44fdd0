package edge

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/ordermesh/ordermesh/actors/order"
)

// Backoff between retries of a retryable call: short at first, because a grain that moved
// is usually active on its new node within milliseconds, and capped so that a longer
// outage is polled rather than waited out blindly.
const (
	retryFirstWait = 10 * time.Millisecond
	retryMaxWait   = 250 * time.Millisecond
)

// errStillUnavailable is what the client gets when retries did not help in time. With the
// Retry-After header it tells the client to send the same request (same key) again.
var errStillUnavailable = order.Errorf(order.CodeUnavailable,
	"temporarily unavailable; retry with the same Idempotency-Key")

// calls are the grain calls (orders, stock) of one request, all under the request's
// deadline (Config.RequestTimeout) and each retried while it is unavailable (see retry).
// A calls holds what it needs of the request, so its do may run in several goroutines at
// once (a fan-out), which the fiber.Ctx itself may not.
type calls struct {
	s         *server
	ctx       context.Context
	log       *slog.Logger
	requestID string
}

// callsOf starts the grain calls of request c; call the CancelFunc when they are done.
func (s *server) callsOf(c *fiber.Ctx) (calls, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.RequestTimeout)
	return calls{s: s, ctx: ctx, log: s.logger(c), requestID: ensureRequestID(c)}, cancel
}

// do runs op with the request's id until it succeeds or fails with an error that is not
// retryable; when retrying runs out of time, the error is errStillUnavailable.
func (k calls) do(op func(ctx context.Context, requestID string) error) error {
	return k.s.retry(k.ctx, k.log, func(ctx context.Context) error { return op(ctx, k.requestID) })
}

// call runs op with k.do and returns its result.
func call[T any](k calls, op func(ctx context.Context, requestID string) (T, error)) (T, error) {
	var out T
	err := k.do(func(ctx context.Context, requestID string) error {
		var err error
		out, err = op(ctx, requestID)
		return err
	})
	return out, err
}

// retry calls op until it returns nil or a non-retryable error, for at most RetryFor.
// Retrying is safe because every command carries its idempotency key: a command that did
// take effect before the error is answered from the grain's memory, not applied twice.
func (s *server) retry(ctx context.Context, log *slog.Logger, op func(context.Context) error) error {
	deadline := time.Now().Add(s.cfg.RetryFor)
	wait := retryFirstWait
	for attempt := 1; ; attempt++ {
		err := op(ctx)
		if !retryable(err) {
			return err
		}
		// Jitter spreads the retries of many clients that failed together (a drain).
		sleep := wait/2 + rand.N(wait/2+1)
		reason := RetryReason(err)
		if ctx.Err() != nil || time.Now().Add(sleep).After(deadline) {
			log.Warn("giving up on retryable error", slog.Int("attempts", attempt), slog.String("reason", reason), slog.Any("error", err))
			s.metrics.retryExhausted.Inc()
			return errStillUnavailable
		}
		log.Debug("retrying", slog.Int("attempt", attempt), slog.Duration("wait", sleep), slog.String("reason", reason), slog.Any("error", err))
		t := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			t.Stop()
			s.metrics.retryExhausted.Inc()
			return errStillUnavailable
		case <-t.C:
			s.metrics.retries.WithLabelValues(reason).Inc() // counted when it is made
		}
		wait = min(wait*2, retryMaxWait)
	}
}

// retryable reports whether err says "try again". A deadline from below is treated like
// CodeUnavailable: the grain may simply have been slow to activate.
func retryable(err error) bool {
	if err == nil {
		return false
	}
	return order.ErrorCode(err).Retryable() || errors.Is(err, context.DeadlineExceeded)
}

// RetryReason classifies a retryable error for the reason label of
// ordermesh_edge_retries_total, from the Reason the grain or the cluster set on it
// (order.Reasons; the set is closed). A context deadline from below is "timeout"; any
// other error, and nil, is "other".
func RetryReason(err error) string {
	if r := order.ErrorReason(err); r != "" {
		return string(r)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return string(order.ReasonTimeout)
	}
	return string(order.ReasonOther)
}
