// Package keyset encodes the opaque listing cursors, clamps page sizes and cuts pages, so
// that every store (both ordermesh stores and the bench baseline) paginates identically.
package keyset

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/ordermesh/ordermesh/persistence"
)

// cursorV1 prefixes every cursor so the format can change without misreading old ones.
const cursorV1 = 1

// Page size bounds for ListOrders.
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
	if len(orders) <= limit {
		return persistence.OrderPage{Orders: orders}
	}
	orders = orders[:limit]
	last := orders[limit-1]
	return persistence.OrderPage{Orders: orders, NextCursor: Encode(Cursor{CreatedAt: last.CreatedAt, ID: last.ID})}
}
