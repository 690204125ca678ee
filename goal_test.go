package experiments_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/abkit/experiments"
)

var goalFlag = experiments.NewFlag("goals", "main")

// goalRuntime is an Experiments recording into a MemStore with goalFlag
// on, a counting goal "signup", a once goal "enrolled", a value goal
// "purchase" and a complex goal "engaged".
func goalRuntime(t *testing.T) (*experiments.Experiments, *experiments.MemStore) {
	t.Helper()
	ctx := context.Background()
	s := experiments.NewMemStore()
	for _, err := range []error{
		s.SetFlag(ctx, goalFlag.Name(), experiments.On()),
		s.SetGoal(ctx, experiments.Goal{Name: "signup"}),
		s.SetGoal(ctx, experiments.Goal{Name: "enrolled", Once: true}),
		s.SetGoal(ctx, experiments.Goal{Name: "purchase", Value: experiments.ValueSum}),
		s.SetGoal(ctx, experiments.Goal{Name: "engaged", Include: []string{"signup", "enrolled"}, Exclude: []string{"refund"}}),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	clock := time.Date(2026, 11, 26, 10, 0, 0, 123456789, time.UTC)
	return experiments.New(experiments.Config{Store: s, Recorder: s, Now: func() time.Time { return clock }}), s
}

func TestExposureRecordedOncePerUserAndExperiment(t *testing.T) {
	x, s := goalRuntime(t)
	ctx := context.Background()
	for range 3 { // three requests, no sessions: the store keeps the first
		goalFlag.Bucket(x.NewContext(ctx, experiments.User{ID: "1"}), "course-v1:X+Y+Z")
	}
	goalFlag.Bucket(x.NewContext(ctx, experiments.User{ID: "1"}), "") // another experiment: no course
	goalFlag.Bucket(x.NewContext(ctx, experiments.User{ID: "2"}), "course-v1:X+Y+Z")
	goalFlag.DecideUntracked(x.NewContext(ctx, experiments.User{ID: "3"}), "course-v1:X+Y+Z")
	goalFlag.Bucket(x.NewContext(ctx, experiments.User{ID: "4", Masquerading: true}), "course-v1:X+Y+Z")
	goalFlag.Bucket(x.NewContext(ctx, experiments.User{}), "course-v1:X+Y+Z")

	got := s.Exposures()
	want := []experiments.Exposure{
		{Flag: goalFlag.Name(), CourseKey: "course-v1:X+Y+Z", UserID: "1"},
		{Flag: goalFlag.Name(), CourseKey: "", UserID: "1"},
		{Flag: goalFlag.Name(), CourseKey: "course-v1:X+Y+Z", UserID: "2"},
	}
	if len(got) != len(want) {
		t.Fatalf("exposures %+v, want %d (untracked, masquerading and anonymous decisions are no exposures)", got, len(want))
	}
	for i, e := range got {
		w := want[i]
		w.Bucket = experiments.SHA256Bucket(goalFlag.Name()+dotted(w.CourseKey), w.UserID, 2)
		w.Time = time.Date(2026, 11, 26, 10, 0, 0, 123456000, time.UTC)
		if e != w {
			t.Errorf("exposure %d = %+v, want %+v", i, e, w)
		}
	}
}

func dotted(course string) string {
	if course == "" {
		return ""
	}
	return "." + course
}

func TestConvert(t *testing.T) {
	x, s := goalRuntime(t)
	bg := context.Background()
	user := x.NewContext(bg, experiments.User{ID: "1"})
	cases := []struct {
		name    string
		ctx     context.Context
		goal    string
		value   float64
		wantErr error
	}{
		{"ok, a counting goal", user, "signup", 0, nil},
		{"ok, a once goal, twice: both kept, results count it once", user, "enrolled", 0, nil},
		{"ok, a once goal, twice (2)", user, "enrolled", 0, nil},
		{"ok, a value goal", user, "purchase", 19.99, nil},
		{"ok, anonymous users are ignored", x.NewContext(bg, experiments.User{}), "signup", 0, nil},
		{"ok, masquerading staff are ignored", x.NewContext(bg, experiments.User{ID: "9", Masquerading: true}), "signup", 0, nil},
		{"nok, unknown goal", user, "nope", 0, experiments.ErrUnknownGoal},
		{"nok, a complex goal is reached through its goals", user, "engaged", 0, experiments.ErrInvalid},
		{"nok, NaN value", user, "purchase", math.NaN(), experiments.ErrInvalid},
		{"nok, infinite value", user, "purchase", math.Inf(1), experiments.ErrInvalid},
		{"nok, a value beyond MaxConversionValue", user, "purchase", -1e16, experiments.ErrInvalid},
		{"nok, no request state", bg, "signup", 0, experiments.ErrNoRequest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := experiments.ConvertValue(c.ctx, c.goal, c.value)
			if c.wantErr == nil && err != nil || c.wantErr != nil && !errors.Is(err, c.wantErr) {
				t.Errorf("ConvertValue(%q, %v) = %v, want %v", c.goal, c.value, err, c.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), c.goal) {
				t.Errorf("error %q does not name the goal %q", err, c.goal)
			}
		})
	}
	got := s.Conversions()
	if len(got) != 4 {
		t.Fatalf("conversions %+v, want 4", got)
	}
	if c := got[3]; c.Goal != "purchase" || c.UserID != "1" || c.Value != 19.99 || !c.Time.Equal(time.Date(2026, 11, 26, 10, 0, 0, 123456000, time.UTC)) {
		t.Errorf("value conversion %+v", c)
	}
	if st := x.Stats(); st.Conversions != 4 || st.IgnoredConversions != 2 {
		t.Errorf("Stats() = %+v, want 4 recorded, 2 ignored", st)
	}
}

