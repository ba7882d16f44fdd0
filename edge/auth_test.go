package edge

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"

	"github.com/golang-jwt/jwt/v5"
)

func TestLogin(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name   string
		body   string
		status int
		code   order.Code
	}{
		{"good credentials", `{"username":"alice","password":"ordermesh"}`, 200, order.CodeOK},
		{"wrong password", `{"username":"alice","password":"nope"}`, 401, order.CodeUnauthenticated},
		{"unknown user", `{"username":"mallory","password":"ordermesh"}`, 401, order.CodeUnauthenticated},
		{"empty password", `{"username":"alice","password":""}`, 401, order.CodeUnauthenticated},
		{"unknown field", `{"username":"alice","password":"ordermesh","role":"admin"}`, 400, order.CodeInvalidRequest},
		{"malformed", `{"username":`, 400, order.CodeInvalidRequest},
		{"name in other case", `{"USERNAME":"alice","password":"ordermesh"}`, 400, order.CodeInvalidRequest},
		{"duplicate name", `{"username":"mallory","username":"alice","password":"ordermesh"}`, 400, order.CodeInvalidRequest},
		{"no body", ``, 400, order.CodeInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.do(req{method: "POST", path: "/auth/login", body: tt.body}).expect(t, tt.status, tt.code)
		})
	}
}

func TestLoginTokenWorksUntilItExpires(t *testing.T) {
	h := newHarness(t)
	r := h.do(req{method: "POST", path: "/auth/login", body: `{"username":"olga","password":"ordermesh"}`}).expect(t, 200, order.CodeOK)
	var lr loginResponse
	if err := json.Unmarshal(r.Data, &lr); err != nil {
		t.Fatal(err)
	}
	if lr.TokenType != "Bearer" || lr.ExpiresIn != int64(DefaultAccessTTL.Seconds()) || lr.Role != "operator" || lr.Username != "olga" || lr.AccessToken == "" {
		t.Fatalf("login response %+v", lr)
	}
	list := req{method: "GET", path: "/api/v1/orders", token: lr.AccessToken}
	h.do(list).expect(t, 200, order.CodeOK)

	h.clock.Advance(DefaultAccessTTL - time.Second)
	h.do(list).expect(t, 200, order.CodeOK)
	h.clock.Advance(2 * time.Second)
	h.do(list).expect(t, 401, order.CodeUnauthenticated)
}

func TestBadTokensAreRejected(t *testing.T) {
	h := newHarness(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	valid := h.claims("alice", "shopper")
	with := func(k string, v any) jwt.MapClaims {
		c := jwt.MapClaims{}
		for kk, vv := range valid {
			c[kk] = vv
		}
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	past := h.clock.Now().Add(-time.Minute).Unix()
	tests := []struct {
		name   string
		header string // the whole Authorization header
	}{
		{"missing", ""},
		{"not bearer", "Basic YWxpY2U6b3JkZXJtZXNo"},
		{"bearer without token", "Bearer "},
		{"garbage", "Bearer not.a.jwt"},
		{"wrong secret", "Bearer " + mint(t, jwt.SigningMethodHS256, []byte("another-secret-that-is-also-long-enough"), valid)},
		{"expired", "Bearer " + mint(t, jwt.SigningMethodHS256, testSecret, with("exp", past))},
		{"no expiry", "Bearer " + mint(t, jwt.SigningMethodHS256, testSecret, with("exp", nil))},
		{"issued in the future", "Bearer " + mint(t, jwt.SigningMethodHS256, testSecret, with("iat", h.clock.Now().Add(time.Hour).Unix()))},
		{"wrong issuer", "Bearer " + mint(t, jwt.SigningMethodHS256, testSecret, with("iss", "evil"))},
		{"no subject", "Bearer " + mint(t, jwt.SigningMethodHS256, testSecret, with("sub", nil))},
		{"unknown role", "Bearer " + mint(t, jwt.SigningMethodHS256, testSecret, with("role", "system"))},
		{"alg none", "Bearer " + mint(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, valid)},
		{"HS512 with the right secret", "Bearer " + mint(t, jwt.SigningMethodHS512, testSecret, valid)},
		{"RS256", "Bearer " + mint(t, jwt.SigningMethodRS256, rsaKey, valid)},
		{"ES256", "Bearer " + mint(t, jwt.SigningMethodES256, ecKey, valid)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.do(req{method: "GET", path: "/api/v1/orders", header: map[string]string{"Authorization": tt.header}}).
				expect(t, 401, order.CodeUnauthenticated)
			if r.Header.Get("WWW-Authenticate") == "" {
				t.Error("no WWW-Authenticate header on 401")
			}
		})
	}
	// The control: the same claims, properly signed, pass.
	h.do(req{method: "GET", path: "/api/v1/orders", token: mint(t, jwt.SigningMethodHS256, testSecret, valid)}).expect(t, 200, order.CodeOK)
}

func TestNewRefusesWeakConfig(t *testing.T) {
	h := newHarness(t)
	if _, err := New(Config{JWTSecret: []byte("short")}, Deps{Orders: h.svc, Store: h.store}); err == nil {
		t.Error("New accepted a short secret")
	}
	if _, err := New(Config{JWTSecret: testSecret}, Deps{Store: h.store}); err == nil {
		t.Error("New accepted missing Orders")
	}
}
