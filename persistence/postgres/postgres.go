// Package postgres is the PostgreSQL store, on pgx v5.
//
// Writes are group-committed: WriteOrder enqueues, and a few flusher goroutines each take
// everything queued (up to maxBatch writes, at most one per order) and apply it with a
// single statement — one round trip and one commit for the whole batch. The statement
// updates the orders whose stored version matches, inserts the new ones, inserts events
// (and inserts and ends jobs, the outbox: see writeBatchJobsSQL) only for the orders
// that succeeded, and returns their ids; every other write of the batch failed its
// version check and gets persistence.ErrConflict. If the server refuses the statement
// for a row's content, the batch is split until the bad write fails alone (see
// writeIsolated).
package postgres

import (
	"context"
	"embed"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ordermesh/ordermesh/persistence"
	"github.com/ordermesh/ordermesh/persistence/internal/batch"
	"github.com/ordermesh/ordermesh/persistence/internal/migrations"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

const (
	// flushers is how many batches can be in flight at once: while one batch waits for
	// its commit's WAL flush, the other collects and sends the next writes. Measured on
	// 2 cores with 1024 writers: 2 beats 1 (no overlap), 3, 4 and 8 (smaller batches,
	// more per-statement work and index-page contention).
	flushers = 2
	// overlapAt is the backlog at which a second batch goes out while one is in flight
	// (batch.Queue.HoldWhileBusy): below it, writes wait for the batch in flight and go
	// together in the next, so a busy store commits fuller batches.
	overlapAt = 16
	// maxBatch caps the writes of one batch statement.
	maxBatch = 1000
	// readConns is how many pool connections are left for reads beside the flushers,
	// unless the URL sets pool_max_conns.
	readConns = 8
	// batchTimeout bounds one batch, retries included, so a stuck server fails writes
	// instead of hanging them.
	batchTimeout = 30 * time.Second
	// migrationLockKey is the advisory lock serializing migrations across nodes.
	migrationLockKey = 0x6f726465726d6573 // "ordermes"
)

// DefaultMaxConns is the pool size of a store whose URL sets no pool_max_conns.
const DefaultMaxConns = flushers + readConns

// Store is the PostgreSQL implementation of persistence.Store. It is safe for
// concurrent use.
type Store struct {
	pool     *pgxpool.Pool
	queue    *batch.Queue
	observed batch.Observer
	now      func() time.Time
	wg       sync.WaitGroup // flushers

	closeOnce sync.Once
	mu        sync.RWMutex // guards closed for reads
	closed    bool
}

var _ persistence.Store = (*Store)(nil)

// Open connects to the database at url (a postgres:// URL or key=value DSN, with
// pgxpool's pool_* parameters), applies pending migrations and starts the flushers.
// Close releases it.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("opening postgres store: parsing url: %w", err)
	}
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = DefaultMaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("opening postgres store: %w", err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("opening postgres store: %w", err)
	}
	s := &Store{pool: pool, queue: batch.New(), now: time.Now}
	s.queue.HoldWhileBusy(overlapAt)
	for range flushers {
		s.wg.Add(1)
		go s.flusher()
	}
	return s, nil
}

// migrate applies the embedded migrations not yet recorded in schema_migrations, in one
// transaction holding an advisory lock, so nodes starting together apply each once.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	all, err := migrations.Load(migrationFS, "migrations")
	if err != nil {
		return err
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("migrating: beginning: %w", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLockKey)); err != nil {
		return fmt.Errorf("migrating: taking lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    bigint      NOT NULL PRIMARY KEY,
		name       text        NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("migrating: creating schema_migrations: %w", err)
	}
	var current int64
	if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("migrating: reading schema version: %w", err)
	}
	for _, m := range all {
		if m.Version <= current {
			continue
		}
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return fmt.Errorf("migrating: applying %s: %w", m.Name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
			return fmt.Errorf("migrating: recording %s: %w", m.Name, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migrating: committing: %w", err)
	}
	return nil
}

// Close stops accepting writes, waits until every queued write is committed or failed,
// and closes the pool. It always returns nil; later calls do nothing.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.queue.Close()
		s.wg.Wait()
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.pool.Close()
	})
	return nil
}

// enter fails with ErrClosed once Close has run; otherwise the caller may use the pool
// until it calls the returned release. Close waits for running calls.
func (s *Store) enter() (release func(), err error) {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, persistence.ErrClosed
	}
	return s.mu.RUnlock, nil
}

// ObserveBatches installs f to be told about every batch written (for metrics).
func (s *Store) ObserveBatches(f persistence.BatchObserver) { s.observed.Set(f) }
