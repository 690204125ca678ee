package experiments_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/abkit/experiments"
)

func TestParseDate(t *testing.T) {
	utc := func(y int, mo time.Month, d, h, mi, s, ns int) time.Time {
		return time.Date(y, mo, d, h, mi, s, ns, time.UTC)
	}
	cases := []struct {
		name string
		in   string
		want time.Time
		ok   bool
	}{
		{"ok, date only", "2012-01-06", utc(2012, 1, 6, 0, 0, 0, 0), true},
		{"ok, date and minutes with a space", "2012-01-06 10:30", utc(2012, 1, 6, 10, 30, 0, 0), true},
		{"ok, date without leading zeros", "2012-1-6", utc(2012, 1, 6, 0, 0, 0, 0), true},
		{"ok, date with slashes", "2012/01/06", utc(2012, 1, 6, 0, 0, 0, 0), true},
		{"ok, compact date", "20120106", utc(2012, 1, 6, 0, 0, 0, 0), true},
		{"ok, date and hour", "2012-01-06T10", utc(2012, 1, 6, 10, 0, 0, 0), true},
		{"ok, month name first", "Jan 6 2012", utc(2012, 1, 6, 0, 0, 0, 0), true},
		{"ok, full month name with a comma", "January 6, 2012", utc(2012, 1, 6, 0, 0, 0, 0), true},
		{"ok, day first with a month name", "6 Jan 2012", utc(2012, 1, 6, 0, 0, 0, 0), true},
		{"ok, date and minutes with a T", "2012-01-06T10:30", utc(2012, 1, 6, 10, 30, 0, 0), true},
		{"ok, date and seconds with a space", "2012-01-06 10:30:15", utc(2012, 1, 6, 10, 30, 15, 0), true},
		{"ok, date and seconds with a T", "2012-01-06T10:30:15", utc(2012, 1, 6, 10, 30, 15, 0), true},
		{"ok, fractional seconds", "2012-01-06T10:30:15.123456", utc(2012, 1, 6, 10, 30, 15, 123456000), true},
		{"ok, fractional seconds with a space", "2012-01-06 10:30:15.5", utc(2012, 1, 6, 10, 30, 15, 500000000), true},
		{"ok, RFC 3339 with Z", "2012-01-06T10:00:00Z", utc(2012, 1, 6, 10, 0, 0, 0), true},
		{"ok, RFC 3339 with a fraction and Z", "2012-01-06T10:00:00.25Z", utc(2012, 1, 6, 10, 0, 0, 250000000), true},
		{"ok, RFC 3339 with +05:00 drops the zone", "2012-01-06T10:00:00+05:00", utc(2012, 1, 6, 10, 0, 0, 0), true},
		{"ok, RFC 3339 with -08:00 drops the zone", "2012-01-06T23:30:00-08:00", utc(2012, 1, 6, 23, 30, 0, 0), true},
		{"ok, zone +0500 is dropped", "2012-01-06T10:00:00+0500", utc(2012, 1, 6, 10, 0, 0, 0), true},
		{"ok, zone +05 is dropped", "2012-01-06T10:00:00+05", utc(2012, 1, 6, 10, 0, 0, 0), true},
		{"ok, zone name UTC after a space", "2012-01-06 10:00:00 UTC", utc(2012, 1, 6, 10, 0, 0, 0), true},
		{"ok, zone name EST is dropped", "2012-01-06 10:00:00 EST", utc(2012, 1, 6, 10, 0, 0, 0), true},
		{"ok, zone after a date only", "2012-01-06 UTC", utc(2012, 1, 6, 0, 0, 0, 0), true},
		{"ok, minutes with a zone", "2012-01-06T10:30+05:00", utc(2012, 1, 6, 10, 30, 0, 0), true},
		{"ok, surrounding spaces", "  2012-01-06 \n", utc(2012, 1, 6, 0, 0, 0, 0), true},
		{"ok, far future", "9999-01-06", utc(9999, 1, 6, 0, 0, 0, 0), true},
		{"ok, leap day", "2012-02-29", utc(2012, 2, 29, 0, 0, 0, 0), true},
		{"nok, not a date", "not-a-date", time.Time{}, false},
		{"nok, empty", "", time.Time{}, false},
		{"nok, spaces only", "   ", time.Time{}, false},
		{"nok, month 13", "2012-13-01", time.Time{}, false},
		{"nok, day 32", "2012-01-32", time.Time{}, false},
		{"nok, February 30", "2012-02-30", time.Time{}, false},
		{"nok, not a leap year", "2013-02-29", time.Time{}, false},
		{"nok, day/month/year", "06/01/2012", time.Time{}, false},
		{"nok, trailing garbage", "2012-01-06X", time.Time{}, false},
		{"nok, hour 25", "2012-01-06 25:00", time.Time{}, false},
		{"nok, year only", "2012", time.Time{}, false},
		{"nok, short year", "12-01-06", time.Time{}, false},
		{"nok, very long", "2012-01-06" + strings.Repeat(" ", 100) + "x", time.Time{}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := experiments.ParseDate(c.in)
			if !c.ok {
				if err == nil {
					t.Fatalf("ParseDate(%q) = %v, want an error", c.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseDate(%q): %v", c.in, err)
			}
			if !got.Equal(c.want) || got.Location() != time.UTC {
				t.Errorf("ParseDate(%q) = %v, want %v", c.in, got, c.want)
			}
		})
	}
}

// windowCourse is the course of the enrollment window tests.
const windowCourse = "course-v1:ORG+Window+2026"

// windowNow is Config.Now in the window tests.
var windowNow = time.Date(2020, 6, 15, 12, 0, 0, 0, time.UTC)

// windowFlag has a window through experiment 12; its bucket flag .1 is on
// for everyone, so a user inside the window is forced into bucket 1.
var (
	windowFlag      = experiments.NewFlag("enrollment_test", "window", experiments.WithExperimentID(12))
	windowTwin      = experiments.NewFlag("enrollment_test", "twin", experiments.WithExperimentID(12))
	windowOtherExp  = experiments.NewFlag("enrollment_test", "other", experiments.WithExperimentID(13))
	windowNoExpFlag = experiments.NewFlag("enrollment_test", "no_id")
)

// windowStore returns a store with the window flags on and forced into
// bucket 1, and experiment 12's values.
func windowStore(t *testing.T, values map[string]string) *experiments.MemStore {
	t.Helper()
	s := experiments.NewMemStore()
	for _, f := range []*experiments.ExperimentFlag{windowFlag, windowTwin, windowOtherExp, windowNoExpFlag} {
		unitSetFlag(t, s, f.Name(), experiments.On())
		unitSetFlag(t, s, f.BucketFlag(1), experiments.On())
	}
	for k, v := range values {
		if err := s.SetExperimentValue(context.Background(), 12, k, v); err != nil {
			t.Fatalf("SetExperimentValue(12, %q, %q): %v", k, v, err)
		}
	}
	return s
}

// countingEnrollments is an Enrollments that counts lookups.
type countingEnrollments struct {
	mu    sync.Mutex
	calls int
	at    map[[2]string]time.Time // (user ID, course) → enrolled
	err   error
}

func (e *countingEnrollments) Enrollment(_ context.Context, userID, courseKey string) (time.Time, bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls++
	if e.err != nil {
		return time.Time{}, false, e.err
	}
	at, ok := e.at[[2]string{userID, courseKey}]
	return at, ok, nil
}

func (e *countingEnrollments) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.calls
}

