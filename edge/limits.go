package edge

import (
	"encoding/json"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/hashicorp/golang-lru/simplelru"
	"golang.org/x/time/rate"

	"github.com/ordermesh/ordermesh/actors/order"
)

// Abuse limits: token buckets (golang.org/x/time/rate) per client address and per
// username on the authentication endpoints, per user on the order API, per address on
// the failed signatures of the payment webhook, and a cap on the connections one address
// may hold open. A refused request is a 429 envelope with code
// order.CodeRateLimited and a Retry-After header saying when a token is due.

// Limits configures the abuse limits. A zero rate or cap turns that limit off, so the zero
// Limits limits nothing; DefaultLimits are what `ordermesh node` starts with.
type Limits struct {
	// AuthRate and AuthBurst limit the attempts on the authentication endpoints (login,
	// register, refresh), separately per client address and per username.
	AuthRate  rate.Limit
	AuthBurst int
	// APIRate and APIBurst limit the order API per authenticated user.
	APIRate  rate.Limit
	APIBurst int
	// WebhookRate and WebhookBurst limit, per client address, the payment webhook
	// deliveries that fail their signature check. Signed deliveries spend nothing, so a
	// provider (the simulator, on 127.0.0.1, at hundreds a second) is never held back,
	// while an address that keeps sending unsigned, forged or stale ones is refused (429)
	// before its body is looked at.
	WebhookRate  rate.Limit
	WebhookBurst int
	// ConnsPerAddress caps the connections one client address holds open at once.
	ConnsPerAddress int
	// Keys bounds the addresses and users each limit remembers (default DefaultLimitKeys);
	// past it the least recently seen is forgotten, which only ever makes a limit more
	// lenient for a key that was idle longest.
	Keys int
}

// DefaultLimitKeys is how many keys each limit remembers when Limits.Keys is zero: about
// 200 bytes each, so some 13 MiB per limit at most.
const DefaultLimitKeys = 1 << 16

// DefaultLimits are the limits of a production node: 10 authentication attempts a
// minute (5 at once) per address and per username, 20 order API requests a second (40
// at once) per user, 5 failed webhook signatures a second (20 at once) per address,
// 256 connections per address.
func DefaultLimits() Limits {
	return Limits{
		AuthRate: rate.Every(6 * time.Second), AuthBurst: 5,
		APIRate: 20, APIBurst: 40,
		WebhookRate: 5, WebhookBurst: 20,
		ConnsPerAddress: 256,
	}
}

// Labels of ordermesh_ratelimit_refused_total.
const (
	limitAuthAddress = "auth_address"
	limitAuthUser    = "auth_user"
	limitAPIUser     = "api_user"
	limitWebhook     = "webhook_address"
)

// limiters are the per-key token buckets of one limit, the least recently used forgotten
// first once there are too many.
type limiters struct {
	mu    sync.Mutex
	keys  *simplelru.LRU // key string → *rate.Limiter
	rate  rate.Limit
	burst int
}

// newLimiters returns nil, meaning no limit, when r is zero.
func newLimiters(r rate.Limit, burst, size int) (*limiters, error) {
	if r <= 0 {
		return nil, nil
	}
	if burst < 1 {
		return nil, fmt.Errorf("edge: a rate limit needs a burst of at least 1, not %d", burst)
	}
	if size <= 0 {
		size = DefaultLimitKeys
	}
	lru, err := simplelru.NewLRU(size, nil)
	if err != nil {
		return nil, fmt.Errorf("edge: limiter table: %w", err)
	}
	return &limiters{keys: lru, rate: r, burst: burst}, nil
}

// reserve takes a token for key at now. It returns the reservation (to cancel if another
// limit refuses the request) and how long the caller would have to wait: a positive wait
// means refused, and the token is not taken.
func (l *limiters) reserve(key string, now time.Time) (*rate.Reservation, time.Duration) {
	l.mu.Lock()
	v, ok := l.keys.Get(key)
	if !ok {
		v = rate.NewLimiter(l.rate, l.burst)
		// The key outlives the request: it must not share the bytes of a reused buffer.
		l.keys.Add(strings.Clone(key), v)
	}
	l.mu.Unlock()
	r := v.(*rate.Limiter).ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return nil, d
	}
	return r, 0
}

// wait is how long key must wait for a token at now, taking none: 0 if one is there.
func (l *limiters) wait(key string, now time.Time) time.Duration {
	l.mu.Lock()
	v, ok := l.keys.Get(key)
	l.mu.Unlock()
	if !ok {
		return 0
	}
	lim := v.(*rate.Limiter)
	tokens := lim.TokensAt(now)
	if tokens >= 1 {
		return 0
	}
	return time.Duration((1 - tokens) / float64(l.rate) * float64(time.Second))
}

// len is the number of keys remembered.
func (l *limiters) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.keys.Len()
}

// limiting holds the limits of one server.
type limiting struct {
	authAddr, authUser, apiUser *limiters // nil = off
	webhook                     *limiters // failed webhook signatures per address; nil = off
}

