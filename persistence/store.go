// Package persistence defines how orders, their events and users are stored. It imports
// nothing of ordermesh: the domain hands it opaque snapshots plus the few columns it needs
// to query (status, customer, payment deadline). Two implementations pass one conformance
// suite (persistence/storetest): PostgreSQL (persistence/postgres) and the embedded
// default (persistence/sqlite).
package persistence

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound: no such order or user.
var ErrNotFound = errors.New("not found")

// ErrConflict: a conditional write found a version other than the expected one, so another
// activation moved the order on (or created it). Nothing of that write was applied.
var ErrConflict = errors.New("version conflict")

// ErrInvalid: a write (or user) is malformed, or holds content the store cannot keep,
// such as text that is not valid UTF-8 or contains NUL. Nothing of it was applied, and
// sending it again cannot succeed: callers must not retry it, and need not doubt what
// is stored. It fails only its own write, never the others of its batch.
var ErrInvalid = errors.New("invalid write")

// ErrClosed: the store was closed.
var ErrClosed = errors.New("store closed")

// ErrBadCursor: OrderQuery.Cursor is not a cursor this store handed out.
var ErrBadCursor = errors.New("bad cursor")

// Order is one row of the orders table: the latest snapshot of an order.
type Order struct {
	ID              string
	Customer        string
	Status          string
	Version         int64
	Snapshot        []byte    // opaque to the store
	PaymentDeadline time.Time // zero = no deadline armed
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// Event is one row of order_events; (OrderID, Version) is its primary key.
type Event struct {
	OrderID        string
	Version        int64
	Type           string
	From, To       string
	IdempotencyKey string
	Node           string
	At             time.Time
	Payload        []byte // JSON
}

// Write is one conditional transition: store Order (whose Version is the new version) and
// append Events, only if the stored version is ExpectedVersion (0 = the order must not
// exist yet). All or nothing. A write with no events whose Version equals ExpectedVersion
// rewrites the order's row in place (bookkeeping that is no event of its history, such as
// the version its stock follows).
type Write struct {
	Order           Order
	ExpectedVersion int64
	Events          []Event
	// Jobs are inserted in the same transaction (the outbox): work the transition causes,
	// such as submitting a payment or fulfilling a paid order, which exists if and only if
	// the transition does. A job whose ID exists already is left as it is.
	Jobs []Job
	// EndJobs ends jobs the transition makes moot, in the same transaction (a refund
	// cancels the order's fulfilment). Each applies only to a job that is pending, running
	// or dead; one that is done or cancelled already, or unknown, is left alone.
	EndJobs []JobEnd
}

// OrderQuery selects orders for listing, newest first, with keyset pagination.
type OrderQuery struct {
	Customer string // "" = every customer
	Status   string // "" = every status
	Cursor   string // opaque; from OrderPage.NextCursor; "" = first page
	Limit    int    // 1..1000
}

// OrderPage is one page of a listing. NextCursor is "" on the last page.
type OrderPage struct {
	Orders     []Order
	NextCursor string
}

// Due is an order whose payment deadline passed, and the key DuePayments pages by.
type Due struct {
	OrderID  string
	Deadline time.Time
}

// User is an account that can log in.
type User struct {
	Username     string
	PasswordHash string // bcrypt
	Role         string
	CreatedAt    time.Time
	// Disabled accounts cannot log in or refresh; their refresh tokens are revoked.
	Disabled bool
}

// Orders stores order snapshots and their event history.
type Orders interface {
	// LoadOrder returns the latest snapshot of an order, or ErrNotFound.
	LoadOrder(ctx context.Context, id string) (Order, error)
	// WriteOrder applies w atomically, or returns ErrConflict or ErrInvalid and applies
	// nothing. Concurrent calls are batched into few round trips (group commit); a
	// conflict, or content the database refuses, fails only its own write. It returns
	// once the write is durable.
	WriteOrder(ctx context.Context, w Write) error
	// ListOrders returns a page of orders, newest (by creation) first.
	ListOrders(ctx context.Context, q OrderQuery) (OrderPage, error)
	// OrderEvents returns an order's events in version order (empty if it has none).
	OrderEvents(ctx context.Context, id string) ([]Event, error)
	// OrderEventsAfter returns the events of an order with a version above after, in
	// version order (empty if there are none): what a reader that has the order up to
	// version after is missing. It reads only those rows (the key is (order id,
	// version)); after = 0 is the whole history, like OrderEvents.
	OrderEventsAfter(ctx context.Context, id string, after int64) ([]Event, error)
	// EventByKey returns the newest event of order id recorded with idempotency key, or
	// ErrNotFound. Grains ask it for keys their order no longer remembers itself.
	EventByKey(ctx context.Context, id, key string) (Event, error)
	// DuePayments returns up to limit orders whose payment deadline is at or before now
	// and whose (deadline, id) comes after after's, earliest first (ties by id); a zero
	// after starts at the earliest. Passing the last one returned pages through them all.
	DuePayments(ctx context.Context, now time.Time, after Due, limit int) ([]Due, error)
}

// Users stores accounts.
type Users interface {
	// GetUser returns a user by name, or ErrNotFound.
	GetUser(ctx context.Context, username string) (User, error)
	// PutUser creates or replaces a user (password hash, role and disabled flag).
	PutUser(ctx context.Context, u User) error
	// CreateUser stores u only if no user of that name exists; otherwise it returns
	// ErrConflict and changes nothing. Sign-ups racing for one name: exactly one wins.
	CreateUser(ctx context.Context, u User) error
	// ListUsers returns every user, ordered by name.
	ListUsers(ctx context.Context) ([]User, error)
}

// ErrTokenReused: a refresh token that had already been rotated was presented again.
// RotateRefreshToken has revoked its whole family by the time this is returned.
var ErrTokenReused = errors.New("refresh token reused")

// ErrTokenRevoked: a refresh token is revoked or expired.
var ErrTokenRevoked = errors.New("refresh token revoked or expired")

// RefreshToken is one row of refresh_tokens. The token itself is never stored: Hash is
// its SHA-256, so a leaked table cannot be replayed. Every token descends from one login;
// the tokens of that login share a Family, which is revoked as a whole.
type RefreshToken struct {
	Hash      []byte // SHA-256 of the token, 32 bytes; the key
	Family    string
	Username  string
	IssuedAt  time.Time
	ExpiresAt time.Time
	// ReplacedBy is the hash of the token this one was rotated into; nil while unused.
	ReplacedBy []byte
	Revoked    bool
}

// RefreshTokens stores the refresh tokens of the sessions, so that any node can refresh
// or revoke a token another node issued.
type RefreshTokens interface {
	// CreateRefreshToken stores a new token (the first of a family, at login).
	CreateRefreshToken(ctx context.Context, t RefreshToken) error
	// RotateRefreshToken is one atomic step: if the token with hash old is unused, not
	// revoked and not expired at next.IssuedAt, it is marked replaced by next, and next
	// is stored in old's family for old's user (next.Family and next.Username are
	// filled in from old); the old row is returned. Of callers racing with the same old
	// token exactly one wins; the others find it used.
	//
	// A token that was already rotated is a reuse, the sign of a stolen token (OAuth 2.0
	// Security BCP, section 4.14.2): its whole family is revoked, the successors too, and
	// ErrTokenReused is returned. A revoked or expired token is ErrTokenRevoked, an
	// unknown one ErrNotFound.
	RotateRefreshToken(ctx context.Context, old []byte, next RefreshToken) (RefreshToken, error)
	// RevokeRefreshFamily revokes every token of the family of the token with hash h
	// (logout). An unknown hash is ErrNotFound.
	RevokeRefreshFamily(ctx context.Context, h []byte) error
	// RevokeUserRefreshTokens revokes every token of a user (the user was disabled).
	RevokeUserRefreshTokens(ctx context.Context, username string) error
	// DeleteExpiredRefreshTokens removes the tokens that expired before now.
	DeleteExpiredRefreshTokens(ctx context.Context, now time.Time) (int64, error)
}

// Secret is key material the nodes of a cluster share: the cluster CA, the gossip
// keyring, the access-token signing keys. The store is the cluster's root of trust:
// whoever can open it is part of the cluster, so what nodes must agree on lives here.
type Secret struct {
	Kind      string // what it is for, e.g. "jwt", "gossip", "ca"
	ID        string // unique within its kind (a key id); chosen by the creator
	Value     []byte // opaque to the store
	CreatedAt time.Time
}

// Secrets stores key material. Rotation is adding a secret and, once nothing needs the
// old one any more, deleting it; a secret is never changed in place.
type Secrets interface {
	// CreateSecret stores s unless a secret of its kind and id exists already, and reports
	// whether it did. Nodes that race to create the same secret (the first start of a
	// cluster) all call it with the same id; exactly one wins, and all then read the
	// winner with Secrets. CreatedAt is set to now if zero.
	CreateSecret(ctx context.Context, s Secret) (created bool, err error)
	// Secrets returns the secrets of one kind, oldest first (ties by id).
	Secrets(ctx context.Context, kind string) ([]Secret, error)
	// DeleteSecret removes a secret; deleting one that does not exist is not an error.
	DeleteSecret(ctx context.Context, kind, id string) error
}

// Store is everything ordermesh keeps.
type Store interface {
	Orders
	Users
	RefreshTokens
	Secrets
	// Close flushes pending writes and releases the store.
	Close() error
}

// BatchObserver is told about every group-commit batch a store writes: how many writes it
// held, how long it took, and its error (nil when it committed, even if some of its
// writes were conflicts). It runs on the store's writer goroutine: it must be quick.
type BatchObserver func(writes int, took time.Duration, err error)

// InUse picks which of a rotation's items the cluster uses now: the newest created at
// least propagation before now, so that every node has loaded it before anything made with
// it reaches them; the oldest while none is that old (a brand new cluster). items must be
// oldest first and not empty. The token signing keys and the trust material (CA, gossip
// keys) all rotate by this one rule.
func InUse[T any](items []T, created func(T) time.Time, now time.Time, propagation time.Duration) T {
	pick := items[0]
	for _, it := range items[1:] {
		if !created(it).After(now.Add(-propagation)) {
			pick = it
		}
	}
	return pick
}

// StockRecord is one row of the stock table: the counters of one sku and its snapshot
// (opaque to the store; the adjustment keys the sku remembers).
type StockRecord struct {
	SKU       string
	OnHand    int64
	Reserved  int64
	Version   int64
	Snapshot  []byte
	UpdatedAt time.Time
}

// Holding is one row of stock_holdings: what one order holds of one sku, and in which
// state (RESERVED, SOLD, SHIPPED, RELEASED, REFUNDED, REFUSED). (SKU, OrderID) is its key.
type Holding struct {
	SKU       string
	OrderID   string
	Qty       int64
	State     string
	Version   int64 // the sku's version after the holding's last event
	UpdatedAt time.Time
}

// StockEvent is one row of stock_events; (SKU, Version) is its key. Holding events carry
// OrderID, Qty, From and To; adjustments carry Delta and IdempotencyKey.
type StockEvent struct {
	SKU            string
	Version        int64
	Type           string
	OrderID        string
	Qty            int64
	From, To       string
	Delta          int64
	IdempotencyKey string
	Node           string
	At             time.Time
	Payload        []byte // JSON
}

// StockWrite is one conditional write of a sku, usually a batch of many commands: store
// Stock (whose Version is the new version), upsert Holdings (by sku and order id) and
// append Events, only if the stored version is ExpectedVersion (0 = the sku has no row
// yet). All or nothing.
type StockWrite struct {
	Stock           StockRecord
	ExpectedVersion int64
	Holdings        []Holding
	Events          []StockEvent
}

// Stocks stores the stock of skus: counters, holdings and their history. Both stores
// implement it next to Store.
type Stocks interface {
	// LoadStock returns a sku's row and those of its holdings whose state is one of live
	// or that were updated at or after since; ErrNotFound (and no holdings) if the sku
	// has no row.
	LoadStock(ctx context.Context, sku string, live []string, since time.Time) (StockRecord, []Holding, error)
	// HoldingOf returns one order's holding of a sku, or ErrNotFound.
	HoldingOf(ctx context.Context, sku, orderID string) (Holding, error)
	// WriteStock applies w atomically, or returns ErrConflict or ErrInvalid and applies
	// nothing. It returns once the write is durable.
	WriteStock(ctx context.Context, w StockWrite) error
	// ListStock returns every sku's row, ordered by sku.
	ListStock(ctx context.Context) ([]StockRecord, error)
	// StockEvents returns up to limit events of a sku with a version above after, in
	// version order.
	StockEvents(ctx context.Context, sku string, after int64, limit int) ([]StockEvent, error)
}

// The states of a job.
const (
	JobPending   = "pending"   // waits until NextAt, then any node's pool may claim it
	JobRunning   = "running"   // claimed by LeaseOwner until LeaseUntil; after that, claimable again
	JobDone      = "done"      // finished
	JobDead      = "dead"      // dead-lettered: it failed MaxAttempts times; an operator may retry or cancel it
	JobCancelled = "cancelled" // will never run (by an operator, or made moot by its order)
)

// Job is one row of the jobs table: durable work, written in the same transaction as the
// order transition that causes it (Write.Jobs) and run later by a worker pool on any
// node, at most one run at a time, under a lease.
type Job struct {
	ID         string // unique, chosen by the writer (e.g. "fulfil_<order id>")
	Kind       string // which pool runs it ("payment", "fulfilment")
	OrderID    string
	State      string
	Attempts   int       // runs started since it was created or last retried by an operator
	Fence      int64     // incremented by every claim, never reset: the lease's fencing token
	NextAt     time.Time // a pending job is due at or after it
	LeaseOwner string    // the node that claimed it last ("" if never claimed)
	LeaseUntil time.Time // a running job whose lease passed is presumed abandoned
	LastError  string    // why the last run failed, or the note it was ended with
	Payload    []byte    // JSON, opaque to the store
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// JobEnd ends a job as part of an order write: State is JobDone or JobCancelled, Note is
// kept as its LastError.
type JobEnd struct {
	ID    string
	State string
	Note  string
}

// JobFinish is the outcome of one run: State JobDone, JobCancelled, JobDead, or JobPending
// to run again at NextAt. It applies only while the job is running under the same Fence
// (the run still holds the lease).
type JobFinish struct {
	ID     string
	Fence  int64
	State  string
	NextAt time.Time // for JobPending
	Error  string    // LastError; "" keeps none
	At     time.Time
}

// JobQuery selects jobs for listing, newest (by creation) first, with keyset pagination.
type JobQuery struct {
	Kind    string // required
	State   string // "" = every state
	OrderID string // "" = every order
	Cursor  string // opaque; from JobPage.NextCursor; "" = first page
	Limit   int    // 1..1000
}

// JobPage is one page of a job listing. NextCursor is "" on the last page.
type JobPage struct {
	Jobs       []Job
	NextCursor string
}

// JobCount is how many jobs of one kind are in one state.
type JobCount struct {
	Kind  string
	State string
	N     int64
}

// Jobs stores the jobs of the worker pools. Both stores implement it next to Store.
type Jobs interface {
	// ClaimJobs leases up to limit jobs of kind that are due at now: pending with NextAt at
	// or before now, or running with LeaseUntil at or before now (their worker is presumed
	// gone), earliest NextAt first. Each becomes running, owned by owner until leaseUntil,
	// with Attempts and Fence incremented. Concurrent claimers, on any node, never get the
	// same job.
	ClaimJobs(ctx context.Context, kind, owner string, now, leaseUntil time.Time, limit int) ([]Job, error)
	// ClaimJob leases one job by id on the same terms: ErrNotFound if there is no such job,
	// ErrConflict if it is not claimable at now (not due, leased, or ended).
	ClaimJob(ctx context.Context, id, owner string, now, leaseUntil time.Time) (Job, error)
	// FinishJob records the outcome of a run; ErrConflict, changing nothing, if the job is
	// no longer running under f.Fence (its lease passed and it was claimed again, or its
	// order ended it); ErrNotFound if there is no such job.
	FinishJob(ctx context.Context, f JobFinish) error
	// RetryJob makes a dead or pending job pending, due at now, with Attempts reset to 0
	// (an operator's retry); ErrConflict if it is running, done or cancelled, ErrNotFound
	// if unknown. It returns the job as it is now.
	RetryJob(ctx context.Context, id string, now time.Time) (Job, error)
	// CancelJob cancels a pending or dead job, keeping note as its LastError; ErrConflict if
	// it is running, done or cancelled, ErrNotFound if unknown. It returns the job.
	CancelJob(ctx context.Context, id, note string, now time.Time) (Job, error)
	// GetJob returns one job, or ErrNotFound.
	GetJob(ctx context.Context, id string) (Job, error)
	// ListJobs returns a page of jobs, newest (by creation, then id) first.
	ListJobs(ctx context.Context, q JobQuery) (JobPage, error)
	// CountJobs counts the jobs that are pending, running or dead, by kind and state
	// (the queue depths; done and cancelled jobs are history and not counted).
	CountJobs(ctx context.Context) ([]JobCount, error)
}
