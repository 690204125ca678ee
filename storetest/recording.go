package storetest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/abkit/experiments"
)

// Goals, and what a Recorder keeps: exposures and conversions.

func setGoal(g experiments.Goal) write {
	return func(ctx context.Context, s Store) error { return s.SetGoal(ctx, g) }
}

func deleteGoal(name string) write {
	return func(ctx context.Context, s Store) error { return s.DeleteGoal(ctx, name) }
}

var (
	signupGoal  = experiments.Goal{Name: "signup", Once: true}
	revenueGoal = experiments.Goal{Name: "revenue", Value: experiments.ValueSum}
	engagedGoal = experiments.Goal{Name: "engaged", Include: []string{"signup", "revenue"}}
)

// clock is a settable Config.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// recording returns an Experiments on the store that records into it,
// with clock c.
func (f *fixture) recording(c *clock) *experiments.Experiments {
	return experiments.New(experiments.Config{
		Store:       f.s,
		Enrollments: f.s,
		Recorder:    f.s,
		Now:         c.Now,
		Logger:      slog.New(slog.DiscardHandler),
	})
}

// recordedAt is the clock of the i-th request of a recording test: with
// nanoseconds, which stores truncate to the microsecond.
func recordedAt(i int) time.Time {
	return fixedNow.Add(time.Duration(i)*time.Minute + 123456789)
}

// setUpReader is setUp for a test that reads back what the store
// recorded: skipped unless the store is a Reader.
func setUpReader(t *testing.T, newStore func(*testing.T) Store) *fixture {
	t.Helper()
	f := setUp(t, newStore)
	if _, ok := f.s.(Reader); !ok {
		t.Skipf("%T is not a storetest.Reader: its recording is not checked", f.s)
	}
	return f
}

// records returns what the store recorded, flushed first if it is a
// Flusher, in UTC, ordered by time and then by their other fields.
func (f *fixture) records() ([]experiments.Exposure, []experiments.Conversion) {
	f.t.Helper()
	if fl, ok := f.s.(Flusher); ok {
		if err := fl.Flush(f.ctx); err != nil {
			f.t.Fatalf("Flush: %v", err)
		}
	}
	r := f.s.(Reader)
	es, cs := r.Exposures(), r.Conversions()
	for i := range es {
		es[i].Time = es[i].Time.UTC()
	}
	for i := range cs {
		cs[i].Time = cs[i].Time.UTC()
	}
	slices.SortFunc(es, func(a, b experiments.Exposure) int {
		return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.Flag, b.Flag), cmp.Compare(a.CourseKey, b.CourseKey),
			cmp.Compare(a.UserID, b.UserID), cmp.Compare(a.Bucket, b.Bucket))
	})
	slices.SortFunc(cs, func(a, b experiments.Conversion) int {
		return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.Goal, b.Goal), cmp.Compare(a.UserID, b.UserID), cmp.Compare(a.Value, b.Value))
	})
	return es, cs
}

// checkRecords compares what the store recorded with what is wanted,
// given in the order of records.
func (f *fixture) checkRecords(wantE []experiments.Exposure, wantC []experiments.Conversion) {
	f.t.Helper()
	gotE, gotC := f.records()
	if !slices.EqualFunc(gotE, wantE, func(a, b experiments.Exposure) bool {
		ta, tb := a.Time, b.Time
		a.Time, b.Time = time.Time{}, time.Time{}
		return a == b && ta.Equal(tb)
	}) {
		f.t.Errorf("exposures:\n got %s\nwant %s", fmtRecords(gotE), fmtRecords(wantE))
	}
	if !slices.EqualFunc(gotC, wantC, func(a, b experiments.Conversion) bool {
		ta, tb := a.Time, b.Time
		a.Time, b.Time = time.Time{}, time.Time{}
		return a == b && ta.Equal(tb)
	}) {
		f.t.Errorf("conversions:\n got %s\nwant %s", fmtRecords(gotC), fmtRecords(wantC))
	}
}

func fmtRecords[T any](rs []T) string {
	var b strings.Builder
	b.WriteString(fmt.Sprintf("%d:", len(rs)))
	for _, r := range rs {
		b.WriteString(fmt.Sprintf("\n\t%+v", r))
	}
	return b.String()
}

