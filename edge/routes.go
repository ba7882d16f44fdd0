package edge

import (
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/ordermesh/ordermesh/actors/order"
	"github.com/ordermesh/ordermesh/actors/stock"
)

// Roles in one table: every endpoint of a node is one row of endpoints, with the roles
// that may call it. The router registers the rows and enforces their roles, GET
// /api/v1/me lists the operationIds a caller's role may call (the web app builds its
// routes and menus from them), the OpenAPI document carries each row's roles as
// x-roles, and the tests check every (role, endpoint) pair against the table. The roles
// of the order actions come from order.Table, the source of who may issue which
// command, and those of a stock adjustment from stock.Roles.

// Access is who may call an endpoint.
type Access int

// The kinds of access.
const (
	// AccessRoles: a valid access token of one of the endpoint's Roles; no token is a
	// 401, another role a 403.
	AccessRoles Access = iota
	// AccessPublic: anyone, no token needed.
	AccessPublic
	// AccessInBand: any authenticated role, but the token travels inside the protocol
	// (the WebSocket's first message) rather than in a header, so the HTTP layer admits
	// everyone and the protocol answers an unauthenticated client with close code 4401.
	AccessInBand
)

// Endpoint is one row of the route table.
type Endpoint struct {
	Method      string
	Path        string // OpenAPI form: /api/v1/orders/{id}
	OperationID string
	Access      Access
	Roles       []order.Role // for AccessRoles and AccessInBand: who may use it

	// before are the endpoint's own middleware, run after the role check: abuse limits,
	// the metrics token.
	before func(s *server) []fiber.Handler
	// handler builds the endpoint's handler; nil, or a builder that returns nil, for an
	// endpoint this node does not serve here (the WebSocket, which its own file
	// registers; /metrics when it has a listener of its own).
	handler func(s *server) fiber.Handler
}

// Allows reports whether role r may call e; "" is a caller without a token.
func (e Endpoint) Allows(r order.Role) bool {
	if e.Access == AccessPublic {
		return true
	}
	return r != "" && slices.Contains(e.Roles, r)
}

// FiberPath is e.Path in Fiber's syntax: /api/v1/orders/:id.
func (e Endpoint) FiberPath() string {
	segs := strings.Split(e.Path, "/")
	for i, s := range segs {
		if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
			segs[i] = ":" + s[1:len(s)-1]
		}
	}
	return strings.Join(segs, "/")
}

// TokenRoles are the roles an access token can carry; RoleSystem is never granted.
var TokenRoles = []order.Role{order.RoleShopper, order.RoleOperator, order.RoleAdmin}

var staff = []order.Role{order.RoleOperator, order.RoleAdmin}

// limitedAuth: the abuse limit of the endpoints that take a password or a token.
func limitedAuth(s *server) []fiber.Handler { return []fiber.Handler{s.limitAuth} }

// with adapts a handler method to the table.
func with(h func(*server, *fiber.Ctx) error) func(*server) fiber.Handler {
	return func(s *server) fiber.Handler { return func(c *fiber.Ctx) error { return h(s, c) } }
}

