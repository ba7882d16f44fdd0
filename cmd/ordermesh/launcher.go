package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ordermesh/ordermesh/persistence/pgtest"
)

// launcher runs ordermesh processes on this machine for `ordermesh bench`: a local
// cluster whose nodes it can kill, add and drain (it is the bench's chaos driver), or a
// baseline service. Every child is this same binary.
type launcher struct {
	bin    string
	store  string
	logDir string
	extra  []string // appended to every child's arguments (nodes and baseline), e.g. --payment-timeout; see withWorkDefaults

	mu    sync.Mutex
	nodes []*child // in the order the bench knows them; stopped ones stay in place
}

// child is one process.
type child struct {
	name   string // node-<i> or baseline
	cmd    *exec.Cmd
	base   string // http://host:port
	gossip string
	done   chan struct{}
}

func newLauncher(store, logDir string, extra ...string) (*launcher, error) {
	bin, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding the ordermesh binary: %w", err)
	}
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	return &launcher{bin: bin, store: store, logDir: logDir, extra: withWorkDefaults(extra)}, nil
}

// withWorkDefaults returns extra, with "--payments manual --auto-ship=false" in front when it
// does not name a --payments of its own: the children run with --demo, which would turn
// on the simulated provider and the fulfilment pool, while a bench that confirms and ships
// itself (every scenario but --provider) needs both off.
func withWorkDefaults(extra []string) []string {
	if slices.Contains(extra, "--payments") {
		return extra
	}
	return append([]string{"--payments", "manual", "--auto-ship=false"}, extra...)
}

// startCluster starts n nodes, the first one alone and the others joining it.
func (l *launcher) startCluster(ctx context.Context, n int) ([]string, error) {
	var bases []string
	for range n {
		base, err := l.Add(ctx)
		if err != nil {
			return nil, err
		}
		bases = append(bases, base)
	}
	return bases, nil
}

// Add starts a node that joins the cluster and returns its base URL (bench.ChaosDriver).
func (l *launcher) Add(ctx context.Context) (string, error) {
	l.mu.Lock()
	var join []string
	for _, c := range l.nodes {
		if c.alive() {
			join = append(join, c.gossip)
		}
	}
	idx := len(l.nodes)
	l.mu.Unlock()
	for attempt := 0; attempt < 5; attempt++ {
		httpAddr, gossip := freeLocalAddr(), freeLocalAddr()
		if httpAddr == "" || gossip == "" {
			return "", errors.New("no free port")
		}
		args := []string{"node", "--demo", "--http", httpAddr, "--gossip", gossip, "--remote", "127.0.0.1:0",
			"--store", l.store, "--log-level", "warn",
			// A benchmark drives few users from one address as fast as it can.
			"--auth-rate", "0", "--api-rate", "0"}
		if len(join) > 0 {
			args = append(args, "--join", strings.Join(join, ","))
		}
		args = append(args, l.extra...)
		c, err := l.spawn(ctx, fmt.Sprintf("node-%d", idx), "http://"+httpAddr, args)
		if errors.Is(err, errPortInUse) {
			continue
		}
		if err != nil {
			return "", err
		}
		c.gossip = gossip
		l.mu.Lock()
		l.nodes = append(l.nodes, c)
		l.mu.Unlock()
		return c.base, nil
	}
	return "", errors.New("no free ports after 5 tries")
}

// startBaseline starts the classic stateless service and returns its base URL.
func (l *launcher) startBaseline(ctx context.Context) (string, error) {
	for attempt := 0; attempt < 5; attempt++ {
		httpAddr := freeLocalAddr()
		args := []string{"baseline", "--demo", "--http", httpAddr, "--store", l.store, "--log-level", "warn"}
		args = append(args, l.extra...)
		c, err := l.spawn(ctx, "baseline", "http://"+httpAddr, args)
		if errors.Is(err, errPortInUse) {
			continue
		}
		if err != nil {
			return "", err
		}
		l.mu.Lock()
		l.nodes = append(l.nodes, c)
		l.mu.Unlock()
		return c.base, nil
	}
	return "", errors.New("no free ports after 5 tries")
}

var errPortInUse = errors.New("address already in use")

