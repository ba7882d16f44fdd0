package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/ordermesh/ordermesh/persistence"
	"github.com/ordermesh/ordermesh/persistence/internal/normalize"
	"github.com/ordermesh/ordermesh/persistence/keyset"
)

var _ persistence.Jobs = (*Store)(nil)

const (
	jobColumns = `id, kind, order_id, state, attempts, fence, next_at, lease_owner, lease_until, last_error, payload,
		created_at, updated_at`
	// claimableSQL is the condition of a job that may be claimed at $2.
	claimableSQL = `((state = 'pending' AND next_at <= $2) OR (state = 'running' AND lease_until <= $2))`
	// claimSetSQL leases a job to $3 until $4, at $2.
	claimSetSQL = `SET state = 'running', lease_owner = $3, lease_until = $4, attempts = attempts + 1, fence = fence + 1,
		updated_at = $2`
	// claimJobsSQL claims up to $5 due jobs of kind $1 in one statement and returns them
	// earliest NextAt first (ties by id). SKIP LOCKED lets concurrent claimers pass over
	// the rows another one is claiming instead of waiting for them; a row that changed
	// since the statement's snapshot is locked in its latest version and checked again,
	// so no two claimers ever take the same job.
	claimJobsSQL = `WITH claimed AS (
		UPDATE jobs ` + claimSetSQL + `
		FROM (SELECT id FROM jobs WHERE kind = $1 AND ` + claimableSQL + `
			ORDER BY next_at LIMIT $5 FOR UPDATE SKIP LOCKED) AS due
		WHERE jobs.id = due.id
		RETURNING jobs.*
	)
	SELECT ` + jobColumns + ` FROM claimed ORDER BY next_at, id`
	claimJobSQL  = `UPDATE jobs ` + claimSetSQL + ` WHERE id = $1 AND ` + claimableSQL + ` RETURNING ` + jobColumns
	finishJobSQL = `UPDATE jobs SET state = $3, next_at = COALESCE($4, next_at), last_error = $5, updated_at = $6
		WHERE id = $1 AND state = 'running' AND fence = $2`
	retryJobSQL = `UPDATE jobs SET state = 'pending', attempts = 0, next_at = $2, updated_at = $2
		WHERE id = $1 AND state IN ('pending', 'dead') RETURNING ` + jobColumns
	cancelJobSQL = `UPDATE jobs SET state = 'cancelled', last_error = $3, updated_at = $2
		WHERE id = $1 AND state IN ('pending', 'dead') RETURNING ` + jobColumns
	getJobSQL    = `SELECT ` + jobColumns + ` FROM jobs WHERE id = $1`
	countJobsSQL = `SELECT kind, state, count(*) FROM jobs WHERE state IN ('pending', 'running', 'dead')
		GROUP BY kind, state ORDER BY kind, state`
)

func scanJob(row pgx.Row) (persistence.Job, error) {
	var j persistence.Job
	var next, until, created, updated pgtype.Timestamptz
	err := row.Scan(&j.ID, &j.Kind, &j.OrderID, &j.State, &j.Attempts, &j.Fence, &next, &j.LeaseOwner, &until,
		&j.LastError, &j.Payload, &created, &updated)
	j.NextAt, j.LeaseUntil, j.CreatedAt, j.UpdatedAt = utc(next), utc(until), utc(created), utc(updated)
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
	now = normalize.Time(now)
	rows, err := s.pool.Query(ctx, claimJobsSQL, kind, now, owner, normalize.Time(leaseUntil), limit)
	jobs, err := collect(rows, err, scanJob)
	if err != nil {
		return nil, fmt.Errorf("claiming %s jobs: %w", kind, classify(err))
	}
	return jobs, nil
}

// ClaimJob leases job id to owner if it is claimable at now.
func (s *Store) ClaimJob(ctx context.Context, id, owner string, now, leaseUntil time.Time) (persistence.Job, error) {
	return s.updateJob(ctx, "claiming job", id, claimJobSQL, id, normalize.Time(now), owner, normalize.Time(leaseUntil))
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
	tag, err := s.pool.Exec(ctx, finishJobSQL, f.ID, f.Fence, f.State, timestamptz(f.NextAt), f.Error, f.At)
	if err != nil {
		return fmt.Errorf("finishing job %s: %w", f.ID, classify(err))
	}
	if tag.RowsAffected() == 0 {
		return s.jobMissed(ctx, "finishing job", f.ID)
	}
	return nil
}

// RetryJob makes a dead or pending job pending, due at now, with no attempts.
func (s *Store) RetryJob(ctx context.Context, id string, now time.Time) (persistence.Job, error) {
	return s.updateJob(ctx, "retrying job", id, retryJobSQL, id, normalize.Time(now))
}

// CancelJob cancels a pending or dead job with note.
func (s *Store) CancelJob(ctx context.Context, id, note string, now time.Time) (persistence.Job, error) {
	if err := normalize.JobNote(id, note); err != nil {
		return persistence.Job{}, err
	}
	return s.updateJob(ctx, "cancelling job", id, cancelJobSQL, id, normalize.Time(now), note)
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
	j, err := scanJob(s.pool.QueryRow(ctx, query, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		return persistence.Job{}, s.jobMissed(ctx, what, id)
	}
	if err != nil {
		return persistence.Job{}, fmt.Errorf("%s %s: %w", what, id, classify(err))
	}
	return j, nil
}

// jobMissed explains why an update of job id changed nothing: persistence.ErrNotFound if
// there is no such job, persistence.ErrConflict if its state does not allow the update.
// Jobs are never deleted, so a job found now existed when the update ran.
func (s *Store) jobMissed(ctx context.Context, what, id string) error {
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM jobs WHERE id = $1)`, id).Scan(&exists); err != nil {
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
	j, err := scanJob(s.pool.QueryRow(ctx, getJobSQL, id))
	if errors.Is(err, pgx.ErrNoRows) {
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
	query, args, limit, err := keyset.SelectJobs(jobColumns, q, keyset.Postgres)
	if err != nil {
		return persistence.JobPage{}, err
	}
	release, err := s.enter()
	if err != nil {
		return persistence.JobPage{}, err
	}
	defer release()
	rows, err := s.pool.Query(ctx, query, args...)
	jobs, err := collect(rows, err, scanJob)
	if err != nil {
		return persistence.JobPage{}, fmt.Errorf("listing %s jobs: %w", q.Kind, classify(err))
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
	rows, err := s.pool.Query(ctx, countJobsSQL)
	counts, err := collect(rows, err, func(row pgx.Row) (persistence.JobCount, error) {
		var c persistence.JobCount
		err := row.Scan(&c.Kind, &c.State, &c.N)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("counting jobs: %w", err)
	}
	return counts, nil
}
