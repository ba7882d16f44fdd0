package actors

import (
	"os"
	"syscall"
)

// FailpointEnv names the environment variable that makes a node kill itself (SIGKILL,
// no cleanup, as a crash would) the first time it reaches one step of the saga. The
// crash tests (cmd/ordermesh) start nodes with it to stop one at every step and check
// that the next node completes what it left. Unset in production: then crashAt costs a
// string comparison.
//
// The steps, in the order an order meets them:
//
//	saga-recorded  the new order is stored RESERVING; no stock has been asked
//	stock-written  a sku's grain stored a batch of reservations; no buyer has its answer
//	saga-reserved  every line's sku answered; the outcome is not stored
//	saga-released  a refused order's lines are released; REJECTED is not stored
//	stock-pending  a transition is stored; its stock effect is not applied
//	stock-applied  the stock effect is applied; the order does not record it yet
const FailpointEnv = "ORDERMESH_FAILPOINT"

var failpoint = os.Getenv(FailpointEnv)

// crashAt kills the process if the failpoint named step is armed.
func crashAt(step string) {
	if failpoint == step {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way; nothing more may happen here
	}
}
