package edge

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/crypto/bcrypt"

	"github.com/ordermesh/ordermesh/persistence"
)

// Sessions. A login starts a session: an access token (a JWT, short-lived, never stored)
// and a refresh token (256 random bits, stored only as its SHA-256 in the store, so that
// any node can refresh it and a leaked table cannot be replayed). POST /auth/refresh
// rotates the refresh token: the old one is spent, a new one of the same family is handed
// out. Presenting a spent token again is a reuse: the store revokes the whole family, as
// the OAuth 2.0 Security BCP (section 4.14.2) describes, so a thief and the victim both
// have to log in again. Two nodes refreshing the same token at once are the same case:
// one wins, the other is a reuse, and the session ends; a client must not refresh one
// token twice. POST /auth/logout revokes the family.
//
// Roles and the disabled flag are read from the store at login and at every refresh.
// Disabling a user revokes its refresh tokens at once; its access tokens are not looked
// up per request and stay valid until they expire, which is at most AccessTTL (default
// 15 minutes) after they were issued, since exp-iat is capped.

// Limits on credentials; bcrypt ignores everything after 72 bytes, so longer passwords are
// refused rather than silently truncated.
const (
	maxUsernameLen = 64 // for login, of names that may predate the rules below
	minNewUsername = 3
	maxNewUsername = 32
	minPasswordLen = 10
	maxPasswordLen = 72
	// refreshTokenLen is the length of a refresh token: 32 random bytes in unpadded
	// base64url.
	refreshTokenLen = 43
)

type credentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

type loginResponse struct {
	AccessToken      string `json:"access_token"`
	TokenType        string `json:"token_type"`
	ExpiresIn        int64  `json:"expires_in"` // seconds
	RefreshToken     string `json:"refresh_token"`
	RefreshExpiresIn int64  `json:"refresh_expires_in"` // seconds
	Role             string `json:"role"`
	Username         string `json:"username"`
}

type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

type meResponse struct {
	Username    string   `json:"username"`
	Role        string   `json:"role"`
	Permissions []string `json:"permissions"`
}

// dummyHash is compared against when the user does not exist, so that a login for an
// unknown name costs as much as one with a wrong password and names cannot be probed.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("not a password"), bcryptCost)
	return h
})

var (
	errBadCredentials = order.Errorf(order.CodeUnauthenticated, "wrong username or password")
	errSessionEnded   = order.Errorf(order.CodeUnauthenticated, "the refresh token is invalid, expired or revoked; log in again")
)

// checkNewCredentials applies the rules for new accounts: a username of 3 to 32 characters
// of a-z, 0-9, '.', '_' and '-', and a password of 10 to 72 bytes.
func checkNewCredentials(c credentials) error {
	if len(c.Username) < minNewUsername || len(c.Username) > maxNewUsername {
		return order.Errorf(order.CodeValidation, "a username has %d to %d characters", minNewUsername, maxNewUsername)
	}
	for i := 0; i < len(c.Username); i++ {
		ch := c.Username[i]
		if !('a' <= ch && ch <= 'z' || '0' <= ch && ch <= '9' || ch == '.' || ch == '_' || ch == '-') {
			return order.Errorf(order.CodeValidation, "a username may only contain a-z, 0-9, '.', '_' and '-'")
		}
	}
	if len(c.Password) < minPasswordLen || len(c.Password) > maxPasswordLen {
		return order.Errorf(order.CodeValidation, "a password has %d to %d bytes", minPasswordLen, maxPasswordLen)
	}
	return nil
}

// register handles POST /auth/register: a shopper signs itself up.
func (s *server) register(c *fiber.Ctx) error {
	var req credentials
	if err := decodeStrict(c.Body(), &req, false); err != nil {
		return err
	}
	u, err := s.newUser(c, req, order.RoleShopper)
	if err != nil {
		return err
	}
	s.logger(c).Info("registered", slog.String("user", u.Username))
	return respond(c, fiber.StatusCreated, userFor(u))
}

