package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/ordermesh/ordermesh/actors/order"
)

// The contract, checked three ways: the document is valid OpenAPI 3.1 (kin-openapi's
// loader and validator), it has exactly the operations of the route table with the same
// access, and every response the edge tests receive through the harness validates
// against it (openapi3filter, with JSON Schema 2020-12 for a 3.1 document).

// contract is the loaded document and its router, built once.
var contract = sync.OnceValues(func() (*contractChecker, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(OpenAPI)
	if err != nil {
		return nil, fmt.Errorf("loading openapi.json: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("validating openapi.json: %w", err)
	}
	// The document's one server is "/", which matches any host the tests use.
	doc.Servers = nil
	router, err := legacy.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("routing openapi.json: %w", err)
	}
	return &contractChecker{doc: doc, router: router, seen: map[string]map[int]bool{}}, nil
})

type contractChecker struct {
	doc    *openapi3.T
	router routers.Router
	mu     sync.Mutex
	seen   map[string]map[int]bool // operationId -> statuses validated
}

// genericStatuses may answer any operation (its "default" response): a body or headers
// too large, rate limiting, a bug, a timeout, a method the path does not have.
var genericStatuses = []int{405, 413, 429, 431, 500, 503}

// check validates one response of the edge against the document.
func (cc *contractChecker) check(hr *http.Request, status int, header http.Header, body []byte) error {
	route, params, err := cc.router.FindRoute(hr)
	if err != nil {
		// Not an operation of the document (404 no such endpoint, 405): it must be an
		// error envelope all the same.
		if status != 404 && status != 405 {
			return fmt.Errorf("%s %s answered %d but is no operation of the document: %v", hr.Method, hr.URL.Path, status, err)
		}
		schema := cc.doc.Components.Schemas["Error"].Value
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			return err
		}
		return schema.VisitJSON(v, openapi3.EnableJSONSchema2020())
	}
	op := route.Operation
	// An in-band endpoint's HTTP answers belong to the protocol's implementation; its
	// document lists only the upgrade, and any other answer must be an error envelope.
	inBand := op.Extensions["x-access"] == "in-band"
	if op.Responses.Status(status) == nil && !slices.Contains(genericStatuses, status) && !inBand {
		return fmt.Errorf("%s answered %d, which the document does not list", op.OperationID, status)
	}
	cc.mu.Lock()
	if cc.seen[op.OperationID] == nil {
		cc.seen[op.OperationID] = map[int]bool{}
	}
	cc.seen[op.OperationID][status] = true
	cc.mu.Unlock()
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: hr, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
		},
		Status: status, Header: header, Body: io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		return fmt.Errorf("%s %d: %w", op.OperationID, status, err)
	}
	return nil
}

// errContract marks the errors of checkContract.
const errContract = "response breaks the contract"

// checkContract validates a response the harness received.
func checkContract(hr *http.Request, res response) error {
	cc, err := contract()
	if err != nil {
		return err
	}
	if err := cc.check(hr, res.Status, res.Header, res.Raw); err != nil {
		return fmt.Errorf("%s: %w\nbody: %s", errContract, err, res.Raw)
	}
	return nil
}

func TestOpenAPIDocumentIsValid(t *testing.T) {
	if _, err := contract(); err != nil {
		t.Fatal(err)
	}
	var top struct {
		OpenAPI string `json:"openapi"`
	}
	if err := json.Unmarshal(OpenAPI, &top); err != nil || top.OpenAPI != "3.1.0" {
		t.Fatalf("openapi = %q, %v; want 3.1.0", top.OpenAPI, err)
	}
}

func TestOpenAPIIsServed(t *testing.T) {
	h := newHarness(t)
	res, err := h.app.Test(httptest.NewRequest("GET", "/api/openapi.json", nil), -1)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || !bytes.Equal(body, OpenAPI) || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /api/openapi.json: %d %s, %d bytes", res.StatusCode, res.Header.Get("Content-Type"), len(body))
	}
	committed, err := os.ReadFile("openapi.json")
	if err != nil || !bytes.Equal(committed, OpenAPI) {
		t.Fatalf("the served document is not the committed openapi.json: %v", err)
	}
}