// Endpoints returns the route table: every endpoint of a node, in registration order.
func Endpoints() []Endpoint {
	eps := []Endpoint{
		{Method: "GET", Path: "/healthz", OperationID: "getHealth", Access: AccessPublic, handler: with((*server).healthz)},
		{Method: "GET", Path: "/readyz", OperationID: "getReadiness", Access: AccessPublic, handler: with((*server).readyz)},
		{Method: "GET", Path: "/metrics", OperationID: "getMetrics", Access: AccessPublic,
			before: func(s *server) []fiber.Handler { return []fiber.Handler{s.metricsAccess} },
			handler: func(s *server) fiber.Handler {
				if s.cfg.NoMetricsRoute {
					return nil
				}
				return metricsHandler(s.registry)
			}},
		{Method: "GET", Path: "/api/openapi.json", OperationID: "getOpenAPI", Access: AccessPublic, handler: with((*server).openAPI)},

		{Method: "POST", Path: "/auth/register", OperationID: "register", Access: AccessPublic, before: limitedAuth, handler: with((*server).register)},
		{Method: "POST", Path: "/auth/login", OperationID: "login", Access: AccessPublic, before: limitedAuth, handler: with((*server).login)},
		{Method: "POST", Path: "/auth/refresh", OperationID: "refresh", Access: AccessPublic, before: limitedAuth, handler: with((*server).refresh)},
		{Method: "POST", Path: "/auth/logout", OperationID: "logout", Access: AccessPublic, before: limitedAuth, handler: with((*server).logout)},
		{Method: "GET", Path: "/api/v1/me", OperationID: "getMe", Roles: TokenRoles, handler: with((*server).me)},

		{Method: "GET", Path: "/api/v1/catalog", OperationID: "listCatalog", Access: AccessPublic, handler: with((*server).listCatalog)},
		{Method: "POST", Path: "/api/v1/orders", OperationID: "createOrder", Roles: commandRoles(order.CmdCreate), handler: with((*server).createOrder)},
		{Method: "GET", Path: "/api/v1/orders", OperationID: "listOrders", Roles: TokenRoles, handler: with((*server).listOrders)},
		{Method: "GET", Path: "/api/v1/orders/{id}", OperationID: "getOrder", Roles: TokenRoles, handler: with((*server).getOrder)},
		{Method: "GET", Path: "/api/v1/orders/{id}/events", OperationID: "listOrderEvents", Roles: TokenRoles, handler: with((*server).orderEvents)},
	}
	for _, t := range order.Table {
		if t.Action == "" {
			continue
		}
		cmd := t.Command
		eps = append(eps, Endpoint{
			Method: "POST", Path: "/api/v1/orders/{id}/" + t.Action, OperationID: ActionOperationID(t.Action),
			Roles:   commandRoles(cmd),
			handler: func(s *server) fiber.Handler { return func(c *fiber.Ctx) error { return s.orderAction(c, cmd) } },
		})
	}
	return append(eps,
		Endpoint{Method: "GET", Path: "/api/v1/inventory", OperationID: "listInventory", Roles: staff, handler: with((*server).listInventory)},
		Endpoint{Method: "GET", Path: "/api/v1/inventory/{sku}", OperationID: "getInventory", Roles: staff, handler: with((*server).getInventory)},
		Endpoint{Method: "POST", Path: "/api/v1/inventory/{sku}/adjust", OperationID: "adjustInventory",
			Roles: tokenRoles(func(r order.Role) bool { return stock.Allows(stock.CmdAdjust, r) }), handler: with((*server).adjustInventory)},

		// The payment provider's webhook: no token, its signature is its authentication.
		Endpoint{Method: "POST", Path: "/api/v1/payments/webhook", OperationID: "receivePaymentWebhook", Access: AccessPublic,
			before: func(s *server) []fiber.Handler { return []fiber.Handler{s.limitWebhook} }, handler: with((*server).paymentWebhook)},
		Endpoint{Method: "GET", Path: "/api/v1/fulfilment", OperationID: "listFulfilment", Roles: staff, handler: with((*server).listFulfilment)},
		Endpoint{Method: "POST", Path: "/api/v1/fulfilment/{id}/retry", OperationID: "retryFulfilment", Roles: staff, handler: with((*server).retryFulfilment)},
		Endpoint{Method: "POST", Path: "/api/v1/fulfilment/{id}/cancel", OperationID: "cancelFulfilment", Roles: staff, handler: with((*server).cancelFulfilment)},
		Endpoint{Method: "GET", Path: "/api/v1/simulation", OperationID: "getSimulation", Roles: []order.Role{order.RoleAdmin}, handler: with((*server).getSimulation)},
		Endpoint{Method: "PUT", Path: "/api/v1/simulation", OperationID: "putSimulation", Roles: []order.Role{order.RoleAdmin}, handler: with((*server).putSimulation)},

		Endpoint{Method: "GET", Path: "/api/v1/cluster", OperationID: "getCluster", Roles: staff, handler: with((*server).clusterStatus)},
		Endpoint{Method: "POST", Path: "/api/v1/cluster/nodes/{id}/drain", OperationID: "drainNode", Roles: staff, handler: with((*server).drainNode)},

		Endpoint{Method: "GET", Path: "/api/v1/users", OperationID: "listUsers", Roles: []order.Role{order.RoleAdmin}, handler: with((*server).listUsers)},
		Endpoint{Method: "POST", Path: "/api/v1/users", OperationID: "createUser", Roles: []order.Role{order.RoleAdmin}, handler: with((*server).createUser)},
		Endpoint{Method: "PATCH", Path: "/api/v1/users/{username}", OperationID: "updateUser", Roles: []order.Role{order.RoleAdmin}, handler: with((*server).updateUser)},

		// The live push socket: authenticated by its first message, see AccessInBand.
		Endpoint{Method: "GET", Path: "/ws", OperationID: "openLiveUpdates", Access: AccessInBand, Roles: TokenRoles,
			before:  func(s *server) []fiber.Handler { return []fiber.Handler{s.wsUpgrade} },
			handler: (*server).wsHandler},
	)
}

