// Package pgtest gives the project's tests the PostgreSQL they run
// against: the database of EXPERIMENTS_TEST_DSN (or the local one), and a
// fresh schema per test, dropped when the test ends.
package pgtest

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
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

// Role creates a login role named prefix and random hex (the database
// trusts local connections, as for its other users), dropped with its
// privileges when the test ends, and returns its name and a DSN that
// connects as it to DSN's database.
func Role(t testing.TB, prefix string) (name, dsn string) {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	name = prefix + hex.EncodeToString(b)
	db := DB(t)
	if _, err := db.Exec("CREATE ROLE " + pq.QuoteIdentifier(name) + " LOGIN"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// DROP OWNED revokes its privileges in this database, where all are.
		if _, err := db.Exec("DROP OWNED BY " + pq.QuoteIdentifier(name)); err != nil {
			t.Errorf("revoking the privileges of %s: %v", name, err)
		}
		if _, err := db.Exec("DROP ROLE " + pq.QuoteIdentifier(name)); err != nil {
			t.Errorf("dropping role %s: %v", name, err)
		}
	})
	u, err := url.Parse(DSN())
	if err != nil {
		t.Fatalf("EXPERIMENTS_TEST_DSN: want a postgres:// URL to connect as another role: %v", err)
	}
	u.User = url.User(name)
	return name, u.String()
}

// Grants returns the GRANT block of the README at readme (a ```sql block
// of GRANT statements to readmeRole, experiments_reader or
// experiments_app) for schema and role instead of the README's schema
// experiments and readmeRole, and grants them. The README's grants are
// the ones the tests run.
func Grants(t testing.TB, readme, readmeRole, schema, role string) string {
	t.Helper()
	text, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	var block string
	for _, m := range regexp.MustCompile("(?s)```sql\n(.*?)```").FindAllStringSubmatch(string(text), -1) {
		if strings.HasPrefix(strings.TrimSpace(m[1]), "GRANT") && strings.Contains(m[1], " TO "+readmeRole+";") {
			if block != "" {
				t.Fatalf("%s has two GRANT blocks for %s", readme, readmeRole)
			}
			block = m[1]
		}
	}
	if block == "" {
		t.Fatalf("%s has no GRANT block for %s", readme, readmeRole)
	}
	block = regexp.MustCompile(`\b`+readmeRole+`\b`).ReplaceAllString(block, pq.QuoteIdentifier(role))
	block = regexp.MustCompile(`\bexperiments\b`).ReplaceAllString(block, pq.QuoteIdentifier(schema))
	if _, err := DB(t).Exec(block); err != nil {
		t.Fatalf("the README's grants: %v\n%s", err, block)
	}
	return block
}

// UnusedAddr returns a loopback host:port that nothing listens on: where
// no PostgreSQL answers, or where a program under test may listen.
func UnusedAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
