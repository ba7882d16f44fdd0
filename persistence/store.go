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
// exist yet). All or nothing.
type Write struct {
	Order           Order
	ExpectedVersion int64
	Events          []Event
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
	// PutUser creates or replaces a user.
	PutUser(ctx context.Context, u User) error
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
