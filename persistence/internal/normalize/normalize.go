// Package normalize validates writes and brings times to the form both stores keep:
// UTC, truncated to microseconds, so that either store returns identical values. Every
// error it returns wraps persistence.ErrInvalid.
package normalize

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ordermesh/ordermesh/persistence"
)

// Time returns t in UTC truncated to microseconds; the zero time stays zero.
func Time(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

// Write checks that w is a well-formed transition and returns a copy with normalized
// times; zero CreatedAt/UpdatedAt/At become now. The checks guarantee that a write whose
// version condition holds cannot collide with an existing event row:
// ExpectedVersion >= 0, Order.Version > ExpectedVersion (or equal to it, above 0, for a
// write without events that rewrites an order's snapshot in place), and every event
// belongs to the order with a version in (ExpectedVersion, Order.Version]. An empty event
// OrderID is filled in. Jobs are checked as newJobs says; every JobEnd names a job and
// ends it as done or cancelled.
func Write(w persistence.Write, now time.Time) (persistence.Write, error) {
	w, err := write(w, now)
	if err != nil {
		return w, fmt.Errorf("%w: %w", persistence.ErrInvalid, err)
	}
	return w, nil
}

func write(w persistence.Write, now time.Time) (persistence.Write, error) {
	if w.Order.ID == "" {
		return w, fmt.Errorf("validating write: empty order id")
	}
	o := w.Order
	if err := text("order", o.ID, field{"id", o.ID}, field{"customer", o.Customer}, field{"status", o.Status}); err != nil {
		return w, err
	}
	if w.ExpectedVersion < 0 {
		return w, fmt.Errorf("validating write of order %s: negative expected version %d", w.Order.ID, w.ExpectedVersion)
	}
	inPlace := w.Order.Version == w.ExpectedVersion && w.ExpectedVersion > 0 && len(w.Events) == 0
	if w.Order.Version <= w.ExpectedVersion && !inPlace {
		return w, fmt.Errorf("validating write of order %s: new version %d not above expected %d",
			w.Order.ID, w.Order.Version, w.ExpectedVersion)
	}
	now = Time(now)
	w.Order.PaymentDeadline = Time(w.Order.PaymentDeadline)
	w.Order.CreatedAt = orNow(w.Order.CreatedAt, now)
	w.Order.UpdatedAt = orNow(w.Order.UpdatedAt, now)
	if len(w.Events) > 0 {
		events := make([]persistence.Event, len(w.Events))
		seen := make(map[int64]bool, len(w.Events))
		for i, e := range w.Events {
			if e.OrderID == "" {
				e.OrderID = w.Order.ID
			}
			if e.OrderID != w.Order.ID {
				return w, fmt.Errorf("validating write of order %s: event for order %s", w.Order.ID, e.OrderID)
			}
			if e.Version <= w.ExpectedVersion || e.Version > w.Order.Version || seen[e.Version] {
				return w, fmt.Errorf("validating write of order %s: event version %d outside (%d, %d] or repeated",
					w.Order.ID, e.Version, w.ExpectedVersion, w.Order.Version)
			}
			seen[e.Version] = true
			if err := text("order", o.ID, field{"event type", e.Type}, field{"event from", e.From}, field{"event to", e.To},
				field{"idempotency key", e.IdempotencyKey}, field{"event node", e.Node}); err != nil {
				return w, err
			}
			e.At = orNow(e.At, now)
			events[i] = e
		}
		w.Events = events
	}
	if len(w.Jobs) > 0 {
		jobs, err := newJobs(o.ID, w.Jobs, now)
		if err != nil {
			return w, err
		}
		w.Jobs = jobs
	}
	for _, e := range w.EndJobs {
		if e.ID == "" || (e.State != persistence.JobDone && e.State != persistence.JobCancelled) {
			return w, fmt.Errorf("validating write of order %s: ending job %+q as %+q, want a job id and done or cancelled",
				o.ID, e.ID, e.State)
		}
		if err := text("order", o.ID, field{"ended job id", e.ID}, field{"job note", e.Note}); err != nil {
			return w, err
		}
	}
	return w, nil
}

// newJobs checks the jobs a write of order orderID inserts and returns a copy with
// normalized times. A job needs an id and a kind and belongs to the order (an empty
// OrderID is filled in); it is new, so its State is pending (or empty, which means
// pending). Zero NextAt (due at once), CreatedAt and UpdatedAt become now. A new job is
// unclaimed: the stores keep none of its Attempts, Fence, lease or LastError.
func newJobs(orderID string, in []persistence.Job, now time.Time) ([]persistence.Job, error) {
	jobs := make([]persistence.Job, len(in))
	for i, j := range in {
		if j.OrderID == "" {
			j.OrderID = orderID
		}
		if j.ID == "" || j.Kind == "" || j.OrderID != orderID {
			return nil, fmt.Errorf("validating write of order %s: job %+q of kind %+q for order %+q, want an id and a kind, for the order",
				orderID, j.ID, j.Kind, j.OrderID)
		}
		if j.State == "" {
			j.State = persistence.JobPending
		}
		if j.State != persistence.JobPending {
			return nil, fmt.Errorf("validating write of order %s: new job %+q in state %+q, want pending", orderID, j.ID, j.State)
		}
		if err := text("order", orderID, field{"job id", j.ID}, field{"job kind", j.Kind}); err != nil {
			return nil, err
		}
		j.NextAt = orNow(j.NextAt, now)
		j.CreatedAt = orNow(j.CreatedAt, now)
		j.UpdatedAt = orNow(j.UpdatedAt, now)
		jobs[i] = j
	}
	return jobs, nil
}

// JobFinish checks the outcome of a run and returns a copy with normalized times: a zero
// At becomes now, and a pending outcome's zero NextAt becomes At (due at once).
func JobFinish(f persistence.JobFinish, now time.Time) (persistence.JobFinish, error) {
	switch f.State {
	case persistence.JobDone, persistence.JobCancelled, persistence.JobDead, persistence.JobPending:
	default:
		return f, fmt.Errorf("%w: validating outcome of job %+q: state %+q", persistence.ErrInvalid, f.ID, f.State)
	}
	if err := JobNote(f.ID, f.Error); err != nil {
		return f, err
	}
	f.At = orNow(f.At, Time(now))
	if f.State == persistence.JobPending {
		f.NextAt = orNow(f.NextAt, f.At)
	} else {
		f.NextAt = time.Time{}
	}
	return f, nil
}

// maxClaim caps the jobs one ClaimJobs call leases.
const maxClaim = 1000

// ClaimLimit returns how many jobs a ClaimJobs call asking for n leases: none for 0 or
// less (a pool with no idle worker must get nothing), at most 1000.
func ClaimLimit(n int) int { return min(max(n, 0), maxClaim) }

// JobNote checks the error or note kept as a job's LastError.
func JobNote(id, note string) error {
	if err := text("job", id, field{"note", note}); err != nil {
		return fmt.Errorf("%w: %w", persistence.ErrInvalid, err)
	}
	return nil
}

// User checks u and returns a copy with a normalized CreatedAt (now if zero).
func User(u persistence.User, now time.Time) (persistence.User, error) {
	if u.Username == "" {
		return u, fmt.Errorf("%w: validating user: empty username", persistence.ErrInvalid)
	}
	if err := text("user", u.Username, field{"username", u.Username}, field{"password hash", u.PasswordHash}, field{"role", u.Role}); err != nil {
		return u, fmt.Errorf("%w: %w", persistence.ErrInvalid, err)
	}
	u.CreatedAt = orNow(u.CreatedAt, Time(now))
	return u, nil
}

func orNow(t, now time.Time) time.Time {
	if t.IsZero() {
		return now
	}
	return Time(t)
}

// Secret checks s and returns a copy with a normalized CreatedAt (now if zero).
func Secret(s persistence.Secret, now time.Time) (persistence.Secret, error) {
	if s.Kind == "" || s.ID == "" {
		return s, fmt.Errorf("validating secret: empty kind or id: %w", persistence.ErrInvalid)
	}
	if err := text("secret", s.Kind+"/"+s.ID, field{"kind", s.Kind}, field{"id", s.ID}); err != nil {
		return s, fmt.Errorf("%w: %w", persistence.ErrInvalid, err)
	}
	if len(s.Value) == 0 {
		return s, fmt.Errorf("validating secret %s/%s: empty value: %w", s.Kind, s.ID, persistence.ErrInvalid)
	}
	s.CreatedAt = orNow(s.CreatedAt, Time(now))
	return s, nil
}

// field is one string column of a row, by name.
type field struct{ name, value string }

// text checks the strings of one row: valid UTF-8 without NUL, which both databases keep
// byte for byte (PostgreSQL refuses anything else; SQLite would store it, so refusing it
// here makes both stores behave alike). kind and id name the row in the error, made
// printable, since the broken bytes may be in the id itself.
func text(kind, id string, fields ...field) error {
	for _, f := range fields {
		if !utf8.ValidString(f.value) || strings.IndexByte(f.value, 0) >= 0 {
			return fmt.Errorf("validating %s %+q: %s is not valid UTF-8 without NUL", kind, id, f.name)
		}
	}
	return nil
}

// RefreshToken checks t and returns a copy with normalized times. A token needs a 32-byte
// hash, a family, a user, and an expiry after its issue time.
func RefreshToken(t persistence.RefreshToken, now time.Time) (persistence.RefreshToken, error) {
	if len(t.Hash) != 32 {
		return t, fmt.Errorf("%w: validating refresh token: hash of %d bytes, want 32", persistence.ErrInvalid, len(t.Hash))
	}
	if t.Family == "" || t.Username == "" {
		return t, fmt.Errorf("%w: validating refresh token: empty family or username", persistence.ErrInvalid)
	}
	if err := text("refresh token", t.Family, field{"family", t.Family}, field{"username", t.Username}); err != nil {
		return t, fmt.Errorf("%w: %w", persistence.ErrInvalid, err)
	}
	t.IssuedAt = orNow(t.IssuedAt, Time(now))
	t.ExpiresAt = Time(t.ExpiresAt)
	if !t.ExpiresAt.After(t.IssuedAt) {
		return t, fmt.Errorf("%w: validating refresh token: expires at %v, not after its issue at %v",
			persistence.ErrInvalid, t.ExpiresAt, t.IssuedAt)
	}
	return t, nil
}

// Stock checks that w is a well-formed conditional write of one sku and returns a copy
// with normalized times; a zero UpdatedAt (row or holding) or At becomes now. Like Write
// it guarantees that a write whose version condition holds cannot collide with an
// existing event row: ExpectedVersion >= 0, Stock.Version > ExpectedVersion, and every
// event belongs to the sku with a distinct version in (ExpectedVersion, Stock.Version].
// Every holding belongs to the sku, names an order, appears once, and has a version in
// (ExpectedVersion, Stock.Version]: a write upserts only the holdings its events moved.
// Empty SKUs of holdings and events are filled in.
func Stock(w persistence.StockWrite, now time.Time) (persistence.StockWrite, error) {
	w, err := stock(w, now)
	if err != nil {
		return w, fmt.Errorf("%w: %w", persistence.ErrInvalid, err)
	}
	return w, nil
}

func stock(w persistence.StockWrite, now time.Time) (persistence.StockWrite, error) {
	sku := w.Stock.SKU
	if sku == "" {
		return w, fmt.Errorf("validating stock write: empty sku")
	}
	if err := text("sku", sku, field{"sku", sku}); err != nil {
		return w, err
	}
	if w.ExpectedVersion < 0 {
		return w, fmt.Errorf("validating write of sku %s: negative expected version %d", sku, w.ExpectedVersion)
	}
	if w.Stock.Version <= w.ExpectedVersion {
		return w, fmt.Errorf("validating write of sku %s: new version %d not above expected %d",
			sku, w.Stock.Version, w.ExpectedVersion)
	}
	inWrite := func(v int64) bool { return v > w.ExpectedVersion && v <= w.Stock.Version }
	now = Time(now)
	w.Stock.UpdatedAt = orNow(w.Stock.UpdatedAt, now)
	if len(w.Holdings) > 0 {
		holdings := make([]persistence.Holding, len(w.Holdings))
		seen := make(map[string]bool, len(w.Holdings))
		for i, h := range w.Holdings {
			if h.SKU == "" {
				h.SKU = sku
			}
			if h.SKU != sku {
				return w, fmt.Errorf("validating write of sku %s: holding of sku %+q", sku, h.SKU)
			}
			if h.OrderID == "" || seen[h.OrderID] {
				return w, fmt.Errorf("validating write of sku %s: holding with an empty or repeated order id %+q", sku, h.OrderID)
			}
			seen[h.OrderID] = true
			if !inWrite(h.Version) {
				return w, fmt.Errorf("validating write of sku %s: holding of order %+q at version %d outside (%d, %d]",
					sku, h.OrderID, h.Version, w.ExpectedVersion, w.Stock.Version)
			}
			if err := text("sku", sku, field{"holding order id", h.OrderID}, field{"holding state", h.State}); err != nil {
				return w, err
			}
			h.UpdatedAt = orNow(h.UpdatedAt, now)
			holdings[i] = h
		}
		w.Holdings = holdings
	}
	if len(w.Events) > 0 {
		events := make([]persistence.StockEvent, len(w.Events))
		seen := make(map[int64]bool, len(w.Events))
		for i, e := range w.Events {
			if e.SKU == "" {
				e.SKU = sku
			}
			if e.SKU != sku {
				return w, fmt.Errorf("validating write of sku %s: event of sku %+q", sku, e.SKU)
			}
			if !inWrite(e.Version) || seen[e.Version] {
				return w, fmt.Errorf("validating write of sku %s: event version %d outside (%d, %d] or repeated",
					sku, e.Version, w.ExpectedVersion, w.Stock.Version)
			}
			seen[e.Version] = true
			if err := text("sku", sku, field{"event type", e.Type}, field{"event order id", e.OrderID},
				field{"event from", e.From}, field{"event to", e.To}, field{"idempotency key", e.IdempotencyKey},
				field{"event node", e.Node}); err != nil {
				return w, err
			}
			e.At = orNow(e.At, now)
			events[i] = e
		}
		w.Events = events
	}
	return w, nil
}