func TestConvertWithoutRecorder(t *testing.T) {
	x := experiments.New(experiments.Config{})
	err := experiments.Convert(x.NewContext(context.Background(), experiments.User{ID: "1"}), "signup")
	if !errors.Is(err, experiments.ErrNoRecorder) {
		t.Errorf("Convert without a Recorder = %v, want ErrNoRecorder", err)
	}
}

func TestGoalValidate(t *testing.T) {
	cases := []struct {
		name  string
		goal  experiments.Goal
		field string // "" when valid
	}{
		{"ok, counting goal", experiments.Goal{Name: "signup"}, ""},
		{"ok, dotted name and value", experiments.Goal{Name: "checkout.paid", Value: experiments.ValueAverage}, ""},
		{"ok, complex goal", experiments.Goal{Name: "engaged", Include: []string{"a", "b"}, Exclude: []string{"c"}}, ""},
		{"nok, empty name", experiments.Goal{}, "goal name"},
		{"nok, space in name", experiments.Goal{Name: "sign up"}, "goal name"},
		{"nok, 256-byte name", experiments.Goal{Name: strings.Repeat("g", 256)}, "goal name"},
		{"nok, unknown value type", experiments.Goal{Name: "g", Value: 9}, "value type"},
		{"nok, exclude without include", experiments.Goal{Name: "g", Exclude: []string{"a"}}, "exclude"},
		{"nok, complex goal with a value", experiments.Goal{Name: "g", Include: []string{"a"}, Value: experiments.ValueSum}, "value"},
		{"nok, includes itself", experiments.Goal{Name: "g", Include: []string{"g"}}, "include"},
		{"nok, bad included name", experiments.Goal{Name: "g", Include: []string{"a b"}}, "include"},
		{"nok, both included and excluded", experiments.Goal{Name: "g", Include: []string{"a"}, Exclude: []string{"a"}}, "both"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.goal.Validate()
			if c.field == "" {
				if err != nil {
					t.Errorf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, experiments.ErrInvalid) || !strings.Contains(err.Error(), c.field) {
				t.Errorf("Validate() = %v, want ErrInvalid naming %q", err, c.field)
			}
		})
	}
}

func TestRecorderFailureKeepsTheBucket(t *testing.T) {
	s := experiments.NewMemStore()
	if err := s.SetFlag(context.Background(), goalFlag.Name(), experiments.On()); err != nil {
		t.Fatal(err)
	}
	events := 0
	x := experiments.New(experiments.Config{Store: s, Recorder: failingRecorder{},
		Tracker: experiments.TrackerFunc(func(context.Context, experiments.Event) error { events++; return nil })})
	d := goalFlag.Decide(x.NewContext(context.Background(), experiments.User{ID: "1"}), "")
	if d.Reason != experiments.ReasonHashed || d.Bucket != experiments.SHA256Bucket(goalFlag.Name(), "1", 2) || !errors.Is(d.Err, experiments.ErrRecorder) {
		t.Errorf("Decide with a failing recorder = %+v; want the hashed bucket and ErrRecorder", d)
	}
	if events != 1 || !d.Tracked {
		t.Errorf("%d events, Tracked %v: a failing recorder must not stop the event", events, d.Tracked)
	}
}

type failingRecorder struct{}

func (failingRecorder) RecordExposure(context.Context, experiments.Exposure) error {
	panic("recorder bug")
}
func (failingRecorder) RecordConversion(context.Context, experiments.Conversion) error {
	return errors.New("down")
}

func TestMemStoreKeepsTheEarliestExposure(t *testing.T) {
	s := experiments.NewMemStore()
	ctx := context.Background()
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	for _, e := range []experiments.Exposure{
		{Flag: "a.b", UserID: "1", Bucket: 1, Time: at},
		{Flag: "a.b", UserID: "1", Bucket: 0, Time: at.Add(-time.Minute)}, // recorded late, happened first
		{Flag: "a.b", UserID: "1", Bucket: 1, Time: at.Add(time.Minute)},
	} {
		if err := s.RecordExposure(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	got := s.Exposures()
	if len(got) != 1 || got[0].Bucket != 0 || !got[0].Time.Equal(at.Add(-time.Minute)) {
		t.Errorf("exposures %+v, want the one at 09:59 in bucket 0", got)
	}
}
