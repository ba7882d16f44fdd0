package order

import "context"

// Result is the answer to a command: the order as the command left it. Replayed is true
// when the idempotency key had been seen and nothing changed.
type Result struct {
	View     View
	Replayed bool
}

// Service is how the rest of the system talks to orders, wherever their grains live.
// Errors are *Error; CodeUnavailable means "retry with the same idempotency key".
type Service interface {
	// Execute delivers a command to the order's grain and waits for the durable result.
	// For CmdCreate, OrderID must be OrderIDFor(By.Subject, Key).
	Execute(ctx context.Context, c Command, requestID string) (Result, error)
	// Get returns the current view of an order the principal may see; CodeNotFound otherwise.
	Get(ctx context.Context, id string, by Principal, requestID string) (View, error)
}
