package edge

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"

	"github.com/ordermesh/ordermesh/persistence"
)

// session logs user in with password and returns the session.
func (h *harness) session(user, password string) loginResponse {
	h.t.Helper()
	r := h.do(req{method: "POST", path: "/auth/login", body: `{"username":"` + user + `","password":"` + password + `"}`}).expect(h.t, 200, order.CodeOK)
	var lr loginResponse
	if err := json.Unmarshal(r.Data, &lr); err != nil {
		h.t.Fatal(err)
	}
	return lr
}

func (h *harness) refresh(tok string) response {
	h.t.Helper()
	return h.do(req{method: "POST", path: "/auth/refresh", body: `{"refresh_token":"` + tok + `"}`})
}

func session(t *testing.T, r response) loginResponse {
	t.Helper()
	var lr loginResponse
	if err := json.Unmarshal(r.Data, &lr); err != nil {
		t.Fatal(err)
	}
	return lr
}

func TestRegister(t *testing.T) {
	h := newHarness(t)
	ok := `{"username":"new.user_1","password":"long enough pw"}`
	r := h.do(req{method: "POST", path: "/auth/register", body: ok}).expect(t, 201, order.CodeOK)
	var u userResponse
	if err := json.Unmarshal(r.Data, &u); err != nil || u.Username != "new.user_1" || u.Role != "shopper" || u.Disabled {
		t.Fatalf("registered %+v, %v", u, err)
	}
	h.do(req{method: "POST", path: "/auth/register", body: ok}).expect(t, 409, order.CodeAlreadyExists)
	if lr := h.session("new.user_1", "long enough pw"); lr.Role != "shopper" {
		t.Errorf("a new account logs in as %s", lr.Role)
	}
	for name, body := range map[string]string{
		"short name":     `{"username":"ab","password":"long enough pw"}`,
		"long name":      `{"username":"` + strings.Repeat("a", 33) + `","password":"long enough pw"}`,
		"upper case":     `{"username":"Alice2","password":"long enough pw"}`,
		"space":          `{"username":"a b c","password":"long enough pw"}`,
		"short password": `{"username":"carol","password":"123456789"}`,
		"long password":  `{"username":"carol","password":"` + strings.Repeat("x", 73) + `"}`,
	} {
		t.Run(name, func(t *testing.T) {
			h.do(req{method: "POST", path: "/auth/register", body: body}).expect(t, 422, order.CodeValidation)
		})
	}
	h.do(req{method: "POST", path: "/auth/register", body: `{"username":"carol","password":"long enough pw","role":"admin"}`}).
		expect(t, 400, order.CodeInvalidRequest)
}

func TestRefreshRotatesAndReuseRevokesTheFamily(t *testing.T) {
	h := newHarness(t)
	first := h.session("alice", DemoPassword)
	if first.RefreshToken == "" || first.RefreshExpiresIn != int64(DefaultRefreshTTL.Seconds()) {
		t.Fatalf("login response %+v", first)
	}
	second := session(t, h.refresh(first.RefreshToken).expect(t, 200, order.CodeOK))
	if second.RefreshToken == first.RefreshToken || second.AccessToken == "" || second.Role != "shopper" || second.Username != "alice" {
		t.Fatalf("refresh response %+v", second)
	}
	h.do(req{method: "GET", path: "/api/v1/me", token: second.AccessToken}).expect(t, 200, order.CodeOK)
	third := session(t, h.refresh(second.RefreshToken).expect(t, 200, order.CodeOK))

	// The first token again: reuse. It fails, and so does the newest of its family.
	h.refresh(first.RefreshToken).expect(t, 401, order.CodeUnauthenticated)
	h.refresh(third.RefreshToken).expect(t, 401, order.CodeUnauthenticated)

	// Another login is another family, untouched.
	other := h.session("alice", DemoPassword)
	h.refresh(other.RefreshToken).expect(t, 200, order.CodeOK)

	for _, bad := range []string{"", "garbage", strings.Repeat("A", refreshTokenLen), first.AccessToken} {
		h.refresh(bad).expect(t, 401, order.CodeUnauthenticated)
	}
	h.do(req{method: "POST", path: "/auth/refresh", body: `{"token":"x"}`}).expect(t, 400, order.CodeInvalidRequest)
}

