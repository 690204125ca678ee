package sqlstore_test

import (
	"context"
	"testing"

	"github.com/abkit/experiments/internal/pgtest"
	"github.com/abkit/experiments/sqlstore"
	"github.com/jmoiron/sqlx"
)

func testDSN() string               { return pgtest.DSN() }
func testDB(t testing.TB) *sqlx.DB  { return pgtest.DB(t) }
func newSchema(t testing.TB) string { return pgtest.Schema(t, "exptest_") }

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
