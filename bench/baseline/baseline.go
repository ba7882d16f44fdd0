// Package baseline is the classic stateless design of the order service, built so that
// ordermesh can be measured against it on the same machine and the same PostgreSQL.
//
// It is not a second HTTP implementation. *Service implements order.Service (commands
// and reads of one order) and the store reads of edge.Store, and is served by the very
// same edge.New as an ordermesh node: same endpoints, envelope, validation, JWT checks and
// catalog pricing, by construction. The only difference is behind the edge: no grains, no
// in-memory state, no group commit. Every transition is one PostgreSQL statement — one
// round trip and one commit — and any number of baseline processes can run behind a load
// balancer because none of them remembers anything between requests.
//
// This is meant to be the baseline its own authors would defend, not a straw man:
//
//   - One round trip per command on the happy path. A transition is a single statement
//     with data-modifying CTEs: lock the row if it is in a state the transition table
//     allows (and belongs to the shopper), update it, and insert the event — atomic
//     because one statement is one transaction. Create is INSERT ... ON CONFLICT DO
//     NOTHING plus its event, in one statement too. pgx prepares each statement once per
//     connection (its statement cache), so the server plans nothing per request.
//   - The database is the arbiter, as in the textbook design: the row lock orders
//     concurrent commands on one order, the status condition rejects the losers, the
//     primary key (order_id, version) keeps histories gap-free and the UNIQUE
//     (order_id, idempotency_key) constraint guarantees that a key is applied once. No
//     application-level locking, no SERIALIZABLE retries.
//   - The slow path costs one more query and only runs when the fast statement changed
//     nothing: it reads the order and the event of the command's key and asks the pure
//     order.Decide what the answer is (404, replay, 422 key reused, 409 illegal), so the
//     error codes and messages are ordermesh's own rather than a re-implementation.
//   - The same connection budget as the ordermesh PostgreSQL store (DefaultMaxConns),
//     the same indexes and vacuum settings, and the same validation: the transition table,
//     Decide for a create's lines and total, the same idempotency-key and fingerprint rules.
//   - Payments and fulfilment (tasks.go) are a tasks table that the order statements
//     write in their own transaction and worker goroutines poll with FOR UPDATE SKIP
//     LOCKED, under leases: the textbook outbox, with the same provider (a guarded
//     actors/payment/client), simulated warehouse and dead letters as ordermesh.
//   - Payment deadlines are an indexed column swept in batches by one statement (FOR
//     UPDATE SKIP LOCKED, so several processes sweep without blocking each other), and the
//     expiry uses ordermesh's key (order.ExpiryKey), so histories look alike.
//
// Known and intended differences from ordermesh: the baseline remembers every idempotency
// key of an order for its life (ordermesh honours each for order.KeyWindow at least: the
// newest order.KeysKept in the order itself, older ones from its events); it has no live push of changes; and it is the only writer of
// its tables, baseline_orders, baseline_order_events, baseline_stock and baseline_tasks, which live beside ordermesh's
// tables so both designs can share one database. Users are ordermesh's users table.
package baseline

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"
	"github.com/ordermesh/ordermesh/actors/payment"
	"github.com/ordermesh/ordermesh/actors/warehouse"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ordermesh/ordermesh/persistence"
	"github.com/ordermesh/ordermesh/persistence/postgres"
)

// DefaultMaxConns is the pool size when the URL sets no pool_max_conns: the same number of
// connections one ordermesh node's PostgreSQL store opens (its 2 flushers plus 8 read
// connections), so neither design gets more of the server. `bench compare` gives the
// baseline as many as all the nodes together.
const DefaultMaxConns = postgres.DefaultMaxConns

// usersMaxConns bounds the second pool, the one of the ordermesh store used for accounts
// only (logins), so that the baseline does not get extra write capacity through it.
const usersMaxConns = 2

// Defaults for zero Options fields.
const (
	DefaultPaymentTimeout = 15 * time.Minute
	DefaultOrderTimeout   = 30 * time.Minute
	DefaultSweepInterval  = time.Second
	DefaultSweepBatch     = 500
	DefaultNode           = "baseline"
)

