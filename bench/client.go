package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// CodeTransport is the error code of a request that got no HTTP response.
const CodeTransport = "transport"

// envelope is the API's response body: {"code", "message", "data"}.
type envelope struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
}

// Request is one API call.
type Request struct {
	Method string
	Path   string // e.g. /api/v1/orders
	Token  string // bearer token; empty for anonymous
	Key    string // Idempotency-Key; empty for reads
	Body   any    // marshalled as JSON when not nil
}

// Response is what came back. Err is set when no response arrived (transport failure).
type Response struct {
	HTTP     int
	Code     int // envelope code; 0 on success
	Message  string
	Data     json.RawMessage
	Replayed bool
	Target   string // base URL that answered (or failed)
	Err      error
}

// OK reports whether the request succeeded with a 2xx.
func (r Response) OK() bool { return r.Err == nil && r.HTTP >= 200 && r.HTTP < 300 }

// CodeString names the outcome for error counts: "" on success, "transport", the envelope
// code, or "http-<status>" when the body was not an envelope.
func (r Response) CodeString() string {
	switch {
	case r.Err != nil:
		return CodeTransport
	case r.OK():
		return ""
	case r.Code != 0:
		return strconv.Itoa(r.Code)
	default:
		return "http-" + strconv.Itoa(r.HTTP)
	}
}

// orderView is the part of an order view the harness reads.
type orderView struct {
	ID      string `json:"id"`
	Status  string `json:"status"`
	Version int64  `json:"version"`
	// PaymentDeadline is set while PAYING (the server's clock).
	PaymentDeadline time.Time `json:"payment_deadline,omitzero"`
}

// newHTTPClient returns a client sized for the concurrency cap, so connections are reused
// instead of re-dialled under load (dial cost would otherwise dominate latency).
func newHTTPClient(concurrency int, timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = concurrency * 2
	tr.MaxIdleConnsPerHost = concurrency
	return &http.Client{Transport: tr, Timeout: timeout}
}

// send performs req against base once.
func send(ctx context.Context, hc *http.Client, base string, req Request) Response {
	out := Response{Target: base}
	var body io.Reader
	if req.Body != nil {
		b, err := json.Marshal(req.Body)
		if err != nil {
			out.Err = fmt.Errorf("encoding request body: %w", err)
			return out
		}
		body = bytes.NewReader(b)
	}
	hr, err := http.NewRequestWithContext(ctx, req.Method, base+req.Path, body)
	if err != nil {
		out.Err = fmt.Errorf("building request: %w", err)
		return out
	}
	if req.Body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	if req.Token != "" {
		hr.Header.Set("Authorization", "Bearer "+req.Token)
	}
	if req.Key != "" {
		hr.Header.Set("Idempotency-Key", req.Key)
	}
	resp, err := hc.Do(hr)
	if err != nil {
		out.Err = fmt.Errorf("%s %s: %w", req.Method, req.Path, err)
		return out
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		out.Err = fmt.Errorf("%s %s: reading response: %w", req.Method, req.Path, err)
		return out
	}
	out.HTTP = resp.StatusCode
	out.Replayed = resp.Header.Get("Idempotent-Replayed") == "true"
	var env envelope
	if err := json.Unmarshal(raw, &env); err == nil {
		out.Code, out.Message, out.Data = env.Code, env.Message, env.Data
	} else if !out.OK() {
		out.Message = string(raw)
	}
	return out
}

// errNoResponse reports whether resp failed before any HTTP response arrived, which is the
// one case where resending to another node is both needed and (with the same key) safe.
func errNoResponse(resp Response) bool {
	return resp.Err != nil && !errors.Is(resp.Err, context.Canceled)
}
