package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ordermesh/ordermesh/persistence"
	"github.com/ordermesh/ordermesh/persistence/internal/normalize"
	"github.com/ordermesh/ordermesh/persistence/keyset"
)

var _ persistence.Jobs = (*Store)(nil)

// Every job update is one UPDATE ... RETURNING statement on the write connection: a
// statement is atomic, and it takes the database's write lock before it reads a row, so
// the processes sharing the file (and this one's group-commit writer, which shares the
// connection) apply their updates one after the other, each seeing the others' results.
// A process waits up to busyTimeout for another's lock.
const (
	jobColumns = `id, kind, order_id, state, attempts, fence, next_at, lease_owner, lease_until, last_error, payload,
		created_at, updated_at`
	// claimableSQL is the condition of a job that may be claimed at ?2.
	claimableSQL = `((state = 'pending' AND next_at <= ?2) OR (state = 'running' AND lease_until <= ?2))`
	// claimSetSQL leases a job to ?3 until ?4, at ?2.
	claimSetSQL = `SET state = 'running', lease_owner = ?3, lease_until = ?4, attempts = attempts + 1, fence = fence + 1,
		updated_at = ?2`
	// claimJobsSQL claims up to ?5 due jobs of kind ?1, earliest NextAt first.
	claimJobsSQL = `UPDATE jobs ` + claimSetSQL + ` WHERE id IN (SELECT id FROM jobs WHERE kind = ?1 AND ` + claimableSQL + `
		ORDER BY next_at LIMIT ?5) RETURNING ` + jobColumns
	claimJobSQL  = `UPDATE jobs ` + claimSetSQL + ` WHERE id = ?1 AND ` + claimableSQL + ` RETURNING ` + jobColumns
	finishJobSQL = `UPDATE jobs SET state = ?3, next_at = COALESCE(?4, next_at), last_error = ?5, updated_at = ?6
		WHERE id = ?1 AND state = 'running' AND fence = ?2`
	retryJobSQL = `UPDATE jobs SET state = 'pending', attempts = 0, next_at = ?2, updated_at = ?2
		WHERE id = ?1 AND state IN ('pending', 'dead') RETURNING ` + jobColumns
	cancelJobSQL = `UPDATE jobs SET state = 'cancelled', last_error = ?3, updated_at = ?2
		WHERE id = ?1 AND state IN ('pending', 'dead') RETURNING ` + jobColumns
	getJobSQL    = `SELECT ` + jobColumns + ` FROM jobs WHERE id = ?`
	countJobsSQL = `SELECT kind, state, count(*) FROM jobs WHERE state IN ('pending', 'running', 'dead')
		GROUP BY kind, state ORDER BY kind, state`
)

func scanJob(row scanner) (persistence.Job, error) {
	var j persistence.Job
	var next, until, created, updated sql.NullInt64
	err := row.Scan(&j.ID, &j.Kind, &j.OrderID, &j.State, &j.Attempts, &j.Fence, &next, &j.LeaseOwner, &until,
		&j.LastError, &j.Payload, &created, &updated)
	j.NextAt, j.LeaseUntil, j.CreatedAt, j.UpdatedAt = fromMicros(next), fromMicros(until), fromMicros(created), fromMicros(updated)
	return j, err
}

