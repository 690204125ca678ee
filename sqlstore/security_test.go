package sqlstore_test

import (
	"context"
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/results"
	"github.com/abkit/experiments/sqlstore"
	"github.com/abkit/experiments/storetest"
	"github.com/lib/pq"
)

// hostileText are values a user may control that would change an SQL
// statement if they were spliced into it, all of them valid text a store
// accepts (UTF-8, no control character, at most 255 bytes).
var hostileText = []string{
	`'; DROP TABLE experiments_flags; --`,
	`x'); DELETE FROM experiments_audit; --`,
	`Robert'); DROP TABLE students;--`,
	`$1`, `$2::text`, `?`, `:name`, `%s%v%d`, `' OR '1'='1`, `'' OR ''=''`, `"; DROP SCHEMA public CASCADE; --`,
	`'`, `''`, `"`, `\`, `\\'`, `\'; SELECT pg_sleep(10); --`, `E'\x41'`, `U&'\0041'`, `$$; DROP TABLE x; $$`,
	`/* comment */`, `--`, `{a,"b"}`, `NULL`, `\N`, `%`, `_`, ` leading and trailing `,
	`Zoë 李小龙 🙂`, "line\u2028separator", "right-to-left \u202e override", "zero\u200bwidth", "full\uff07width\uff07quote",
	"no\u00a0break", strings.Repeat("'", 255),
}

// hostileOrgs are hostile values within the characters an org may hold
// (letters, digits and "_-~.:").
var hostileOrgs = []string{"--", "x--y", ":1", "a::b", "..", "~", "DROP", "1.0e9"}

// hostileGoals are hostile values within a goal name's characters
// (letters, digits and "_-.").
var hostileGoals = []string{"--", "a--b", "x.--", "..", "DROP-TABLE", "g.1"}

