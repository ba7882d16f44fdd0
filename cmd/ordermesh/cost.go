package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ordermesh/ordermesh/bench"
)

// The cost the bench reports (bench/cost.go) needs the processes to read in /proc and a
// way to read PostgreSQL's counters; this file supplies both to `bench run` and
// `bench compare`.

// pgStats reads a PostgreSQL server's write counters (bench.DBStats) over its own
// connection:
//   - the next transaction id (pg_current_snapshot's xmax): one per transaction that
//     wrote, exact and immediate (server-wide: the bench's server serves only the store);
//   - the WAL position: bytes of log written, also exact and immediate;
//   - pg_stat_database's commits and rows inserted, updated and deleted of the store's
//     database. Those are cumulative statistics that backends report about once a second
//     while busy and up to some seconds after they go idle, so the final reading waits
//     until the row count has stopped moving (at most statsSettle).
type pgStats struct {
	conn *pgx.Conn
	// settle and poll are how long the final reading may wait, and how often it looks.
	settle, poll time.Duration
}

const statsSettle = 12 * time.Second

func newPGStats(ctx context.Context, url string) (*pgStats, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("cost: connecting to PostgreSQL for its counters: %w", err)
	}
	return &pgStats{conn: conn, settle: statsSettle, poll: 1500 * time.Millisecond}, nil
}

func (p *pgStats) Close() { _ = p.conn.Close(context.Background()) }

const pgCounters = `
SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint,
       pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint,
       xact_commit, tup_inserted + tup_updated + tup_deleted
FROM pg_stat_database WHERE datname = current_database()`

func (p *pgStats) read(ctx context.Context) (bench.DBSample, error) {
	var s bench.DBSample
	err := p.conn.QueryRow(ctx, pgCounters).Scan(&s.XID, &s.WALBytes, &s.Commits, &s.Rows)
	return s, err
}

// Sample reads the counters; the final reading waits for the statistics to settle.
func (p *pgStats) Sample(ctx context.Context, final bool) (bench.DBSample, error) {
	s, err := p.read(ctx)
	if err != nil || !final {
		return s, err
	}
	deadline := time.Now().Add(p.settle)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return s, ctx.Err()
		case <-time.After(p.poll):
		}
		next, err := p.read(ctx)
		if err != nil {
			return s, err
		}
		settled := next.Rows == s.Rows
		// The xid and WAL position are exact when first read; only the statistics lag.
		s.Commits, s.Rows = next.Commits, next.Rows
		if settled {
			break
		}
	}
	return s, nil
}

// processFlag is --cost-pid / --cost-tree: name=pid, repeatable or comma-separated.
type processFlag struct {
	list *[]bench.Process
	tree bool
}

func (f processFlag) String() string { return "" }

func (f processFlag) Set(v string) error {
	for part := range strings.SplitSeq(v, ",") {
		name, pid, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.Atoi(pid)
		if !ok || name == "" || err != nil || n <= 0 {
			return errors.New("want name=pid, e.g. node-0=4242")
		}
		*f.list = append(*f.list, bench.Process{Name: name, PID: n, Tree: f.tree})
	}
	return nil
}

// processes are the live children of the launcher, by name (bench's cost report).
func (l *launcher) processes() []bench.Process {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []bench.Process
	for _, c := range l.nodes {
		if c.alive() {
			out = append(out, bench.Process{Name: c.name, PID: c.cmd.Process.Pid})
		}
	}
	return out
}