// snapshotOnly is a Store that is not an Enrollments.
type snapshotOnly struct{ s *experiments.MemStore }

func (s snapshotOnly) Snapshot(ctx context.Context) (*experiments.Snapshot, error) {
	return s.s.Snapshot(ctx)
}

func TestEnrollmentWindow(t *testing.T) {
	d := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	none := time.Time{} // not enrolled
	cases := []struct {
		name     string
		values   map[string]string
		flag     *experiments.ExperimentFlag
		course   string
		enrolled time.Time
		bucket   int
		reason   experiments.Reason
	}{
		// Open edX's behaviour table.
		{"ok, start 2012-01-06, not enrolled", map[string]string{"enrollment_start": "2012-01-06"}, windowFlag, windowCourse, none, 1, experiments.ReasonForced},
		{"nok, start 9999-01-06, not enrolled", map[string]string{"enrollment_start": "9999-01-06"}, windowFlag, windowCourse, none, 0, experiments.ReasonOutsideWindow},
		{"nok, start 2012-01-06, enrolled 2012-01-05", map[string]string{"enrollment_start": "2012-01-06"}, windowFlag, windowCourse, d("2012-01-05T00:00:00Z"), 0, experiments.ReasonOutsideWindow},
		{"ok, start 2012-01-06, enrolled 2012-01-07", map[string]string{"enrollment_start": "2012-01-06"}, windowFlag, windowCourse, d("2012-01-07T00:00:00Z"), 1, experiments.ReasonForced},
		{"nok, end 2012-01-06, not enrolled", map[string]string{"enrollment_end": "2012-01-06"}, windowFlag, windowCourse, none, 0, experiments.ReasonOutsideWindow},
		{"ok, end 9999-01-06, not enrolled", map[string]string{"enrollment_end": "9999-01-06"}, windowFlag, windowCourse, none, 1, experiments.ReasonForced},
		{"ok, end 2012-01-06, enrolled 2012-01-05", map[string]string{"enrollment_end": "2012-01-06"}, windowFlag, windowCourse, d("2012-01-05T00:00:00Z"), 1, experiments.ReasonForced},
		{"nok, end 2012-01-06, enrolled 2012-01-07", map[string]string{"enrollment_end": "2012-01-06"}, windowFlag, windowCourse, d("2012-01-07T00:00:00Z"), 0, experiments.ReasonOutsideWindow},

		// Boundaries: start <= enrolled < end.
		{"ok, enrolled exactly at start", map[string]string{"enrollment_start": "2012-01-06 10:30"}, windowFlag, windowCourse, d("2012-01-06T10:30:00Z"), 1, experiments.ReasonForced},
		{"nok, enrolled a nanosecond before start", map[string]string{"enrollment_start": "2012-01-06 10:30"}, windowFlag, windowCourse, d("2012-01-06T10:29:59.999999999Z"), 0, experiments.ReasonOutsideWindow},
		{"nok, enrolled exactly at end", map[string]string{"enrollment_end": "2012-01-06 10:30"}, windowFlag, windowCourse, d("2012-01-06T10:30:00Z"), 0, experiments.ReasonOutsideWindow},
		{"ok, enrolled a nanosecond before end", map[string]string{"enrollment_end": "2012-01-06 10:30"}, windowFlag, windowCourse, d("2012-01-06T10:29:59.999999999Z"), 1, experiments.ReasonForced},
		{"ok, enrolled inside both bounds", map[string]string{"enrollment_start": "2012-01-01", "enrollment_end": "2012-02-01"}, windowFlag, windowCourse, d("2012-01-15T00:00:00Z"), 1, experiments.ReasonForced},
		{"nok, enrolled before both bounds", map[string]string{"enrollment_start": "2012-01-01", "enrollment_end": "2012-02-01"}, windowFlag, windowCourse, d("2011-12-31T23:59:59Z"), 0, experiments.ReasonOutsideWindow},
		{"nok, enrolled after both bounds", map[string]string{"enrollment_start": "2012-01-01", "enrollment_end": "2012-02-01"}, windowFlag, windowCourse, d("2012-02-01T00:00:00Z"), 0, experiments.ReasonOutsideWindow},
		{"nok, empty window start == end", map[string]string{"enrollment_start": "2012-01-01", "enrollment_end": "2012-01-01"}, windowFlag, windowCourse, d("2012-01-01T00:00:00Z"), 0, experiments.ReasonOutsideWindow},
		{"ok, enrollment in another zone compares as an instant", map[string]string{"enrollment_start": "2012-01-06 10:00"}, windowFlag, windowCourse, d("2012-01-06T12:00:00+02:00"), 1, experiments.ReasonForced},
		{"nok, enrollment in another zone a second early", map[string]string{"enrollment_start": "2012-01-06 10:00"}, windowFlag, windowCourse, d("2012-01-06T11:59:59+02:00"), 0, experiments.ReasonOutsideWindow},

		// The zone of a bound is dropped: 10:00+05:00 means 10:00 UTC.
		{"ok, the zone of a bound is dropped (enrolled at 10:00 UTC)", map[string]string{"enrollment_start": "2012-01-06T10:00:00+05:00"}, windowFlag, windowCourse, d("2012-01-06T10:00:00Z"), 1, experiments.ReasonForced},
		{"nok, the zone of a bound is dropped (enrolled at 09:59 UTC)", map[string]string{"enrollment_start": "2012-01-06T10:00:00+05:00"}, windowFlag, windowCourse, d("2012-01-06T09:59:59Z"), 0, experiments.ReasonOutsideWindow},

		// Not enrolled: Config.Now is the enrollment time.
		{"ok, not enrolled and start == now", map[string]string{"enrollment_start": "2020-06-15 12:00:00"}, windowFlag, windowCourse, none, 1, experiments.ReasonForced},
		{"nok, not enrolled and start a second after now", map[string]string{"enrollment_start": "2020-06-15 12:00:01"}, windowFlag, windowCourse, none, 0, experiments.ReasonOutsideWindow},
		{"nok, not enrolled and end == now", map[string]string{"enrollment_end": "2020-06-15 12:00:00"}, windowFlag, windowCourse, none, 0, experiments.ReasonOutsideWindow},
		{"ok, not enrolled and end a microsecond after now", map[string]string{"enrollment_end": "2020-06-15T12:00:00.000001"}, windowFlag, windowCourse, none, 1, experiments.ReasonForced},

		// When the window does not apply.
		{"ok, no values: no window", nil, windowFlag, windowCourse, none, 1, experiments.ReasonForced},
		{"ok, other keys only: no window", map[string]string{"note": "9999-01-01"}, windowFlag, windowCourse, none, 1, experiments.ReasonForced},
		{"ok, an empty value is unset", map[string]string{"enrollment_start": ""}, windowFlag, windowCourse, none, 1, experiments.ReasonForced},
		{"ok, no course: the window is ignored", map[string]string{"enrollment_start": "9999-01-06"}, windowFlag, "", none, 1, experiments.ReasonForced},
		{"ok, no course: a bad date is ignored", map[string]string{"enrollment_start": "not-a-date"}, windowFlag, "", none, 1, experiments.ReasonForced},
		{"ok, experiment ID not set: the window is ignored", map[string]string{"enrollment_start": "9999-01-06"}, windowNoExpFlag, windowCourse, none, 1, experiments.ReasonForced},
		{"ok, another experiment's window does not apply", map[string]string{"enrollment_start": "9999-01-06"}, windowOtherExp, windowCourse, none, 1, experiments.ReasonForced},

		// Bad dates give control.
		{"nok, start does not parse", map[string]string{"enrollment_start": "not-a-date"}, windowFlag, windowCourse, none, 0, experiments.ReasonBadWindow},
		{"nok, end does not parse", map[string]string{"enrollment_end": "2012-13-01"}, windowFlag, windowCourse, d("2012-01-07T00:00:00Z"), 0, experiments.ReasonBadWindow},
		{"nok, good start but bad end", map[string]string{"enrollment_start": "2012-01-01", "enrollment_end": "06/01/2012"}, windowFlag, windowCourse, d("2012-01-07T00:00:00Z"), 0, experiments.ReasonBadWindow},
	}
	u := experiments.User{ID: "1001", Username: "learner"}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			store := windowStore(t, c.values)
			if !c.enrolled.IsZero() {
				if err := store.SetEnrollment(context.Background(), u.ID, windowCourse, c.enrolled); err != nil {
					t.Fatal(err)
				}
			}
			x := experiments.New(experiments.Config{Store: store, Now: func() time.Time { return windowNow }, Logger: unitLogger()})
			got := c.flag.Decide(x.NewContext(context.Background(), u), c.course)
			if got.Bucket != c.bucket || got.Reason != c.reason {
				t.Errorf("Decide = %+v, want bucket %d, reason %q", got, c.bucket, c.reason)
			}
			if (got.Reason == experiments.ReasonBadWindow) != (got.Err != nil) {
				t.Errorf("Decide = %+v: Err must be set exactly for a bad window", got)
			}
			if got.Reason == experiments.ReasonBadWindow && !errors.Is(got.Err, experiments.ErrBadWindow) {
				t.Errorf("Err = %v, want it to wrap ErrBadWindow", got.Err)
			}
		})
	}
}

