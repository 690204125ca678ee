package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/internal/pgtest"
	"github.com/abkit/experiments/results"
	"github.com/abkit/experiments/sqlstore"
	"github.com/golang-migrate/migrate/v4/database"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// isPermissionDenied says err is PostgreSQL's insufficient_privilege.
func isPermissionDenied(err error) bool {
	e, ok := errors.AsType[*pq.Error](err)
	return ok && e.Code == "42501"
}

// A schema migrated by its owner opens for a role granted only what the
// README says, without WithMigrate(false): a SELECT-only role decides,
// and fails when it writes; the app's role does everything the store
// does at run time.
func TestOpenWithLeastPrivilege(t *testing.T) {
	ctx := context.Background()
	schema := newSchema(t)
	owner := openStoreIn(t, schema)
	flags := experiments.NewFlagSet() // the test may run more than once in a process
	plain := flags.NewFlag("privtest", "plain")
	sticky := flags.NewFlag("privtest", "sticky", experiments.WithStickyBuckets(true))
	for _, f := range []*experiments.ExperimentFlag{plain, sticky} {
		if err := owner.SetFlag(ctx, f.Name(), experiments.On()); err != nil {
			t.Fatal(err)
		}
	}
	if err := owner.SetGoal(ctx, experiments.Goal{Name: "enrolled", Once: true}); err != nil {
		t.Fatal(err)
	}
	if err := owner.Close(); err != nil {
		t.Fatal(err)
	}
	reader, readerDSN := pgtest.Role(t, "exptest_reader_")
	app, appDSN := pgtest.Role(t, "exptest_app_")
	pgtest.Grants(t, "../README.md", "experiments_reader", schema, reader)
	pgtest.Grants(t, "../README.md", "experiments_app", schema, app)
	open := func(t *testing.T, dsn string) *sqlstore.Store {
		t.Helper()
		s, err := sqlstore.OpenWith(ctx, dsn, sqlstore.WithSchema(schema), sqlstore.WithPollInterval(time.Hour),
			sqlstore.WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return s
	}
	rs := open(t, readerDSN)

	t.Run("ok, the reader decides, reads results and sees the schema's version", func(t *testing.T) {
		x := experiments.New(experiments.Config{Store: rs, Logger: slog.New(slog.DiscardHandler)})
		if d := plain.Decide(x.NewContext(ctx, experiments.User{ID: "r1"}), "course-v1:P+Q+R"); d.Reason != experiments.ReasonHashed || d.Err != nil {
			t.Errorf("decision %+v, want hashed", d)
		}
		if _, err := rs.Experiments(ctx); err != nil {
			t.Errorf("Experiments: %v", err)
		}
		if v, err := sqlstore.Version(ctx, rs.DB(), schema); err != nil || v != sqlstore.SchemaVersion() {
			t.Errorf("Version: %d, %v; want %d", v, err, sqlstore.SchemaVersion())
		}
		var bucket int
		if err := rs.DB().Get(&bucket, "SELECT "+pq.QuoteIdentifier(schema)+".experiments_bucket('a.b', '0', 100)"); err != nil || bucket != 39 {
			t.Errorf("experiments_bucket: %d, %v; want 39", bucket, err)
		}
	})
	t.Run("nok, the reader's writes fail with permission denied", func(t *testing.T) {
		for name, err := range map[string]error{
			"SetFlag":    rs.SetFlag(ctx, plain.Name(), experiments.Off()),
			"SetGoal":    rs.SetGoal(ctx, experiments.Goal{Name: "other"}),
			"DeleteFlag": rs.DeleteFlag(ctx, plain.Name()),
		} {
			if !isPermissionDenied(err) {
				t.Errorf("%s: %v, want permission denied", name, err)
			}
		}
	})

	as := open(t, appDSN)
	t.Run("ok, the app's role writes everything the store writes, and other stores hear of it", func(t *testing.T) {
		for name, err := range map[string]error{
			"SetFlag":            as.SetFlag(ctx, "privtest.other", experiments.Rule{Percent: 10}),
			"SetCourseOverride":  as.SetCourseOverride(ctx, plain.Name(), "course-v1:P+Q+R", experiments.ForceOn),
			"SetOrgOverride":     as.SetOrgOverride(ctx, plain.Name(), "P", experiments.ForceOff),
			"SetExperimentValue": as.SetExperimentValue(ctx, 7, experiments.EnrollmentStart, "2026-01-01"),
			"SetEnrollment":      as.SetEnrollment(ctx, "a1", "course-v1:P+Q+R", time.Now()),
			"SetGoal":            as.SetGoal(ctx, experiments.Goal{Name: "purchase", Value: experiments.ValueSum}),
			"SetExperimentMeta":  as.SetExperimentMeta(ctx, plain.Name(), experiments.ExperimentMeta{Notes: "least privilege"}),
		} {
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
		if err := as.SetEnrollment(ctx, "a1", "course-v1:P+Q+R", time.Now()); err != nil { // the row exists: an update
			t.Errorf("SetEnrollment again: %v", err)
		}
		if err := as.DeleteFlag(ctx, "privtest.other"); err != nil {
			t.Errorf("DeleteFlag: %v", err)
		}
		if _, ok, err := as.Enrollment(ctx, "a1", "course-v1:P+Q+R"); !ok || err != nil {
			t.Errorf("Enrollment: %v, %v", ok, err)
		}
		if h, err := as.History(ctx, experiments.HistoryQuery{Flag: plain.Name()}); err != nil || len(h) == 0 {
			t.Errorf("History: %d changes, %v", len(h), err)
		}
		// The reader heard the app's NOTIFY (its poll interval is an hour).
		deadline := time.Now().Add(5 * time.Second)
		for {
			snap, _ := rs.Snapshot(ctx)
			if snap.Data().Meta[plain.Name()].Notes == "least privilege" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the reader's store did not reload within 5 s of the app's writes")
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	t.Run("ok, the app's role records exposures, conversions, events and sticky buckets", func(t *testing.T) {
		if err := as.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		tracker := as.NewTracker()
		x := experiments.New(experiments.Config{Store: as, Recorder: as, Tracker: tracker, Logger: slog.New(slog.DiscardHandler)})
		for i := range 20 {
			rctx := x.NewContext(ctx, experiments.User{ID: fmt.Sprintf("u%d", i)})
			for _, f := range []*experiments.ExperimentFlag{plain, sticky} {
				if d := f.Decide(rctx, ""); d.Err != nil || d.Reason != experiments.ReasonHashed {
					t.Fatalf("user %d, %s: decision %+v", i, f.Name(), d)
				}
			}
			if err := experiments.Convert(rctx, "enrolled"); err != nil {
				t.Fatal(err)
			}
		}
		if d := sticky.Decide(x.NewContext(ctx, experiments.User{ID: "u0"}), ""); d.Reason != experiments.ReasonSticky || d.Err != nil {
			t.Errorf("second decision of a sticky flag: %+v, want the remembered bucket", d)
		}
		if err := as.Flush(ctx); err != nil {
			t.Errorf("Flush: %v", err)
		}
		if err := tracker.Close(ctx); err != nil {
			t.Errorf("tracker Close: %v", err)
		}
		// 20 users × 2 flags, and u0's sticky decision in a request of its
		// own (no session: tracked again).
		st := as.RecorderStats()
		if st.Exposures.Written != 41 || st.Conversions.Written != 20 || st.Exposures.Dropped+st.Conversions.Dropped != 0 {
			t.Errorf("recorder: %+v, want 41 exposures and 20 conversions written", st)
		}
		if ts := tracker.Stats(); ts.Written != 41 || ts.Dropped != 0 {
			t.Errorf("tracker: %+v, want 41 events written", ts)
		}
		snap, _ := as.Snapshot(ctx)
		r, err := results.Build(ctx, as, results.Query{Experiment: results.Experiment{Flag: plain.Name()}, Goal: snap.Data().Goals["enrolled"]})
		var participants int64
		for _, b := range r.Buckets {
			participants += b.Participants
		}
		if err != nil || participants != 20 {
			t.Errorf("results: %d participants, %v; want 20", participants, err)
		}
		// The reader reads them too.
		if _, err := results.Build(ctx, rs, results.Query{Experiment: results.Experiment{Flag: plain.Name()}, Goal: snap.Data().Goals["enrolled"]}); err != nil {
			t.Errorf("results as the reader: %v", err)
		}
	})
	// Last, as it breaks the schema: a role that may not migrate is told
	// of a failed migration as the owner is, not refused a migration.
	t.Run("nok, a failed migration is reported to the reader as ErrSchemaDirty", func(t *testing.T) {
		if _, err := testDB(t).Exec("UPDATE " + pq.QuoteIdentifier(schema) + ".experiments_schema_migrations SET dirty = true"); err != nil {
			t.Fatal(err)
		}
		_, err := sqlstore.OpenWith(ctx, readerDSN, sqlstore.WithSchema(schema))
		if !errors.Is(err, sqlstore.ErrSchemaDirty) {
			t.Errorf("Open as the reader: %v, want ErrSchemaDirty", err)
		}
	})
}

// migrateTo runs the embedded migrations up to version to in schema, as
// MigrationSQL would print them.
func migrateTo(t *testing.T, schema string, to uint) {
	t.Helper()
	q, err := sqlstore.MigrationSQLTo(schema, 0, to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := testDB(t).Exec(q); err != nil {
		t.Fatalf("migrating to %d: %v", to, err)
	}
}

func TestOpenChecksTheSchemaVersion(t *testing.T) {
	ctx := context.Background()
	want := sqlstore.SchemaVersion()
	if want < 4 {
		t.Fatalf("SchemaVersion %d, want at least 4 (the migrations embedded)", want)
	}
	noMigrate := []sqlstore.Option{sqlstore.WithMigrate(false)}
	tableExists := func(schema, table string) bool {
		var ok bool
		if err := testDB(t).Get(&ok, "SELECT to_regclass($1) IS NOT NULL", pq.QuoteIdentifier(schema)+"."+table); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	t.Run("nok, without migrations a missing schema is behind, and is not created", func(t *testing.T) {
		schema := newSchema(t)
		_, err := sqlstore.OpenWith(ctx, testDSN(), append(noMigrate, sqlstore.WithSchema(schema))...)
		wantMsg := fmt.Sprintf("schema %q is at version 0 (no experiments_schema_migrations row: never migrated), this store wants %d", schema, want)
		if !errors.Is(err, sqlstore.ErrSchemaBehind) || !strings.Contains(fmt.Sprint(err), wantMsg) {
			t.Errorf("Open: %v, want ErrSchemaBehind and %q", err, wantMsg)
		}
		var n int
		if err := testDB(t).Get(&n, "SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema); err != nil || n != 0 {
			t.Errorf("schema created (%d, %v)", n, err)
		}
	})
	t.Run("nok, without migrations a schema at version 2 is behind, and stays there", func(t *testing.T) {
		schema := newSchema(t)
		migrateTo(t, schema, 2)
		_, err := sqlstore.OpenWith(ctx, testDSN(), append(noMigrate, sqlstore.WithSchema(schema))...)
		wantMsg := fmt.Sprintf("schema %q is at version 2 (migrated by an older version), this store wants %d", schema, want)
		if !errors.Is(err, sqlstore.ErrSchemaBehind) || !strings.Contains(fmt.Sprint(err), wantMsg) {
			t.Errorf("Open: %v, want ErrSchemaBehind and %q", err, wantMsg)
		}
		if v, err := sqlstore.Version(ctx, testDB(t), schema); v != 2 || err != nil || tableExists(schema, "experiments_meta") {
			t.Errorf("version %d (%v), experiments_meta there: %v; want 2, no meta table", v, err, tableExists(schema, "experiments_meta"))
		}
	})
	t.Run("ok, by default a schema at version 2 is migrated", func(t *testing.T) {
		schema := newSchema(t)
		migrateTo(t, schema, 2)
		openStoreIn(t, schema)
		if v, err := sqlstore.Version(ctx, testDB(t), schema); v != want || err != nil || !tableExists(schema, "experiments_assignments") {
			t.Errorf("version %d (%v), want %d and every table", v, err, want)
		}
	})
	t.Run("ok, without migrations a migrated schema opens", func(t *testing.T) {
		schema := newSchema(t)
		openStoreIn(t, schema).Close()
		openStoreIn(t, schema, noMigrate...)
	})
	t.Run("nok, a schema newer than the store is refused and left alone", func(t *testing.T) {
		schema := newSchema(t)
		openStoreIn(t, schema).Close()
		table := pq.QuoteIdentifier(schema) + ".experiments_schema_migrations"
		if _, err := testDB(t).Exec("UPDATE "+table+" SET version = $1", want+1); err != nil {
			t.Fatal(err)
		}
		wantMsg := fmt.Sprintf("schema %q is at version %d, this store wants %d", schema, want+1, want)
		for _, opts := range [][]sqlstore.Option{nil, noMigrate} {
			_, err := sqlstore.OpenWith(ctx, testDSN(), append(opts, sqlstore.WithSchema(schema))...)
			if !errors.Is(err, sqlstore.ErrSchemaAhead) || !strings.Contains(fmt.Sprint(err), wantMsg) {
				t.Errorf("Open %d options: %v, want ErrSchemaAhead and %q", len(opts), err, wantMsg)
			}
		}
		if _, _, err := sqlstore.Migrate(ctx, testDB(t), schema); !errors.Is(err, sqlstore.ErrSchemaAhead) {
			t.Errorf("Migrate: %v, want ErrSchemaAhead", err)
		}
		if _, err := sqlstore.MigrationSQL(schema, want+1); !errors.Is(err, sqlstore.ErrSchemaAhead) {
			t.Errorf("MigrationSQL: %v, want ErrSchemaAhead", err)
		}
		var rows []struct {
			Version int64 `db:"version"`
			Dirty   bool  `db:"dirty"`
		}
		if err := testDB(t).Select(&rows, "SELECT version, dirty FROM "+table); err != nil || len(rows) != 1 || rows[0].Version != int64(want+1) || rows[0].Dirty {
			t.Errorf("migrations table %+v (%v), want it untouched", rows, err)
		}
	})
	t.Run("nok, a migration that failed halfway is reported", func(t *testing.T) {
		schema := newSchema(t)
		openStoreIn(t, schema).Close()
		if _, err := testDB(t).Exec("UPDATE " + pq.QuoteIdentifier(schema) + ".experiments_schema_migrations SET dirty = true"); err != nil {
			t.Fatal(err)
		}
		_, err := sqlstore.OpenWith(ctx, testDSN(), sqlstore.WithSchema(schema))
		if !errors.Is(err, sqlstore.ErrSchemaDirty) || !strings.Contains(fmt.Sprint(err), fmt.Sprintf("schema %q, version %d", schema, want)) {
			t.Errorf("Open: %v, want ErrSchemaDirty naming the schema and version", err)
		}
	})
}

func TestMigrate(t *testing.T) {
	ctx := context.Background()
	db := testDB(t)
	schema := newSchema(t)
	if before, after, err := sqlstore.Migrate(ctx, db, schema); before != 0 || after != sqlstore.SchemaVersion() || err != nil {
		t.Errorf("Migrate a new schema: %d → %d, %v; want 0 → %d", before, after, err, sqlstore.SchemaVersion())
	}
	if before, after, err := sqlstore.Migrate(ctx, db, schema); before != after || after != sqlstore.SchemaVersion() || err != nil {
		t.Errorf("Migrate again: %d → %d, %v; want no change", before, after, err)
	}
	if _, _, err := sqlstore.Migrate(ctx, db, ""); !errors.Is(err, experiments.ErrInvalid) {
		t.Errorf("Migrate schema \"\": %v, want ErrInvalid", err)
	}
}

// The printed SQL, run as it is, makes the same tables as Migrate and
// records the version, so that a store opens it without migrating.
func TestMigrationSQL(t *testing.T) {
	ctx := context.Background()
	db := testDB(t)
	printed, migrated := newSchema(t), newSchema(t)
	q, err := sqlstore.MigrationSQL(printed, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"BEGIN;\n", "CREATE SCHEMA IF NOT EXISTS " + pq.QuoteIdentifier(printed), "-- 0001_init.up.sql\n",
		"CREATE FUNCTION experiments_bucket", fmt.Sprintf("VALUES (%d, false);\nCOMMIT;\n", sqlstore.SchemaVersion())} {
		if !strings.Contains(q, want) {
			t.Errorf("MigrationSQL lacks %q:\n%s", want, q)
		}
	}
	if _, err := db.Exec(q); err != nil {
		t.Fatalf("running the printed SQL: %v", err)
	}
	if _, _, err := sqlstore.Migrate(ctx, db, migrated); err != nil {
		t.Fatal(err)
	}
	columns := func(schema string) string {
		var cols []string
		err := db.Select(&cols, `SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '')
			FROM information_schema.columns WHERE table_schema = $1 ORDER BY 1`, schema)
		if err != nil {
			t.Fatal(err)
		}
		return strings.ReplaceAll(strings.Join(cols, "\n"), schema, "SCHEMA")
	}
	if got, want := columns(printed), columns(migrated); got != want || got == "" {
		t.Errorf("columns from the printed SQL:\n%s\nwant Migrate's:\n%s", got, want)
	}
	openStoreIn(t, printed, sqlstore.WithMigrate(false))

	if q, err := sqlstore.MigrationSQL(printed, sqlstore.SchemaVersion()); q != "" || err != nil {
		t.Errorf("MigrationSQL from the current version: %q, %v; want nothing", q, err)
	}
	q, err = sqlstore.MigrationSQL(printed, 2)
	if err != nil || strings.Contains(q, "0002_") || !strings.Contains(q, "-- 0003_") {
		t.Errorf("MigrationSQL from 2 (%v):\n%s\nwant migrations 3 on", err, q)
	}
}

func TestOpenUnreachable(t *testing.T) {
	ctx := context.Background()
	addr := pgtest.UnusedAddr(t)
	dsn := "postgres://postgres:secret@" + addr + "/test?sslmode=disable&connect_timeout=5"
	_, err := sqlstore.Open(ctx, dsn)
	want := "sqlstore: connecting to PostgreSQL at " + addr + ": "
	if !errors.Is(err, sqlstore.ErrConnect) || !strings.HasPrefix(fmt.Sprint(err), want) ||
		strings.Contains(fmt.Sprint(err), "migrat") || strings.Contains(fmt.Sprint(err), "secret") {
		t.Errorf("Open: %v, want ErrConnect and %q, neither migrating nor the password", err, want)
	}
	if _, ok := errors.AsType[*net.OpError](err); !ok {
		t.Errorf("Open: %v does not wrap the dial error", err)
	}
	db, err := sqlx.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = sqlstore.New(ctx, db, "public")
	if !errors.Is(err, sqlstore.ErrConnect) || !strings.Contains(fmt.Sprint(err), "connecting to PostgreSQL at "+addr+": ") {
		t.Errorf("New: %v, want ErrConnect naming %s", err, addr)
	}
}

// A store that opens while another process is migrating the schema
// reads the dirty mark that golang-migrate sets for the migration's
// length. It waits for that migration's lock and opens once it ends,
// instead of reporting a failed migration.
func TestOpenWaitsForAMigrationRunningElsewhere(t *testing.T) {
	ctx := context.Background()
	db := testDB(t)
	schema := newSchema(t)
	openStoreIn(t, schema).Close()
	var dbName string
	if err := db.Get(&dbName, "SELECT current_database()"); err != nil {
		t.Fatal(err)
	}
	lockID, err := database.GenerateAdvisoryLockId(dbName, schema, "experiments_schema_migrations")
	if err != nil {
		t.Fatal(err)
	}
	// The other process: its lock held, its version marked dirty.
	other, err := db.Connx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	table := pq.QuoteIdentifier(schema) + ".experiments_schema_migrations"
	if _, err := other.ExecContext(ctx, "SELECT pg_advisory_lock($1)", lockID); err != nil {
		t.Fatal(err)
	}
	if _, err := other.ExecContext(ctx, "UPDATE "+table+" SET dirty = true"); err != nil {
		t.Fatal(err)
	}
	opened := make(chan error, 1)
	go func() {
		s, err := sqlstore.OpenWith(ctx, testDSN(), sqlstore.WithSchema(schema))
		if err == nil {
			err = s.Close()
		}
		opened <- err
	}()
	select {
	case err := <-opened:
		t.Fatalf("Open returned while the migration ran: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	// The other migration ends well.
	if _, err := other.ExecContext(ctx, "UPDATE "+table+" SET dirty = false"); err != nil {
		t.Fatal(err)
	}
	if _, err := other.ExecContext(ctx, "SELECT pg_advisory_unlock($1)", lockID); err != nil {
		t.Fatal(err)
	}
	if err := <-opened; err != nil {
		t.Errorf("Open after the migration ended: %v", err)
	}
	// A mark still dirty once the lock is free is a failed migration.
	if _, err := db.Exec("UPDATE " + table + " SET dirty = true"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := sqlstore.Migrate(ctx, db, schema); !errors.Is(err, sqlstore.ErrSchemaDirty) ||
		!strings.Contains(err.Error(), fmt.Sprintf("schema %q, version %d", schema, sqlstore.SchemaVersion())) {
		t.Errorf("Migrate: %v, want ErrSchemaDirty naming the schema and version", err)
	}
}
