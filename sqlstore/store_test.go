package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/internal/syncbuf"
	"github.com/abkit/experiments/sqlstore"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

var testFlag = experiments.NewFlag("sqlstore_test", "main")

func TestOpenMigratesAndServesFlags(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	if err := s.SetFlag(ctx, testFlag.Name(), experiments.On()); err != nil {
		t.Fatal(err)
	}
	x := experiments.New(experiments.Config{Store: s})
	rctx := x.NewContext(ctx, experiments.User{ID: "1"})
	if !testFlag.IsExperimentOn(rctx, "") {
		t.Fatal("flag set through the store is not on in the same process")
	}
}

func TestChangesPropagateToAnotherStore(t *testing.T) {
	ctx := context.Background()
	schema := newSchema(t)
	a := openStoreIn(t, schema)
	b := openStoreIn(t, schema)
	x := experiments.New(experiments.Config{Store: b})
	rctx := func() context.Context { return x.NewContext(ctx, experiments.User{ID: "1"}) }
	start := time.Now()
	if err := a.SetFlag(ctx, testFlag.Name(), experiments.On()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Second)
	for !testFlag.IsExperimentOn(rctx(), "") {
		if time.Now().After(deadline) {
			t.Fatal("a change made through one store is not visible in another within 1 s")
		}
		time.Sleep(time.Millisecond)
	}
	t.Logf("propagated in %v", time.Since(start))
}

