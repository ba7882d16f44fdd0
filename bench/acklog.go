package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"
)

// Ack is one command the harness sent and what came back: acknowledged (2xx) or failed.
// The checker holds every acknowledged one against the store's event history.
type Ack struct {
	Op       string    `json:"op"`
	OrderID  string    `json:"order_id,omitempty"`
	Key      string    `json:"key"`
	HTTP     int       `json:"http"`           // 0 when no response arrived
	Code     string    `json:"code,omitempty"` // envelope code, or "transport"; empty on success
	Message  string    `json:"message,omitempty"`
	Version  int64     `json:"version,omitempty"` // of the order in the response
	State    string    `json:"state,omitempty"`   // status of the order in the response
	Replayed bool      `json:"replayed,omitempty"`
	Race     string    `json:"race,omitempty"` // id of the race it took part in (hot)
	Target   string    `json:"target,omitempty"`
	Intended time.Time `json:"intended"`
	Done     time.Time `json:"done"`
}

// OK reports whether the command was acknowledged.
func (a Ack) OK() bool { return a.HTTP >= 200 && a.HTTP < 300 }

// AckLog collects acks from concurrent sessions.
type AckLog struct {
	mu   sync.Mutex
	acks []Ack
}

// Add appends one ack.
func (l *AckLog) Add(a Ack) {
	l.mu.Lock()
	l.acks = append(l.acks, a)
	l.mu.Unlock()
}

// Snapshot returns a copy of everything logged so far.
func (l *AckLog) Snapshot() []Ack {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Ack(nil), l.acks...)
}

// WriteJSONL writes acks one JSON object per line, the format of acks.jsonl.
func WriteJSONL(w io.Writer, acks []Ack) error {
	enc := json.NewEncoder(w)
	for _, a := range acks {
		if err := enc.Encode(a); err != nil {
			return fmt.Errorf("writing ack log: %w", err)
		}
	}
	return nil
}

// OrdersTouched returns the ids of the orders that acks refer to, in first-seen order.
func OrdersTouched(acks []Ack) []string {
	seen := map[string]bool{}
	var ids []string
	for _, a := range acks {
		if a.OrderID != "" && !seen[a.OrderID] {
			seen[a.OrderID] = true
			ids = append(ids, a.OrderID)
		}
	}
	return ids
}

// ReadJSONL reads an ack log written by WriteJSONL.
func ReadJSONL(r io.Reader) ([]Ack, error) {
	var out []Ack
	dec := json.NewDecoder(r)
	for dec.More() {
		var a Ack
		if err := dec.Decode(&a); err != nil {
			return nil, fmt.Errorf("reading ack log: %w", err)
		}
		out = append(out, a)
	}
	return out, nil
}

// RacesFromAcks rebuilds the races of a logged run from the acks' race ids (the kinds are
// not logged, so every race is of kind "race").
func RacesFromAcks(acks []Ack) []Race {
	byID := map[string]*Race{}
	var ids []string
	for _, a := range acks {
		if a.Race == "" {
			continue
		}
		r := byID[a.Race]
		if r == nil {
			r = &Race{ID: a.Race, Kind: "race", OrderID: a.OrderID}
			byID[a.Race] = r
			ids = append(ids, a.Race)
		}
		if !slices.Contains(r.Keys, a.Key) {
			r.Keys = append(r.Keys, a.Key)
		}
	}
	out := make([]Race, 0, len(ids))
	for _, id := range ids {
		out = append(out, *byID[id])
	}
	return out
}
