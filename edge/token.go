package edge

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"

	"github.com/golang-jwt/jwt/v5"
)

// accessClaims are the claims of an access token: who (sub), what they may do (role),
// and the registered iss/iat/exp/jti.
type accessClaims struct {
	Role string `json:"role"`
	jwt.RegisteredClaims
}

// tokenIssuer issues and verifies short-lived HS256 access tokens.
type tokenIssuer struct {
	secret []byte
	issuer string
	ttl    time.Duration
	now    func() time.Time
}

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
			Subject:   p.Subject,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(exp),
			ID:        hex.EncodeToString(jti[:]),
		},
	}
	signed, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(t.secret)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("signing access token: %w", err)
	}
	return signed, exp, nil
}

// verify checks a token and returns its principal. The algorithm is pinned to HS256 (so
// "none" and any asymmetric or other-HMAC token is refused before its signature is
// looked at), and exp and iss are required.
func (t *tokenIssuer) verify(token string) (order.Principal, error) {
	var claims accessClaims
	_, err := jwt.ParseWithClaims(token, &claims,
		func(*jwt.Token) (any, error) { return t.secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithIssuer(t.issuer),
		jwt.WithTimeFunc(t.now),
	)
	if err != nil {
		return order.Principal{}, fmt.Errorf("verifying access token: %w", err)
	}
	role, ok := order.ParseRole(claims.Role)
	if !ok || claims.Subject == "" {
		return order.Principal{}, errors.New("verifying access token: missing subject or unknown role")
	}
	return order.Principal{Subject: claims.Subject, Role: role}, nil
}
