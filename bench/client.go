package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
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
	Owner    string // HeaderOwner: edge address of the order's owner, if the answer named one
	Location string // with Owner: the Location header (a create's new order)
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

// newHTTPClient returns the harness's client, sized for the concurrency cap so that
// connections are reused instead of re-dialled under load; timeout bounds each request.
// It is fasthttp's: one goroutine per request and pooled buffers, where net/http keeps a
// read and a write goroutine per connection and allocates per request — a third of the
// harness's CPU, measured at 1,000 requests/s, went to those loops.
func newHTTPClient(concurrency int, timeout time.Duration) *fasthttp.Client {
	return &fasthttp.Client{
		MaxConnsPerHost: max(concurrency, 1),
		// More requests than connections wait for one (the default fails them at once).
		MaxConnWaitTimeout:       timeout,
		ReadTimeout:              timeout,
		WriteTimeout:             timeout,
		MaxIdleConnDuration:      30 * time.Second,
		MaxResponseBodySize:      8 << 20,
		NoDefaultUserAgentHeader: true,
		DisablePathNormalizing:   true, // the paths are the API's, sent as written
	}
}

// send performs req against base once, within the client's timeout and ctx's deadline.
// A request in flight is not interrupted when ctx is cancelled (fasthttp has no such
// hook); it ends by its timeout, and its failure is reported as ctx's.
func send(ctx context.Context, hc *fasthttp.Client, base string, req Request) Response {
	out := Response{Target: base}
	if err := ctx.Err(); err != nil {
		out.Err = fmt.Errorf("%s %s: %w", req.Method, req.Path, err)
		return out
	}
	hreq, hres := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(hreq)
	defer fasthttp.ReleaseResponse(hres)
	hreq.SetRequestURI(base + req.Path)
	hreq.Header.SetMethod(req.Method)
	if req.Body != nil {
		b, err := json.Marshal(req.Body)
		if err != nil {
			out.Err = fmt.Errorf("encoding request body: %w", err)
			return out
		}
		hreq.Header.SetContentType("application/json")
		hreq.SetBodyRaw(b)
	}
	if req.Token != "" {
		hreq.Header.Set("Authorization", "Bearer "+req.Token)
	}
	if req.Key != "" {
		hreq.Header.Set("Idempotency-Key", req.Key)
	}
	deadline := time.Now().Add(hc.ReadTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := hc.DoDeadline(hreq, hres, deadline); err != nil {
		if cerr := ctx.Err(); cerr != nil {
			err = cerr
		}
		out.Err = fmt.Errorf("%s %s: %w", req.Method, req.Path, err)
		return out
	}
	out.HTTP = hres.StatusCode()
	out.Replayed = string(hres.Header.Peek("Idempotent-Replayed")) == "true"
	if o := hres.Header.Peek(HeaderOwner); len(o) > 0 {
		out.Owner = string(o)
		out.Location = string(hres.Header.Peek("Location"))
	}
	raw := hres.Body() // valid until hres is released; a json.RawMessage copies what it keeps
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
