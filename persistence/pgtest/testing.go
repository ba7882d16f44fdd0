package pgtest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL names the environment variable holding the URL of an existing PostgreSQL
// server for tests; its user must be allowed to create databases.
const EnvURL = "ORDERMESH_TEST_DATABASE_URL"

// shared is the server of this test binary, started on first use.
var shared struct {
	once   sync.Once
	server *Server
	tmp    string
	err    error
	mu     sync.Mutex // serializes CREATE DATABASE
	serial atomic.Int64
}

// URL returns the URL of a new, empty database for t on the server of EnvURL or,
// failing that, on this test binary's throwaway server. Databases created on an EnvURL
// server are dropped when t ends; throwaway servers are removed whole by Main.
func URL(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	admin := os.Getenv(EnvURL)
	if admin == "" {
		shared.once.Do(func() {
			shared.tmp, shared.err = os.MkdirTemp("", "ordermesh-pgtest-")
			if shared.err == nil {
				shared.server, shared.err = Start(ctx, shared.tmp)
			}
		})
		if shared.err != nil {
			t.Fatalf("pgtest: %v", shared.err)
		}
		admin = shared.server.URL()
	}
	name := databaseName(t.Name(), shared.serial.Add(1))
	dbURL, err := withDatabase(admin, name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if err := execAdmin(ctx, admin, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: creating database %s: %v", name, err)
	}
	if os.Getenv(EnvURL) != "" {
		// Registered before the caller's cleanups, so it runs after them (e.g. after the
		// store using the database was closed).
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := execAdmin(ctx, admin, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
				t.Errorf("pgtest: dropping database %s: %v", name, err)
			}
		})
	}
	return dbURL
}

// Main runs the tests of m and then stops and removes the throwaway server, if one was
// started. Use it from TestMain: os.Exit(pgtest.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	if shared.server != nil {
		if err := shared.server.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest:", err)
		}
	}
	if shared.tmp != "" {
		os.RemoveAll(shared.tmp)
	}
	return code
}

func execAdmin(ctx context.Context, adminURL, sql string) error {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		return err
	}
	return nil
}

// databaseName derives a valid, unique database name from a test name.
func databaseName(test string, serial int64) string {
	var b strings.Builder
	b.WriteString("t_")
	for _, r := range strings.ToLower(test) {
		if b.Len() >= 40 {
			break
		}
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	fmt.Fprintf(&b, "_%d_%d", os.Getpid(), serial)
	return b.String()
}

// withDatabase returns adminURL with its database replaced by name.
func withDatabase(adminURL, name string) (string, error) {
	u, err := url.Parse(adminURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("parsing %s: want a postgres:// URL", EnvURL)
	}
	u.Path = "/" + name
	u.RawPath = ""
	return u.String(), nil
}
