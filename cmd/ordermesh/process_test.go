package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// These tests run the real binary as a child process, so that a node can be killed with
// SIGKILL and restarted on the same store.

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ordermesh-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "ordermesh")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building ordermesh:", err)
		os.Exit(1)
	}
	code := runTests(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is one node process.
type proc struct {
	t     testing.TB
	cmd   *exec.Cmd
	base  string
	addrs addrs
	logs  *syncBuffer
	done  chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr(t testing.TB) string {
	a := freeLocalAddr()
	if a == "" {
		t.Fatal("no free port on 127.0.0.1")
	}
	return a
}

// addrs are the listen addresses of one node.
type addrs struct{ http, gossip string }

func newAddrs(t testing.TB) addrs { return addrs{http: freeAddr(t), gossip: freeAddr(t)} }

// errPortTaken: a port picked as free was taken by someone else before the node bound it.
var errPortTaken = errors.New("address already in use")

// startFresh starts a node process on new free ports and waits until it is ready. It is
// alone unless extra has a --join.
func startFresh(t testing.TB, store string, extra ...string) *proc {
	t.Helper()
	for range 5 {
		p, err := launch(t, store, newAddrs(t), extra...)
		if errors.Is(err, errPortTaken) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Fatal("no free ports after 5 tries")
	return nil
}

// startMember starts a node process on the given addresses and waits until it is ready.
func startMember(t testing.TB, store string, a addrs, extra ...string) *proc {
	t.Helper()
	p, err := launch(t, store, a, extra...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// envArg marks an extra argument of launch that is an environment variable of the node
// (envArg+"NAME=value"), not a flag.
const envArg = "env:"

func launch(t testing.TB, store string, a addrs, extra ...string) (*proc, error) {
	var env []string
	extra = slices.DeleteFunc(slices.Clone(extra), func(x string) bool {
		if v, ok := strings.CutPrefix(x, envArg); ok {
			env = append(env, v)
			return true
		}
		return false
	})
	args := append([]string{"node", "--demo", "--demo-stock", "1000000", "--http", a.http, "--gossip", a.gossip, "--remote", "127.0.0.1:0",
		"--fast-failure-detection", "--store", store, "--log-level", "warn",
		// The tests drive a few users hard from one address: the abuse limits have tests of their own.
		"--auth-rate", "0", "--api-rate", "0",
		// Tests confirm payments and ship themselves unless they put the provider and the
		// fulfilment pool in the loop (a later flag wins).
		"--payments", "manual", "--auto-ship=false"}, extra...)
	p := &proc{t: t, cmd: exec.Command(binary, args...), base: "http://" + a.http, addrs: a, logs: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("node %s log:\n%s", a.http, p.logs.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p, nil
			}
		}
		select {
		case <-p.done:
			if strings.Contains(p.logs.String(), "address already in use") {
				return nil, errPortTaken
			}
			return nil, fmt.Errorf("node exited before it was ready:\n%s", p.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("node not ready after 30s:\n%s", p.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop() {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.t.Fatalf("node did not stop on SIGTERM")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		p.t.Fatalf("node exited with %d:\n%s", code, p.logs.String())
	}
}

// client talks to a node's API like any HTTP client.
type client struct {
	base  string
	token string
	http  *http.Client
}

type envelope struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
}

type orderView struct {
	ID      string `json:"id"`
	Status  string `json:"status"`
	Version uint64 `json:"version"`
}

type eventView struct {
	Version        int64  `json:"version"`
	Type           string `json:"type"`
	From           string `json:"from"`
	To             string `json:"to"`
	IdempotencyKey string `json:"idempotency_key"`
}

func login(t testing.TB, base, user string) *client {
	t.Helper()
	c := &client{base: base, http: &http.Client{Timeout: 15 * time.Second}}
	status, env, err := c.do("POST", "/auth/login", "", map[string]string{"username": user, "password": "ordermesh"})
	if err != nil || status != 200 {
		t.Fatalf("login %s: %d %+v %v", user, status, env, err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(env.Data, &tok); err != nil {
		t.Fatal(err)
	}
	c.token = tok.AccessToken
	return c
}

func (c *client) do(method, path, key string, body any) (int, envelope, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequestWithContext(context.Background(), method, c.base+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, envelope{}, err
	}
	defer resp.Body.Close()
	var env envelope
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		return resp.StatusCode, env, fmt.Errorf("decoding %s %s: %w", method, path, err)
	}
	return resp.StatusCode, env, nil
}

func (c *client) order(t testing.TB, id string) orderView {
	t.Helper()
	status, env, err := c.do("GET", "/api/v1/orders/"+id, "", nil)
	if err != nil || status != 200 {
		t.Fatalf("GET order %s: %d %+v %v", id, status, env, err)
	}
	var v orderView
	if err := json.Unmarshal(env.Data, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func (c *client) events(t testing.TB, id string) []eventView {
	t.Helper()
	status, env, err := c.do("GET", "/api/v1/orders/"+id+"/events", "", nil)
	if err != nil || status != 200 {
		t.Fatalf("GET events %s: %d %+v %v", id, status, env, err)
	}
	var data struct {
		Events []eventView `json:"events"`
	}
	if err := json.Unmarshal(env.Data, &data); err != nil {
		t.Fatal(err)
	}
	return data.Events
}

// legal is the transition table as the public API shows it: event type -> from states, to.
var legal = map[string]struct {
	from []string
	to   string
}{
	"OrderCreated":     {[]string{""}, "RESERVING"},
	"StockReserved":    {[]string{"RESERVING"}, "CREATED"},
	"OrderRejected":    {[]string{"RESERVING"}, "REJECTED"},
	"OrderExpired":     {[]string{"CREATED"}, "CLOSED"},
	"PaymentSubmitted": {[]string{"CREATED"}, "PAYING"},
	"PaymentConfirmed": {[]string{"PAYING"}, "PAID"},
	"PaymentFailed":    {[]string{"PAYING"}, "CREATED"},
	"PaymentExpired":   {[]string{"PAYING"}, "CLOSED"},
	"OrderCancelled":   {[]string{"CREATED", "PAYING"}, "CLOSED"},
	"OrderShipped":     {[]string{"PAID"}, "SHIPPED"},
	"OrderDelivered":   {[]string{"SHIPPED"}, "DELIVERED"},
	"OrderRefunded":    {[]string{"PAID", "DELIVERED"}, "REFUNDED"},
}

// checkHistory verifies that events run 1..n and form a valid path through the table.
func checkHistory(t testing.TB, id string, events []eventView) {
	t.Helper()
	state := ""
	for i, e := range events {
		if e.Version != int64(i+1) {
			t.Errorf("order %s: event %d has version %d", id, i, e.Version)
		}
		rule, ok := legal[e.Type]
		if !ok || e.From != state || e.To != rule.to || !contains(rule.from, state) {
			t.Errorf("order %s: event %d %s %s->%s is not legal after %q", id, e.Version, e.Type, e.From, e.To, state)
		}
		state = e.To
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// storeTargets are the stores every process test runs against.
func storeTargets(t *testing.T) map[string]func(t *testing.T) string {
	return map[string]func(t *testing.T) string{
		"embedded": func(t *testing.T) string { return filepath.Join(t.TempDir(), "ordermesh.db") },
		"postgres": func(t *testing.T) string { return postgresURL(t) },
	}
}

var steps = []struct {
	action string
	event  string
	by     string // "shopper" or "operator"
}{
	// A create is answered once its stock is reserved: at the version of StockReserved.
	{"", "StockReserved", "shopper"},
	{"pay", "PaymentSubmitted", "shopper"},
	{"confirm-payment", "PaymentConfirmed", "operator"},
	{"ship", "OrderShipped", "operator"},
	{"deliver", "OrderDelivered", "operator"},
}

type ack struct {
	order   string
	version uint64
	event   string
}

// TestSIGKILLLosesNoAcknowledgedCommand kills a node with SIGKILL during a stream of
// commands, restarts it on the same store, and checks that every command that got a 2xx
// is reflected in the order's state and events, with contiguous versions; commands whose
// answer was lost in the crash are retried with their key and take effect exactly once.
func TestSIGKILLLosesNoAcknowledgedCommand(t *testing.T) {
	for name, store := range storeTargets(t) {
		t.Run(name, func(t *testing.T) {
			dsn := store(t)
			node := startFresh(t, dsn)
			shopper, operator := login(t, node.base, "alice"), login(t, node.base, "olga")

			var mu sync.Mutex
			var acks []ack
			type pending struct {
				order, path, key string
				by               *client
			}
			var lost []pending
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for w := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for n := 0; ; n++ {
						key := fmt.Sprintf("w%d-o%d", w, n)
						id := ""
						for _, s := range steps {
							c, path, body := shopper, "/api/v1/orders", any(map[string]any{"items": []map[string]any{{"sku": "tea-sencha", "qty": 1}}})
							if s.by == "operator" {
								c = operator
							}
							if s.action != "" {
								path, body = "/api/v1/orders/"+id+"/"+s.action, nil
							}
							stepKey := key + "-" + s.event
							status, env, err := c.do("POST", path, stepKey, body)
							if err != nil || status/100 != 2 {
								// The node died (or answered an error): the command may or may not
								// have been applied. Remember it to retry after the restart.
								mu.Lock()
								if s.action != "" {
									lost = append(lost, pending{order: id, path: path, key: stepKey, by: c})
								}
								mu.Unlock()
								return
							}
							var v orderView
							if err := json.Unmarshal(env.Data, &v); err != nil {
								t.Errorf("decoding %s: %v", path, err)
								return
							}
							id = v.ID
							mu.Lock()
							acks = append(acks, ack{v.ID, v.Version, s.event})
							mu.Unlock()
						}
						select {
						case <-stop:
							return
						default:
						}
					}
				}()
			}
			// Let a few hundred commands through, then kill the node mid-stream.
			for {
				mu.Lock()
				n := len(acks)
				mu.Unlock()
				if n >= 300 {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			node.kill()
			close(stop)
			wg.Wait()
			t.Logf("%d commands acknowledged before SIGKILL, %d in flight", len(acks), len(lost))

			node = startMember(t, dsn, node.addrs)
			shopper.base, operator.base = node.base, node.base
			byOrder := map[string][]ack{}
			for _, a := range acks {
				byOrder[a.order] = append(byOrder[a.order], a)
			}
			// Retry what was in flight: each takes effect exactly once.
			for _, p := range lost {
				status, env, err := p.by.do("POST", p.path, p.key, nil)
				if err != nil || status/100 != 2 {
					t.Errorf("retrying %s %s after restart: %d %+v %v", p.path, p.key, status, env, err)
				}
			}
			for id, as := range byOrder {
				events := operator.events(t, id)
				checkHistory(t, id, events)
				for _, a := range as {
					if a.version == 0 || a.version > uint64(len(events)) || events[a.version-1].Type != a.event {
						t.Errorf("order %s: acknowledged %s at version %d is not in its history %+v", id, a.event, a.version, events)
					}
				}
				if v := operator.order(t, id); v.Version != uint64(len(events)) || v.Status != events[len(events)-1].To {
					t.Errorf("order %s: state %+v does not match its %d events", id, v, len(events))
				}
				keys := map[string]int{}
				for _, e := range events {
					keys[e.IdempotencyKey]++
					if keys[e.IdempotencyKey] > 1 {
						t.Errorf("order %s: key %s applied twice", id, e.IdempotencyKey)
					}
				}
			}
		})
	}
}

// TestPaymentDeadlineAcrossPassivationAndRestart: a PAYING order is closed when its 2 s
// deadline passes even though its grain was passivated and the node restarted meanwhile.
func TestPaymentDeadlineAcrossPassivationAndRestart(t *testing.T) {
	for name, store := range storeTargets(t) {
		t.Run(name, func(t *testing.T) {
			dsn := store(t)
			opts := []string{"--payment-timeout", "2s", "--idle-timeout", "200ms", "--sweep-interval", "200ms"}
			node := startFresh(t, dsn, opts...)
			shopper := login(t, node.base, "alice")
			status, env, err := shopper.do("POST", "/api/v1/orders", "deadline-1", map[string]any{"items": []map[string]any{{"sku": "tea-sencha", "qty": 2}}})
			if err != nil || status != 201 {
				t.Fatalf("create: %d %+v %v", status, env, err)
			}
			var v orderView
			_ = json.Unmarshal(env.Data, &v)
			if status, env, err = shopper.do("POST", "/api/v1/orders/"+v.ID+"/pay", "deadline-2", nil); err != nil || status != 200 {
				t.Fatalf("pay: %d %+v %v", status, env, err)
			}
			waitFor(t, 10*time.Second, "the grain to passivate", func() bool { return activeGrains(t, node.base) == 0 })
			node.stop()

			node = startMember(t, dsn, node.addrs, opts...)
			shopper.base = node.base
			waitFor(t, 15*time.Second, "the order to close", func() bool { return shopper.order(t, v.ID).Status == "CLOSED" })
			events := login(t, node.base, "olga").events(t, v.ID)
			checkHistory(t, v.ID, events)
			if len(events) != 4 || events[3].Type != "PaymentExpired" {
				t.Fatalf("history %+v, want created, stock reserved, submitted, expired", events)
			}
		})
	}
}

// waitFor polls until cond holds: it waits for a state, it does not time anything.
func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func activeGrains(t testing.TB, base string) int {
	return int(metric(t, base, "ordermesh_active_grains"))
}
