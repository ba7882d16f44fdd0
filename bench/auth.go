package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
)

// Account is a logged-in user. Its token is refreshed by logging in again when the API
// answers 401, so runs longer than the access-token lifetime keep going.
type Account struct {
	Username string
	password string

	mu    sync.Mutex
	token string
}

// login obtains a token for a through POST /auth/login.
func (a *Account) login(ctx context.Context, b *Balancer) error {
	resp := b.Do(ctx, Request{Method: http.MethodPost, Path: "/auth/login",
		Body: map[string]string{"username": a.Username, "password": a.password}})
	if !resp.OK() {
		return fmt.Errorf("logging in as %s: %s", a.Username, describe(resp))
	}
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(resp.Data, &out); err != nil || out.AccessToken == "" {
		return fmt.Errorf("logging in as %s: no access token in response", a.Username)
	}
	a.mu.Lock()
	a.token = out.AccessToken
	a.mu.Unlock()
	return nil
}

// Token returns the current access token.
func (a *Account) Token() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.token
}

// Login logs username in and returns its account.
func Login(ctx context.Context, b *Balancer, username, password string) (*Account, error) {
	a := &Account{Username: username, password: password}
	if err := a.login(ctx, b); err != nil {
		return nil, err
	}
	return a, nil
}

// describe renders a failed response for error messages.
func describe(r Response) string {
	if r.Err != nil {
		return r.Err.Error()
	}
	return fmt.Sprintf("HTTP %d code %d %s", r.HTTP, r.Code, r.Message)
}