func testGoals(t *testing.T, newStore func(*testing.T) Store) {
	goals := []experiments.Goal{
		{Name: "signup"},
		{Name: "upgrade", Once: true},
		{Name: "revenue", Value: experiments.ValueSum},
		{Name: "minutes.watched", Value: experiments.ValueAverage},
		{Name: "spend_per-user", Value: experiments.ValuePerParticipant},
		{Name: "engaged", Once: true, Include: []string{"signup", "minutes.watched"}, Exclude: []string{"refund", "Refund"}},
		{Name: strings.Repeat("g", 255)},
	}
	t.Run("ok, goals read back in the snapshot as written", func(t *testing.T) {
		f := setUp(t, newStore)
		want := make(map[string]experiments.Goal)
		for _, g := range goals {
			f.apply(setGoal(g))
			want[g.Name] = g
		}
		if got := f.data().Goals; !reflect.DeepEqual(got, normalized(experiments.SnapshotData{Goals: want}).Goals) {
			t.Errorf("Data().Goals =\n%+v\nwant\n%+v", got, want)
		}
	})
	t.Run("ok, a goal set again is replaced", func(t *testing.T) {
		f := setUp(t, newStore)
		second := experiments.Goal{Name: "revenue", Once: true, Value: experiments.ValueAverage}
		f.apply(setGoal(revenueGoal), setGoal(second))
		if got := f.data().Goals; len(got) != 1 || !reflect.DeepEqual(got["revenue"], second) {
			t.Errorf("Data().Goals = %+v, want only %+v", got, second)
		}
	})
	t.Run("ok, a deleted goal leaves the snapshot and the others stay", func(t *testing.T) {
		f := setUp(t, newStore)
		f.apply(setGoal(signupGoal), setGoal(revenueGoal), deleteGoal(signupGoal.Name))
		if got := f.data().Goals; len(got) != 1 || !reflect.DeepEqual(got["revenue"], revenueGoal) {
			t.Errorf("Data().Goals = %+v, want only %+v", got, revenueGoal)
		}
	})
	t.Run("ok, deleting a goal never set, or twice, is not an error and changes nothing", func(t *testing.T) {
		f := setUp(t, newStore)
		f.apply(setGoal(revenueGoal), setFlag(mainFlag.Name(), experiments.On()), setGoal(signupGoal), deleteGoal(signupGoal.Name))
		before := f.data()
		f.apply(deleteGoal(signupGoal.Name), deleteGoal("never.set"))
		if after := f.data(); !reflect.DeepEqual(before, after) {
			t.Errorf("Data() after deleting goals not set = %+v, want %+v", after, before)
		}
	})
	t.Run("ok, the caller's Include and Exclude slices are copied", func(t *testing.T) {
		f := setUp(t, newStore)
		g := experiments.Goal{Name: "engaged", Include: []string{"signup"}, Exclude: []string{"refund"}}
		f.apply(setGoal(g))
		g.Include[0], g.Exclude[0] = "changed", "changed_too"
		got := f.data().Goals["engaged"]
		if !slices.Equal(got.Include, []string{"signup"}) || !slices.Equal(got.Exclude, []string{"refund"}) {
			t.Errorf("Data().Goals[engaged] = %+v after the caller changed its slices, want Include [signup], Exclude [refund]", got)
		}
	})
	t.Run("ok, Convert of a goal the store has is recorded", func(t *testing.T) {
		f := setUp(t, newStore)
		f.apply(setGoal(signupGoal), setGoal(revenueGoal))
		x := f.recording(&clock{now: fixedNow})
		ctx := x.NewContext(f.ctx, alice)
		if err := experiments.Convert(ctx, signupGoal.Name); err != nil {
			t.Errorf("Convert(%s) = %v, want nil", signupGoal.Name, err)
		}
		if err := experiments.ConvertValue(ctx, revenueGoal.Name, 12.5); err != nil {
			t.Errorf("ConvertValue(%s, 12.5) = %v, want nil", revenueGoal.Name, err)
		}
		if st := x.Stats(); st != (experiments.Stats{Conversions: 2}) {
			t.Errorf("Stats() = %+v, want 2 conversions", st)
		}
	})
	refused := []struct {
		name   string
		writes []write
		goal   string
		value  float64
		want   error
	}{
		{"nok, Convert of an unknown goal fails with ErrUnknownGoal", []write{setGoal(signupGoal)}, "signup.other", 0, experiments.ErrUnknownGoal},
		{"nok, Convert of a deleted goal fails with ErrUnknownGoal", []write{setGoal(signupGoal), deleteGoal(signupGoal.Name)}, signupGoal.Name, 0, experiments.ErrUnknownGoal},
		{"nok, Convert of a complex goal is refused", []write{setGoal(signupGoal), setGoal(revenueGoal), setGoal(engagedGoal)}, engagedGoal.Name, 0, experiments.ErrInvalid},
		{"nok, ConvertValue of NaN is refused", []write{setGoal(revenueGoal)}, revenueGoal.Name, math.NaN(), experiments.ErrInvalid},
		{"nok, ConvertValue of -Inf is refused", []write{setGoal(revenueGoal)}, revenueGoal.Name, math.Inf(-1), experiments.ErrInvalid},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			f := setUp(t, newStore)
			f.apply(c.writes...)
			x := f.recording(&clock{now: fixedNow})
			if err := experiments.ConvertValue(x.NewContext(f.ctx, alice), c.goal, c.value); !errors.Is(err, c.want) {
				t.Errorf("ConvertValue(%q, %v) = %v, want an error wrapping %v", c.goal, c.value, err, c.want)
			}
			if st := x.Stats(); st != (experiments.Stats{}) {
				t.Errorf("Stats() = %+v, want nothing counted", st)
			}
			if _, ok := f.s.(Reader); ok {
				f.checkRecords(nil, nil)
			}
		})
	}
}

