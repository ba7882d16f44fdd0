package edge

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/ordermesh/ordermesh/actors"
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
var errStillUnavailable = actors.Errorf(actors.CodeUnavailable,
	"the order is temporarily unavailable; retry with the same Idempotency-Key")

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
	return actors.ErrorCode(err).Retryable() || errors.Is(err, context.DeadlineExceeded)
}

// Reasons the edge retries a retryable answer: the values of the reason label of
// ordermesh_edge_retries_total. The set is closed, so that dashboards can rely on it and
// the label cannot grow with error texts; a cause not listed here counts as RetryOther.
const (
	RetryMoved       = "moved"       // the order moved, its activation is stale, or no node may activate it now
	RetryDraining    = "draining"    // the node hosting the order is leaving
	RetryUnreachable = "unreachable" // the grain's node could not be reached (dead letter)
	RetryTimeout     = "timeout"     // the grain did not answer in time
	RetryStore       = "store"       // the grain could not load or save the order
	RetryOther       = "other"
)

// RetryReasons lists every value RetryReason returns.
var RetryReasons = []string{RetryMoved, RetryDraining, RetryUnreachable, RetryTimeout, RetryStore, RetryOther}

// retryCauses maps fragments of CodeUnavailable messages to reasons, checked in this
// order, case-insensitively. The messages are written by actors (the grain) and cluster
// (the call to it) for people, not for machines, and the edge cannot ask them to carry a
// machine-readable cause; matching fragments keeps the metric useful when a message is
// reworded slightly, and a fragment that stops matching only moves counts to "other".
// Draining comes first because it is the most specific cause; "not reachable" before
// "timeout" because node.go wraps the library's own error text in it.
var retryCauses = []struct {
	reason    string
	fragments []string
}{
	{RetryDraining, []string{"draining", "leaving", "shutting down"}},
	{RetryMoved, []string{"moved", "moving", "stale", "not owner", "not the owner", "no owner", "cannot be activated", "topology"}},
	{RetryUnreachable, []string{"not reachable", "unreachable", "dead letter", "deadletter"}},
	{RetryTimeout, []string{"did not answer", "timed out", "timeout", "deadline"}},
	{RetryStore, []string{"could not be loaded", "could not be saved"}},
}

// RetryReason classifies a retryable error into one of RetryReasons, from the message of
// its *actors.Error (see retryCauses). A context deadline from below is RetryTimeout;
// any other error, and nil, is RetryOther.
func RetryReason(err error) string {
	if err == nil {
		return RetryOther
	}
	var appErr *actors.Error
	if !errors.As(err, &appErr) {
		if errors.Is(err, context.DeadlineExceeded) {
			return RetryTimeout
		}
		return RetryOther
	}
	msg := strings.ToLower(appErr.Message)
	for _, c := range retryCauses {
		for _, f := range c.fragments {
			if strings.Contains(msg, f) {
				return c.reason
			}
		}
	}
	return RetryOther
}
