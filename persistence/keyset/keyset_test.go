package keyset

import (
	"errors"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/persistence"
)

func TestLimit(t *testing.T) {
	tests := []struct{ in, want int }{{-5, DefaultLimit}, {0, DefaultLimit}, {1, 1}, {999, 999}, {1000, 1000}, {1001, MaxLimit}}
	for _, tt := range tests {
		if got := Limit(tt.in); got != tt.want {
			t.Errorf("Limit(%d) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func FuzzCursor(f *testing.F) {
	f.Add(int64(0), "o1")
	f.Add(time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC).UnixMicro(), "order/ü")
	f.Add(int64(-1), "x")
	f.Fuzz(func(t *testing.T, micros int64, id string) {
		if id == "" {
			return
		}
		c := Cursor{CreatedAt: time.UnixMicro(micros).UTC(), ID: id}
		got, err := Decode(Encode(c))
		if err != nil {
			t.Fatalf("Decode(Encode(%v)): %v", c, err)
		}
		if !got.CreatedAt.Equal(c.CreatedAt) || got.ID != c.ID {
			t.Fatalf("round trip %v -> %v", c, got)
		}
		// Arbitrary input either decodes or is a bad cursor; it never panics.
		if _, err := Decode(id); err != nil && !errors.Is(err, persistence.ErrBadCursor) {
			t.Fatalf("Decode(%q): %v, want ErrBadCursor", id, err)
		}
	})
}
