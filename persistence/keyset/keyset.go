// Package keyset encodes the opaque listing cursors, clamps page sizes and cuts pages, so
// that every store (both ordermesh stores and the bench baseline) paginates identically.
package keyset

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ordermesh/ordermesh/persistence"
)

// cursorV1 prefixes every cursor so the format can change without misreading old ones.
const cursorV1 = 1

// Page size bounds for ListOrders and ListJobs.
const (
	DefaultLimit = 50
	MaxLimit     = 1000
)

// Cursor is a position in the (created_at DESC, id DESC) order: the last row of a page.
type Cursor struct {
	CreatedAt time.Time // UTC, microsecond precision
	ID        string
}

// Encode returns the opaque form of c: base64url of version, unix microseconds, id.
func Encode(c Cursor) string {
	buf := make([]byte, 0, 1+8+len(c.ID))
	buf = append(buf, cursorV1)
	buf = binary.BigEndian.AppendUint64(buf, uint64(c.CreatedAt.UnixMicro()))
	buf = append(buf, c.ID...)
	return base64.RawURLEncoding.EncodeToString(buf)
}

// Decode parses a cursor made by Encode. Any malformed input yields an error wrapping
// persistence.ErrBadCursor.
func Decode(s string) (Cursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Cursor{}, fmt.Errorf("decoding cursor: %w", persistence.ErrBadCursor)
	}
	if len(raw) < 1+8+1 || raw[0] != cursorV1 {
		return Cursor{}, fmt.Errorf("decoding cursor: %w", persistence.ErrBadCursor)
	}
	micros := int64(binary.BigEndian.Uint64(raw[1:9]))
	return Cursor{CreatedAt: time.UnixMicro(micros).UTC(), ID: string(raw[9:])}, nil
}

// Limit clamps a requested page size: 0 or less means DefaultLimit, more than MaxLimit
// means MaxLimit.
func Limit(n int) int {
	switch {
	case n <= 0:
		return DefaultLimit
	case n > MaxLimit:
		return MaxLimit
	default:
		return n
	}
}

// Page turns the rows of a query that asked for limit+1 rows into a page: at most limit
// orders, and a cursor to the next page if the extra row showed there is one.
func Page(orders []persistence.Order, limit int) persistence.OrderPage {
	orders, next := cut(orders, limit, func(o persistence.Order) Cursor { return Cursor{CreatedAt: o.CreatedAt, ID: o.ID} })
	return persistence.OrderPage{Orders: orders, NextCursor: next}
}

// PageJobs is Page for a listing of jobs (SelectJobs).
func PageJobs(jobs []persistence.Job, limit int) persistence.JobPage {
	jobs, next := cut(jobs, limit, func(j persistence.Job) Cursor { return Cursor{CreatedAt: j.CreatedAt, ID: j.ID} })
	return persistence.JobPage{Jobs: jobs, NextCursor: next}
}

// cut keeps at most limit of rows and returns the cursor of the last one kept if rows had
// more, "" otherwise.
func cut[T any](rows []T, limit int, key func(T) Cursor) ([]T, string) {
	if len(rows) <= limit {
		return rows, ""
	}
	rows = rows[:limit]
	return rows, Encode(key(rows[limit-1]))
}

// Dialect is what differs between the SQL of the stores that list orders.
type Dialect struct {
	Placeholder func(n int) string  // the n-th (1-based) parameter: "$n" or "?"
	Time        func(time.Time) any // a time as the created_at column holds it
}

// Postgres numbers its parameters and stores timestamptz.
var Postgres = Dialect{
	Placeholder: func(n int) string { return "$" + strconv.Itoa(n) },
	Time:        func(t time.Time) any { return t },
}

// SQLite uses positional parameters and stores times as Unix microseconds.
var SQLite = Dialect{
	Placeholder: func(int) string { return "?" },
	Time:        func(t time.Time) any { return t.UnixMicro() },
}

// Select builds the one listing query every store runs: columns of table for q's customer,
// status and cursor, newest by creation first (ties by id, descending), limit+1 rows so
// that Page can tell whether another page follows. A cursor not made by Encode yields an
// error wrapping persistence.ErrBadCursor.
func Select(table, columns string, q persistence.OrderQuery, d Dialect) (query string, args []any, limit int, err error) {
	return selectPage("orders", table, columns, []filter{{"customer", q.Customer}, {"status", q.Status}}, q.Cursor, q.Limit, d)
}

// SelectJobs is Select for the jobs table: columns of the jobs of q's kind (required, or
// the error wraps persistence.ErrInvalid), state and order id, in the order and pages of
// Select. Each store's index jobs (kind, created_at DESC, id DESC) serves it.
func SelectJobs(columns string, q persistence.JobQuery, d Dialect) (query string, args []any, limit int, err error) {
	if q.Kind == "" {
		return "", nil, 0, fmt.Errorf("listing jobs: empty kind: %w", persistence.ErrInvalid)
	}
	return selectPage("jobs", "jobs", columns, []filter{{"kind", q.Kind}, {"state", q.State}, {"order_id", q.OrderID}},
		q.Cursor, q.Limit, d)
}

// filter is one equality condition of a listing; an empty value selects every row.
type filter struct{ column, value string }

// selectPage builds a listing query of table (what names its rows in errors).
func selectPage(what, table, columns string, filters []filter, cursor string, n int, d Dialect) (query string, args []any, limit int, err error) {
	limit = Limit(n)
	var where []string
	arg := func(v any) string {
		args = append(args, v)
		return d.Placeholder(len(args))
	}
	for _, f := range filters {
		if f.value != "" {
			where = append(where, f.column+" = "+arg(f.value))
		}
	}
	if cursor != "" {
		c, err := Decode(cursor)
		if err != nil {
			return "", nil, 0, fmt.Errorf("listing %s: %w", what, err)
		}
		where = append(where, "(created_at, id) < ("+arg(d.Time(c.CreatedAt))+", "+arg(c.ID)+")")
	}
	query = `SELECT ` + columns + ` FROM ` + table
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query += ` ORDER BY created_at DESC, id DESC LIMIT ` + arg(limit+1)
	return query, args, limit, nil
}