func TestOpenIsIdempotentAndSafeConcurrently(t *testing.T) {
	schema := newSchema(t)
	const n = 4
	errs := make(chan error, n)
	for range n {
		go func() {
			s, err := sqlstore.OpenWith(context.Background(), testDSN(), sqlstore.WithSchema(schema))
			if err == nil {
				err = s.Close()
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent Open: %v", err)
		}
	}
	// And once more, on a migrated schema.
	openStoreIn(t, schema)
	var version int
	if err := testDB(t).Get(&version, "SELECT version FROM "+pq.QuoteIdentifier(schema)+".experiments_schema_migrations"); err != nil {
		t.Fatal(err)
	}
	if version != 6 {
		t.Errorf("migration version %d, want 6", version)
	}
}

func TestWritesAreAudited(t *testing.T) {
	s := openStore(t)
	ctx := sqlstore.WithActor(context.Background(), "alice")
	steps := []func() error{
		func() error { return s.SetFlag(ctx, testFlag.Name(), experiments.Rule{Percent: 10}) },
		func() error { return s.SetFlag(ctx, testFlag.Name(), experiments.On()) },
		func() error { return s.DeleteFlag(ctx, testFlag.Name()) },
		func() error {
			return s.SetCourseOverride(ctx, testFlag.Name(), "course-v1:X+Y+Z", experiments.ForceOff)
		},
		func() error { return s.SetCourseOverride(ctx, testFlag.Name(), "course-v1:X+Y+Z", experiments.Unset) },
		func() error { return s.SetOrgOverride(ctx, testFlag.Name(), "X", experiments.ForceOn) },
		func() error { return s.SetExperimentValue(ctx, 3, experiments.EnrollmentStart, "2026-01-01") },
		func() error { return s.SetExperimentValue(ctx, 3, experiments.EnrollmentStart, "") },
		func() error {
			return s.SetEnrollment(ctx, "7", "course-v1:X+Y+Z", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
		},
		func() error { return s.SetGoal(ctx, experiments.Goal{Name: "revenue", Value: experiments.ValueSum}) },
		func() error {
			return s.SetGoal(ctx, experiments.Goal{Name: "revenue", Once: true, Include: []string{"a"}, Exclude: []string{"b"}})
		},
		func() error { return s.DeleteGoal(ctx, "revenue") },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	var rows []struct {
		Actor  string  `db:"actor"`
		Entity string  `db:"entity"`
		Key    string  `db:"key"`
		Old    *string `db:"old"`
		New    *string `db:"new"`
	}
	err := s.DB().Select(&rows, "SELECT actor, entity, key, old::text, new::text FROM "+
		pq.QuoteIdentifier(s.Schema())+".experiments_audit ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	str := func(p *string) string {
		if p == nil {
			return "NULL"
		}
		return *p
	}
	var got []string
	for _, r := range rows {
		got = append(got, r.Actor+" "+r.Entity+" "+r.Key+": "+str(r.Old)+" -> "+str(r.New))
	}
	want := []string{
		`alice flag sqlstore_test.main: NULL -> {"percent": 10}`,
		`alice flag sqlstore_test.main: {"percent": 10} -> {"everyone": true}`,
		`alice flag sqlstore_test.main: {"everyone": true} -> NULL`,
		`alice course_override sqlstore_test.main course-v1:X+Y+Z: NULL -> "off"`,
		`alice course_override sqlstore_test.main course-v1:X+Y+Z: "off" -> NULL`,
		`alice org_override sqlstore_test.main X: NULL -> "on"`,
		`alice value 3 enrollment_start: NULL -> "2026-01-01"`,
		`alice value 3 enrollment_start: "2026-01-01" -> NULL`,
		`alice enrollment 7 course-v1:X+Y+Z: NULL -> "2026-01-02T03:04:05Z"`,
		`alice goal revenue: NULL -> {"name": "revenue", "value": "sum"}`,
		`alice goal revenue: {"name": "revenue", "value": "sum"} -> {"name": "revenue", "once": true, "exclude": ["b"], "include": ["a"]}`,
		`alice goal revenue: {"name": "revenue", "once": true, "exclude": ["b"], "include": ["a"]} -> NULL`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestWritesWithoutActorRecordTheDatabaseUser(t *testing.T) {
	s := openStore(t)
	if err := s.SetFlag(context.Background(), testFlag.Name(), experiments.On()); err != nil {
		t.Fatal(err)
	}
	var actor, updatedBy string
	q := pq.QuoteIdentifier(s.Schema())
	if err := s.DB().Get(&actor, "SELECT actor FROM "+q+".experiments_audit"); err != nil {
		t.Fatal(err)
	}
	if err := s.DB().Get(&updatedBy, "SELECT updated_by FROM "+q+".experiments_flags"); err != nil {
		t.Fatal(err)
	}
	if actor != "postgres" || updatedBy != "postgres" {
		t.Errorf("actor %q, updated_by %q; want the database user postgres", actor, updatedBy)
	}
}

func TestBadMetaRowsAreLeftOutAndLogged(t *testing.T) {
	ctx := context.Background()
	logs := new(syncbuf.Buffer)
	s := openStore(t, sqlstore.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	good := experiments.ExperimentMeta{Notes: "kept"}
	if err := s.SetExperimentMeta(ctx, testFlag.Name(), good); err != nil {
		t.Fatal(err)
	}
	q := pq.QuoteIdentifier(s.Schema()) + "."
	for flag, meta := range map[string]string{
		"ns.unknown_field":  `{"notes": "x", "colour": "red"}`,
		"ns.unknown_nested": `{"winner": {"bucket": 1, "previous": {"ns.unknown_nested": {"percentage": 5}}}}`,
		"ns.bad_bucket":     `{"winner": {"bucket": 1024}}`,
		"ns.other_previous": `{"winner": {"bucket": 1, "previous": {"ns.other": {"everyone": true}}}}`,
		"ns.control_char":   `{"notes": "bell \u0007"}`,
		"ns.empty":          `{}`,
		"ns.not_an_object":  `[1, 2]`,
		"not a flag name":   `{"notes": "x"}`,
	} {
		s.DB().MustExec("INSERT INTO "+q+"experiments_meta (flag, meta) VALUES ($1, $2)", flag, meta)
	}
	s.DB().MustExec("UPDATE " + q + "experiments_version SET version = version + 1")
	if err := s.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	snap, _ := s.Snapshot(ctx)
	if got := snap.Data().Meta; len(got) != 1 || got[testFlag.Name()].Notes != good.Notes {
		t.Errorf("meta %+v, want only %s's", got, testFlag.Name())
	}
	if n := logCount(logs, "experiment meta is bad"); n != 8 {
		t.Errorf("%d bad meta rows logged, want 8:\n%s", n, logs)
	}
}

func TestActorOfEitherWithActorIsRecorded(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	if err := s.SetFlag(sqlstore.WithActor(ctx, "alice"), testFlag.Name(), experiments.On()); err != nil {
		t.Fatal(err)
	}
	if err := s.SetFlag(experiments.WithActor(ctx, "bob"), testFlag.Name(), experiments.Off()); err != nil {
		t.Fatal(err)
	}
	h, err := s.History(ctx, experiments.HistoryQuery{Flag: testFlag.Name()})
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 2 || h[0].Actor != "bob" || h[1].Actor != "alice" {
		t.Errorf("history %+v; want bob's change, then alice's", h)
	}
	if got := sqlstore.WithActor(ctx, "carol"); experiments.ActorFrom(got) != "carol" {
		t.Errorf("experiments.ActorFrom(sqlstore.WithActor(ctx, carol)) = %q", experiments.ActorFrom(got))
	}
}

func TestNewUsesTheAppsPool(t *testing.T) {
	ctx := context.Background()
	db := testDB(t)
	db.SetMaxOpenConns(1) // the migration's connection must come back clean
	schema := newSchema(t)
	s, err := sqlstore.New(ctx, db, schema, sqlstore.WithPollInterval(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetFlag(ctx, testFlag.Name(), experiments.On()); err != nil {
		t.Fatal(err)
	}
	var searchPath string
	if err := db.Get(&searchPath, "SHOW search_path"); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(searchPath, schema) {
		t.Errorf("search_path %q: the migration left its schema on a pooled connection", searchPath)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Ping(); err != nil {
		t.Errorf("Close closed the app's pool: %v", err)
	}
}

func TestCustomEnrollmentQuery(t *testing.T) {
	ctx := context.Background()
	db := testDB(t)
	schema := newSchema(t)
	s := openStoreIn(t, schema)
	table := pq.QuoteIdentifier(schema) + ".student_courseenrollment"
	db.MustExec("CREATE TABLE " + table + " (user_id integer, course_id text, created timestamp, is_active boolean)")
	db.MustExec("INSERT INTO " + table + " VALUES (7, 'course-v1:X+Y+Z', '2012-01-05 10:00', true), (8, 'course-v1:X+Y+Z', '2012-01-07', false)")
	e := sqlstore.NewEnrollments(db,
		"SELECT created AT TIME ZONE 'UTC' FROM "+table+" WHERE user_id = $1::integer AND course_id = $2 AND is_active",
		time.Second)
	at, found, err := e.Enrollment(ctx, "7", "course-v1:X+Y+Z")
	if err != nil || !found || !at.Equal(time.Date(2012, 1, 5, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("Enrollment(7) = %v, %v, %v; want 2012-01-05 10:00 UTC", at, found, err)
	}
	if _, found, err := e.Enrollment(ctx, "8", "course-v1:X+Y+Z"); found || err != nil {
		t.Errorf("inactive enrollment: found %v, err %v; want not found", found, err)
	}

	// Through a flag with a window: enrolled before the start → control.
	flag := experiments.NewFlagSet().NewFlag("sqlstore_test", "windowed", experiments.WithExperimentID(9))
	if err := s.SetFlag(ctx, flag.Name(), experiments.On()); err != nil {
		t.Fatal(err)
	}
	if err := s.SetExperimentValue(ctx, 9, experiments.EnrollmentStart, "2012-01-06"); err != nil {
		t.Fatal(err)
	}
	x := experiments.New(experiments.Config{Store: s, Enrollments: e})
	d := flag.Decide(x.NewContext(ctx, experiments.User{ID: "7"}), "course-v1:X+Y+Z")
	if d.Bucket != 0 || d.Reason != experiments.ReasonOutsideWindow {
		t.Errorf("enrolled before the window: %+v, want bucket 0, outside_window", d)
	}
}

func TestEnrollmentLookupTimesOut(t *testing.T) {
	s := openStore(t)
	e := sqlstore.NewEnrollments(s.DB(), "SELECT now() FROM pg_sleep(2) WHERE $1 <> $2", 50*time.Millisecond)
	start := time.Now()
	_, _, err := e.Enrollment(context.Background(), "7", "c")
	if took := time.Since(start); err == nil || took > time.Second {
		t.Fatalf("a lookup slower than its 50 ms timeout: err %v after %v; want an error well before 2 s", err, took)
	}
}

func TestCloseWritesWhatTrackersQueued(t *testing.T) {
	schema := newSchema(t)
	s := openStoreIn(t, schema)
	tr := s.NewTracker(sqlstore.WithFlushInterval(time.Hour), sqlstore.WithBatchSize(1000))
	for i := range 10 {
		e := experiments.Event{Name: experiments.EventUserBucketed, Time: time.Now(), UserID: fmt.Sprint(i)}
		if err := tr.Track(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := testDB(t).Get(&n, "SELECT count(*) FROM "+pq.QuoteIdentifier(schema)+".experiments_events"); err != nil {
		t.Fatal(err)
	}
	if n != 10 {
		t.Errorf("%d events written by Close, want 10", n)
	}
}

func TestEnrollmentLookupsOnAHungDatabaseDoNotTakeThePool(t *testing.T) {
	p := startProxy(t, "127.0.0.1:5432")
	db, err := sqlx.Open("postgres", p.DSN(testDSN()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Ping(); err != nil {
		t.Fatal(err)
	}
	p.Stall()
	e := sqlstore.NewEnrollments(db, "SELECT now() WHERE $1 <> $2", 50*time.Millisecond)
	var busy int
	for range 12 {
		_, _, err := e.Enrollment(context.Background(), "7", "course-v1:X+Y+Z")
		switch {
		case errors.Is(err, sqlstore.ErrLookupsBusy):
			busy++
		case err == nil:
			t.Fatal("a lookup on a hung database succeeded")
		}
	}
	if busy != 4 {
		t.Errorf("%d of 12 lookups refused as busy, want 4: 8 run (and hang), the others wait for a slot", busy)
	}
	if open := db.Stats().OpenConnections; open > 8 {
		t.Errorf("%d connections open, want at most 8", open)
	}
}

func TestSchemaNamesMustLeaveRoomForTheNotifyChannel(t *testing.T) {
	long := "s" + strings.Repeat("x", 51) // 52 bytes: "experiments:" + it is over 63
	_, err := sqlstore.OpenWith(context.Background(), testDSN(), sqlstore.WithSchema(long))
	if !errors.Is(err, experiments.ErrInvalid) || !strings.Contains(err.Error(), "schema") {
		t.Fatalf("OpenWith(52-byte schema) = %v; want an error wrapping ErrInvalid naming the schema", err)
	}
	schema := newSchema(t)
	schema += strings.Repeat("x", 51-len(schema))
	db := testDB(t)
	t.Cleanup(func() { db.MustExec("DROP SCHEMA IF EXISTS " + pq.QuoteIdentifier(schema) + " CASCADE") })
	s := openStoreIn(t, schema)
	if err := s.SetFlag(context.Background(), testFlag.Name(), experiments.On()); err != nil {
		t.Errorf("SetFlag on a 51-byte schema: %v", err)
	}
}

func TestNewGivesUpListeningAtItsContextsEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := sqlstore.New(ctx, testDB(t), newSchema(t), sqlstore.WithListenDSN("postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=1"))
	if err == nil || time.Since(start) > 3*time.Second {
		t.Fatalf("New with an unreachable listen DSN: %v after %v; want an error at the context's end", err, time.Since(start))
	}
}

func TestTrackerMadeAfterCloseIsClosed(t *testing.T) {
	s := openStore(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	tr := s.NewTracker()
	if err := tr.Track(context.Background(), experiments.Event{Name: experiments.EventUserBucketed, UserID: "1"}); !errors.Is(err, sqlstore.ErrTrackerClosed) {
		t.Errorf("Track on a tracker made after Close = %v, want ErrTrackerClosed", err)
	}
}