// ClaimJobs leases up to limit (none for 0 or less, at most 1000) due jobs of kind to
// owner in one statement, and returns them earliest NextAt first (ties by id).
func (s *Store) ClaimJobs(ctx context.Context, kind, owner string, now, leaseUntil time.Time, limit int) ([]persistence.Job, error) {
	if limit = normalize.ClaimLimit(limit); limit == 0 {
		return []persistence.Job{}, nil
	}
	release, err := s.enter()
	if err != nil {
		return nil, err
	}
	defer release()
	rows, err := s.write.QueryContext(ctx, claimJobsSQL, kind, micros(normalize.Time(now)), owner,
		micros(normalize.Time(leaseUntil)), limit)
	jobs, err := collect(rows, err, scanJob)
	if err != nil {
		return nil, fmt.Errorf("claiming %s jobs: %w", kind, err)
	}
	slices.SortFunc(jobs, func(a, b persistence.Job) int {
		if c := a.NextAt.Compare(b.NextAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return jobs, nil
}

// ClaimJob leases job id to owner if it is claimable at now.
func (s *Store) ClaimJob(ctx context.Context, id, owner string, now, leaseUntil time.Time) (persistence.Job, error) {
	return s.updateJob(ctx, "claiming job", id, claimJobSQL, id, micros(normalize.Time(now)), owner,
		micros(normalize.Time(leaseUntil)))
}

// FinishJob records the outcome of a run that still holds its lease (f.Fence).
func (s *Store) FinishJob(ctx context.Context, f persistence.JobFinish) error {
	f, err := normalize.JobFinish(f, s.now())
	if err != nil {
		return err
	}
	release, err := s.enter()
	if err != nil {
		return err
	}
	defer release()
	res, err := s.write.ExecContext(ctx, finishJobSQL, f.ID, f.Fence, f.State, micros(f.NextAt), f.Error, micros(f.At))
	if err != nil {
		return fmt.Errorf("finishing job %s: %w", f.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("finishing job %s: counting rows: %w", f.ID, err)
	}
	if n == 0 {
		return s.jobMissed(ctx, "finishing job", f.ID)
	}
	return nil
}

// RetryJob makes a dead or pending job pending, due at now, with no attempts.
func (s *Store) RetryJob(ctx context.Context, id string, now time.Time) (persistence.Job, error) {
	return s.updateJob(ctx, "retrying job", id, retryJobSQL, id, micros(normalize.Time(now)))
}

// CancelJob cancels a pending or dead job with note.
func (s *Store) CancelJob(ctx context.Context, id, note string, now time.Time) (persistence.Job, error) {
	if err := normalize.JobNote(id, note); err != nil {
		return persistence.Job{}, err
	}
	return s.updateJob(ctx, "cancelling job", id, cancelJobSQL, id, micros(normalize.Time(now)), note)
}

// updateJob runs query, an UPDATE of job id returning it, and returns the job; if the
// query updated nothing, persistence.ErrNotFound or ErrConflict as jobMissed says. what
// names the operation in errors.
func (s *Store) updateJob(ctx context.Context, what, id, query string, args ...any) (persistence.Job, error) {
	release, err := s.enter()
	if err != nil {
		return persistence.Job{}, err
	}
	defer release()
	j, err := scanJob(s.write.QueryRowContext(ctx, query, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return persistence.Job{}, s.jobMissed(ctx, what, id)
	}
	if err != nil {
		return persistence.Job{}, fmt.Errorf("%s %s: %w", what, id, err)
	}
	return j, nil
}

// jobMissed explains why an update of job id changed nothing: persistence.ErrNotFound if
// there is no such job, persistence.ErrConflict if its state does not allow the update.
// Jobs are never deleted, so a job found now existed when the update ran.
func (s *Store) jobMissed(ctx context.Context, what, id string) error {
	var exists bool
	if err := s.read.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM jobs WHERE id = ?)`, id).Scan(&exists); err != nil {
		return fmt.Errorf("%s %s: %w", what, id, err)
	}
	if !exists {
		return fmt.Errorf("%s %s: %w", what, id, persistence.ErrNotFound)
	}
	return fmt.Errorf("%s %s: not in a state that allows it: %w", what, id, persistence.ErrConflict)
}

// GetJob returns one job, or persistence.ErrNotFound.
func (s *Store) GetJob(ctx context.Context, id string) (persistence.Job, error) {
	release, err := s.enter()
	if err != nil {
		return persistence.Job{}, err
	}
	defer release()
	j, err := scanJob(s.read.QueryRowContext(ctx, getJobSQL, id))
	if errors.Is(err, sql.ErrNoRows) {
		return persistence.Job{}, fmt.Errorf("reading job %s: %w", id, persistence.ErrNotFound)
	}
	if err != nil {
		return persistence.Job{}, fmt.Errorf("reading job %s: %w", id, err)
	}
	return j, nil
}

// ListJobs returns a page of the jobs of q.Kind, newest by creation first (ties broken by
// id, descending), with q.Limit clamped like ListOrders. A cursor not made by this
// package yields persistence.ErrBadCursor.
func (s *Store) ListJobs(ctx context.Context, q persistence.JobQuery) (persistence.JobPage, error) {
	query, args, limit, err := keyset.SelectJobs(jobColumns, q, keyset.SQLite)
	if err != nil {
		return persistence.JobPage{}, err
	}
	release, err := s.enter()
	if err != nil {
		return persistence.JobPage{}, err
	}
	defer release()
	rows, err := s.read.QueryContext(ctx, query, args...)
	jobs, err := collect(rows, err, scanJob)
	if err != nil {
		return persistence.JobPage{}, fmt.Errorf("listing %s jobs: %w", q.Kind, err)
	}
	return keyset.PageJobs(jobs, limit), nil
}

// CountJobs counts the pending, running and dead jobs by kind and state, ordered by kind
// and state.
func (s *Store) CountJobs(ctx context.Context) ([]persistence.JobCount, error) {
	release, err := s.enter()
	if err != nil {
		return nil, err
	}
	defer release()
	rows, err := s.read.QueryContext(ctx, countJobsSQL)
	counts, err := collect(rows, err, func(row scanner) (persistence.JobCount, error) {
		var c persistence.JobCount
		err := row.Scan(&c.Kind, &c.State, &c.N)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("counting jobs: %w", err)
	}
	return counts, nil
}