// schemaLockKey is the advisory lock that serializes schema creation across processes.
const schemaLockKey = 0x626173656c696e65 // "baseline"

//go:embed schema.sql
var schemaSQL string

// Options tunes a Service. Zero values take the defaults above.
type Options struct {
	// PaymentTimeout is how long a PAYING order waits for its payment, as
	// `ordermesh node --payment-timeout`.
	PaymentTimeout time.Duration
	// OrderTimeout is how long a CREATED order may wait to be paid before the sweeper
	// closes it (OrderExpired) and releases its stock, as `ordermesh node
	// --order-timeout`. It runs from the order's creation.
	OrderTimeout time.Duration
	// SweepInterval is how often the sweeper looks for passed payment deadlines. A
	// negative value disables the background sweeper; Sweep can still be called.
	SweepInterval time.Duration
	// SweepBatch is how many orders one sweep statement expires at most.
	SweepBatch int
	// MaxConns overrides the pool size; 0 = pool_max_conns of the URL, else DefaultMaxConns.
	MaxConns int32
	// Node is recorded in the node column of every event this process writes.
	Node string
	// Now is the clock that stamps commands and decides which deadlines passed; nil =
	// time.Now. Tests move it instead of sleeping.
	Now func() time.Time
	// Logger receives sweeper and task warnings; nil = slog.Default().
	Logger *slog.Logger

	// Provider receives the payment intents (tasks.go): a pay submits its intent inline
	// (Payments.Submit) and PaymentWorkers submit those that wait. Guard it
	// (client.NewGuard): its calls need a timeout. nil = manual payments: payment tasks
	// are written and ended with their orders, and never run.
	Provider payment.Provider
	// WebhookSecrets verify the provider's webhooks, newest first (Payments.WebhookSecrets).
	WebhookSecrets [][]byte
	// PaymentWorkers is how many workers submit queued intents (default
	// DefaultPaymentWorkers; only with a Provider).
	PaymentWorkers int
	// RetryOpen is how long a payment task waits while the provider's breaker is open.
	RetryOpen time.Duration
	// Warehouse fulfils the paid orders that FulfilmentWorkers workers ship (auto-ship).
	Warehouse warehouse.Warehouse
	// FulfilmentWorkers is how many fulfilment workers run; 0 = auto-ship off: the tasks
	// wait for operators (the order is shipped by hand, or the task retried or cancelled).
	FulfilmentWorkers int
	// FulfilmentAttempts is how many runs a fulfilment task gets before it is
	// dead-lettered (default DefaultFulfilmentAttempts).
	FulfilmentAttempts int
	// TaskPoll is how often an idle worker looks for due tasks (default DefaultTaskPoll).
	TaskPoll time.Duration
	// TaskLease is how long a claimed task is its worker's; a run ends at half of it
	// (default DefaultTaskLease).
	TaskLease time.Duration
}

