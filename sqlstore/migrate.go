package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database"
	"github.com/golang-migrate/migrate/v4/database/postgres"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migrationsTable records which migrations ran, in the store's schema.
const migrationsTable = "experiments_schema_migrations"

var (
	// ErrSchemaBehind is wrapped by the errors of Open, OpenWith and New
	// when the schema's tables are older than this version of the package
	// (or missing) and the store may not migrate them (WithMigrate(false)).
	// Migrate, or "experiments migrate", brings them up to date.
	ErrSchemaBehind = errors.New("sqlstore: schema is behind this version of the store")
	// ErrSchemaAhead is wrapped by the errors of Open, OpenWith, New,
	// Migrate and MigrationSQL when the schema was migrated by a newer
	// version of the package: the store refuses it and touches nothing.
	ErrSchemaAhead = errors.New("sqlstore: schema is newer than this version of the store")
	// ErrSchemaDirty is wrapped by the errors of Open, OpenWith, New and
	// Migrate when a migration failed halfway (the migrations table marks
	// it dirty): repair the schema by hand, then fix the table's row.
	ErrSchemaDirty = errors.New("sqlstore: a migration of the schema failed halfway")
)

// SchemaVersion returns the version of the store's tables that this
// version of the package uses: the number of its newest embedded
// migration.
func SchemaVersion() uint { return schemaVersion }

// schemaVersion is the number of the newest embedded migration.
var schemaVersion = func() uint {
	ms, err := embeddedMigrations()
	if err != nil {
		panic(err) // the embedded files are checked by the tests
	}
	return ms[len(ms)-1].version
}()

// migration is one embedded migration file.
type migration struct {
	version uint
	file    string // e.g. "0001_init.up.sql"
	text    string // its SQL
}

// embeddedMigrations returns the embedded migrations by version.
func embeddedMigrations() ([]migration, error) {
	names, err := fs.Glob(migrations, "migrations/*.up.sql")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, name := range names {
		base := path.Base(name)
		digits, _, ok := strings.Cut(base, "_")
		v, err := strconv.ParseUint(digits, 10, 32)
		if !ok || err != nil || v == 0 {
			return nil, fmt.Errorf("sqlstore: migration %q: want a name NNNN_what.up.sql", base)
		}
		b, err := migrations.ReadFile(name)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: uint(v), file: base, text: string(b)})
	}
	if len(out) == 0 {
		return nil, errors.New("sqlstore: no embedded migrations")
	}
	slices.SortFunc(out, func(a, b migration) int { return int(a.version) - int(b.version) })
	return out, nil
}

// Version returns the version of the store's tables in schema, as its
// migrations table records it: 0 when the schema, the table or its row is
// missing (nothing migrated yet). It only reads. The error wraps
// ErrSchemaDirty when a migration failed halfway (the version returned is
// the one it was running), ErrConnect when the database cannot be
// reached, and the driver's error when it cannot be read.
func Version(ctx context.Context, db *sqlx.DB, schema string) (uint, error) {
	if err := checkSchema(schema); err != nil {
		return 0, err
	}
	if err := db.PingContext(ctx); err != nil {
		return 0, connectError("", err)
	}
	v, dirty, err := readVersion(ctx, db, schema)
	if err != nil {
		return 0, fmt.Errorf("sqlstore: reading the version of schema %q: %w", schema, err)
	}
	if dirty {
		return v, dirtyError(schema, v)
	}
	return v, nil
}

// dirtyError is the error for schema marked dirty at version v.
func dirtyError(schema string, v uint) error {
	return fmt.Errorf("%w: schema %q, version %d (table %s)", ErrSchemaDirty, schema, v, migrationsTable)
}

// readVersion reads the migrations table of schema, if there is one.
func readVersion(ctx context.Context, db *sqlx.DB, schema string) (version uint, dirty bool, err error) {
	var table sql.NullString
	// to_regclass is NULL, not an error, for a missing schema or table.
	err = db.GetContext(ctx, &table, "SELECT to_regclass($1)::text",
		pq.QuoteIdentifier(schema)+"."+pq.QuoteIdentifier(migrationsTable))
	if err != nil || !table.Valid {
		return 0, false, err
	}
	var row struct {
		Version int64 `db:"version"`
		Dirty   bool  `db:"dirty"`
	}
	err = db.GetContext(ctx, &row, "SELECT version, dirty FROM "+
		pq.QuoteIdentifier(schema)+"."+pq.QuoteIdentifier(migrationsTable)+" ORDER BY version DESC LIMIT 1")
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	if row.Version < 0 { // golang-migrate's "no version"
		return 0, row.Dirty, nil
	}
	return uint(row.Version), row.Dirty, nil
}

// Migrate brings the store's tables in schema up to SchemaVersion,
// creating the schema if needed, and returns the versions before and
// after. A schema already up to date is only read. It needs the
// privileges of the schema's owner (CREATE on the database, or on the
// schema when it exists); a store's runtime needs far fewer, see Open.
// Processes that migrate the same schema at once take turns: one that
// finds the schema marked dirty waits for a migration running elsewhere
// and reads the mark again once it ends. The error wraps ErrSchemaAhead
// when the schema is newer than this package (and nothing is changed),
// ErrSchemaDirty after a failed migration,
// ErrConnect when the database cannot be reached.
func Migrate(ctx context.Context, db *sqlx.DB, schema string) (before, after uint, err error) {
	before, err = versionAfterMigration(ctx, db, schema)
	if err != nil {
		return before, before, err
	}
	if before > schemaVersion {
		return before, before, aheadError(schema, before)
	}
	if before == schemaVersion {
		return before, before, nil
	}
	if err := runMigrations(ctx, db, schema); err != nil {
		if d, ok := errors.AsType[migrate.ErrDirty](err); ok {
			return before, before, dirtyError(schema, uint(max(d.Version, 0)))
		}
		return before, before, err
	}
	after, err = Version(ctx, db, schema)
	return before, after, err
}

