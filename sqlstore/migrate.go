package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"

	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database/postgres"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migrationsTable records which migrations ran, in the store's schema.
const migrationsTable = "experiments_schema_migrations"

// runMigrations creates schema if needed and runs the migrations not yet run,
// forward only. golang-migrate holds a PostgreSQL advisory lock (per
// database, schema and table) meanwhile, so processes that start together
// migrate once. The migrations run on one connection whose search_path is
// schema, reset before the connection goes back to the pool.
func runMigrations(ctx context.Context, db *sqlx.DB, schema string) (err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("sqlstore: migrating schema %q: %w", schema, err)
		}
	}()
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	// CREATE SCHEMA IF NOT EXISTS is not safe against itself: two at once
	// can both find no schema, and one fails on the catalog's unique index.
	// A transaction-scoped advisory lock per schema makes them take turns.
	if err := createSchema(ctx, conn, schema); err != nil {
		conn.Close()
		return err
	}
	if _, err := conn.ExecContext(ctx, "SET search_path TO "+pq.QuoteIdentifier(schema)); err != nil {
		conn.Close()
		return err
	}
	closeConn := conn.Close // the driver's Close, once it has the connection
	defer func() {
		_, resetErr := conn.ExecContext(context.WithoutCancel(ctx), "RESET search_path")
		err = errors.Join(err, resetErr, closeConn())
	}()
	driver, err := postgres.WithConnection(ctx, conn, &postgres.Config{SchemaName: schema, MigrationsTable: migrationsTable})
	if err != nil {
		return err
	}
	closeConn = driver.Close
	source, err := iofs.New(migrations, "migrations")
	if err != nil {
		return err
	}
	m, err := migrate.NewWithInstance("iofs", source, "postgres", driver)
	if err != nil {
		return err
	}
	if err := m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return err
	}
	return nil
}

func createSchema(ctx context.Context, conn *sql.Conn, schema string) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(hashtext('experiments schema ' || $1))", schema); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "CREATE SCHEMA IF NOT EXISTS "+pq.QuoteIdentifier(schema)); err != nil {
		return err
	}
	return tx.Commit()
}
