package edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ordermesh/ordermesh/actors/order"
	"github.com/ordermesh/ordermesh/actors/payment"
)

// Payments is what the edge needs of the node's payment provider (actors.Payments and
// the webhook secrets of the cluster).
type Payments interface {
	// Submit makes the first attempt to submit the payment intent of an order that just
	// became PAYING at version: "submitted" (the provider has it) or "queued" (it waits
	// in the durable queue). The pay stands either way.
	Submit(ctx context.Context, orderID string, version uint64) (string, error)
	// WebhookSecrets are the secrets a webhook may be signed with now, newest first.
	WebhookSecrets() [][]byte
}

// HeaderPaymentSubmission tells, on the answer to a pay, what became of the payment
// intent: "submitted" (the provider has it) or "queued" (it waits in the durable queue
// and is submitted when the provider can take it). Either way the order is PAYING.
const HeaderPaymentSubmission = "Payment-Submission"

// The values of HeaderPaymentSubmission.
const (
	submissionSubmitted = "submitted"
	submissionQueued    = "queued"
)

// MaxWebhookBody is the largest webhook body accepted, whatever Config.BodyLimit is.
const MaxWebhookBody = 64 << 10

// webhookBy is who the webhook's commands are issued by.
var webhookBy = order.Principal{Subject: "payment-provider", Role: order.RoleSystem}

// errNoPayments answers the webhook of a node without a payment provider.
var errNoPayments = order.Errorf(order.CodeUnavailable, "this node takes no payments")

// Outcomes of ordermesh_payment_webhooks_total.
const (
	webhookApplied      = "applied"
	webhookReplayed     = "replayed"
	webhookIgnored      = "ignored"
	webhookUnauthorized = "unauthorized"
	webhookInvalid      = "invalid"
	webhookUnavailable  = "unavailable"
)

type webhookMetrics struct {
	total *prometheus.CounterVec
}

func newWebhookMetrics(reg prometheus.Registerer) (*webhookMetrics, error) {
	m := &webhookMetrics{total: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ordermesh_payment_webhooks_total",
		Help: "Payment webhook deliveries by outcome: applied, replayed (an event applied before), ignored (acknowledged, nothing to do), unauthorized (bad signature), invalid, unavailable (503, the provider retries).",
	}, []string{"outcome"})}
	for _, o := range []string{webhookApplied, webhookReplayed, webhookIgnored, webhookUnauthorized, webhookInvalid, webhookUnavailable} {
		m.total.WithLabelValues(o) // exported from the start, so that rate() sees the first
	}
	if err := reg.Register(m.total); err != nil {
		return nil, err
	}
	return m, nil
}

// webhookResponse is the answer to a delivery the edge accepted (200): the provider stops
// retrying it. Applied says whether the event changed (or had changed) the order.
type webhookResponse struct {
	Received bool         `json:"received"`
	Applied  bool         `json:"applied"`
	OrderID  string       `json:"order_id,omitempty"`
	Status   order.Status `json:"status,omitempty"`
	Version  uint64       `json:"version,omitempty"`
	Reason   string       `json:"reason,omitempty"` // why it was not applied
}

// paymentWebhook handles POST /api/v1/payments/webhook: the provider's report of a
// payment's outcome, signed (payment.Verify) with one of Payments.WebhookSecrets. It
// becomes a ConfirmPayment or FailPayment by the provider (RoleSystem) with the event id
// as the idempotency key, so an event delivered twice, or to two nodes, takes effect
// once. An answer other than 2xx makes the provider deliver the event again later, so
// only what may succeed later is not a 200: unavailable (503), an unknown order (404:
// it may not be written yet); the rest is a 200 saying whether it applied.
func (s *server) paymentWebhook(c *fiber.Ctx) error {
	outcome, err := s.receiveWebhook(c)
	if err != nil && outcome == "" {
		outcome = webhookInvalid
		if order.ErrorCode(err) == order.CodeUnavailable {
			outcome = webhookUnavailable
		}
	}
	s.webhooks.total.WithLabelValues(outcome).Inc()
	return err
}