func TestRacingRefreshesEndTheSession(t *testing.T) {
	h := newHarness(t)
	lr := h.session("bob", DemoPassword)
	const racers = 4
	results := make([]response, racers)
	var wg sync.WaitGroup
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := h.try(req{method: "POST", path: "/auth/refresh", body: `{"refresh_token":"` + lr.RefreshToken + `"}`})
			if err != nil {
				t.Error(err)
			}
			results[i] = r
		}()
	}
	wg.Wait()
	var winners []loginResponse
	for _, r := range results {
		switch r.Status {
		case 200:
			winners = append(winners, session(t, r))
		case 401:
		default:
			t.Fatalf("racing refresh: %d %s", r.Status, r.Raw)
		}
	}
	if len(winners) != 1 {
		t.Fatalf("%d racers refreshed one token, want exactly 1", len(winners))
	}
	// The losers were reuse: the winner's new refresh token is revoked with its family.
	h.refresh(winners[0].RefreshToken).expect(t, 401, order.CodeUnauthenticated)
}

func TestRefreshTokenExpires(t *testing.T) {
	h := newHarness(t)
	lr := h.session("alice", DemoPassword)
	h.clock.Advance(DefaultRefreshTTL - time.Second)
	lr = session(t, h.refresh(lr.RefreshToken).expect(t, 200, order.CodeOK))
	h.clock.Advance(DefaultRefreshTTL)
	h.refresh(lr.RefreshToken).expect(t, 401, order.CodeUnauthenticated)
}

func TestLogoutRevokes(t *testing.T) {
	h := newHarness(t)
	lr := h.session("alice", DemoPassword)
	h.do(req{method: "POST", path: "/auth/logout", body: `{"refresh_token":"` + lr.RefreshToken + `"}`}).expect(t, 200, order.CodeOK)
	h.refresh(lr.RefreshToken).expect(t, 401, order.CodeUnauthenticated)
	// Unknown or malformed tokens log out as well: nothing to probe.
	h.do(req{method: "POST", path: "/auth/logout", body: `{"refresh_token":"nope"}`}).expect(t, 200, order.CodeOK)
	h.do(req{method: "POST", path: "/auth/logout", body: `{}`}).expect(t, 200, order.CodeOK)
	h.do(req{method: "POST", path: "/auth/logout", body: `{"refresh_token":1}`}).expect(t, 400, order.CodeInvalidRequest)
}

func TestDisabledUser(t *testing.T) {
	h := newHarness(t)
	alice := h.session("alice", DemoPassword)
	patch := func(body string) response {
		return h.do(req{method: "PATCH", path: "/api/v1/users/alice", token: h.token("ada"), body: body})
	}
	patch(`{"disabled":true}`).expect(t, 200, order.CodeOK)

	// Refresh stops at once; so does login.
	h.refresh(alice.RefreshToken).expect(t, 401, order.CodeUnauthenticated)
	h.do(req{method: "POST", path: "/auth/login", body: `{"username":"alice","password":"ordermesh"}`}).expect(t, 401, order.CodeUnauthenticated)
	// The access token is not looked up per request: it lasts its TTL, and no longer.
	me := req{method: "GET", path: "/api/v1/me", token: alice.AccessToken}
	h.do(me).expect(t, 200, order.CodeOK)
	h.clock.Advance(DefaultAccessTTL + time.Second)
	h.do(me).expect(t, 401, order.CodeUnauthenticated)

	// Enabled again, alice logs in anew; the old session stays revoked.
	patch(`{"disabled":false}`).expect(t, 200, order.CodeOK)
	h.refresh(alice.RefreshToken).expect(t, 401, order.CodeUnauthenticated)
	h.session("alice", DemoPassword)
}

func TestRoleChangeAppliesAtRefresh(t *testing.T) {
	h := newHarness(t)
	bob := h.session("bob", DemoPassword)
	h.do(req{method: "PATCH", path: "/api/v1/users/bob", token: h.token("ada"), body: `{"role":"operator"}`}).expect(t, 200, order.CodeOK)
	if s := session(t, h.refresh(bob.RefreshToken).expect(t, 200, order.CodeOK)); s.Role != "operator" {
		t.Fatalf("after the role change, refresh gives role %s", s.Role)
	}
}