func (l *launcher) spawn(ctx context.Context, name, base string, args []string) (*child, error) {
	logPath := filepath.Join(l.logDir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	c := &child{name: name, cmd: exec.Command(l.bin, args...), base: base, done: make(chan struct{})}
	c.cmd.Stdout, c.cmd.Stderr = logFile, logFile
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() { _ = c.cmd.Wait(); logFile.Close(); close(c.done) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return c, nil
			}
		}
		select {
		case <-c.done:
			b, _ := os.ReadFile(logPath)
			if strings.Contains(string(b), "address already in use") {
				return nil, errPortInUse
			}
			return nil, fmt.Errorf("%s exited before it was ready; its log (%s):\n%s", name, logPath, b)
		case <-ctx.Done():
			c.kill()
			return nil, ctx.Err()
		default:
		}
		if time.Now().After(deadline) {
			c.kill()
			return nil, fmt.Errorf("%s not ready after 60s; see %s", name, logPath)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (l *launcher) node(i int) (*child, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if i < 0 || i >= len(l.nodes) {
		return nil, fmt.Errorf("no node %d (there are %d)", i, len(l.nodes))
	}
	return l.nodes[i], nil
}

// Kill stops node i with SIGKILL (bench.ChaosDriver).
func (l *launcher) Kill(_ context.Context, i int) error {
	c, err := l.node(i)
	if err != nil {
		return err
	}
	c.kill()
	return nil
}

// Drain sends node i SIGTERM, which drains it, and waits for it to exit (bench.ChaosDriver).
func (l *launcher) Drain(ctx context.Context, i int) error {
	c, err := l.node(i)
	if err != nil {
		return err
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if code := c.cmd.ProcessState.ExitCode(); code != 0 {
		return fmt.Errorf("node %d exited %d after the drain", i, code)
	}
	return nil
}

// stop ends every child (SIGTERM, then SIGKILL after a grace period).
func (l *launcher) stop() {
	l.mu.Lock()
	nodes := append([]*child{}, l.nodes...)
	l.nodes = nil
	l.mu.Unlock()
	for _, c := range nodes {
		if c.alive() {
			_ = c.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, c := range nodes {
		select {
		case <-c.done:
		case <-time.After(15 * time.Second):
			c.kill()
		}
	}
}

func (c *child) alive() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

func (c *child) kill() {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
}

// freeLocalAddr returns a 127.0.0.1 address whose port was free a moment ago; callers retry
// if someone takes it first.
func freeLocalAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return ""
	}
	defer ln.Close()
	return ln.Addr().String()
}

// targets are the base URLs of the children, in order.
func (l *launcher) targets() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, len(l.nodes))
	for i, c := range l.nodes {
		out[i] = c.base
	}
	return out
}

// startLocal starts an n-node cluster on store (a throwaway PostgreSQL when empty) for
// `ordermesh bench run --local n`; extra is appended to every node's arguments. stop ends
// the nodes and the server. pg is the throwaway server, nil when store was given.
func startLocal(ctx context.Context, n int, store, out string, extra ...string) (l *launcher, pg *pgtest.Server, stop func(), err error) {
	var cleanup []func()
	stopAll := func() {
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
	}
	if store == "" {
		dir, err := os.MkdirTemp("", "ordermesh-bench-pg-")
		if err != nil {
			return nil, nil, nil, err
		}
		cleanup = append(cleanup, func() { os.RemoveAll(dir) })
		fmt.Fprintln(os.Stderr, "starting a throwaway PostgreSQL in", dir)
		srv, err := pgtest.Start(ctx, dir)
		if err != nil {
			stopAll()
			return nil, nil, nil, fmt.Errorf("starting PostgreSQL (or pass --store): %w", err)
		}
		cleanup = append(cleanup, func() { _ = srv.Stop() })
		store, pg = srv.URL(), srv
	}
	if out == "" {
		out = os.TempDir()
	}
	l, err = newLauncher(store, filepath.Join(out, "logs"), extra...)
	if err != nil {
		stopAll()
		return nil, nil, nil, err
	}
	cleanup = append(cleanup, l.stop)
	if _, err := l.startCluster(ctx, n); err != nil {
		stopAll()
		return nil, nil, nil, err
	}
	return l, pg, stopAll, nil
}