// ActionOperationID is the operationId of an order action's endpoint: "ship" is
// "shipOrder", "confirm-payment" is "confirmPaymentOrder".
func ActionOperationID(action string) string {
	parts := strings.Split(action, "-")
	for i := 1; i < len(parts); i++ {
		parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
	}
	return strings.Join(parts, "") + "Order"
}

// commandRoles are the token roles order.Table lets issue command c.
func commandRoles(c order.CommandType) []order.Role {
	t, _ := order.TransitionFor(c)
	return tokenRoles(t.Allows)
}

// tokenRoles are the TokenRoles that allows admits, in TokenRoles order.
func tokenRoles(allows func(order.Role) bool) []order.Role {
	var out []order.Role
	for _, r := range TokenRoles {
		if allows(r) {
			out = append(out, r)
		}
	}
	return out
}

// Permissions lists the operationIds role r may call, in table order: what GET
// /api/v1/me tells the web app.
func Permissions(r order.Role) []string {
	out := []string{}
	for _, e := range Endpoints() {
		if e.Allows(r) {
			out = append(out, e.OperationID)
		}
	}
	return out
}

// routes registers the route table. Authentication, the role check and the per-user
// limit are handlers of each route rather than group middleware, so that a 401, 403 or
// 429 is counted under the route it was for, and unknown paths stay 404s.
func (s *server) routes(app *fiber.App) {
	app.Use(s.observe) // request id, access log, metrics, panic recovery
	if h := s.corsMiddleware(); h != nil {
		app.Use(h)
	}
	for _, e := range Endpoints() {
		if e.handler == nil {
			continue
		}
		h := e.handler(s)
		if h == nil {
			continue
		}
		var chain []fiber.Handler
		if e.Access == AccessRoles {
			chain = append(chain, s.authenticate, s.allow(e.Roles), s.limitUser)
		}
		if e.before != nil {
			chain = append(chain, e.before(s)...)
		}
		chain = append(chain, h)
		app.Add(e.Method, e.FiberPath(), chain...)
	}
	if s.web != nil {
		// Last: only what no endpoint took. Use, not a GET route, so that a POST to an
		// unknown path stays a 404 rather than a 405.
		app.Use(s.serveWeb)
	}
}

// allow admits the principal if its role is one of roles; only valid behind authenticate.
func (s *server) allow(roles []order.Role) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if p := principal(c); !slices.Contains(roles, p.Role) {
			return order.Errorf(order.CodeForbidden, "role %q may not call this endpoint", p.Role)
		}
		return c.Next()
	}
}