// versionAfterMigration is Version, but for a schema marked dirty: the
// mark may be that of a migration running now in another process, as
// golang-migrate marks the version dirty while it runs one. So it waits
// for the lock golang-migrate holds meanwhile, as a transaction-scoped
// advisory lock, which needs no privilege and ends with the transaction,
// and reads the version again: a mark still there is a failed migration.
func versionAfterMigration(ctx context.Context, db *sqlx.DB, schema string) (uint, error) {
	v, err := Version(ctx, db, schema)
	if !errors.Is(err, ErrSchemaDirty) {
		return v, err
	}
	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		return v, err
	}
	defer tx.Rollback()
	var name string
	if err := tx.GetContext(ctx, &name, "SELECT current_database()"); err != nil {
		return v, err
	}
	lock, err := database.GenerateAdvisoryLockId(name, schema, migrationsTable) // golang-migrate's lock
	if err != nil {
		return v, err
	}
	if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", lock); err != nil {
		return v, fmt.Errorf("sqlstore: waiting for a migration of schema %q: %w", schema, err)
	}
	if err := tx.Rollback(); err != nil {
		return v, err
	}
	return Version(ctx, db, schema)
}

// aheadError is the error for a schema at version v > schemaVersion.
func aheadError(schema string, v uint) error {
	return fmt.Errorf("%w: schema %q is at version %d, this store wants %d; refusing to touch it (upgrade the program)",
		ErrSchemaAhead, schema, v, schemaVersion)
}

// prepareSchema checks the version of schema and migrates it when it is
// behind and migrate is set: a schema already up to date is only read,
// so that a role without CREATE can open it.
func prepareSchema(ctx context.Context, db *sqlx.DB, schema string, migrate bool) error {
	v, err := versionAfterMigration(ctx, db, schema)
	switch {
	case err != nil:
		return err
	case v == schemaVersion:
		return nil
	case v > schemaVersion:
		return aheadError(schema, v)
	case !migrate:
		return fmt.Errorf("%w: schema %q is at version %d (%s), this store wants %d; migrate it (Migrate, or experiments migrate)",
			ErrSchemaBehind, schema, v, describeVersion(v), schemaVersion)
	}
	_, _, err = Migrate(ctx, db, schema)
	return err
}

// describeVersion says what version v of a schema means.
func describeVersion(v uint) string {
	if v == 0 {
		return "no " + migrationsTable + " row: never migrated"
	}
	return "migrated by an older version"
}

// MigrationSQL returns the SQL that Migrate would run to bring schema
// from version from (0: nothing migrated yet) to SchemaVersion, as one
// transaction a database administrator can review and run (with psql -1
// or as it is): it creates the schema if missing, runs each embedded
// migration with search_path set to the schema, and records the version
// in the migrations table as Migrate does, so that stores then open the
// schema without migrating. From SchemaVersion on, it returns "".
// Version gives from. The error wraps ErrSchemaAhead when from is newer
// than this package, experiments.ErrInvalid for a bad schema name.
func MigrationSQL(schema string, from uint) (string, error) {
	return migrationSQL(schema, from, schemaVersion)
}

// migrationSQL is MigrationSQL up to version to.
func migrationSQL(schema string, from, to uint) (string, error) {
	if err := checkSchema(schema); err != nil {
		return "", err
	}
	if from > schemaVersion {
		return "", aheadError(schema, from)
	}
	if from >= to {
		return "", nil
	}
	ms, err := embeddedMigrations()
	if err != nil {
		return "", err
	}
	table := pq.QuoteIdentifier(schema) + "." + pq.QuoteIdentifier(migrationsTable)
	var b strings.Builder
	b.WriteString("-- experiments store, schema " + pq.QuoteIdentifier(schema) + ": from version " +
		strconv.Itoa(int(from)) + " to " + strconv.Itoa(int(to)) + "\n")
	b.WriteString("BEGIN;\n")
	b.WriteString("CREATE SCHEMA IF NOT EXISTS " + pq.QuoteIdentifier(schema) + ";\n")
	b.WriteString("SET LOCAL search_path TO " + pq.QuoteIdentifier(schema) + ";\n")
	b.WriteString("CREATE TABLE IF NOT EXISTS " + table + " (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL);\n")
	for _, m := range ms {
		if m.version <= from || m.version > to {
			continue
		}
		b.WriteString("\n-- " + m.file + "\n")
		b.WriteString(strings.TrimRight(m.text, "\n") + "\n")
	}
	b.WriteString("\nTRUNCATE " + table + ";\n")
	b.WriteString("INSERT INTO " + table + " (version, dirty) VALUES (" + strconv.Itoa(int(to)) + ", false);\n")
	b.WriteString("COMMIT;\n")
	return b.String(), nil
}

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
