package bench

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"
)

// The fulfilment check (issue 10), after a --provider run: the payment provider confirms
// and declines payments (PaymentConfirmed / PaymentFailed by "payment-provider") and the
// pool ships (OrderShipped by "fulfilment"); these system transitions are legal like any
// other row of the state machine. For every order the run created, and every order whose
// history has PaymentConfirmed, it reads the order's fulfilment tasks
// (GET /api/v1/fulfilment?order_id=, as operator) and checks:
//   - task-missing: a confirmed payment without its fulfilment task (the task is written
//     in the same transaction as the payment);
//   - task-duplicate: more than one task for one order;
//   - task-unpaid: a task for an order whose payment was never confirmed;
//   - double-ship: more than one OrderShipped in one history;
//   - tasks-unread: the order's tasks could not be read.
//
// Task states are counted, not judged: a PAID order whose task is dead (the warehouse kept
// failing) is reported as paid-dead, and a shipped order whose task is still open as
// shipped-open.

// Fulfilment violation kinds, beside the history checker's.
const (
	ViolationTaskMissing   = "task-missing"
	ViolationTaskDuplicate = "task-duplicate"
	ViolationTaskUnpaid    = "task-unpaid"
	ViolationDoubleShip    = "double-ship"
	ViolationTasksUnread   = "tasks-unread"
)

// Task states as the API spells them (persistence.Job states).
const (
	taskPending   = "pending"
	taskRunning   = "running"
	taskDone      = "done"
	taskDead      = "dead"
	taskCancelled = "cancelled"
)

// Who the system transitions are by, in the histories the operator reads.
const (
	byProvider = "payment-provider"
	byPool     = "fulfilment"
)

// FulfilmentTask is a task as GET /api/v1/fulfilment returns it.
type FulfilmentTask struct {
	ID        string `json:"id"`
	OrderID   string `json:"order_id"`
	State     string `json:"state"`
	Attempts  int    `json:"attempts"`
	LastError string `json:"last_error,omitempty"`
	Node      string `json:"node,omitempty"`
}

// FulfilmentInput is what the fulfilment check looks at.
type FulfilmentInput struct {
	Created   []string                    // orders the run created
	Histories map[string][]Event          // by order id
	Tasks     map[string][]FulfilmentTask // by order id; an order left out could not be read
	Unsettled int                         // run's orders still PAYING or with an open task when the wait ran out
}

// FulfilmentCheckResult is the verdict of CheckFulfilment.
type FulfilmentCheckResult struct {
	Pass             bool           `json:"pass"`
	Orders           int            `json:"orders"` // checked
	Paid             int            `json:"paid"`   // of those, with a confirmed payment
	TasksByState     map[string]int `json:"tasks_by_state"`
	PaidDead         int            `json:"paid_dead"`    // PAID orders whose task is dead
	ShippedOpen      int            `json:"shipped_open"` // shipped orders whose task is pending or running
	Unsettled        int            `json:"unsettled"`
	ProviderConfirms int            `json:"provider_confirms"` // PaymentConfirmed by the provider
	ProviderFails    int            `json:"provider_fails"`    // PaymentFailed by the provider
	PoolShips        int            `json:"pool_ships"`        // OrderShipped by the pool
	Counts           map[string]int `json:"violations_by_kind"`
	Violations       []Violation    `json:"violations"`
}

// CheckFulfilment verifies the fulfilment rules. It is pure, so planted violations can be
// tested without a server.
func CheckFulfilment(in FulfilmentInput) FulfilmentCheckResult {
	res := FulfilmentCheckResult{TasksByState: map[string]int{}, Unsettled: in.Unsettled, Counts: map[string]int{}}
	add := func(kind, order, format string, args ...any) {
		res.Counts[kind]++
		if len(res.Violations) < maxViolations {
			res.Violations = append(res.Violations, Violation{Kind: kind, OrderID: order, Detail: fmt.Sprintf(format, args...)})
		}
	}
	ids := map[string]bool{}
	for _, id := range in.Created {
		ids[id] = true
	}
	for id, h := range in.Histories {
		if confirmedIn(h) {
			ids[id] = true
		}
	}
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		h, ok := in.Histories[id]
		if !ok {
			continue // the history check reports it missing
		}
		res.Orders++
		confirmed, shipped := 0, 0
		for _, e := range h {
			switch {
			case e.Type == "PaymentConfirmed":
				confirmed++
				if e.By == byProvider {
					res.ProviderConfirms++
				}
			case e.Type == "PaymentFailed" && e.By == byProvider:
				res.ProviderFails++
			case e.Type == "OrderShipped":
				shipped++
				if e.By == byPool {
					res.PoolShips++
				}
			}
		}
		if confirmed > 0 {
			res.Paid++
		}
		if shipped > 1 {
			add(ViolationDoubleShip, id, "%d OrderShipped events", shipped)
		}
		tasks, read := in.Tasks[id]
		switch {
		case !read:
			add(ViolationTasksUnread, id, "the order's fulfilment tasks could not be read")
			continue
		case confirmed > 0 && len(tasks) == 0:
			add(ViolationTaskMissing, id, "payment confirmed, no fulfilment task")
		case confirmed == 0 && len(tasks) > 0:
			add(ViolationTaskUnpaid, id, "%d fulfilment task(s), no confirmed payment", len(tasks))
		case len(tasks) > 1:
			add(ViolationTaskDuplicate, id, "%d fulfilment tasks: %s", len(tasks), taskIDs(tasks))
		}
		last := stateNone
		if len(h) > 0 {
			last = h[len(h)-1].To
		}
		for _, t := range tasks {
			res.TasksByState[t.State]++
			switch {
			case last == statePaid && t.State == taskDead:
				res.PaidDead++
			case shipped > 0 && (t.State == taskPending || t.State == taskRunning):
				res.ShippedOpen++
			}
		}
	}
	res.Pass = len(res.Counts) == 0
	return res
}

