// Package pgtest provides real PostgreSQL servers for tests and local tools.
//
// Tests call URL, which returns a fresh, empty database per call. When
// ORDERMESH_TEST_DATABASE_URL is set that database is created on the given server;
// otherwise one throwaway server per test binary is started from the local PostgreSQL
// binaries (initdb and postgres, found on PATH or under /usr/lib/postgresql/*/bin). A
// package using URL must stop that server on exit through its TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
// Programs and integration tests that need their own server call Start.
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is a PostgreSQL server process started by Start.
type Server struct {
	dir    string
	port   int
	cmd    *exec.Cmd
	exited chan struct{} // closed when the server process has exited
	log    string

	stopOnce sync.Once
	stopErr  error
}

// Start runs a PostgreSQL server with its data in dir/data (initialized if needed; an
// existing cluster there is reused) and its log in dir/postgres.log, listening only on a
// free 127.0.0.1 port with trust authentication for the user postgres. Durability
// settings are PostgreSQL's defaults (fsync and synchronous_commit on).
//
// When running as root the server runs as the user nobody, and dir (created if
// needed) is handed to that user: its parent directories must be searchable by it.
// The server gets SIGQUIT when the calling process dies, and lives in its own process
// group. Stop shuts it down.
func Start(ctx context.Context, dir string) (*Server, error) {
	bin, err := findBinDir()
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("starting postgres: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("starting postgres: creating %s: %w", dir, err)
	}
	cred, err := unprivileged()
	if err != nil {
		return nil, err
	}
	if cred != nil {
		if err := chownTree(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, fmt.Errorf("starting postgres: handing %s to uid %d: %w", dir, cred.Uid, err)
		}
	}
	data := filepath.Join(dir, "data")
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"),
			"-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
		initdb.Dir = dir
		initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if out, err := initdb.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("starting postgres: initdb: %w\n%s", err, out)
		}
	}

	// A free port can be taken by someone else before the server binds it: retry.
	for attempt := 1; ; attempt++ {
		s, err := launch(ctx, bin, dir, data, cred)
		if err == nil {
			return s, nil
		}
		if attempt == 3 || ctx.Err() != nil {
			return nil, err
		}
	}
}

// launch starts the postgres process on a free port and waits until it accepts
// connections.
func launch(ctx context.Context, bin, dir, data string, cred *syscall.Credential) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("starting postgres: finding a free port: %w", err)
	}
	logPath := filepath.Join(dir, "postgres.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("starting postgres: opening log: %w", err)
	}
	defer logFile.Close() // the child holds its own descriptor
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "port="+strconv.Itoa(port),
		"-c", "unix_socket_directories="+data,
		"-c", "max_connections=300",
		"-c", "shared_buffers=128MB",
	)
	cmd.Dir = dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// Pdeathsig fires when the thread that forked the child exits, so fork from a
	// locked thread that stays alive until the server has exited. SIGQUIT makes the
	// postmaster stop its backends immediately.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGQUIT}
	s := &Server{dir: dir, port: port, cmd: cmd, exited: make(chan struct{}), log: logPath}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		if err := cmd.Start(); err != nil {
			started <- err
			close(s.exited)
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(s.exited)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("starting postgres: %w", err)
	}
	if err := s.waitReady(ctx); err != nil {
		_ = s.Stop()
		return nil, err
	}
	return s, nil
}

// waitReady polls until the server accepts connections, exits, or 60s pass.
func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(attempt, s.URL())
		cancelAttempt()
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case <-s.exited:
			return fmt.Errorf("starting postgres: server exited: %s", s.logTail())
		case <-ctx.Done():
			return fmt.Errorf("starting postgres: waiting for it to accept connections: %w (last: %v): %s", ctx.Err(), err, s.logTail())
		case <-tick.C:
		}
	}
}

// URL is the connection URL of the server's postgres database, as superuser postgres.
func (s *Server) URL() string {
	return s.DatabaseURL("postgres")
}

// DatabaseURL is the connection URL of the named database on the server.
func (s *Server) DatabaseURL(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, url.PathEscape(name))
}

// PID is the postmaster's process id (its backends are its children).
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Dir is the directory holding the server's data and log.
func (s *Server) Dir() string { return s.dir }

// Stop shuts the server down (fast shutdown: sessions are disconnected, committed data is
// kept) and waits for it to exit, killing its process group after 30 seconds. Later
// calls return the first call's result. Stop does not remove Dir.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		select {
		case <-s.exited:
			return
		default:
		}
		if err := s.cmd.Process.Signal(syscall.SIGINT); err != nil && !errors.Is(err, os.ErrProcessDone) {
			s.stopErr = fmt.Errorf("stopping postgres: %w", err)
		}
		select {
		case <-s.exited:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.exited
			s.stopErr = errors.New("stopping postgres: killed after 30s")
		}
	})
	return s.stopErr
}

func (s *Server) logTail() string {
	b, err := os.ReadFile(s.log)
	if err != nil {
		return err.Error()
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(bytes.TrimSpace(b))
}

// findBinDir returns the directory holding initdb and postgres: the one on PATH, else
// the newest /usr/lib/postgresql/<version>/bin.
func findBinDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Slice(matches, func(i, j int) bool { return versionOf(matches[i]) > versionOf(matches[j]) })
	for _, m := range matches {
		dir := filepath.Dir(m)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	return "", errors.New("starting postgres: no initdb and postgres on PATH or under /usr/lib/postgresql/*/bin")
}

// versionOf extracts the major version from /usr/lib/postgresql/<version>/bin/initdb.
func versionOf(initdb string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(filepath.Dir(initdb))), 64)
	return v
}

// unprivileged returns the credentials to run PostgreSQL with: nil unless we are root,
// which PostgreSQL refuses to run as; then the user nobody.
func unprivileged() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		return nil, fmt.Errorf("starting postgres as root: looking up user nobody: %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("starting postgres as root: uid of nobody: %w", err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("starting postgres as root: gid of nobody: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}

func chownTree(dir string, uid, gid int) error {
	return filepath.Walk(dir, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
