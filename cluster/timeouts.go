package cluster

import (
	"fmt"
	"time"
)

// DefaultRequestTimeout is the default bound on one attempt of one call to a grain.
const DefaultRequestTimeout = 2 * time.Second

// Timeouts is the chain of bounds on one API request, outermost first. Each must leave
// room for the next: a caller that gives up on a grain still at work retries into the
// same busy grain (or, worse, into a second activation), and a grain that gives up on the
// store answers "retry" the caller can still act on.
//
//	Request > Retry + Attempt   the last attempt of the retry window still fits the request
//	Retry   > Attempt           the window holds at least one retry
//	Attempt > 3 × Write         a command's store calls all fit one attempt: the load, the
//	                            lookup of an idempotency key the order forgot, the write
type Timeouts struct {
	Request time.Duration // one API request at the edge, retries included (--request-timeout)
	Retry   time.Duration // how long the edge retries retryable failures (edge.Config.RetryFor)
	Attempt time.Duration // one attempt of one call to a grain (Config.RequestTimeout)
	Write   time.Duration // one store load or write of a grain (actors.GrainConfig.WriteTimeout)
}

// TimeoutsFor derives the chain from the edge's request timeout: half of it for retrying,
// attempts of at most DefaultRequestTimeout (short, so a call to a node that just died
// is retried elsewhere soon), and grain store timeouts of three tenths of an attempt.
func TimeoutsFor(request time.Duration) Timeouts {
	retry := request / 2
	attempt := min(DefaultRequestTimeout, retry/2)
	return Timeouts{Request: request, Retry: retry, Attempt: attempt, Write: WriteTimeoutFor(attempt)}
}

// WriteTimeoutFor is the grain store timeout that fits the three store calls of one
// command (load, key lookup, write) in one attempt of attempt, with room to spare for the
// messages to and from the grain.
func WriteTimeoutFor(attempt time.Duration) time.Duration { return attempt * 3 / 10 }

// Check reports the first link of the chain that does not leave room for the next; a zero
// Request or Retry is not checked (a node without an edge).
func (t Timeouts) Check() error {
	switch {
	case t.Write <= 0 || t.Attempt <= 0:
		return fmt.Errorf("the call attempt timeout (%s) and the grain store timeout (%s) must be positive", t.Attempt, t.Write)
	case 3*t.Write >= t.Attempt:
		return fmt.Errorf("the grain store timeout (%s) must be less than a third of the call attempt timeout (%s): a command makes up to three store calls in one attempt", t.Write, t.Attempt)
	case t.Retry > 0 && t.Retry <= t.Attempt:
		return fmt.Errorf("the retry window (%s) must be longer than one call attempt (%s)", t.Retry, t.Attempt)
	case t.Request > 0 && t.Request < t.Retry+t.Attempt:
		return fmt.Errorf("the request timeout (%s) must hold the retry window (%s) plus one call attempt (%s)", t.Request, t.Retry, t.Attempt)
	}
	return nil
}