func TestAdminManagesUsers(t *testing.T) {
	h := newHarness(t)
	admin := h.token("ada")
	r := h.do(req{method: "GET", path: "/api/v1/users", token: admin}).expect(t, 200, order.CodeOK)
	var list userListResponse
	if err := json.Unmarshal(r.Data, &list); err != nil || len(list.Users) != len(demoUsers) {
		t.Fatalf("users %+v, %v", list, err)
	}
	if strings.Contains(string(r.Raw), "$2a$") {
		t.Fatal("the user list shows password hashes")
	}
	create := func(body string) response {
		return h.do(req{method: "POST", path: "/api/v1/users", token: admin, body: body})
	}
	create(`{"username":"oscar","password":"long enough pw","role":"operator"}`).expect(t, 201, order.CodeOK)
	create(`{"username":"oscar","password":"long enough pw","role":"operator"}`).expect(t, 409, order.CodeAlreadyExists)
	create(`{"username":"otto","password":"long enough pw","role":"system"}`).expect(t, 422, order.CodeValidation)
	create(`{"username":"otto","password":"short","role":"shopper"}`).expect(t, 422, order.CodeValidation)
	if lr := h.session("oscar", "long enough pw"); lr.Role != "operator" {
		t.Fatalf("oscar logs in as %s", lr.Role)
	}
	patch := func(user, body string) response {
		return h.do(req{method: "PATCH", path: "/api/v1/users/" + user, token: admin, body: body})
	}
	patch("oscar", `{"role":"admin"}`).expect(t, 200, order.CodeOK)
	patch("oscar", `{}`).expect(t, 422, order.CodeValidation)
	patch("oscar", `{"role":"root"}`).expect(t, 422, order.CodeValidation)
	patch("nobody", `{"disabled":true}`).expect(t, 404, order.CodeNotFound)
	patch("ada", `{"disabled":true}`).expect(t, 422, order.CodeValidation)
	patch("oscar", `{"disabled":"yes"}`).expect(t, 400, order.CodeInvalidRequest)
}

func TestMeListsPermissionsFromTheTable(t *testing.T) {
	h := newHarness(t)
	for _, d := range demoUsers {
		r := h.do(req{method: "GET", path: "/api/v1/me", token: h.token(d.name)}).expect(t, 200, order.CodeOK)
		var me meResponse
		if err := json.Unmarshal(r.Data, &me); err != nil {
			t.Fatal(err)
		}
		if me.Username != d.name || me.Role != string(d.role) || !slices.Equal(me.Permissions, Permissions(d.role)) {
			t.Errorf("%s: /me = %+v", d.name, me)
		}
	}
	shopper, operator := Permissions(order.RoleShopper), Permissions(order.RoleOperator)
	if !slices.Contains(shopper, "createOrder") || !slices.Contains(shopper, "payOrder") || slices.Contains(shopper, "shipOrder") ||
		slices.Contains(shopper, "listUsers") || !slices.Contains(operator, "shipOrder") || slices.Contains(operator, "listUsers") ||
		!slices.Contains(Permissions(order.RoleAdmin), "listUsers") || !slices.Contains(operator, "openLiveUpdates") {
		t.Errorf("permissions: shopper %v, operator %v", shopper, operator)
	}
}

