package pgtest_test

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/ordermesh/ordermesh/persistence/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func TestURLGivesSeparateDatabases(t *testing.T) {
	ctx := context.Background()
	a, b := pgtest.URL(t), pgtest.URL(t)
	if a == b {
		t.Fatalf("two calls returned the same database %s", a)
	}
	conn, err := pgx.Connect(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var sync string
	if err := conn.QueryRow(ctx, "SHOW fsync").Scan(&sync); err != nil {
		t.Fatal(err)
	}
	if sync != "on" {
		t.Errorf("fsync = %s, want on", sync)
	}
}

func TestStartAndStop(t *testing.T) {
	if os.Getenv(pgtest.EnvURL) != "" {
		t.Skip("uses the server of " + pgtest.EnvURL)
	}
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "ordermesh-pgtest-start-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	s, err := pgtest.Start(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, s.URL())
	if err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := pgx.Connect(ctx, s.URL()); err == nil {
		t.Fatal("server still accepts connections after Stop")
	}
}