// goalRefusals are the goal writes that testInvalid checks.
func goalRefusals() []refusal {
	long := strings.Repeat("g", 256)
	return []refusal{
		{"nok, SetGoal with an empty name", setGoal(experiments.Goal{}), "goal name"},
		{"nok, SetGoal with a space in the name", setGoal(experiments.Goal{Name: "sign up"}), "goal name"},
		{"nok, SetGoal with a slash in the name", setGoal(experiments.Goal{Name: "sign/up"}), "goal name"},
		{"nok, SetGoal with a non-ASCII name", setGoal(experiments.Goal{Name: "café"}), "goal name"},
		{"nok, SetGoal with a NUL in the name", setGoal(experiments.Goal{Name: "signup\x00"}), "goal name"},
		{"nok, SetGoal with a name of 256 bytes", setGoal(experiments.Goal{Name: long}), "goal name"},
		{"nok, SetGoal with an unknown value type", setGoal(experiments.Goal{Name: "g", Value: experiments.ValuePerParticipant + 1}), "value type"},
		{"nok, SetGoal with a negative value type", setGoal(experiments.Goal{Name: "g", Value: -1}), "value type"},
		{"nok, SetGoal with exclude without include", setGoal(experiments.Goal{Name: "g", Exclude: []string{"refund"}}), "exclude without include"},
		{"nok, SetGoal including itself", setGoal(experiments.Goal{Name: "g", Include: []string{"signup", "g"}}), "include[1]: the goal itself"},
		{"nok, SetGoal excluding itself", setGoal(experiments.Goal{Name: "g", Include: []string{"signup"}, Exclude: []string{"g"}}), "exclude[0]: the goal itself"},
		{"nok, SetGoal with a value on a complex goal", setGoal(experiments.Goal{Name: "g", Include: []string{"signup"}, Value: experiments.ValueSum}), "complex goal has no value"},
		{"nok, SetGoal including a bad goal name", setGoal(experiments.Goal{Name: "g", Include: []string{"sign up"}}), "include[0]"},
		{"nok, SetGoal excluding a bad goal name", setGoal(experiments.Goal{Name: "g", Include: []string{"signup"}, Exclude: []string{""}}), "exclude[0]"},
		{"nok, SetGoal including and excluding one goal", setGoal(experiments.Goal{Name: "g", Include: []string{"signup"}, Exclude: []string{"signup"}}), "both included and excluded"},
		{"nok, DeleteGoal with an empty name", deleteGoal(""), "goal name"},
		{"nok, DeleteGoal with a bad name", deleteGoal("sign up"), "goal name"},
	}
}

