package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/sqlstore"
)

// dsnEnv names the environment variable that gives the DSN when -dsn
// does not.
const dsnEnv = "EXPERIMENTS_DSN"

// openStore opens the store that c names. The caller closes it. The
// schema must already hold a store at this version: the command reads,
// so it neither creates a store (a mistyped -schema must not create a
// schema and a store in it) nor migrates one (a role that may only
// SELECT runs it). Failures to reach the database later are logged to
// stderr (as JSON lines with -json).
func openStore(ctx context.Context, c common, stderr io.Writer) (*sqlstore.Store, error) {
	dsn, err := c.dataSource()
	if err != nil {
		return nil, err
	}
	if c.schema == "" {
		return nil, usagef("-schema is empty: give a schema name (default public)")
	}
	opts := &slog.HandlerOptions{Level: slog.LevelWarn}
	var handler slog.Handler = slog.NewTextHandler(stderr, opts)
	if c.json {
		handler = slog.NewJSONHandler(stderr, opts)
	}
	s, err := sqlstore.OpenWith(ctx, dsn, sqlstore.WithSchema(c.schema), sqlstore.WithLogger(slog.New(handler)),
		sqlstore.WithMigrate(false))
	switch {
	case errors.Is(err, experiments.ErrInvalid):
		return nil, usagef("-schema %q: %w", c.schema, err)
	case errors.Is(err, sqlstore.ErrSchemaBehind):
		// No schema, or no store in it, is a mistyped -schema.
		if err := checkStore(ctx, dsn, c.schema); err != nil {
			return nil, err
		}
	}
	return s, err
}

// dataSource returns -dsn, or $EXPERIMENTS_DSN, or a usageError.
func (c common) dataSource() (string, error) {
	dsn := c.dsn
	if dsn == "" {
		dsn = os.Getenv(dsnEnv)
	}
	if dsn == "" {
		return "", &usageError{err: errors.New("no database: give -dsn or set " + dsnEnv),
			hint: "Run 'experiments -h' for usage."}
	}
	return dsn, nil
}

// checkStore reports, as a usageError, a schema that does not exist or
// holds no store (no experiments_version table).
func checkStore(ctx context.Context, dsn, schema string) error {
	db, err := sql.Open("postgres", dsn) // lib/pq, registered by sqlstore
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	defer db.Close()
	var hasSchema, hasStore bool
	err = db.QueryRowContext(ctx, `SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1),
		to_regclass(format('%I.experiments_version', $1::text)) IS NOT NULL`, schema).Scan(&hasSchema, &hasStore)
	switch {
	case err != nil:
		return fmt.Errorf("database: %w", err)
	case !hasSchema:
		return usagef("schema %q does not exist (-schema)", schema)
	case !hasStore:
		return usagef("schema %q holds no experiments store (no experiments_version table; -schema)", schema)
	}
	return nil
}

// closeStore closes s, adding its error to *err.
func closeStore(s *sqlstore.Store, err *error) {
	if cerr := s.Close(); cerr != nil {
		*err = errors.Join(*err, fmt.Errorf("closing the store: %w", cerr))
	}
}