// TestEnrollmentWindowEmptyValue builds a snapshot directly, with an empty
// value that a store could hold: it is unset, as in edX.
func TestEnrollmentWindowEmptyValue(t *testing.T) {
	snap := experiments.NewSnapshot(experiments.SnapshotData{
		Flags: map[string]experiments.Rule{
			windowFlag.Name():        experiments.On(),
			windowFlag.BucketFlag(1): experiments.On(),
		},
		ExperimentValues: map[int]map[string]string{12: {"enrollment_start": "", "enrollment_end": ""}},
	})
	cases := []struct {
		name   string
		course string
	}{
		{"ok, empty bounds with a course", windowCourse},
		{"ok, empty bounds without a course", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			en := &countingEnrollments{}
			x := experiments.New(experiments.Config{Store: fixedStore{snap}, Enrollments: en, Logger: unitLogger()})
			got := windowFlag.Decide(x.NewContext(context.Background(), experiments.User{ID: "1"}), c.course)
			if got.Bucket != 1 || got.Reason != experiments.ReasonForced {
				t.Errorf("Decide = %+v, want forced bucket 1", got)
			}
			if n := en.count(); n != 0 {
				t.Errorf("%d enrollment lookups, want none without a window", n)
			}
		})
	}
}

// fixedStore serves one snapshot.
type fixedStore struct{ snap *experiments.Snapshot }

