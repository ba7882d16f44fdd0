package edge

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"

	"github.com/golang-jwt/jwt/v5"
)

// accessClaims are the claims of an access token: who (sub), what they may do (role),
// and the registered iss/aud/iat/exp/jti.
type accessClaims struct {
	Role string `json:"role"`
	jwt.RegisteredClaims
}

// tokenIssuer issues and verifies short-lived HS256 access tokens, with the keys of a
// KeyRing: each token names its key in the "kid" header.
type tokenIssuer struct {
	keys     *KeyRing
	issuer   string
	audience string
	ttl      time.Duration // lifetime of issued tokens, and the longest exp-iat accepted
	now      func() time.Time

	// verified remembers tokens that passed verification, by the whole token string
	// (signature included, so no other string can hit), until they expire: a client sends
	// the same token with every request for its lifetime, and parsing it and checking its
	// HMAC each time cost ~10 µs and 67 allocations. A hit still requires that the key
	// which signed it is the one its kid names now, so a retired key ends its tokens here
	// as it does in a full verification.
	mu       sync.RWMutex
	verified map[string]verifiedToken
}

// verifiedToken is what a verification found out, and the key it used.
type verifiedToken struct {
	p   order.Principal
	exp time.Time
	kid string
	key []byte
}

// maxVerified bounds the remembered tokens (a few hundred bytes each); when full, the
// expired ones go, and if none has, all do.
const maxVerified = 16384

// issue returns a signed access token for p and its expiry.
func (t *tokenIssuer) issue(p order.Principal) (string, time.Time, error) {
	now := t.now()
	exp := now.Add(t.ttl)
	var jti [16]byte
	_, _ = rand.Read(jti[:]) // crypto/rand.Read never fails on supported platforms
	claims := accessClaims{
		Role: string(p.Role),
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    t.issuer,
			Audience:  jwt.ClaimStrings{t.audience},
			Subject:   p.Subject,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(exp),
			ID:        hex.EncodeToString(jti[:]),
		},
	}
	kid, key := t.keys.Current()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	tok.Header["kid"] = kid
	signed, err := tok.SignedString(key)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("signing access token: %w", err)
	}
	return signed, exp, nil
}

// verify checks a token and returns its principal. The algorithm is pinned to HS256 (so
// "none" and any asymmetric or other-HMAC token is refused before its signature is
// looked at); exp, iat, iss and aud are required, and exp-iat may not exceed the
// configured lifetime, so that no token outlives it, whatever its signer chose. The key is the one the token's kid names; an
// unknown kid may make the ring reread the store with ctx.
func (t *tokenIssuer) verify(ctx context.Context, token string) (order.Principal, error) {
	p, _, err := t.verifyUntil(ctx, token)
	return p, err
}

// verifyUntil is verify that also returns when the token expires (its exp), for a
// holder that outlives one request: /ws closes a socket when its token expires.
func (t *tokenIssuer) verifyUntil(ctx context.Context, token string) (order.Principal, time.Time, error) {
	t.mu.RLock()
	v, ok := t.verified[token]
	t.mu.RUnlock()
	if ok {
		if key, found := t.keys.verificationKey(ctx, v.kid); found && bytes.Equal(key, v.key) && t.now().Before(v.exp) {
			return v.p, v.exp, nil
		}
		t.mu.Lock()
		delete(t.verified, token)
		t.mu.Unlock()
	}
	p, exp, kid, key, err := t.parse(ctx, token)
	if err != nil {
		return order.Principal{}, time.Time{}, err
	}
	t.remember(token, verifiedToken{p: p, exp: exp, kid: kid, key: key})
	return p, exp, nil
}

// remember keeps a verified token (see tokenIssuer.verified).
func (t *tokenIssuer) remember(token string, v verifiedToken) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.verified == nil {
		t.verified = make(map[string]verifiedToken)
	}
	if len(t.verified) >= maxVerified {
		now := t.now()
		for k, old := range t.verified {
			if !now.Before(old.exp) {
				delete(t.verified, k)
			}
		}
		if len(t.verified) >= maxVerified {
			clear(t.verified)
		}
	}
	t.verified[token] = v
}

// parse is the full verification: signature, algorithm, claims, lifetime, role.
func (t *tokenIssuer) parse(ctx context.Context, token string) (p order.Principal, exp time.Time, kid string, key []byte, err error) {
	var claims accessClaims
	_, err = jwt.ParseWithClaims(token, &claims,
		func(tok *jwt.Token) (any, error) {
			kid, _ = tok.Header["kid"].(string)
			var ok bool
			if key, ok = t.keys.verificationKey(ctx, kid); !ok {
				return nil, fmt.Errorf("unknown key id %q", truncate(kid, maxKIDLen))
			}
			return key, nil
		},
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithIssuer(t.issuer),
		jwt.WithAudience(t.audience),
		jwt.WithTimeFunc(t.now),
	)
	if err != nil {
		return p, exp, "", nil, fmt.Errorf("verifying access token: %w", err)
	}
	if claims.IssuedAt == nil {
		return p, exp, "", nil, errors.New("verifying access token: no iat")
	}
	if life := claims.ExpiresAt.Sub(claims.IssuedAt.Time); life > t.ttl {
		return p, exp, "", nil, fmt.Errorf("verifying access token: lifetime %v over the maximum %v", life, t.ttl)
	}
	role, ok := order.ParseRole(claims.Role)
	if !ok || claims.Subject == "" {
		return p, exp, "", nil, errors.New("verifying access token: missing subject or unknown role")
	}
	return order.Principal{Subject: claims.Subject, Role: role}, claims.ExpiresAt.Time, kid, key, nil
}