// No user-controlled value ends up in SQL other than as a parameter:
// hostile text written through every write, recorder and tracker reads
// back intact, from this store and from another one opened on the same
// tables, results find it, and every table is still there.
func TestHostileTextIsStoredAsDataAndNeverRunAsSQL(t *testing.T) {
	ctx := context.Background()
	schema := newSchema(t)
	s := openStoreIn(t, schema, sqlstore.WithRecorder(sqlstore.WithFlushInterval(time.Hour)))
	const flag = "security.hostile"
	at := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)

	var users []string
	for i, h := range hostileText {
		actx := experiments.WithActor(ctx, h)
		if err := s.SetCourseOverride(actx, flag, h, experiments.State(1+i%2)); err != nil {
			t.Fatalf("SetCourseOverride(%q): %v", h, err)
		}
		if err := s.SetExperimentValue(actx, i, h, h+" "+h); err != nil {
			t.Fatalf("SetExperimentValue(%q): %v", h, err)
		}
		if err := s.SetEnrollment(actx, h, h, at.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatalf("SetEnrollment(%q): %v", h, err)
		}
		if err := s.RecordExposure(ctx, experiments.Exposure{Flag: flag, CourseKey: h, UserID: h, Bucket: i % 2, Time: at}); err != nil {
			t.Fatalf("RecordExposure(%q): %v", h, err)
		}
		users = append(users, h)
	}
	if err := s.SetFlag(experiments.WithActor(ctx, hostileText[0]), flag,
		experiments.Rule{Users: users, Groups: slices.Clone(hostileText), Percent: 12.5}); err != nil {
		t.Fatal(err)
	}
	notes := strings.Join(hostileText, "\n\t")
	if err := s.SetExperimentMeta(ctx, flag, experiments.ExperimentMeta{Notes: notes}); err != nil {
		t.Fatal(err)
	}
	orgs := map[string]experiments.State{}
	for i, org := range hostileOrgs {
		orgs[org] = experiments.State(1 + i%2)
		if err := s.SetOrgOverride(ctx, flag, org, orgs[org]); err != nil {
			t.Fatalf("SetOrgOverride(%q): %v", org, err)
		}
	}
	goals := map[string]experiments.Goal{}
	for _, g := range hostileGoals {
		goals[g] = experiments.Goal{Name: g, Once: true}
		if err := s.SetGoal(ctx, goals[g]); err != nil {
			t.Fatalf("SetGoal(%q): %v", g, err)
		}
	}
	goals["all"] = experiments.Goal{Name: "all", Include: hostileGoals[:3], Exclude: hostileGoals[3:]}
	if err := s.SetGoal(ctx, goals["all"]); err != nil {
		t.Fatal(err)
	}
	var conversions []experiments.Conversion
	for i, h := range hostileText {
		c := experiments.Conversion{Goal: hostileGoals[i%len(hostileGoals)], UserID: h, Value: float64(i), Time: at.Add(time.Hour + time.Duration(i)*time.Second)}
		if err := s.RecordConversion(ctx, c); err != nil {
			t.Fatalf("RecordConversion(%q): %v", h, err)
		}
		conversions = append(conversions, c)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	tr := newTestTracker(t, s)
	var events []experiments.Event
	for i, h := range hostileText {
		e := experiments.Event{Name: experiments.EventUserBucketed, Time: at.Add(time.Duration(i) * time.Second),
			UserID: h, Site: h, AppLabel: "security", Experiment: "hostile", CourseKey: h, Bucket: i % 2}
		if err := tr.Track(ctx, e); err != nil {
			t.Fatalf("Track(%q): %v", h, err)
		}
		events = append(events, e)
	}
	closeTracker(t, tr)

	// What was written reads back intact, here and from a store that
	// loads it afresh from the tables.
	other := openStoreIn(t, schema)
	for name, store := range map[string]*sqlstore.Store{"the writing store": s, "another store": other} {
		snap, err := store.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		d := snap.Data()
		if r := d.Flags[flag]; !slices.Equal(r.Users, users) || !slices.Equal(r.Groups, hostileText) {
			t.Errorf("%s: rule reads back as %+v", name, r)
		}
		if got := d.OrgOverrides[flag]; !maps.Equal(got, orgs) {
			t.Errorf("%s: org overrides %v, want %v", name, got, orgs)
		}
		if got := d.Meta[flag].Notes; got != notes {
			t.Errorf("%s: notes %q, want %q", name, got, notes)
		}
		if !reflect.DeepEqual(d.Goals, goals) {
			t.Errorf("%s: goals %+v, want %+v", name, d.Goals, goals)
		}
		for i, h := range hostileText {
			if got := d.CourseOverrides[flag][h]; got != experiments.State(1+i%2) {
				t.Errorf("%s: course override of %q is %v", name, h, got)
			}
			if got := d.ExperimentValues[i][h]; got != h+" "+h {
				t.Errorf("%s: experiment %d value %q is %q", name, i, h, got)
			}
			created, found, err := store.Enrollment(ctx, h, h)
			if err != nil || !found || !created.Equal(at.Add(time.Duration(i)*time.Minute)) {
				t.Errorf("%s: Enrollment(%q) = %v, %v, %v", name, h, created, found, err)
			}
		}
	}
	exposures := s.Exposures()
	if len(exposures) != len(hostileText) {
		t.Errorf("%d exposures, want %d", len(exposures), len(hostileText))
	}
	for _, e := range exposures {
		if e.UserID != e.CourseKey || !slices.Contains(hostileText, e.UserID) {
			t.Errorf("exposure %+v does not read back as written", e)
		}
	}
	if got := s.Conversions(); !reflect.DeepEqual(got, conversions) {
		t.Errorf("conversions read back as %+v, want %+v", got, conversions)
	}
	rows := trackerRows(t, s)
	if len(rows) != len(events) {
		t.Fatalf("%d events, want %d", len(rows), len(events))
	}
	for i, r := range rows {
		if r.Event.UserID != events[i].UserID || r.Event.Site != events[i].Site || r.Event.CourseKey != events[i].CourseKey {
			t.Errorf("event %d reads back as %+v, want %+v", i, r.Event, events[i])
		}
	}
	changes, err := s.History(ctx, experiments.HistoryQuery{Flag: flag, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var actors []string
	for _, c := range changes {
		if c.Entity == "course_override" {
			actors = append(actors, c.Actor)
			if _, key, _ := strings.Cut(c.Key, " "); !slices.Contains(hostileText, key) {
				t.Errorf("audit key %q does not read back as written", c.Key)
			}
		}
	}
	slices.Reverse(actors) // newest first
	if !slices.Equal(actors, hostileText) {
		t.Errorf("audited actors %q, want %q", actors, hostileText)
	}

	// Results look the hostile values up as parameters too.
	exps, err := s.Experiments(ctx)
	if err != nil || len(exps) != len(hostileText) {
		t.Fatalf("Experiments() = %d experiments, %v; want %d", len(exps), err, len(hostileText))
	}
	for _, x := range exps {
		agg, err := s.Aggregate(ctx, results.Query{Experiment: x, Goal: goals[hostileGoals[0]]})
		if err != nil || len(agg.Buckets) == 0 || agg.Buckets[len(agg.Buckets)-1].Participants != 1 {
			t.Errorf("Aggregate(%q) = %+v, %v; want its one participant", x.CourseKey, agg, err)
		}
	}
	if _, err := s.Aggregate(ctx, results.Query{Experiment: results.Experiment{Flag: flag, CourseKey: hostileText[0]}, Goal: goals["all"]}); err != nil {
		t.Errorf("Aggregate of the complex goal: %v", err)
	}

	// Every table is still there, with the rows written.
	var tables []string
	err = s.DB().SelectContext(ctx, &tables,
		"SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name", schema)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"experiments_assignments", "experiments_audit", "experiments_conversions", "experiments_course_overrides", "experiments_enrollments",
		"experiments_events", "experiments_exposures", "experiments_flags", "experiments_goals", "experiments_meta",
		"experiments_org_overrides", "experiments_schema_migrations", "experiments_values", "experiments_version"}
	if !slices.Equal(tables, want) {
		t.Errorf("tables %q, want %q", tables, want)
	}
	var n int
	if err := s.DB().GetContext(ctx, &n, "SELECT count(*) FROM "+pq.QuoteIdentifier(schema)+".experiments_course_overrides"); err != nil || n != len(hostileText) {
		t.Errorf("%d course overrides (%v), want %d", n, err, len(hostileText))
	}
}

// Limits on names, course keys and values that storetest's "invalid
// input" group does not already check: each write refuses the value with
// an error wrapping ErrInvalid that names the field, on MemStore and on
// PostgreSQL alike, and changes nothing.
func TestEveryWriteRefusesControlCharactersNULsAndInvalidUTF8(t *testing.T) {
	const flag = "security.limits"
	long := strings.Repeat("g", 256)
	on := experiments.ForceOn
	at := time.Date(2026, 5, 4, 0, 0, 0, 0, time.UTC)
	type write func(context.Context, storetest.Store) error
	cases := []struct {
		name  string
		write write
		field string
	}{
		{"nok, a flag name with a NUL", func(ctx context.Context, s storetest.Store) error {
			return s.SetFlag(ctx, "security.lim\x00its", experiments.On())
		}, "flag name"},
		{"nok, a flag name with a newline", func(ctx context.Context, s storetest.Store) error {
			return s.SetFlag(ctx, "security.limits\n", experiments.On())
		}, "flag name"},
		{"nok, a flag name that is not UTF-8", func(ctx context.Context, s storetest.Store) error {
			return s.SetFlag(ctx, "security.\xff", experiments.On())
		}, "flag name"},
		{"nok, a course key with DEL", func(ctx context.Context, s storetest.Store) error {
			return s.SetCourseOverride(ctx, flag, "course-v1:edX+DemoX+2026\x7f", on)
		}, "course key"},
		{"nok, a course key with a C1 control character", func(ctx context.Context, s storetest.Store) error {
			return s.SetCourseOverride(ctx, flag, "course-v1:edX+DemoX+2026\u0085", on)
		}, "course key"},
		{"nok, an org that is not UTF-8", func(ctx context.Context, s storetest.Store) error {
			return s.SetOrgOverride(ctx, flag, "ed\xffX", on)
		}, "org"},
		{"nok, an org with a NUL", func(ctx context.Context, s storetest.Store) error {
			return s.SetOrgOverride(ctx, flag, "edX\x00", on)
		}, "org"},
		{"nok, a username that is not UTF-8", func(ctx context.Context, s storetest.Store) error {
			return s.SetFlag(ctx, flag, experiments.Rule{Users: []string{"al\xe9x"}})
		}, "users[0]"},
		{"nok, a username with a NUL", func(ctx context.Context, s storetest.Store) error {
			return s.SetFlag(ctx, flag, experiments.Rule{Users: []string{"alice", "bob\x00"}})
		}, "users[1]"},
		{"nok, a group with a control character", func(ctx context.Context, s storetest.Store) error {
			return s.SetFlag(ctx, flag, experiments.Rule{Groups: []string{"beta\x1b[0m"}})
		}, "groups[0]"},
		{"nok, a group with a NUL", func(ctx context.Context, s storetest.Store) error {
			return s.SetFlag(ctx, flag, experiments.Rule{Groups: []string{"\x00"}})
		}, "groups[0]"},
		{"nok, a group of 256 bytes", func(ctx context.Context, s storetest.Store) error {
			return s.SetFlag(ctx, flag, experiments.Rule{Groups: []string{long}})
		}, "groups[0]"},
		{"nok, a value key with a NUL", func(ctx context.Context, s storetest.Store) error {
			return s.SetExperimentValue(ctx, 1, "enrollment_start\x00", "2026-01-01")
		}, "experiment value key"},
		{"nok, a value key that is not UTF-8", func(ctx context.Context, s storetest.Store) error {
			return s.SetExperimentValue(ctx, 1, "\xc3(", "2026-01-01")
		}, "experiment value key"},
		{"nok, a value with an escape character", func(ctx context.Context, s storetest.Store) error {
			return s.SetExperimentValue(ctx, 1, experiments.EnrollmentStart, "2026-01-01\x1b")
		}, "experiment value"},
		{"nok, a value with a C1 control character", func(ctx context.Context, s storetest.Store) error {
			return s.SetExperimentValue(ctx, 1, experiments.EnrollmentStart, "2026-01-01\u009b")
		}, "experiment value"},
		{"nok, an enrollment user ID with a NUL", func(ctx context.Context, s storetest.Store) error {
			return s.SetEnrollment(ctx, "7\x00", "course-v1:edX+DemoX+2026", at)
		}, "user ID"},
		{"nok, an enrollment user ID that is not UTF-8", func(ctx context.Context, s storetest.Store) error {
			return s.SetEnrollment(ctx, "\xff", "course-v1:edX+DemoX+2026", at)
		}, "user ID"},
		{"nok, an enrollment course key with a control character", func(ctx context.Context, s storetest.Store) error {
			return s.SetEnrollment(ctx, "7", "course-v1:edX+Demo\nX+2026", at)
		}, "course key"},
		{"nok, an enrollment course key with a NUL", func(ctx context.Context, s storetest.Store) error {
			return s.SetEnrollment(ctx, "7", "course-v1:edX+DemoX+2026\x00", at)
		}, "course key"},
		{"nok, an enrollment course key that is not UTF-8", func(ctx context.Context, s storetest.Store) error {
			return s.SetEnrollment(ctx, "7", "course-v1:\xff+X+Y", at)
		}, "course key"},
	}
	stores := map[string]storetest.Store{"MemStore": experiments.NewMemStore(), "PostgreSQL": openStore(t)}
	for storeName, s := range stores {
		t.Run(storeName, func(t *testing.T) {
			ctx := t.Context()
			if err := s.SetFlag(ctx, flag, experiments.Rule{Users: []string{"alice"}}); err != nil {
				t.Fatal(err)
			}
			if err := s.SetEnrollment(ctx, "7", "course-v1:edX+DemoX+2026", at); err != nil {
				t.Fatal(err)
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					before := data(t, s)
					err := c.write(ctx, s)
					if !errors.Is(err, experiments.ErrInvalid) || !strings.Contains(err.Error(), c.field) {
						t.Errorf("error = %v; want one wrapping experiments.ErrInvalid and naming %q", err, c.field)
					}
					if after := data(t, s); !reflect.DeepEqual(before, after) {
						t.Errorf("configuration changed by a refused write:\n got %+v\nwant %+v", after, before)
					}
					if created, found, err := s.Enrollment(ctx, "7", "course-v1:edX+DemoX+2026"); err != nil || !found || !created.Equal(at) {
						t.Errorf("the enrollment changed: %v, %v, %v", created, found, err)
					}
				})
			}
		})
	}
}

func data(t *testing.T, s experiments.Store) experiments.SnapshotData {
	t.Helper()
	snap, err := s.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return snap.Data()
}