// receiveWebhook does the work of paymentWebhook and says its outcome ("" = from the error).
func (s *server) receiveWebhook(c *fiber.Ctx) (string, error) {
	if s.payments == nil {
		return "", errNoPayments
	}
	// The signature is over the bytes exactly as they came.
	body := c.Body()
	if len(body) > MaxWebhookBody {
		return "", order.Errorf(order.CodeTooLarge, "a webhook body is at most %d bytes", MaxWebhookBody)
	}
	if err := payment.Verify(c.Get(payment.SignatureHeader), body, s.payments.WebhookSecrets(), s.now(), payment.DefaultTolerance); err != nil {
		s.spendWebhook(c)
		s.logger(c).Warn("payment webhook refused", slog.String("address", c.IP()), slog.Any("error", err))
		return webhookUnauthorized, order.Errorf(order.CodeUnauthenticated, "%s", webhookRefusal(err))
	}
	var ev payment.Event
	// Lenient on purpose: a provider adds fields to its events as it pleases.
	if err := json.Unmarshal(body, &ev); err != nil {
		return "", order.Errorf(order.CodeInvalidRequest, "the webhook body is not a JSON event: %s", truncate(err.Error(), 128))
	}
	log := s.logger(c).With(slog.String("event_id", truncate(ev.ID, 64)), slog.String("event_type", truncate(ev.Type, 64)))
	c.Locals(localLogger, log)
	var cmdType order.CommandType
	switch ev.Type {
	case payment.EventSucceeded:
		cmdType = order.CmdConfirmPayment
	case payment.EventFailed:
		cmdType = order.CmdFailPayment
	default:
		return webhookIgnored, respond(c, fiber.StatusOK, webhookResponse{Received: true,
			Reason: fmt.Sprintf("event type %q is not acted on", truncate(ev.Type, 64))})
	}
	if err := order.CheckKey(ev.ID); err != nil {
		return "", order.Errorf(order.CodeValidation, "the event has no valid id")
	}
	obj := ev.Data.Object
	id := obj.Metadata[payment.MetadataOrderID]
	if id == "" {
		return "", order.Errorf(order.CodeValidation, "the event's intent has no metadata.%s", payment.MetadataOrderID)
	}
	if !validOrderID(id) {
		return "", notFound(truncate(id, 64))
	}
	s.setOrderID(c, id)
	k, cancel := s.callsOf(c)
	defer cancel()
	v, err := call(k, func(ctx context.Context, requestID string) (order.View, error) {
		return s.orders.Get(ctx, id, webhookBy, requestID)
	})
	if err != nil {
		return "", fmt.Errorf("getting order %s: %w", id, err)
	}
	if obj.Amount != v.Total || !strings.EqualFold(obj.Currency, v.Currency) {
		s.logger(c).Error("payment webhook amount does not match the order",
			slog.Int64("amount", obj.Amount), slog.String("currency", truncate(obj.Currency, 16)),
			slog.Int64("order_total", v.Total), slog.String("order_currency", v.Currency))
		return "", order.Errorf(order.CodeValidation, "the event's amount %d %s is not the order's %d %s",
			obj.Amount, truncate(obj.Currency, 16), v.Total, v.Currency)
	}
	if intent := obj.Metadata[payment.MetadataIntentID]; v.Status == order.StatusPaying && intent != payment.IntentID(id, v.Version) {
		s.logger(c).Info("payment webhook for an earlier attempt", slog.String("intent_id", truncate(intent, 128)))
		return webhookIgnored, respond(c, fiber.StatusOK, webhookResponse{Received: true, OrderID: id, Status: v.Status,
			Version: v.Version, Reason: "the event is about an earlier payment attempt"})
	}
	cmd := order.Command{Type: cmdType, OrderID: id, Key: ev.ID, By: webhookBy}
	if cmdType == order.CmdFailPayment {
		msg := ""
		if obj.LastPaymentError != nil {
			msg = obj.LastPaymentError.Message
		}
		cmd.Reason = failureReason(msg)
	}
	res, err := s.execute(c, cmd)
	switch {
	case err == nil:
		markReplay(c, res.Replayed)
		outcome := webhookApplied
		if res.Replayed {
			outcome = webhookReplayed
		}
		return outcome, respond(c, fiber.StatusOK, webhookResponse{Received: true, Applied: true, OrderID: id,
			Status: res.View.Status, Version: res.View.Version})
	case order.ErrorCode(err) == order.CodeIllegalTransition:
		reason := order.ErrorMessage(err)
		if cmdType == order.CmdConfirmPayment {
			// The provider took the money for an order that is no longer waiting for it.
			s.logger(c).Error("payment succeeded for an order that is not PAYING: the money is to be refunded",
				slog.String("status", string(v.Status)), slog.Int64("amount", obj.Amount), slog.String("currency", v.Currency),
				slog.String("intent", truncate(obj.ID, 64)))
		} else {
			s.logger(c).Info("payment failure for an order that is not PAYING", slog.String("status", string(v.Status)))
		}
		return webhookIgnored, respond(c, fiber.StatusOK, webhookResponse{Received: true, OrderID: id, Status: v.Status,
			Version: v.Version, Reason: reason})
	default:
		return "", err
	}
}

// webhookRefusal is the message of a 401: which check the webhook failed.
func webhookRefusal(err error) string {
	switch {
	case errors.Is(err, payment.ErrNoSignature):
		return "the webhook is not signed (" + payment.SignatureHeader + " header)"
	case errors.Is(err, payment.ErrStale):
		return "the webhook's signature timestamp is outside the tolerance window"
	default:
		return "the webhook's signature does not match"
	}
}

// failureReason turns the provider's failure message into a valid order reason: text
// without control characters, at most order.MaxReason bytes, never empty.
func failureReason(msg string) string {
	msg = strings.ToValidUTF8(msg, "\uFFFD")
	msg = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, msg)
	msg = strings.TrimSpace(msg)
	if msg == "" {
		return "the payment failed"
	}
	if len(msg) > order.MaxReason {
		cut := order.MaxReason
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut]
	}
	return msg
}

// submitPayment makes the first attempt to submit the intent of an order that a pay just
// made PAYING at version, and says how it went in the Payment-Submission header. The pay
// stands whatever happens here: the intent is in the durable queue already.
func (s *server) submitPayment(c *fiber.Ctx, id string, version uint64) {
	if s.payments == nil {
		return
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.RequestTimeout)
	defer cancel()
	got, err := s.payments.Submit(ctx, id, version)
	if err != nil {
		s.logger(c).Warn("submitting the payment intent failed; it stays queued", slog.Any("error", err))
	}
	if err != nil || got != submissionSubmitted {
		got = submissionQueued
	}
	c.Set(HeaderPaymentSubmission, got)
}
