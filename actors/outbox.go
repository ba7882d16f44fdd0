package actors

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"
	"github.com/ordermesh/ordermesh/actors/payment"
	"github.com/ordermesh/ordermesh/actors/warehouse"
	"github.com/ordermesh/ordermesh/persistence"
)

// The outbox: work an order's transition causes outside the order is written as a job in
// the transition's own transaction (persistence.Write.Jobs), so there is no payment to
// submit without its PAYING order, and no paid order without its fulfilment task. Worker
// pools on every node run the jobs (see Pool); a transition that makes a job moot ends it
// in the same transaction.

// The kinds of jobs.
const (
	// JobPayment submits a payment intent to the provider (see Payments).
	JobPayment = "payment"
	// JobFulfilment picks, packs and ships a paid order (see Fulfilment).
	JobFulfilment = "fulfilment"
)

// PaymentJobID is the id of the job that submits the payment of an order that became
// PAYING at version: the intent's own id.
func PaymentJobID(orderID string, version uint64) string { return payment.IntentID(orderID, version) }

// FulfilmentJobID is the id of an order's fulfilment task. An order is paid once, so it
// has at most one; the task's id is also the idempotency key of the Ship it ends with.
func FulfilmentJobID(orderID string) string { return "fulfil_" + orderID }

// outbox returns the jobs the transition from prev to next creates, and those it ends.
func outbox(prev, next *order.Order, at time.Time) ([]persistence.Job, []persistence.JobEnd, error) {
	var jobs []persistence.Job
	var ends []persistence.JobEnd
	add := func(id, kind string, payload any) error {
		b, err := json.Marshal(payload)
		if err != nil {
			return fmt.Errorf("%w: job %s: %w", errUnstorable, id, err)
		}
		jobs = append(jobs, persistence.Job{ID: id, Kind: kind, OrderID: next.ID, State: persistence.JobPending,
			NextAt: at, Payload: b, CreatedAt: at, UpdatedAt: at})
		return nil
	}
	if prev.Status == next.Status {
		return nil, nil, nil
	}
	if prev.Status == order.StatusPaying {
		// The attempt is over, one way or another: an intent still waiting to be submitted
		// must never be (an operator confirmed, the shopper cancelled, the deadline passed).
		ends = append(ends, persistence.JobEnd{ID: PaymentJobID(prev.ID, prev.Version), State: persistence.JobCancelled,
			Note: "the order is " + string(next.Status)})
	}
	switch next.Status {
	case order.StatusPaying:
		in := payment.Intent{ID: PaymentJobID(next.ID, next.Version), OrderID: next.ID, Customer: next.Customer,
			Amount: next.Total, Currency: next.Currency}
		if err := add(in.ID, JobPayment, in); err != nil {
			return nil, nil, err
		}
	case order.StatusPaid:
		if err := add(FulfilmentJobID(next.ID), JobFulfilment,
			warehouse.Task{ID: FulfilmentJobID(next.ID), OrderID: next.ID, Customer: next.Customer, Lines: next.Lines}); err != nil {
			return nil, nil, err
		}
	case order.StatusShipped:
		ends = append(ends, persistence.JobEnd{ID: FulfilmentJobID(next.ID), State: persistence.JobDone})
	case order.StatusRefunded:
		if prev.Status == order.StatusPaid {
			ends = append(ends, persistence.JobEnd{ID: FulfilmentJobID(next.ID), State: persistence.JobCancelled, Note: "refunded before it shipped"})
		}
	}
	return jobs, ends, nil
}