func (s fixedStore) Snapshot(context.Context) (*experiments.Snapshot, error) { return s.snap, nil }

func TestEnrollmentWindowErrorNamesTheValue(t *testing.T) {
	cases := []struct {
		name   string
		values map[string]string
		want   string
	}{
		{"nok, start does not parse", map[string]string{"enrollment_start": "not-a-date"}, `experiment 12: enrollment_start "not-a-date"`},
		{"nok, end does not parse", map[string]string{"enrollment_end": "2012-13-01"}, `experiment 12: enrollment_end "2012-13-01"`},
		{"nok, end does not parse after a good start", map[string]string{"enrollment_start": "2012-01-01", "enrollment_end": "tomorrow"}, `experiment 12: enrollment_end "tomorrow"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x := experiments.New(experiments.Config{Store: windowStore(t, c.values), Logger: unitLogger()})
			got := windowFlag.Decide(x.NewContext(context.Background(), experiments.User{ID: "1"}), windowCourse)
			if got.Err == nil || !strings.Contains(got.Err.Error(), c.want) {
				t.Fatalf("Err = %v, want it to contain %s", got.Err, c.want)
			}
			if !errors.Is(got.Err, experiments.ErrBadWindow) {
				t.Errorf("Err = %v, want it to wrap ErrBadWindow", got.Err)
			}
		})
	}
}

func TestEnrollmentLookups(t *testing.T) {
	const otherCourse = "course-v1:ORG+Other+2026"
	u := experiments.User{ID: "1001", Username: "learner"}
	enrolled := time.Date(2012, 1, 7, 0, 0, 0, 0, time.UTC)

	t.Run("ok, one lookup per request and course for flags sharing the experiment", func(t *testing.T) {
		en := &countingEnrollments{at: map[[2]string]time.Time{{u.ID, windowCourse}: enrolled}}
		store := windowStore(t, map[string]string{"enrollment_start": "2012-01-06"})
		x := experiments.New(experiments.Config{Store: store, Enrollments: en, Now: func() time.Time { return windowNow }, Logger: unitLogger()})
		ctx := x.NewContext(context.Background(), u)
		for _, f := range []*experiments.ExperimentFlag{windowFlag, windowTwin, windowFlag, windowTwin} {
			if d := f.Decide(ctx, windowCourse); d.Bucket != 1 {
				t.Fatalf("%s: Decide = %+v, want bucket 1", f.Name(), d)
			}
		}
		if n := en.count(); n != 1 {
			t.Fatalf("%d lookups after two flags in one course, want 1", n)
		}
		// Not enrolled in the other course: now is 2020, inside the window.
		for _, f := range []*experiments.ExperimentFlag{windowFlag, windowTwin} {
			if d := f.Decide(ctx, otherCourse); d.Bucket != 1 {
				t.Fatalf("%s in %s: Decide = %+v, want bucket 1", f.Name(), otherCourse, d)
			}
		}
		if n := en.count(); n != 2 {
			t.Fatalf("%d lookups after a second course, want 2", n)
		}
		// A new request looks up again.
		windowFlag.Decide(x.NewContext(context.Background(), u), windowCourse)
		if n := en.count(); n != 3 {
			t.Fatalf("%d lookups after a new request, want 3", n)
		}
	})

	t.Run("ok, no lookup without a window, without a course or with the flag off", func(t *testing.T) {
		en := &countingEnrollments{}
		store := windowStore(t, nil)
		unitSetFlag(t, store, windowTwin.Name(), experiments.Off())
		if err := store.SetExperimentValue(context.Background(), 12, experiments.EnrollmentStart, "2012-01-06"); err != nil {
			t.Fatal(err)
		}
		x := experiments.New(experiments.Config{Store: store, Enrollments: en, Logger: unitLogger()})
		windowFlag.Decide(x.NewContext(context.Background(), u), "")
		windowTwin.Decide(x.NewContext(context.Background(), u), windowCourse)
		windowNoExpFlag.Decide(x.NewContext(context.Background(), u), windowCourse)
		windowFlag.Decide(x.NewContext(context.Background(), experiments.User{}), windowCourse)
		if n := en.count(); n != 0 {
			t.Errorf("%d lookups, want 0", n)
		}
	})

	t.Run("ok, Config.Enrollments is used rather than the store's", func(t *testing.T) {
		// The store says enrolled long ago (outside); the configured
		// Enrollments says enrolled inside the window.
		store := windowStore(t, map[string]string{"enrollment_start": "2012-01-06"})
		if err := store.SetEnrollment(context.Background(), u.ID, windowCourse, time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
			t.Fatal(err)
		}
		en := &countingEnrollments{at: map[[2]string]time.Time{{u.ID, windowCourse}: enrolled}}
		x := experiments.New(experiments.Config{Store: store, Enrollments: en, Logger: unitLogger()})
		if d := windowFlag.Decide(x.NewContext(context.Background(), u), windowCourse); d.Bucket != 1 || en.count() != 1 {
			t.Errorf("Decide = %+v after %d lookups, want bucket 1 after 1", d, en.count())
		}
	})

	t.Run("nok, a failed lookup gives control with the error, once per request", func(t *testing.T) {
		boom := errors.New("enrollment service down")
		en := &countingEnrollments{err: boom}
		x := experiments.New(experiments.Config{Store: windowStore(t, map[string]string{"enrollment_start": "2012-01-06"}), Enrollments: en, Logger: unitLogger()})
		ctx := x.NewContext(context.Background(), u)
		d := windowFlag.Decide(ctx, windowCourse)
		if d.Bucket != 0 || d.Reason != experiments.ReasonError || !errors.Is(d.Err, boom) {
			t.Errorf("Decide = %+v, want bucket 0, reason %q, Err wrapping %v", d, experiments.ReasonError, boom)
		}
		if d := windowTwin.Decide(ctx, windowCourse); d.Bucket != 0 || !errors.Is(d.Err, boom) {
			t.Errorf("twin: Decide = %+v, want bucket 0 with the same error", d)
		}
		if n := en.count(); n != 1 {
			t.Errorf("%d lookups, want 1", n)
		}
	})

	t.Run("nok, no Enrollments available gives ReasonError", func(t *testing.T) {
		store := windowStore(t, map[string]string{"enrollment_start": "2012-01-06"})
		x := experiments.New(experiments.Config{Store: snapshotOnly{store}, Logger: unitLogger()})
		d := windowFlag.Decide(x.NewContext(context.Background(), u), windowCourse)
		if d.Bucket != 0 || d.Reason != experiments.ReasonError || d.Err == nil {
			t.Errorf("Decide = %+v, want bucket 0, reason %q and an error", d, experiments.ReasonError)
		}
		// Without a course there is no window and no lookup.
		d = windowFlag.Decide(x.NewContext(context.Background(), u), "")
		if d.Bucket != 1 || d.Err != nil {
			t.Errorf("without a course: Decide = %+v, want forced bucket 1", d)
		}
	})
}
