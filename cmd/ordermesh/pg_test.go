package main

import (
	"testing"

	"github.com/ordermesh/ordermesh/persistence/pgtest"
)

// runTests runs the tests and then stops the throwaway PostgreSQL, if one was started.
func runTests(m *testing.M) int { return pgtest.Main(m) }

// postgresURL is a fresh database on a real PostgreSQL server.
func postgresURL(t testing.TB) string { return pgtest.URL(t) }