// newUser checks the rules and creates an account; a taken name is 409.
func (s *server) newUser(c *fiber.Ctx, req credentials, role order.Role) (persistence.User, error) {
	if err := checkNewCredentials(req); err != nil {
		return persistence.User{}, err
	}
	hash, err := HashPassword(req.Password)
	if err != nil {
		return persistence.User{}, err
	}
	u := persistence.User{Username: req.Username, PasswordHash: hash, Role: string(role), CreatedAt: s.now()}
	ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.RequestTimeout)
	defer cancel()
	switch err := s.store.CreateUser(ctx, u); {
	case errors.Is(err, persistence.ErrConflict):
		return persistence.User{}, order.Errorf(order.CodeAlreadyExists, "the username %q is taken", req.Username)
	case err != nil:
		return persistence.User{}, fmt.Errorf("creating user: %w", err)
	}
	return u, nil
}

// login handles POST /auth/login.
func (s *server) login(c *fiber.Ctx) error {
	var req credentials
	if err := decodeStrict(c.Body(), &req, false); err != nil {
		return err
	}
	if req.Username == "" || req.Password == "" || len(req.Username) > maxUsernameLen || len(req.Password) > maxPasswordLen {
		return errBadCredentials
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.RequestTimeout)
	defer cancel()
	u, err := s.store.GetUser(ctx, req.Username)
	switch {
	case errors.Is(err, persistence.ErrNotFound):
		_ = bcrypt.CompareHashAndPassword(dummyHash(), []byte(req.Password))
		s.logger(c).Info("login failed", slog.String("user", req.Username), slog.String("reason", "unknown user"))
		return errBadCredentials
	case err != nil:
		return fmt.Errorf("loading user: %w", err)
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(req.Password)) != nil {
		s.logger(c).Info("login failed", slog.String("user", req.Username), slog.String("reason", "wrong password"))
		return errBadCredentials
	}
	if u.Disabled {
		s.logger(c).Info("login failed", slog.String("user", req.Username), slog.String("reason", "disabled"))
		return order.Errorf(order.CodeUnauthenticated, "this account is disabled")
	}
	refresh, hash := newRefreshToken()
	now := s.now()
	var family [16]byte
	_, _ = rand.Read(family[:])
	if err := s.store.CreateRefreshToken(ctx, persistence.RefreshToken{
		Hash: hash, Family: hex.EncodeToString(family[:]), Username: u.Username, IssuedAt: now, ExpiresAt: now.Add(s.cfg.RefreshTTL),
	}); err != nil {
		return fmt.Errorf("storing refresh token: %w", err)
	}
	s.logger(c).Info("login", slog.String("user", u.Username), slog.String("role", u.Role))
	return s.issueSession(c, u, refresh)
}

// issueSession answers a login or refresh: a new access token for u's current role, and
// the refresh token that was stored for it.
func (s *server) issueSession(c *fiber.Ctx, u persistence.User, refresh string) error {
	role, ok := order.ParseRole(u.Role)
	if !ok {
		return fmt.Errorf("user %q has unknown role %q", u.Username, u.Role)
	}
	token, exp, err := s.tokens.issue(order.Principal{Subject: u.Username, Role: role})
	if err != nil {
		return err
	}
	return respond(c, fiber.StatusOK, loginResponse{
		AccessToken: token, TokenType: "Bearer", ExpiresIn: int64(exp.Sub(s.now()).Seconds()),
		RefreshToken: refresh, RefreshExpiresIn: int64(s.cfg.RefreshTTL.Seconds()),
		Role: string(role), Username: u.Username,
	})
}

