package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/ordermesh/ordermesh/actors/order"
	"github.com/ordermesh/ordermesh/persistence"
)

// Fulfilment is what the edge needs of the node's fulfilment pool (actors.Fulfilment):
// operators list the tasks, and retry or cancel the ones that wait or are dead.
type Fulfilment interface {
	// List returns a page of fulfilment tasks (q.Kind is the pool's own).
	List(ctx context.Context, q persistence.JobQuery) (persistence.JobPage, error)
	// Retry makes a dead or pending task due now; persistence.ErrNotFound, ErrConflict.
	Retry(ctx context.Context, id string) (persistence.Job, error)
	// Cancel cancels a pending or dead task; persistence.ErrNotFound, ErrConflict.
	Cancel(ctx context.Context, id, reason string) (persistence.Job, error)
}

// errNoFulfilment answers the fulfilment endpoints of a node without a fulfilment pool.
var errNoFulfilment = order.Errorf(order.CodeUnavailable, "this node runs no fulfilment")

// maxTaskIDLen bounds a task id in a path: "fulfil_" and an order id.
const maxTaskIDLen = 128

// Task is one fulfilment task as the API shows it.
type Task struct {
	ID            string    `json:"id"`
	OrderID       string    `json:"order_id"`
	State         string    `json:"state"`
	Attempts      int       `json:"attempts"`
	NextAttemptAt time.Time `json:"next_attempt_at,omitzero"` // when a pending task is due
	LastError     string    `json:"last_error"`
	Node          string    `json:"node"` // the node that claimed it last ("" if none yet)
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

func taskOf(j persistence.Job) Task {
	t := Task{ID: j.ID, OrderID: j.OrderID, State: j.State, Attempts: j.Attempts, LastError: j.LastError,
		Node: j.LeaseOwner, CreatedAt: j.CreatedAt, UpdatedAt: j.UpdatedAt}
	if j.State == persistence.JobPending {
		t.NextAttemptAt = j.NextAt
	}
	return t
}

type taskListResponse struct {
	Tasks      []Task `json:"tasks"`
	NextCursor string `json:"next_cursor"`
}

// jobStates are the states a listing may filter by.
var jobStates = []string{persistence.JobPending, persistence.JobRunning, persistence.JobDone, persistence.JobDead, persistence.JobCancelled}

// listFulfilment handles GET /api/v1/fulfilment?state=&order_id=&cursor=&limit=: the
// tasks, newest first, from the store.
func (s *server) listFulfilment(c *fiber.Ctx) error {
	if s.fulfil == nil {
		return errNoFulfilment
	}
	q := persistence.JobQuery{State: c.Query("state"), OrderID: c.Query("order_id")}
	if q.State != "" && !slices.Contains(jobStates, q.State) {
		return order.Errorf(order.CodeInvalidRequest, "unknown state %q", truncate(q.State, 32))
	}
	if q.OrderID != "" && !validOrderID(q.OrderID) {
		return order.Errorf(order.CodeInvalidRequest, "order_id is not an order id")
	}
	scope := "fulfilment\x00" + q.State + "\x00" + q.OrderID
	var err error
	if q.Limit, q.Cursor, err = s.pageParams(c, scope); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.RequestTimeout)
	defer cancel()
	page, err := s.fulfil.List(ctx, q)
	if err != nil {
		return listError("fulfilment tasks", err)
	}
	out := taskListResponse{Tasks: make([]Task, 0, len(page.Jobs)), NextCursor: s.cursors.sign(page.NextCursor, scope)}
	for _, j := range page.Jobs {
		out.Tasks = append(out.Tasks, taskOf(j))
	}
	return respond(c, fiber.StatusOK, out)
}

// retryFulfilment handles POST /api/v1/fulfilment/{id}/retry: a dead (or pending) task
// is due again now, its attempts counted afresh.
func (s *server) retryFulfilment(c *fiber.Ctx) error {
	id, err := s.taskIDParam(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.RequestTimeout)
	defer cancel()
	j, err := s.fulfil.Retry(ctx, id)
	if err != nil {
		return taskError(id, "retried", err)
	}
	s.logger(c).Info("fulfilment task retried", slog.String("task", id), slog.String("by", principal(c).Subject))
	return respond(c, fiber.StatusOK, taskOf(j))
}

// cancelFulfilment handles POST /api/v1/fulfilment/{id}/cancel with an optional
// {"reason": "..."}: a pending or dead task will never run.
func (s *server) cancelFulfilment(c *fiber.Ctx) error {
	id, err := s.taskIDParam(c)
	if err != nil {
		return err
	}
	var req actionRequest
	if err := decodeStrict(c.Body(), &req, true); err != nil {
		return err
	}
	if err := order.CheckText("reason", req.Reason); err != nil {
		return err
	}
	if len(req.Reason) > order.MaxReason {
		return order.Errorf(order.CodeValidation, "reason is longer than %d characters", order.MaxReason)
	}
	p := principal(c)
	reason := req.Reason
	if reason == "" {
		reason = "cancelled by " + p.Subject
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.RequestTimeout)
	defer cancel()
	j, err := s.fulfil.Cancel(ctx, id, reason)
	if err != nil {
		return taskError(id, "cancelled", err)
	}
	s.logger(c).Info("fulfilment task cancelled", slog.String("task", id), slog.String("by", p.Subject))
	return respond(c, fiber.StatusOK, taskOf(j))
}

// taskIDParam returns the {id} path parameter; a malformed id names no task.
func (s *server) taskIDParam(c *fiber.Ctx) (string, error) {
	if s.fulfil == nil {
		return "", errNoFulfilment
	}
	id := c.Params("id")
	if !validTaskID(id) {
		return "", taskNotFound(truncate(id, 64))
	}
	return id, nil
}

// taskError maps what the pool says of a retry or cancel to the client's error.
func taskError(id, done string, err error) error {
	switch {
	case errors.Is(err, persistence.ErrNotFound):
		return taskNotFound(id)
	case errors.Is(err, persistence.ErrConflict):
		return order.Errorf(order.CodeIllegalTransition, "task %s cannot be %s in its state", id, done)
	}
	return fmt.Errorf("task %s: %w", id, err)
}

func taskNotFound(id string) error {
	return order.Errorf(order.CodeNotFound, "task %s not found", id)
}

// validTaskID accepts ^[A-Za-z0-9_-]{1,128}$, which covers "fulfil_" and any order id.
func validTaskID(id string) bool { return validID(id, maxTaskIDLen) }
