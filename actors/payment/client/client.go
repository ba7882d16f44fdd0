// Package client is the HTTP adapter of the payments port: it creates payment intents at a
// provider that speaks Stripe's shape of API (POST /v1/payment_intents with an
// Idempotency-Key), such as the simulated provider in package actors/payment/sim. Guarded
// wraps any payment.Provider with a timeout and a circuit breaker (sony/gobreaker), so a
// slow or failing provider costs a caller at most the timeout, and nothing at all while
// the breaker is open.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/ordermesh/ordermesh/actors/payment"
)

// Config says where the provider is and how to reach it.
type Config struct {
	// BaseURL is the provider's API root, e.g. "http://127.0.0.1:7070" (no trailing path).
	BaseURL string
	// APIKey is sent as "Authorization: Bearer <APIKey>" when not empty.
	APIKey string
	// HTTP is the client the calls go through (default http.DefaultClient). Bound the calls
	// with a context (NewGuard does) rather than with its Timeout.
	HTTP *http.Client
}

// IntentRequest is the body of POST /v1/payment_intents.
type IntentRequest struct {
	Amount   int64             `json:"amount"`
	Currency string            `json:"currency"`
	Metadata map[string]string `json:"metadata"`
}

// MetadataCustomer is the metadata key of the paying customer.
const MetadataCustomer = "customer"

// IntentsPath is the provider's path for payment intents.
const IntentsPath = "/v1/payment_intents"

// IdempotencyHeader carries the shop's id of an intent, so that a request sent again
// creates nothing new.
const IdempotencyHeader = "Idempotency-Key"

// maxBody bounds how much of a provider's answer is read.
const maxBody = 64 << 10

type provider struct {
	url  string
	key  string
	http *http.Client
}

// New returns the HTTP adapter of cfg's provider. CreateIntent posts the intent with its
// ID as Idempotency-Key; a 2xx answer gives the Receipt (the body's "id" and "status"), a
// 4xx answer an error wrapping payment.ErrRejected, anything else (5xx, transport errors,
// a context that ended) an error that may be retried.
func New(cfg Config) payment.Provider {
	h := cfg.HTTP
	if h == nil {
		h = http.DefaultClient
	}
	return &provider{url: strings.TrimRight(cfg.BaseURL, "/") + IntentsPath, key: cfg.APIKey, http: h}
}

func (p *provider) CreateIntent(ctx context.Context, in payment.Intent) (payment.Receipt, error) {
	body, err := json.Marshal(IntentRequest{
		Amount:   in.Amount,
		Currency: in.Currency,
		Metadata: map[string]string{
			payment.MetadataOrderID:  in.OrderID,
			payment.MetadataIntentID: in.ID,
			MetadataCustomer:         in.Customer,
		},
	})
	if err != nil {
		return payment.Receipt{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return payment.Receipt{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(IdempotencyHeader, in.ID)
	if p.key != "" {
		req.Header.Set("Authorization", "Bearer "+p.key)
	}
	res, err := p.http.Do(req)
	if err != nil {
		return payment.Receipt{}, fmt.Errorf("payment intent %s: %w", in.ID, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, maxBody))
	if err != nil {
		return payment.Receipt{}, fmt.Errorf("payment intent %s: reading the answer: %w", in.ID, err)
	}
	switch {
	case res.StatusCode >= 200 && res.StatusCode < 300:
		var obj payment.IntentObject
		if err := json.Unmarshal(raw, &obj); err != nil || obj.ID == "" {
			return payment.Receipt{}, fmt.Errorf("payment intent %s: the provider's answer has no intent id", in.ID)
		}
		return payment.Receipt{ProviderID: obj.ID, Status: obj.Status}, nil
	case res.StatusCode >= 400 && res.StatusCode < 500:
		return payment.Receipt{}, fmt.Errorf("payment intent %s: %w: %s %s", in.ID, payment.ErrRejected, res.Status, snippet(raw))
	default:
		return payment.Receipt{}, fmt.Errorf("payment intent %s: provider answered %s %s", in.ID, res.Status, snippet(raw))
	}
}

// snippet is the start of an answer's body, for an error message.
func snippet(raw []byte) string {
	const max = 200
	s := strings.TrimSpace(string(raw))
	if len(s) > max {
		s = s[:max] + "..."
	}
	return s
}
