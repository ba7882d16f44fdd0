package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/ordermesh/ordermesh/actors/payment"
)

// ErrOpen is returned at once, without calling the provider, while the breaker is open
// (or half-open with its one trial call already under way). The returned error also wraps
// gobreaker.ErrOpenState or gobreaker.ErrTooManyRequests.
var ErrOpen = errors.New("payment provider circuit breaker is open")

// GuardConfig tunes a Guarded provider.
type GuardConfig struct {
	// Timeout bounds every call (default 3s).
	Timeout time.Duration
	// Failures is how many consecutive failures open the breaker (default 5). Rejections
	// (payment.ErrRejected: the provider is up and answered) are not failures, nor are
	// calls the caller cancelled.
	Failures uint32
	// OpenFor is how long the breaker stays open before it lets one trial call through
	// (half-open; default 10s).
	OpenFor time.Duration
	// OnStateChange, when set, is told of every change of state ("closed", "half-open",
	// "open"). It runs while the breaker is locked: it must be quick and must not call
	// back into the Guarded.
	OnStateChange func(from, to string)
}

// Defaults of GuardConfig.
const (
	DefaultTimeout  = 3 * time.Second
	DefaultFailures = 5
	DefaultOpenFor  = 10 * time.Second
)

// Guarded is a payment.Provider whose calls have a timeout and go through a circuit
// breaker.
type Guarded struct {
	p       payment.Provider
	timeout time.Duration
	cb      *gobreaker.CircuitBreaker[payment.Receipt]
}

// NewGuard guards p as cfg says.
func NewGuard(p payment.Provider, cfg GuardConfig) *Guarded {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Failures == 0 {
		cfg.Failures = DefaultFailures
	}
	if cfg.OpenFor <= 0 {
		cfg.OpenFor = DefaultOpenFor
	}
	st := gobreaker.Settings{
		Name:    "payment-provider",
		Timeout: cfg.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.ConsecutiveFailures >= cfg.Failures
		},
		IsSuccessful: func(err error) bool {
			return err == nil || errors.Is(err, payment.ErrRejected)
		},
		IsExcluded: func(err error) bool {
			return errors.Is(err, context.Canceled)
		},
	}
	if f := cfg.OnStateChange; f != nil {
		st.OnStateChange = func(_ string, from, to gobreaker.State) { f(from.String(), to.String()) }
	}
	return &Guarded{p: p, timeout: cfg.Timeout, cb: gobreaker.NewCircuitBreaker[payment.Receipt](st)}
}

// CreateIntent hands in to the guarded provider within the timeout, or fails at once with
// an error wrapping ErrOpen while the breaker is open.
func (g *Guarded) CreateIntent(ctx context.Context, in payment.Intent) (payment.Receipt, error) {
	r, err := g.cb.Execute(func() (payment.Receipt, error) {
		ctx, cancel := context.WithTimeout(ctx, g.timeout)
		defer cancel()
		return g.p.CreateIntent(ctx, in)
	})
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return payment.Receipt{}, fmt.Errorf("payment intent %s: %w (%w)", in.ID, ErrOpen, err)
	}
	return r, err
}

// State is the breaker's state: "closed", "half-open" or "open".
func (g *Guarded) State() string { return g.cb.State().String() }