func taskIDs(ts []FulfilmentTask) string {
	ids := make([]string, len(ts))
	for i, t := range ts {
		ids[i] = t.ID + " (" + t.State + ")"
	}
	return strings.Join(ids, ", ")
}

// Summary is the fulfilment verdict in one line.
func (f FulfilmentCheckResult) Summary() string {
	verdict := "PASS"
	if !f.Pass {
		verdict = "FAIL"
	}
	states := make([]string, 0, len(f.TasksByState))
	for _, s := range slices.Sorted(maps.Keys(f.TasksByState)) {
		states = append(states, fmt.Sprintf("%s=%d", s, f.TasksByState[s]))
	}
	return fmt.Sprintf("fulfilment %s: %d orders, %d paid; tasks %s; %d paid with a dead task, %d shipped with an open task, %d unsettled; "+
		"system transitions: %d confirms and %d declines by the provider, %d ships by the pool",
		verdict, f.Orders, f.Paid, strings.Join(states, " "), f.PaidDead, f.ShippedOpen, f.Unsettled,
		f.ProviderConfirms, f.ProviderFails, f.PoolShips)
}

// addFulfilment merges a fulfilment check into the run's verdict.
func (r *CheckResult) addFulfilment(f FulfilmentCheckResult) {
	r.Fulfilment = &f
	r.merge(f.Counts, f.Violations, f.Pass)
}

// FetchTasks reads the fulfilment tasks of every order in ids as operator, with at most
// parallel requests at once. An order whose tasks cannot be read is left out.
func FetchTasks(ctx context.Context, lb *Balancer, operator *Account, ids []string, parallel int) (map[string][]FulfilmentTask, error) {
	return fetchEach(ctx, ids, parallel, func(id string) ([]FulfilmentTask, bool) {
		ts, err := listTasks(ctx, lb, operator, "order_id="+url.QueryEscape(id))
		return ts, err == nil
	})
}

// listTasks reads GET /api/v1/fulfilment?query, every page.
func listTasks(ctx context.Context, lb *Balancer, operator *Account, query string) ([]FulfilmentTask, error) {
	out, err := listAll[FulfilmentTask](ctx, lb, operator, "/api/v1/fulfilment?limit=200&"+query, "tasks")
	if err != nil {
		return nil, fmt.Errorf("listing fulfilment tasks: %w", err)
	}
	return out, nil
}

// settleWait bounds how long the check waits for the provider and the pool to finish
// with the run's orders.
const settleWait = 30 * time.Second

// settle waits (up to wait) until none of orders is PAYING and none has a pending or
// running fulfilment task, and returns how many still were when it stopped.
func settle(ctx context.Context, lb *Balancer, operator *Account, orders []string, wait time.Duration) (int, error) {
	ours := map[string]bool{}
	for _, id := range orders {
		ours[id] = true
	}
	deadline := time.Now().Add(wait)
	for {
		open := map[string]bool{}
		all, err := ListAllOrders(ctx, lb, operator)
		if err != nil {
			return 0, err
		}
		for _, o := range all {
			if ours[o.ID] && o.Status == statePaying {
				open[o.ID] = true
			}
		}
		for _, state := range []string{taskPending, taskRunning} {
			ts, err := listTasks(ctx, lb, operator, "state="+state)
			if err != nil {
				return 0, err
			}
			for _, t := range ts {
				if ours[t.OrderID] {
					open[t.OrderID] = true
				}
			}
		}
		if len(open) == 0 || time.Now().After(deadline) {
			return len(open), nil
		}
		if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
			return 0, err
		}
	}
}

// createdOrders are the orders of the acknowledged creates in acks, sorted.
func createdOrders(acks []Ack) []string {
	seen := map[string]bool{}
	for _, a := range acks {
		if a.Op == OpCreate && a.OK() && a.OrderID != "" {
			seen[a.OrderID] = true
		}
	}
	out := slices.Collect(maps.Keys(seen))
	sort.Strings(out)
	return out
}

// confirmedIn reports whether history h has a confirmed payment.
func confirmedIn(h []Event) bool {
	return slices.ContainsFunc(h, func(e Event) bool { return e.Type == "PaymentConfirmed" })
}

// checkFulfilment reads the tasks of the run's orders and checks them against hist (the
// histories the history check read, before the tasks). A task whose payment is not in
// hist may have been written since: its order's history is read again (after the tasks),
// so that neither a payment confirmed after the history was read nor one confirmed after
// the tasks were read can look like a violation.
func checkFulfilment(ctx context.Context, lb *Balancer, operator *Account, acks []Ack, hist map[string][]Event, unsettled int) (FulfilmentCheckResult, error) {
	in := FulfilmentInput{Created: createdOrders(acks), Histories: hist, Unsettled: unsettled}
	ids := slices.Clone(in.Created)
	for id, h := range hist {
		if !slices.Contains(ids, id) && confirmedIn(h) {
			ids = append(ids, id)
		}
	}
	var err error
	if in.Tasks, err = FetchTasks(ctx, lb, operator, ids, 8); err != nil {
		return FulfilmentCheckResult{}, err
	}
	var again []string
	for id, ts := range in.Tasks {
		if len(ts) > 0 && !confirmedIn(hist[id]) {
			again = append(again, id)
		}
	}
	if len(again) > 0 {
		fresh, err := FetchHistories(ctx, lb, operator, again, 8)
		if err != nil {
			return FulfilmentCheckResult{}, err
		}
		in.Histories = maps.Clone(hist)
		maps.Copy(in.Histories, fresh)
	}
	return CheckFulfilment(in), nil
}
