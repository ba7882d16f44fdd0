package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/actors/payment"
	"github.com/ordermesh/ordermesh/persistence"
)

// fakeProvider answers intents with answer and records the ids it was sent.
type fakeProvider struct {
	mu     sync.Mutex
	sent   []string
	answer error
}

func (p *fakeProvider) CreateIntent(_ context.Context, in payment.Intent) (payment.Receipt, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sent = append(p.sent, in.ID)
	if p.answer != nil {
		return payment.Receipt{}, p.answer
	}
	return payment.Receipt{ProviderID: "pi_" + in.ID, Status: "processing"}, nil
}

func (p *fakeProvider) set(answer error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.answer = answer
}

func (p *fakeProvider) calls() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.sent...)
}

// errOpen stands for the guard's breaker-open error.
var errOpen = errors.New("circuit breaker is open")

type breakerState string

func (b breakerState) State() string { return string(b) }

// paymentRig is Payments on node "a" over the fakes.
type paymentRig struct {
	jobs     *fakeJobs
	clock    *fakeClock
	provider *fakeProvider
	payments *Payments
	obs      outcomes
}

func newPaymentRig(t *testing.T) *paymentRig {
	r := &paymentRig{jobs: newJobs(), clock: newClock(), provider: &fakeProvider{}, obs: make(outcomes, 100)}
	r.payments = NewPayments(PaymentsConfig{Jobs: r.jobs, Provider: r.provider, Breaker: breakerState("closed"),
		IsOpen: func(err error) bool { return errors.Is(err, errOpen) }, Node: "a", Poll: time.Hour,
		Now: r.clock.Now, Logger: quiet, Observer: r.obs})
	stopped(t, r.payments.Stop)
	return r
}

// paying writes the payment job of an order that became PAYING at version, as the grain does.
func (r *paymentRig) paying(t *testing.T, orderID string, version uint64) string {
	t.Helper()
	in := payment.Intent{ID: PaymentJobID(orderID, version), OrderID: orderID, Customer: "alice", Amount: 1250, Currency: "EUR"}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	r.jobs.add(in.ID, JobPayment, orderID, b, r.clock.Now())
	return in.ID
}

func TestPaymentsSubmit(t *testing.T) {
	for _, tc := range []struct {
		name     string
		answer   error
		outcome  string
		state    string
		due      time.Duration // after now, for a pending job; -1: any backoff
		reported string
	}{
		{"accepted", nil, OutcomeDone, persistence.JobDone, 0, SubmissionSubmitted},
		{"provider down", errors.New("503 from the provider"), OutcomeRetry, persistence.JobPending, -1, SubmissionQueued},
		{"breaker open", fmt.Errorf("guard: %w", errOpen), OutcomeRetry, persistence.JobPending, 5 * time.Second, SubmissionQueued},
		{"rejected", fmt.Errorf("400: %w", payment.ErrRejected), OutcomeDead, persistence.JobDead, 0, SubmissionQueued},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newPaymentRig(t)
			id := r.paying(t, "o1", 3)
			r.provider.set(tc.answer)
			got, err := r.payments.Submit(context.Background(), "o1", 3)
			if err != nil || got != tc.reported {
				t.Fatalf("Submit: %q, %v; want %q", got, err, tc.reported)
			}
			r.obs.next(t, tc.outcome)
			j := r.jobs.get(id)
			if j.State != tc.state || j.Attempts != 1 {
				t.Fatalf("%+v", j)
			}
			if wait := j.NextAt.Sub(r.clock.Now()); tc.due > 0 && wait != tc.due || tc.due < 0 && (wait < 500*time.Millisecond || wait > time.Second) {
				t.Errorf("due in %s", wait)
			}
			if sent := r.provider.calls(); len(sent) != 1 || sent[0] != "pay_o1_3" {
				t.Errorf("the provider was sent %v", sent)
			}
		})
	}
}

func TestPaymentsSubmitWhenItCannotClaim(t *testing.T) {
	r := newPaymentRig(t)
	busy, done := r.paying(t, "busy", 3), r.paying(t, "done", 3)
	now := r.clock.Now()
	for _, id := range []string{busy, done} {
		if _, err := r.jobs.ClaimJob(context.Background(), id, "b", now, now.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	r.jobs.end(done, persistence.JobDone, "", now)
	for _, tc := range []struct {
		order string
		want  string
		err   error
	}{{"busy", SubmissionQueued, nil}, {"done", SubmissionSubmitted, nil}, {"unknown", SubmissionQueued, persistence.ErrNotFound}} {
		if got, err := r.payments.Submit(context.Background(), tc.order, 3); got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("Submit(%s): %q, %v; want %q, %v", tc.order, got, err, tc.want, tc.err)
		}
	}
	if sent := r.provider.calls(); len(sent) != 0 {
		t.Errorf("the provider was sent %v", sent)
	}
	r.payments.Stop(context.Background())
	if got, err := r.payments.Submit(context.Background(), "busy", 3); got != SubmissionQueued || err != nil {
		t.Errorf("Submit after Stop: %q, %v", got, err)
	}
}

func TestPaymentsQueuedPaymentIsSubmittedByThePool(t *testing.T) {
	r := newPaymentRig(t)
	id := r.paying(t, "o1", 3)
	r.provider.set(fmt.Errorf("guard: %w", errOpen))
	if got, err := r.payments.Submit(context.Background(), "o1", 3); got != SubmissionQueued || err != nil {
		t.Fatalf("Submit: %q, %v", got, err)
	}
	r.obs.next(t, OutcomeRetry)
	r.payments.Start()
	r.provider.set(nil)
	r.clock.Advance(5 * time.Second)
	r.payments.Kick()
	r.obs.next(t, OutcomeDone)
	if j := r.jobs.get(id); j.State != persistence.JobDone || j.Attempts != 2 {
		t.Fatalf("%+v", j)
	}
	if sent := r.provider.calls(); len(sent) != 2 || sent[0] != id || sent[1] != id {
		t.Fatalf("the provider was sent %v", sent)
	}
}

func TestPaymentsNeverDeadLetterAFailingProvider(t *testing.T) {
	r := newPaymentRig(t)
	id := r.paying(t, "o1", 3)
	r.provider.set(errors.New("timeout"))
	r.payments.Start()
	for range 20 {
		r.payments.Kick()
		r.obs.next(t, OutcomeRetry)
		r.clock.Advance(30 * time.Second) // the longest backoff
	}
	if j := r.jobs.get(id); j.State != persistence.JobPending || j.Attempts != 20 {
		t.Fatalf("%+v", j)
	}
}

func TestPaymentsBreakerState(t *testing.T) {
	if got := NewPayments(PaymentsConfig{}).BreakerState(); got != "" {
		t.Errorf("without a breaker: %q", got)
	}
	if got := NewPayments(PaymentsConfig{Breaker: breakerState("open")}).BreakerState(); got != "open" {
		t.Errorf("%q", got)
	}
}