// refresh handles POST /auth/refresh: it spends the refresh token and answers as login
// does, with a new access token and the family's next refresh token. limitAuth counts it
// against the client address; it is not also counted against the token's owner
// (limitUsername): 256 random bits cannot be guessed, and the owner is known only once
// the token is spent, when a 429 would throw the session away.
func (s *server) refresh(c *fiber.Ctx) error {
	var req refreshRequest
	if err := decodeStrict(c.Body(), &req, false); err != nil {
		return err
	}
	old, ok := hashRefreshToken(req.RefreshToken)
	if !ok {
		return errSessionEnded
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.RequestTimeout)
	defer cancel()
	refresh, hash := newRefreshToken()
	now := s.now()
	prev, err := s.store.RotateRefreshToken(ctx, old, persistence.RefreshToken{Hash: hash, IssuedAt: now, ExpiresAt: now.Add(s.cfg.RefreshTTL)})
	switch {
	case errors.Is(err, persistence.ErrTokenReused):
		s.logger(c).Warn("refresh token reused; its session is revoked")
		return errSessionEnded
	case errors.Is(err, persistence.ErrNotFound), errors.Is(err, persistence.ErrTokenRevoked):
		return errSessionEnded
	case err != nil:
		return fmt.Errorf("rotating refresh token: %w", err)
	}
	u, err := s.store.GetUser(ctx, prev.Username)
	if err == nil && u.Disabled {
		err = persistence.ErrNotFound
	}
	if err != nil {
		// Disabled (or deleted) between its tokens' revocation and this refresh: end
		// the session rather than hand out a token.
		if rerr := s.store.RevokeRefreshFamily(ctx, hash); rerr != nil {
			return fmt.Errorf("revoking the session of %s: %w", prev.Username, rerr)
		}
		if errors.Is(err, persistence.ErrNotFound) {
			return errSessionEnded
		}
		return fmt.Errorf("loading user: %w", err)
	}
	return s.issueSession(c, u, refresh)
}

// logout handles POST /auth/logout: it revokes the session of the refresh token. It
// answers 200 whether or not the token was known, so that it cannot be used to probe.
func (s *server) logout(c *fiber.Ctx) error {
	var req refreshRequest
	if err := decodeStrict(c.Body(), &req, false); err != nil {
		return err
	}
	if h, ok := hashRefreshToken(req.RefreshToken); ok {
		ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.RequestTimeout)
		defer cancel()
		if err := s.store.RevokeRefreshFamily(ctx, h); err != nil && !errors.Is(err, persistence.ErrNotFound) {
			return fmt.Errorf("revoking session: %w", err)
		}
	}
	return respond(c, fiber.StatusOK, nil)
}

// me handles GET /api/v1/me: who the caller is and what it may call.
func (s *server) me(c *fiber.Ctx) error {
	p := principal(c)
	return respond(c, fiber.StatusOK, meResponse{Username: p.Subject, Role: string(p.Role), Permissions: Permissions(p.Role)})
}

// newRefreshToken returns a new refresh token and its hash.
func newRefreshToken() (string, []byte) {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	h := sha256.Sum256([]byte(tok))
	return tok, h[:]
}

// hashRefreshToken returns the store key of a presented token, or false if it cannot be
// one of ours.
func hashRefreshToken(tok string) ([]byte, bool) {
	if len(tok) != refreshTokenLen {
		return nil, false
	}
	if _, err := base64.RawURLEncoding.DecodeString(tok); err != nil {
		return nil, false
	}
	h := sha256.Sum256([]byte(tok))
	return h[:], true
}

// PruneRefreshTokens deletes expired refresh tokens now and then every interval, until
// ctx ends. They are only dead weight: an expired token is refused whether or not its
// row is there. Any number of nodes may run it at once.
func PruneRefreshTokens(ctx context.Context, store persistence.RefreshTokens, now func() time.Time, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		n, err := store.DeleteExpiredRefreshTokens(ctx, now())
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("pruning expired refresh tokens failed", slog.Any("error", err))
		case n > 0:
			log.Info("pruned expired refresh tokens", slog.Int64("count", n))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
