// Package payment is the payments port: what ordermesh asks of a payment provider (to
// collect an amount for an order), how the provider reports the outcome (a webhook
// event), and how that event proves where it came from (an HMAC-SHA256 signature over a
// timestamp and the body, the scheme Stripe uses for its webhooks, with a tolerance
// window against replays). It imports only the standard library and does no I/O: the
// adapters (package actors/payment/client, the simulated provider in actors/payment/sim)
// do the talking.
package payment

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Intent is one attempt to collect the payment of an order. Every pay of an order is a
// new attempt (a failed payment may be tried again), and ID names it.
type Intent struct {
	// ID is the shop's id of this attempt, from IntentID. The provider keys the intent by it
	// (its Idempotency-Key), so submitting it again, from any node, after a timeout or a
	// crash, never charges twice.
	ID       string `json:"id"`
	OrderID  string `json:"order_id"`
	Customer string `json:"customer"`
	Amount   int64  `json:"amount"` // minor units
	Currency string `json:"currency"`
}

// IntentID names the attempt to pay for an order that became PAYING at version.
func IntentID(orderID string, version uint64) string {
	return "pay_" + orderID + "_" + strconv.FormatUint(version, 10)
}

// Receipt is a provider's answer to an intent it accepted: the outcome comes later, by
// webhook.
type Receipt struct {
	ProviderID string `json:"provider_id"` // the provider's id of the intent ("pi_...")
	Status     string `json:"status"`      // the provider's word for it, e.g. "processing"
}

// Provider is the port to a payment provider.
type Provider interface {
	// CreateIntent hands an intent to the provider. It is idempotent by Intent.ID. An
	// error wrapping ErrRejected means the provider refused the intent itself and sending
	// it again cannot succeed; any other error may be retried.
	CreateIntent(ctx context.Context, in Intent) (Receipt, error)
}

// ErrRejected: the provider refused a request as invalid (a 4xx answer).
var ErrRejected = errors.New("rejected by the payment provider")

// The webhook event types ordermesh acts on (Stripe's names); others are acknowledged
// and ignored.
const (
	EventSucceeded = "payment_intent.succeeded"
	EventFailed    = "payment_intent.payment_failed"
)

// MetadataOrderID and MetadataIntentID are the metadata keys an intent carries to the
// provider and back in its events.
const (
	MetadataOrderID  = "order_id"
	MetadataIntentID = "intent_id"
)

// Event is a webhook event, in the shape Stripe sends.
type Event struct {
	ID      string `json:"id"` // the provider's event id: the idempotency key of what it causes
	Type    string `json:"type"`
	Created int64  `json:"created"` // unix seconds
	Data    struct {
		Object IntentObject `json:"object"`
	} `json:"data"`
}

// IntentObject is the intent an event is about.
type IntentObject struct {
	ID               string            `json:"id"`
	Amount           int64             `json:"amount"`
	Currency         string            `json:"currency"`
	Status           string            `json:"status"`
	Metadata         map[string]string `json:"metadata"`
	LastPaymentError *struct {
		Message string `json:"message"`
	} `json:"last_payment_error,omitempty"`
}

// SignatureHeader carries a webhook's signature: "t=<unix seconds>,v1=<hex HMAC>".
const SignatureHeader = "Stripe-Signature"

// DefaultTolerance is how old (or how far in the future) a signed webhook may be.
const DefaultTolerance = 5 * time.Minute

// Sign returns the signature header of body sent at t, with secret.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Why a webhook's signature is refused.
var (
	ErrNoSignature  = errors.New("webhook is not signed")
	ErrBadSignature = errors.New("webhook signature does not match")
	ErrStale        = errors.New("webhook timestamp is outside the tolerance window")
)

// Verify checks a webhook: header must hold a timestamp within tolerance of now and a v1
// signature of that timestamp and body made with one of secrets (several while a secret
// rotates). The timestamp is checked after the signature, so a forged one cannot pass.
func Verify(header string, body []byte, secrets [][]byte, now time.Time, tolerance time.Duration) error {
	if header == "" {
		return ErrNoSignature
	}
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil && len(b) == sha256.Size {
				sigs = append(sigs, b)
			}
		}
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrNoSignature
	}
	matched := false
	for _, secret := range secrets {
		want := mac(secret, ts, body)
		for _, s := range sigs {
			if hmac.Equal(s, want) {
				matched = true
			}
		}
	}
	if !matched {
		return ErrBadSignature
	}
	if d := now.Sub(time.Unix(unix, 0)); d > tolerance || d < -tolerance {
		return ErrStale
	}
	return nil
}
