package sqlstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/abkit/experiments/sqlstore"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// testDSN is the database the tests use: EXPERIMENTS_TEST_DSN, or the local
// PostgreSQL.
func testDSN() string {
	if dsn := os.Getenv("EXPERIMENTS_TEST_DSN"); dsn != "" {
		return dsn
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// newSchema returns a fresh schema name, dropped with everything in it
// when the test ends.
func newSchema(t testing.TB) string {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	schema := "exptest_" + hex.EncodeToString(b)
	db := testDB(t)
	t.Cleanup(func() {
		if _, err := db.Exec("DROP SCHEMA IF EXISTS " + pq.QuoteIdentifier(schema) + " CASCADE"); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
	})
	return schema
}

// testDB returns a pool on testDSN, closed when the test ends.
func testDB(t testing.TB) *sqlx.DB {
	t.Helper()
	db, err := sqlx.Open("postgres", testDSN())
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Ping(); err != nil {
		t.Fatalf("PostgreSQL at %s: %v (set EXPERIMENTS_TEST_DSN)", testDSN(), err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// openStore opens a Store on a fresh schema of the test database.
func openStore(t testing.TB, opts ...sqlstore.Option) *sqlstore.Store {
	t.Helper()
	return openStoreIn(t, newSchema(t), opts...)
}

// openStoreIn opens a Store on schema, closed when the test ends.
func openStoreIn(t testing.TB, schema string, opts ...sqlstore.Option) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.OpenWith(context.Background(), testDSN(), append([]sqlstore.Option{sqlstore.WithSchema(schema)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}