func (o Options) withDefaults() Options {
	if o.PaymentTimeout <= 0 {
		o.PaymentTimeout = DefaultPaymentTimeout
	}
	if o.OrderTimeout <= 0 {
		o.OrderTimeout = DefaultOrderTimeout
	}
	if o.SweepInterval == 0 {
		o.SweepInterval = DefaultSweepInterval
	}
	if o.SweepBatch <= 0 {
		o.SweepBatch = DefaultSweepBatch
	}
	if o.Node == "" {
		o.Node = DefaultNode
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.PaymentWorkers <= 0 {
		o.PaymentWorkers = DefaultPaymentWorkers
	}
	if o.RetryOpen <= 0 {
		o.RetryOpen = DefaultRetryOpen
	}
	if o.FulfilmentAttempts <= 0 {
		o.FulfilmentAttempts = DefaultFulfilmentAttempts
	}
	if o.TaskPoll <= 0 {
		o.TaskPoll = DefaultTaskPoll
	}
	if o.TaskLease <= 0 {
		o.TaskLease = DefaultTaskLease
	}
	return o
}

// Service is the baseline order service. It implements order.Service and the
// persistence.Orders and persistence.Users interfaces that make up edge.Store, and is
// safe for concurrent use.
type Service struct {
	pool  *pgxpool.Pool
	users *postgres.Store // accounts only: ordermesh's users table
	opts  Options

	// expiryPayload is the payload of every PaymentExpired event the sweeper writes; it
	// is the same for all of them, so it is built once.
	expiryPayload []byte
	// orderExpiryPayload is the payload of every OrderExpired event.
	orderExpiryPayload []byte

	stopSweep context.CancelFunc
	swept     chan struct{} // closed when the sweeper goroutine has returned
	closeOnce sync.Once

	// The task workers (tasks.go): a kick wakes an idle one of its kind.
	stopWorkers    context.CancelFunc
	workers        sync.WaitGroup
	kickPayments   chan struct{}
	kickFulfilment chan struct{}
}

var (
	_ order.Service      = (*Service)(nil)
	_ persistence.Orders = (*Service)(nil)
	_ persistence.Users  = (*Service)(nil)

	_ persistence.RefreshTokens = (*Service)(nil)
)

// Open connects to the PostgreSQL database at url (a postgres:// URL or key=value DSN,
// with pgxpool's pool_* parameters), creates the baseline tables if needed, opens the
// ordermesh store on the same database for accounts, and starts the payment sweeper.
// Close releases it.
func Open(ctx context.Context, url string, opts Options) (*Service, error) {
	opts = opts.withDefaults()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("opening baseline: parsing url: %w", err)
	}
	switch {
	case opts.MaxConns > 0:
		cfg.MaxConns = opts.MaxConns
	case !strings.Contains(url, "pool_max_conns"):
		cfg.MaxConns = DefaultMaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("opening baseline: %w", err)
	}
	if err := createSchema(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("opening baseline: %w", err)
	}
	users, err := postgres.Open(ctx, withPoolMaxConns(url, usersMaxConns))
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("opening baseline: users: %w", err)
	}
	payload, err := json.Marshal(order.Payload{
		By: sweeperSubject,
		// A system principal, as every expiry is: the fingerprint includes the caller.
		Fingerprint: order.Fingerprint(order.Command{Type: order.CmdExpirePayment,
			By: order.Principal{Subject: sweeperSubject, Role: order.RoleSystem}}),
	})
	if err != nil {
		users.Close()
		pool.Close()
		return nil, fmt.Errorf("opening baseline: %w", err)
	}
	orderExpiry, _ := json.Marshal(order.Payload{By: sweeperSubject})
	s := &Service{pool: pool, users: users, opts: opts, expiryPayload: payload, orderExpiryPayload: orderExpiry, swept: make(chan struct{}),
		kickPayments: make(chan struct{}, 1), kickFulfilment: make(chan struct{}, 1)}
	sweepCtx, stop := context.WithCancel(context.Background())
	s.stopSweep = stop
	if opts.SweepInterval > 0 {
		go s.runSweeper(sweepCtx)
	} else {
		close(s.swept)
	}
	workCtx, stopWork := context.WithCancel(context.Background())
	s.stopWorkers = stopWork
	if opts.Provider != nil {
		s.startWorkers(workCtx, kindPayment, opts.PaymentWorkers, s.kickPayments)
	}
	if opts.FulfilmentWorkers > 0 && opts.Warehouse != nil {
		s.startWorkers(workCtx, kindFulfilment, opts.FulfilmentWorkers, s.kickFulfilment)
	}
	return s, nil
}

// createSchema creates the baseline tables and indexes, under an advisory lock so that
// processes starting together do not race on CREATE ... IF NOT EXISTS (which is not safe
// against itself).
func createSchema(ctx context.Context, pool *pgxpool.Pool) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("creating schema: beginning: %w", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(schemaLockKey)); err != nil {
		return fmt.Errorf("creating schema: taking lock: %w", err)
	}
	if _, err := tx.Exec(ctx, schemaSQL); err != nil {
		return fmt.Errorf("creating schema: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("creating schema: committing: %w", err)
	}
	return nil
}

