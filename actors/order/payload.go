package order

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Payload is the JSON payload column of a stored event: what the event carries beyond the
// columns (type, version, from, to, at, key, node) of its row. The store, the edge (event
// histories) and the baseline all read and write this one type.
type Payload struct {
	By              string    `json:"by"`
	Fingerprint     uint64    `json:"fingerprint,string"`
	Customer        string    `json:"customer,omitempty"`
	Lines           []Line    `json:"items,omitempty"`
	Currency        string    `json:"currency,omitempty"`
	Total           int64     `json:"total,omitempty"`
	PaymentDeadline time.Time `json:"payment_deadline,omitzero"`
	ExpiresAt       time.Time `json:"expires_at,omitzero"`
	Reason          string    `json:"reason,omitempty"`
}

// PayloadOf returns the payload of event e.
func PayloadOf(e Event) Payload {
	return Payload{
		By: e.By, Fingerprint: e.Fingerprint, Customer: e.Customer, Lines: e.Lines, Currency: e.Currency,
		Total: e.Total, PaymentDeadline: e.PaymentDeadline, ExpiresAt: e.ExpiresAt, Reason: e.Reason,
	}
}

// ExpiryKey is the idempotency key of the ExpirePayment that ends the payment window
// closing at deadline. Every timer that fires for one deadline uses it, so the expiry
// happens once however many fire.
func ExpiryKey(deadline time.Time) string {
	return "expire:" + strconv.FormatInt(deadline.UnixNano(), 10)
}

// KeyResultOf rebuilds what an idempotency key did from the stored event that recorded
// it: its type, version, resulting status, time and payload. Hosts use it to answer keys
// the order itself no longer remembers (Command.Seen).
func KeyResultOf(key string, typ EventType, version uint64, to Status, at time.Time, payload []byte) (KeyResult, error) {
	t, ok := TransitionForEvent(typ)
	if !ok {
		return KeyResult{}, fmt.Errorf("event type %q is not in the table", typ)
	}
	var p Payload
	if err := json.Unmarshal(payload, &p); err != nil {
		return KeyResult{}, fmt.Errorf("decoding payload of event %d: %w", version, err)
	}
	deadline := p.PaymentDeadline
	if !deadline.IsZero() {
		deadline = deadline.UTC()
	}
	return KeyResult{
		Key: key, Command: t.Command, Fingerprint: p.Fingerprint, Version: version,
		Status: to, At: at, Deadline: deadline,
	}, nil
}
