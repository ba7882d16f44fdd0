// Package sqlite is the embedded default store: a single SQLite file through the pure Go
// driver modernc.org/sqlite, so ordermesh runs with nothing installed.
//
// One writer goroutine owns all writes. It group-commits every WriteOrder queued while the
// previous batch ran into one transaction; each write, its jobs (the outbox) included,
// runs under its own savepoint, so a version conflict fails only that write. The
// database runs in WAL mode with synchronous=FULL, so a committed write survives a
// process kill and a power loss. Reads use a separate pool of read-only connections and
// never wait for the writer.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/ordermesh/ordermesh/persistence"
	"github.com/ordermesh/ordermesh/persistence/internal/batch"
	"github.com/ordermesh/ordermesh/persistence/internal/migrations"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

const (
	// maxBatch caps the writes committed in one transaction, bounding the latency a
	// single batch adds to the writes queued behind it.
	maxBatch = 512
	// readConns is the size of the read pool; WAL lets readers run beside the writer.
	readConns = 4
	// busyTimeout is how long a connection waits for a lock held by another process
	// (e.g. an operator's sqlite3 shell) before failing.
	busyTimeout = 10 * time.Second
)

// Store is the SQLite implementation of persistence.Store. It is safe for concurrent use.
type Store struct {
	write    *sql.DB // exactly one connection: SQLite has one writer anyway
	read     *sql.DB
	queue    *batch.Queue
	observed batch.Observer
	now      func() time.Time

	closeOnce sync.Once
	closeErr  error
	done      chan struct{} // closed when the writer goroutine has drained the queue

	mu     sync.RWMutex // guards closed for reads
	closed bool
}

var _ persistence.Store = (*Store)(nil)

// Open opens (creating if needed, with its parent directories) the database file at path,
// applies pending migrations and starts the writer. Close releases it.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("opening sqlite store: empty path")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("opening sqlite store: creating directory: %w", err)
	}
	pragmas := url.Values{}
	pragmas.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	pragmas.Add("_pragma", "foreign_keys(ON)")
	writeDSN := url.Values{"_txlock": {"immediate"}}
	for _, p := range pragmas["_pragma"] {
		writeDSN.Add("_pragma", p)
	}
	writeDSN.Add("_pragma", "journal_mode(WAL)")
	writeDSN.Add("_pragma", "synchronous(FULL)")
	// Each write of a batch runs under a savepoint, whose sub-journal keeps the pages it
	// changes: in memory, not a temporary file written page by page (a write with jobs
	// changes the pages of four more b-trees). It only serves rollbacks within a
	// transaction, so durability is unchanged.
	writeDSN.Add("_pragma", "temp_store(MEMORY)")
	readDSN := url.Values{"_pragma": append(pragmas["_pragma"], "query_only(ON)")}

	write, err := sql.Open("sqlite", path+"?"+writeDSN.Encode())
	if err != nil {
		return nil, fmt.Errorf("opening sqlite store %s: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)
	if err := migrate(ctx, write); err != nil {
		write.Close()
		return nil, fmt.Errorf("opening sqlite store %s: %w", path, err)
	}
	read, err := sql.Open("sqlite", path+"?"+readDSN.Encode())
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("opening sqlite store %s: %w", path, err)
	}
	read.SetMaxOpenConns(readConns)
	read.SetMaxIdleConns(readConns)

	s := &Store{
		write: write,
		read:  read,
		queue: batch.New(),
		now:   time.Now,
		done:  make(chan struct{}),
	}
	go s.writer()
	return s, nil
}

// migrate applies the embedded migrations not yet recorded in schema_migrations, all in
// one immediate transaction so concurrent openers of the same file serialize.
func migrate(ctx context.Context, db *sql.DB) error {
	all, err := migrations.Load(migrationFS, "migrations")
	if err != nil {
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrating: beginning: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER NOT NULL PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("migrating: creating schema_migrations: %w", err)
	}
	var current int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("migrating: reading schema version: %w", err)
	}
	for _, m := range all {
		if m.Version <= current {
			continue
		}
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			return fmt.Errorf("migrating: applying %s: %w", m.Name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
			m.Version, m.Name, time.Now().UnixMicro()); err != nil {
			return fmt.Errorf("migrating: recording %s: %w", m.Name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrating: committing: %w", err)
	}
	return nil
}

// Close stops accepting writes, waits until every queued write is committed or failed,
// and closes the database. Later calls return the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.queue.Close()
		<-s.done
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.closeErr = errors.Join(s.write.Close(), s.read.Close())
		if s.closeErr != nil {
			s.closeErr = fmt.Errorf("closing sqlite store: %w", s.closeErr)
		}
	})
	return s.closeErr
}

// enter fails with ErrClosed once Close has run; otherwise the caller may use the
// databases until it calls the returned release. Close waits for running calls.
func (s *Store) enter() (release func(), err error) {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, persistence.ErrClosed
	}
	return s.mu.RUnlock, nil
}

func micros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

func fromMicros(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMicro(v.Int64).UTC()
}

// ObserveBatches installs f to be told about every batch written (for metrics).
func (s *Store) ObserveBatches(f persistence.BatchObserver) { s.observed.Set(f) }