// TestOpenAPIMatchesRouteTable: the document has exactly the operations of the route
// table, each under the same method, path and operationId, with the same access and
// roles (x-access, x-roles) and security.
func TestOpenAPIMatchesRouteTable(t *testing.T) {
	cc, err := contract()
	if err != nil {
		t.Fatal(err)
	}
	inDoc := map[string]*openapi3.Operation{}
	for path, item := range cc.doc.Paths.Map() {
		for method, op := range item.Operations() {
			inDoc[method+" "+path] = op
		}
	}
	access := map[Access]string{AccessPublic: "public", AccessRoles: "roles", AccessInBand: "in-band"}
	for _, e := range Endpoints() {
		key := e.Method + " " + e.Path
		op, ok := inDoc[key]
		if !ok {
			t.Errorf("%s (%s) is not in the document", key, e.OperationID)
			continue
		}
		delete(inDoc, key)
		if op.OperationID != e.OperationID {
			t.Errorf("%s: operationId %q in the document, %q in the table", key, op.OperationID, e.OperationID)
		}
		if got := op.Extensions["x-access"]; got != access[e.Access] {
			t.Errorf("%s: x-access %v, want %s", key, got, access[e.Access])
		}
		var roles []string
		if raw, ok := op.Extensions["x-roles"].([]any); ok {
			for _, r := range raw {
				roles = append(roles, fmt.Sprint(r))
			}
		}
		var want []string
		if e.Access != AccessPublic {
			for _, r := range e.Roles {
				want = append(want, string(r))
			}
		}
		if !slices.Equal(roles, want) {
			t.Errorf("%s: x-roles %v, want %v", key, roles, want)
		}
		needsToken := e.Access == AccessRoles
		if hasToken := op.Security == nil || len(*op.Security) > 0; hasToken != needsToken {
			t.Errorf("%s: security says a token is needed: %v; the table: %v", key, hasToken, needsToken)
		}
		if needsToken && (op.Responses.Status(401) == nil || (len(e.Roles) < len(TokenRoles) && op.Responses.Status(403) == nil)) {
			t.Errorf("%s: 401 or 403 not documented", key)
		}
	}
	for key, op := range inDoc {
		t.Errorf("%s (%s) is in the document but not in the route table", key, op.OperationID)
	}
}

// TestOpenAPIListsEveryErrorCode reads the codes declared in actors/order/errors.go and
// checks that the ErrorCode schema lists exactly them, and each with the status the
// edge sends it with.
func TestOpenAPIListsEveryErrorCode(t *testing.T) {
	cc, err := contract()
	if err != nil {
		t.Fatal(err)
	}
	f, err := parser.ParseFile(token.NewFileSet(), "../actors/order/errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var declared []int
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || vs.Type == nil || fmt.Sprint(vs.Type) != "Code" {
			return true
		}
		for _, v := range vs.Values {
			if lit, ok := v.(*ast.BasicLit); ok {
				n, _ := strconv.Atoi(lit.Value)
				if n != 0 {
					declared = append(declared, n)
				}
			}
		}
		return true
	})
	if len(declared) < 10 {
		t.Fatalf("found only %d codes in errors.go", len(declared))
	}
	var listed []int
	for _, v := range cc.doc.Components.Schemas["ErrorCode"].Value.Enum {
		listed = append(listed, int(v.(float64)))
	}
	sort.Ints(declared)
	sort.Ints(listed)
	if !slices.Equal(declared, listed) {
		t.Fatalf("ErrorCode lists %v; errors.go declares %v", listed, declared)
	}
	for _, c := range declared {
		if got := httpStatus(order.Code(c)); got != c/100 {
			t.Errorf("code %d is sent with status %d", c, got)
		}
	}
}

// checkContractCoverage runs after the package's tests (see TestMain) when all of them
// ran: every operation of the document answered at least once in some test, and with
// each status it lists (but the generic ones and 101).
func checkContractCoverage() error {
	cc, err := contract()
	if err != nil {
		return err
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	var missing []string
	for _, e := range Endpoints() {
		if e.Access == AccessInBand {
			continue // served by the WebSocket's own code and tests
		}
		op := cc.doc.Paths.Find(e.Path).GetOperation(e.Method)
		for code := range op.Responses.Map() {
			n, err := strconv.Atoi(code)
			if err != nil || slices.Contains(genericStatuses, n) {
				continue
			}
			if !cc.seen[e.OperationID][n] {
				missing = append(missing, fmt.Sprintf("%s %s", e.OperationID, code))
			}
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("responses of the document that no test produced: %s", strings.Join(missing, ", "))
	}
	return nil
}

// TestOrderActionsAnswerTheirStatuses provokes, for every order action, the 404, 409 and
// 422 its operation documents.
func TestOrderActionsAnswerTheirStatuses(t *testing.T) {
	h := newHarness(t)
	paid := h.createOrder("alice", "paid", twoTeas).ID
	h.act("alice", paid, "pay", "alice-key").expect(t, 200, order.CodeOK)
	h.act("olga", paid, "confirm-payment", "olga-key").expect(t, 200, order.CodeOK)
	created := h.createOrder("alice", "created", twoTeas).ID
	for _, tr := range order.Table {
		if tr.Action == "" {
			continue
		}
		t.Run(tr.Action, func(t *testing.T) {
			user, key := "olga", "olga-key"
			if tr.Allows(order.RoleShopper) {
				user, key = "alice", "alice-key"
			}
			h.act(user, "no-such-order", tr.Action, "k").expect(t, 404, order.CodeNotFound)
			// The caller's key of another request on this order.
			h.do(req{method: "POST", path: "/api/v1/orders/" + paid + "/" + tr.Action, token: h.token(user), key: key,
				body: `{"reason":"another request"}`}).expect(t, 422, order.CodeKeyReused)
			illegal := created
			if slices.Contains(tr.From, order.StatusCreated) {
				illegal = paid
			}
			h.act(user, illegal, tr.Action, "new-"+tr.Action).expect(t, 409, order.CodeIllegalTransition)
		})
	}
}
