package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/sqlstore"
	"github.com/jmoiron/sqlx"
)

const migrateUsage = `Usage:
  experiments migrate [-dsn DSN] [-schema S] [-print] [-json]

Brings the store's tables in the schema up to this version of the
program, creating the schema and the store when missing, and prints the
versions before and after ("schema "public": version 2 -> 4"). A schema
already up to date is only read. It needs the privileges of the schema's
owner; the apps and the other commands then need only those the
README's "Roles" list.

-print migrates nothing: it writes the SQL that would run (the embedded
migrations after the schema's version, in one transaction that also
records the new version), to review or to run with psql. It prints
nothing when the schema is up to date.

-json prints {"schema": S, "before": N, "after": M, "wanted": W}, or with
-print {"schema": S, "from": N, "to": W, "sql": "…"}.

A schema migrated by a newer version of the program is refused and left
as it is (exit status 1). The database is -dsn, or $EXPERIMENTS_DSN.
`

type migrateOptions struct {
	common
	print bool
}

func migrateFlags(o *migrateOptions) *flag.FlagSet {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	o.register(fs)
	fs.BoolVar(&o.print, "print", false, "print the SQL that would run instead of running it")
	return fs
}

// migrated is what migrate prints with -json.
type migrated struct {
	Schema string `json:"schema"`
	Before uint   `json:"before"`
	After  uint   `json:"after"`
	Wanted uint   `json:"wanted"` // sqlstore.SchemaVersion()
}

// migrationScript is what migrate -print prints with -json.
type migrationScript struct {
	Schema string `json:"schema"`
	From   uint   `json:"from"`
	To     uint   `json:"to"`
	SQL    string `json:"sql"` // "" when the schema is up to date
}

// migrate runs "experiments migrate".
func migrate(ctx context.Context, g common, args []string, stdout, _ io.Writer) error {
	var o migrateOptions
	fs := migrateFlags(&o)
	if done, err := parse(fs, &o.common, g, args, migrateUsage, stdout); done {
		return err
	}
	dsn, err := o.dataSource()
	if err != nil {
		return err
	}
	if o.schema == "" {
		return usagef("-schema is empty: give a schema name (default public)")
	}
	db, err := sqlx.Open("postgres", dsn)
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	defer db.Close()
	w := bufio.NewWriter(stdout)
	if o.print {
		from, err := sqlstore.Version(ctx, db, o.schema)
		if err != nil {
			return schemaError(o.schema, err)
		}
		script, err := sqlstore.MigrationSQL(o.schema, from)
		if err != nil {
			return err
		}
		if o.json {
			err = writeJSON(w, migrationScript{Schema: o.schema, From: from, To: sqlstore.SchemaVersion(), SQL: script})
		} else {
			_, err = io.WriteString(w, script)
		}
		if err != nil {
			return err
		}
		return w.Flush()
	}
	before, after, err := sqlstore.Migrate(ctx, db, o.schema)
	if err != nil {
		return schemaError(o.schema, err)
	}
	if o.json {
		err = writeJSON(w, migrated{Schema: o.schema, Before: before, After: after, Wanted: sqlstore.SchemaVersion()})
	} else if before == after {
		_, err = fmt.Fprintf(w, "schema %q: version %d, up to date\n", o.schema, after)
	} else {
		_, err = fmt.Fprintf(w, "schema %q: version %d -> %d\n", o.schema, before, after)
	}
	if err != nil {
		return err
	}
	return w.Flush()
}

// schemaError makes a bad schema name a usageError.
func schemaError(schema string, err error) error {
	if errors.Is(err, experiments.ErrInvalid) {
		return usagef("-schema %q: %w", schema, err)
	}
	return err
}