func testRecording(t *testing.T, newStore func(*testing.T) Store) {
	b := bucketFlag.BucketFlag
	t.Run("ok, an exposure is kept once per user and experiment: the first, even with another bucket later", func(t *testing.T) {
		f := setUpReader(t, newStore)
		f.apply(setFlag(bucketFlag.Name(), experiments.On()), setFlag(b(1), experiments.On()))
		c := &clock{now: recordedAt(0)}
		x := f.recording(c)
		if d := bucketFlag.Decide(x.NewContext(f.ctx, alice), courseA); d != (experiments.Decision{Bucket: 1, Reason: experiments.ReasonForced}) {
			t.Fatalf("first decision %+v, want bucket 1 forced", d)
		}
		f.apply(deleteFlag(b(1)), setFlag(b(2), experiments.On()))
		for i := 1; i <= 2; i++ {
			c.Set(recordedAt(i))
			if d := bucketFlag.Decide(x.NewContext(f.ctx, alice), courseA); d != (experiments.Decision{Bucket: 2, Reason: experiments.ReasonForced}) {
				t.Fatalf("decision %d: %+v, want bucket 2 forced", i, d)
			}
		}
		f.checkRecords([]experiments.Exposure{
			{Flag: bucketFlag.Name(), CourseKey: courseA, UserID: alice.ID, Bucket: 1, Time: recordedAt(0).Truncate(time.Microsecond)},
		}, nil)
	})
	t.Run("ok, exposures are per user, flag and course, at the microsecond", func(t *testing.T) {
		f := setUpReader(t, newStore)
		f.apply(setFlag(mainFlag.Name(), experiments.On()), setFlag(bucketFlag.Name(), experiments.On()))
		c := &clock{}
		x := f.recording(c)
		var want []experiments.Exposure
		for i, r := range []struct {
			flag   *experiments.ExperimentFlag
			user   experiments.User
			course string
		}{
			{mainFlag, alice, courseA},
			{mainFlag, alice, courseB},
			{mainFlag, alice, ""},
			{mainFlag, bob, courseA},
			{bucketFlag, alice, courseA},
			{bucketFlag, dave, ""},
		} {
			c.Set(recordedAt(i))
			ctx := x.NewContext(f.ctx, r.user)
			d := r.flag.Decide(ctx, r.course)
			if d.Reason != experiments.ReasonHashed || d.Err != nil {
				t.Fatalf("request %d: decision %+v, want hashed", i, d)
			}
			if again := r.flag.Bucket(ctx, r.course); again != d.Bucket { // cached: no second exposure
				t.Fatalf("request %d: second Bucket %d, want %d", i, again, d.Bucket)
			}
			want = append(want, experiments.Exposure{Flag: r.flag.Name(), CourseKey: r.course, UserID: r.user.ID,
				Bucket: d.Bucket, Time: recordedAt(i).Truncate(time.Microsecond)})
		}
		f.checkRecords(want, nil)
	})
	t.Run("nok, no exposure without a tracked bucketing: flag off, anonymous, masquerading, untracked", func(t *testing.T) {
		f := setUpReader(t, newStore)
		f.apply(setFlag(mainFlag.Name(), experiments.Off()), setFlag(percentFlag.Name(), experiments.On()))
		x := f.recording(&clock{now: fixedNow})
		mainFlag.Bucket(x.NewContext(f.ctx, alice), courseA)
		percentFlag.Bucket(x.NewContext(f.ctx, anonymous), courseA)
		percentFlag.Bucket(x.NewContext(f.ctx, experiments.User{ID: alice.ID, Masquerading: true}), courseA)
		percentFlag.DecideUntracked(x.NewContext(f.ctx, bob), courseA)
		percentFlag.IsExperimentOn(x.NewContext(f.ctx, carol), courseA)
		f.checkRecords(nil, nil)
	})
	t.Run("ok, conversions are all kept, with their values", func(t *testing.T) {
		f := setUpReader(t, newStore)
		f.apply(setGoal(signupGoal), setGoal(revenueGoal))
		c := &clock{}
		x := f.recording(c)
		var want []experiments.Conversion
		for i, cv := range []struct {
			user  experiments.User
			goal  string
			value float64
		}{
			{alice, signupGoal.Name, 0},
			{alice, signupGoal.Name, 0}, // a Once goal: results count it once, stores keep both
			{bob, revenueGoal.Name, 9.99},
			{alice, revenueGoal.Name, 0.1 + 0.2},
			{alice, revenueGoal.Name, -5},
			{dave, revenueGoal.Name, experiments.MaxConversionValue},
			{dave, revenueGoal.Name, 1e-300},
			{carol, signupGoal.Name, 3}, // a value on a goal that counts is kept too
		} {
			c.Set(recordedAt(i))
			ctx := x.NewContext(f.ctx, cv.user)
			var err error
			if cv.value == 0 {
				err = experiments.Convert(ctx, cv.goal)
			} else {
				err = experiments.ConvertValue(ctx, cv.goal, cv.value)
			}
			if err != nil {
				t.Fatalf("conversion %d: %v", i, err)
			}
			want = append(want, experiments.Conversion{Goal: cv.goal, UserID: cv.user.ID, Value: cv.value, Time: recordedAt(i).Truncate(time.Microsecond)})
		}
		f.checkRecords(nil, want)
		if st := x.Stats(); st != (experiments.Stats{Conversions: uint64(len(want))}) {
			t.Errorf("Stats() = %+v, want %d conversions", st, len(want))
		}
	})
	t.Run("ok, conversions of anonymous and masquerading users are ignored and counted", func(t *testing.T) {
		f := setUpReader(t, newStore)
		f.apply(setGoal(signupGoal))
		x := f.recording(&clock{now: fixedNow})
		for _, u := range []experiments.User{anonymous, {ID: alice.ID, Masquerading: true}, {Username: "named", Staff: true}} {
			if err := experiments.Convert(x.NewContext(f.ctx, u), signupGoal.Name); err != nil {
				t.Errorf("Convert for %+v = %v, want nil (ignored)", u, err)
			}
		}
		if st := x.Stats(); st != (experiments.Stats{IgnoredConversions: 3}) {
			t.Errorf("Stats() = %+v, want 3 ignored conversions", st)
		}
		f.checkRecords(nil, nil)
	})
}