// TestRoleTable sends a request to every endpoint of the table as every role and as a
// caller without a token: a role the table does not list gets 403, no token 401, and
// everyone the table admits gets past the role check (whatever the handler then thinks
// of the empty request).
func TestRoleTable(t *testing.T) {
	h := newHarness(t)
	h.ready.Store(true)
	id := h.createOrder("alice", "role-table", twoTeas).ID
	callers := append([]order.Role{""}, TokenRoles...)
	users := map[order.Role]string{order.RoleShopper: "alice", order.RoleOperator: "olga", order.RoleAdmin: "ada"}
	for _, e := range Endpoints() {
		path := strings.NewReplacer("{id}", id, "{username}", "bob", "{sku}", "tea-sencha").Replace(e.Path)
		for _, role := range callers {
			name := e.OperationID + "/" + string(role)
			if role == "" {
				name = e.OperationID + "/anonymous"
			}
			t.Run(name, func(t *testing.T) {
				r := req{method: e.Method, path: path}
				if role != "" {
					r.token = h.token(users[role])
				}
				res := h.do(r)
				switch {
				case e.Access == AccessInBand:
					// Authentication is the protocol's first message: HTTP admits all.
					if res.Status == 401 || res.Status == 403 {
						t.Fatalf("in-band endpoint answered %d over HTTP", res.Status)
					}
				case e.Allows(role):
					if res.Status == 401 || res.Status == 403 {
						t.Fatalf("allowed caller got %d: %s", res.Status, res.Raw)
					}
				case role == "":
					res.expect(t, 401, order.CodeUnauthenticated)
				default:
					res.expect(t, 403, order.CodeForbidden)
				}
			})
		}
	}
}

// TestRoleTableFollowsTheOrderTable: the order action endpoints are exactly the actions
// of order.Table, each with the token roles that may issue its command.
func TestRoleTableFollowsTheOrderTable(t *testing.T) {
	byPath := map[string]Endpoint{}
	for _, e := range Endpoints() {
		if _, dup := byPath[e.Method+" "+e.Path]; dup {
			t.Fatalf("%s %s is in the table twice", e.Method, e.Path)
		}
		byPath[e.Method+" "+e.Path] = e
	}
	for _, tr := range order.Table {
		if tr.Action == "" {
			continue
		}
		e, ok := byPath["POST /api/v1/orders/{id}/"+tr.Action]
		if !ok {
			t.Fatalf("no endpoint for action %s", tr.Action)
		}
		for _, r := range TokenRoles {
			if e.Allows(r) != tr.Allows(r) {
				t.Errorf("%s: role %s allowed %v by the route table, %v by order.Table", tr.Action, r, e.Allows(r), tr.Allows(r))
			}
		}
	}
}

// TestEditedRoleClaim: a real token whose payload is edited to claim another role fails
// its signature.
func TestEditedRoleClaim(t *testing.T) {
	h := newHarness(t)
	tok := h.session("alice", DemoPassword).AccessToken
	parts := strings.Split(tok, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(payload), `"role":"shopper"`, `"role":"admin"`, 1)
	if edited == string(payload) {
		t.Fatalf("no role claim in %s", payload)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(edited))
	h.do(req{method: "GET", path: "/api/v1/users", token: strings.Join(parts, ".")}).expect(t, 401, order.CodeUnauthenticated)
	h.do(req{method: "GET", path: "/api/v1/users", token: tok}).expect(t, 403, order.CodeForbidden)
}

func TestNewRefusesLongAccessTTL(t *testing.T) {
	h := newHarness(t)
	if _, err := New(Config{JWTSecret: testSecret, AccessTTL: MaxAccessTTL + time.Second}, Deps{Orders: h.svc, Store: h.store}); err == nil {
		t.Error("New accepted an access TTL over MaxAccessTTL")
	}
}

// cancelAfterPrune is a store whose first DeleteExpiredRefreshTokens ends the pruner.
type cancelAfterPrune struct {
	Store
	cancel func()
}

func (s cancelAfterPrune) DeleteExpiredRefreshTokens(ctx context.Context, now time.Time) (int64, error) {
	defer s.cancel()
	return s.Store.DeleteExpiredRefreshTokens(ctx, now)
}

func TestPruneRefreshTokens(t *testing.T) {
	h := newHarness(t)
	lr := h.session("alice", DemoPassword)
	ctx, cancel := context.WithCancel(context.Background())
	later := func() time.Time { return h.clock.Now().Add(DefaultRefreshTTL + time.Second) }
	// The first pass runs at once; the pruner returns when ctx ends.
	PruneRefreshTokens(ctx, cancelAfterPrune{Store: h.store, cancel: cancel}, later, time.Hour, slog.New(slog.DiscardHandler))
	hash, _ := hashRefreshToken(lr.RefreshToken)
	if err := h.store.RevokeRefreshFamily(context.Background(), hash); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("the expired token is still stored: %v", err)
	}
}
