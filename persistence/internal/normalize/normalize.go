// Package normalize validates writes and brings times to the form both stores keep:
// UTC, truncated to microseconds, so that either store returns identical values.
package normalize

import (
	"errors"
	"fmt"
	"time"

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
// ExpectedVersion >= 0, Order.Version > ExpectedVersion, and every event belongs to the
// order with a version in (ExpectedVersion, Order.Version]. An empty event OrderID is
// filled in.
func Write(w persistence.Write, now time.Time) (persistence.Write, error) {
	if w.Order.ID == "" {
		return w, errors.New("validating write: empty order id")
	}
	if w.ExpectedVersion < 0 {
		return w, fmt.Errorf("validating write of order %s: negative expected version %d", w.Order.ID, w.ExpectedVersion)
	}
	if w.Order.Version <= w.ExpectedVersion {
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
			e.At = orNow(e.At, now)
			events[i] = e
		}
		w.Events = events
	}
	return w, nil
}

// User checks u and returns a copy with a normalized CreatedAt (now if zero).
func User(u persistence.User, now time.Time) (persistence.User, error) {
	if u.Username == "" {
		return u, errors.New("validating user: empty username")
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
		return s, errors.New("validating secret: empty kind or id")
	}
	if len(s.Value) == 0 {
		return s, fmt.Errorf("validating secret %s/%s: empty value", s.Kind, s.ID)
	}
	s.CreatedAt = orNow(s.CreatedAt, Time(now))
	return s, nil
}