// withPoolMaxConns returns dsn with pool_max_conns=n unless it sets a pool size already.
func withPoolMaxConns(dsn string, n int) string {
	if strings.Contains(dsn, "pool_max_conns") {
		return dsn
	}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return dsn // pgxpool.ParseConfig accepted it; let the store report anything odd
		}
		q := u.Query()
		q.Set("pool_max_conns", fmt.Sprint(n))
		u.RawQuery = q.Encode()
		return u.String()
	}
	return fmt.Sprintf("%s pool_max_conns=%d", dsn, n)
}

// Ping reports whether the database answers; it is the readiness check of a baseline
// process.
func (s *Service) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("pinging database: %w", err)
	}
	return nil
}

// Close stops the sweeper and the task workers, waits for them (a task being run is cut
// short and recorded as a failed attempt, to be retried), and closes both pools.
// Commands still running fail. It always returns nil; later calls do nothing.
func (s *Service) Close() error {
	s.closeOnce.Do(func() {
		s.stopSweep()
		s.stopWorkers()
		<-s.swept
		s.workers.Wait()
		s.users.Close()
		s.pool.Close()
	})
	return nil
}

// GetUser returns an account from ordermesh's users table, so the same users log in to
// both designs.
func (s *Service) GetUser(ctx context.Context, username string) (persistence.User, error) {
	return s.users.GetUser(ctx, username)
}

// PutUser creates or replaces an account in ordermesh's users table.
func (s *Service) PutUser(ctx context.Context, u persistence.User) error {
	return s.users.PutUser(ctx, u)
}

// CreateUser creates an account in ordermesh's users table unless its name is taken.
func (s *Service) CreateUser(ctx context.Context, u persistence.User) error {
	return s.users.CreateUser(ctx, u)
}

// ListUsers lists ordermesh's users table.
func (s *Service) ListUsers(ctx context.Context) ([]persistence.User, error) {
	return s.users.ListUsers(ctx)
}

// The refresh-token methods reach ordermesh's refresh_tokens table, so a session
// started on a node can be refreshed on the baseline and the other way round.

// CreateRefreshToken stores the first token of a session (persistence.RefreshTokens).
func (s *Service) CreateRefreshToken(ctx context.Context, t persistence.RefreshToken) error {
	return s.users.CreateRefreshToken(ctx, t)
}

// RotateRefreshToken rotates a refresh token (persistence.RefreshTokens).
func (s *Service) RotateRefreshToken(ctx context.Context, old []byte, next persistence.RefreshToken) (persistence.RefreshToken, error) {
	return s.users.RotateRefreshToken(ctx, old, next)
}

// RevokeRefreshFamily revokes a session (persistence.RefreshTokens).
func (s *Service) RevokeRefreshFamily(ctx context.Context, h []byte) error {
	return s.users.RevokeRefreshFamily(ctx, h)
}

// RevokeUserRefreshTokens revokes every session of a user (persistence.RefreshTokens).
func (s *Service) RevokeUserRefreshTokens(ctx context.Context, username string) error {
	return s.users.RevokeUserRefreshTokens(ctx, username)
}

// DeleteExpiredRefreshTokens removes expired refresh tokens (persistence.RefreshTokens).
func (s *Service) DeleteExpiredRefreshTokens(ctx context.Context, now time.Time) (int64, error) {
	return s.users.DeleteExpiredRefreshTokens(ctx, now)
}

// CreateSecret, Secrets and DeleteSecret reach ordermesh's secrets table, so the baseline
// signs and verifies access tokens with the same store keys as the nodes.

// CreateSecret stores a secret unless one of its kind and id exists (persistence.Secrets).
func (s *Service) CreateSecret(ctx context.Context, sec persistence.Secret) (bool, error) {
	return s.users.CreateSecret(ctx, sec)
}

// Secrets returns the secrets of one kind, oldest first (persistence.Secrets).
func (s *Service) Secrets(ctx context.Context, kind string) ([]persistence.Secret, error) {
	return s.users.Secrets(ctx, kind)
}

// DeleteSecret removes a secret (persistence.Secrets).
func (s *Service) DeleteSecret(ctx context.Context, kind, id string) error {
	return s.users.DeleteSecret(ctx, kind, id)
}

// now is the clock in the form both stores keep: UTC, microseconds.
func (s *Service) now() time.Time {
	return s.opts.Now().UTC().Truncate(time.Microsecond)
}
