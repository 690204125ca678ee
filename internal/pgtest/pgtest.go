// Package pgtest gives the project's tests the PostgreSQL they run
// against: the database of EXPERIMENTS_TEST_DSN (or the local one), and a
// fresh schema per test, dropped when the test ends.
package pgtest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// DSN is the database the tests use: EXPERIMENTS_TEST_DSN, or the local
// PostgreSQL.
func DSN() string {
	if dsn := os.Getenv("EXPERIMENTS_TEST_DSN"); dsn != "" {
		return dsn
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// DB returns a pool on DSN, closed when the test ends; the test fails at
// once when the database does not answer.
func DB(t testing.TB) *sqlx.DB {
	t.Helper()
	db, err := sqlx.Open("postgres", DSN())
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Ping(); err != nil {
		t.Fatalf("PostgreSQL at %s: %v (set EXPERIMENTS_TEST_DSN)", DSN(), err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Schema returns a fresh schema name starting with prefix (not created),
// dropped with everything in it when the test ends.
func Schema(t testing.TB, prefix string) string {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	schema := prefix + hex.EncodeToString(b)
	db := DB(t)
	t.Cleanup(func() {
		if _, err := db.Exec("DROP SCHEMA IF EXISTS " + pq.QuoteIdentifier(schema) + " CASCADE"); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
	})
	return schema
}