func newLimiting(l Limits) (*limiting, error) {
	var out limiting
	var err error
	if out.authAddr, err = newLimiters(l.AuthRate, l.AuthBurst, l.Keys); err != nil {
		return nil, err
	}
	if out.authUser, err = newLimiters(l.AuthRate, l.AuthBurst, l.Keys); err != nil {
		return nil, err
	}
	if out.apiUser, err = newLimiters(l.APIRate, l.APIBurst, l.Keys); err != nil {
		return nil, err
	}
	if out.webhook, err = newLimiters(l.WebhookRate, l.WebhookBurst, l.Keys); err != nil {
		return nil, err
	}
	if l.ConnsPerAddress < 0 {
		return nil, fmt.Errorf("edge: ConnsPerAddress must be 0 (no cap) or more, not %d", l.ConnsPerAddress)
	}
	return &out, nil
}

// addressKey is the client address a limit counts against: the peer's IP address, or for
// IPv6 its /64, since one host commonly holds a whole /64. Behind a reverse proxy every
// client shares the proxy's address: the limits are then per proxy.
func addressKey(c *fiber.Ctx) string {
	ip := net.ParseIP(c.IP())
	if ip == nil {
		return c.IP()
	}
	if ip.To4() != nil {
		return ip.String()
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// limitAuth is the middleware of the authentication endpoints (/auth/login, and
// /auth/register and /auth/refresh): it refuses a request once its client address, or the
// username in its JSON body, has used up its attempts. Every attempt counts, successful
// or not, so that neither guessing one user's password from many addresses nor many
// users' passwords from one address gets far. A body without a username (a refresh)
// counts against its address only; a handler that learns the user later calls
// limitUsername.
func (s *server) limitAuth(c *fiber.Ctx) error {
	user := bodyUsername(c.Body())
	if user != "" {
		c.Locals(localUser, user)
	}
	if err := s.limitKeys(c, s.limits.authAddr, addressKey(c), limitAuthAddress, s.limits.authUser, user, limitAuthUser); err != nil {
		return err
	}
	return c.Next()
}

// limitWebhook is the middleware of the payment webhook: it refuses a request (429)
// while its client address has used up its failed signatures (see Limits.WebhookRate).
// It takes no token: only a delivery that fails its check does (spendWebhook).
func (s *server) limitWebhook(c *fiber.Ctx) error {
	if l := s.limits.webhook; l != nil {
		if wait := l.wait(addressKey(c), s.now()); wait > 0 {
			return s.refuse(c, limitWebhook, wait)
		}
	}
	return c.Next()
}

// spendWebhook counts one failed webhook signature against the client address.
func (s *server) spendWebhook(c *fiber.Ctx) {
	if l := s.limits.webhook; l != nil {
		l.reserve(addressKey(c), s.now())
	}
}

// limitUsername counts one authentication attempt against username, for handlers that
// learn the user only after limitAuth ran (a refresh token's owner). It returns the 429
// error to answer with, or nil.
func (s *server) limitUsername(c *fiber.Ctx, username string) error {
	return s.limitKeys(c, s.limits.authUser, usernameKey(username), limitAuthUser, nil, "", "")
}

// limitUser is the middleware of the order API, behind authenticate: it refuses a
// request once the authenticated user has used up the rate.
func (s *server) limitUser(c *fiber.Ctx) error {
	if err := s.limitKeys(c, s.limits.apiUser, principal(c).Subject, limitAPIUser, nil, "", ""); err != nil {
		return err
	}
	return c.Next()
}

// limitKeys takes a token for key a from la and for key b from lb (either may be off, or
// have an empty key); if either refuses, neither token is taken and the answer is the
// 429 error with Retry-After set to the longer wait.
func (s *server) limitKeys(c *fiber.Ctx, la *limiters, a, nameA string, lb *limiters, b, nameB string) error {
	now := s.now()
	var ra *rate.Reservation
	if la != nil && a != "" {
		var wait time.Duration
		if ra, wait = la.reserve(a, now); wait > 0 {
			return s.refuse(c, nameA, wait)
		}
	}
	if lb != nil && b != "" {
		if _, wait := lb.reserve(usernameKey(b), now); wait > 0 {
			if ra != nil {
				ra.CancelAt(now)
			}
			return s.refuse(c, nameB, wait)
		}
	}
	return nil
}

// refuse counts and logs a refused request and returns its 429 error.
func (s *server) refuse(c *fiber.Ctx, limit string, wait time.Duration) error {
	secs := max(1, int(math.Ceil(wait.Seconds())))
	c.Set(fiber.HeaderRetryAfter, strconv.Itoa(secs))
	s.guard.rateLimited.WithLabelValues(limit).Inc()
	s.logger(c).Info("rate limited", "limit", limit, "address", c.IP(), "retry_after_seconds", secs)
	return order.Errorf(order.CodeRateLimited, "too many requests; retry in %d s", secs)
}

// usernameKey is the key of a username: case-folded, so that "Alice" and "alice" share
// attempts, and bounded, since it is client input kept in memory.
func usernameKey(u string) string {
	if len(u) > maxUsernameLen {
		u = u[:maxUsernameLen]
	}
	return strings.ToLower(u)
}

// bodyUsername is the "username" string of a JSON body, or "" if there is none. It is
// lenient on purpose: the handler decodes the body strictly and refuses what is wrong,
// after the limit has counted the attempt.
func bodyUsername(body []byte) string {
	var v struct {
		Username string `json:"username"`
	}
	if json.Unmarshal(body, &v) != nil {
		return ""
	}
	return usernameKey(v.Username)
}
