package experiments_test

import (
	"context"
	"errors"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/abkit/experiments"
)

var memFlag = experiments.NewFlag("memstore_test", "main")

func TestMemStoreFlagNeverSetIsOff(t *testing.T) {
	cases := []struct {
		name   string
		course string
	}{
		{"ok, off without a course", ""},
		{"ok, off in a course", "course-v1:ORG+C+R"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x := experiments.New(experiments.Config{Store: experiments.NewMemStore(), Logger: unitLogger()})
			ctx := x.NewContext(context.Background(), experiments.User{ID: "1", Staff: true, Superuser: true})
			if memFlag.IsExperimentOn(ctx, c.course) {
				t.Error("IsExperimentOn = true, want false")
			}
			if d := memFlag.Decide(ctx, c.course); d.Bucket != 0 || d.Reason != experiments.ReasonFlagOff || d.Err != nil {
				t.Errorf("Decide = %+v, want bucket 0, reason %q", d, experiments.ReasonFlagOff)
			}
		})
	}
	t.Run("ok, a new store's snapshot is empty", func(t *testing.T) {
		snap, err := experiments.NewMemStore().Snapshot(context.Background())
		if err != nil || snap == nil {
			t.Fatalf("Snapshot() = %v, %v", snap, err)
		}
		d := snap.Data()
		if len(d.Flags)+len(d.CourseOverrides)+len(d.OrgOverrides)+len(d.ExperimentValues) != 0 {
			t.Errorf("Data() = %+v, want empty", d)
		}
	})
}

func TestMemStoreWrites(t *testing.T) {
	ctx := context.Background()
	const course = "course-v1:ORG+C+R"
	u := experiments.User{ID: "1", Username: "alice"}
	on := func(t *testing.T, s *experiments.MemStore, courseKey string) bool {
		t.Helper()
		x := experiments.New(experiments.Config{Store: s, Logger: unitLogger()})
		return memFlag.IsExperimentOn(x.NewContext(ctx, u), courseKey)
	}
	data := func(t *testing.T, s *experiments.MemStore) experiments.SnapshotData {
		t.Helper()
		snap, err := s.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return snap.Data()
	}

	t.Run("ok, SetFlag stores the rule and turns the flag on", func(t *testing.T) {
		s := experiments.NewMemStore()
		r := experiments.Rule{Users: []string{"alice"}, Groups: []string{"beta"}, Percent: 12.5}
		if err := s.SetFlag(ctx, memFlag.Name(), r); err != nil {
			t.Fatal(err)
		}
		if got := data(t, s).Flags[memFlag.Name()]; !reflect.DeepEqual(got, r) {
			t.Errorf("stored rule = %+v, want %+v", got, r)
		}
		if !on(t, s, "") {
			t.Error("flag off, want on for a listed user")
		}
	})
	t.Run("ok, SetFlag replaces the rule", func(t *testing.T) {
		s := experiments.NewMemStore()
		unitSetFlag(t, s, memFlag.Name(), experiments.On())
		unitSetFlag(t, s, memFlag.Name(), experiments.Off())
		if on(t, s, "") {
			t.Error("flag on, want off after the second SetFlag")
		}
	})
	t.Run("ok, SetFlag accepts a bucket flag and the longest name", func(t *testing.T) {
		s := experiments.NewMemStore()
		for _, name := range []string{memFlag.BucketFlag(1), "a.b", "A-1.b_2.c-3", "a." + strings.Repeat("b", 253)} {
			if err := s.SetFlag(ctx, name, experiments.On()); err != nil {
				t.Errorf("SetFlag(%q): %v", name, err)
			}
		}
	})
	t.Run("ok, DeleteFlag turns the flag off and keeps its overrides", func(t *testing.T) {
		s := experiments.NewMemStore()
		unitSetFlag(t, s, memFlag.Name(), experiments.On())
		if err := s.SetCourseOverride(ctx, memFlag.Name(), course, experiments.ForceOn); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteFlag(ctx, memFlag.Name()); err != nil {
			t.Fatal(err)
		}
		if _, ok := data(t, s).Flags[memFlag.Name()]; ok || on(t, s, "") {
			t.Error("flag still set after DeleteFlag")
		}
		if !on(t, s, course) {
			t.Error("course override lost by DeleteFlag")
		}
	})
	t.Run("ok, DeleteFlag of a flag never set is not an error", func(t *testing.T) {
		if err := experiments.NewMemStore().DeleteFlag(ctx, "never.set"); err != nil {
			t.Errorf("DeleteFlag = %v, want nil", err)
		}
	})
	t.Run("ok, SetCourseOverride sets and Unset removes", func(t *testing.T) {
		s := experiments.NewMemStore()
		if err := s.SetCourseOverride(ctx, memFlag.Name(), course, experiments.ForceOn); err != nil {
			t.Fatal(err)
		}
		if got := data(t, s).CourseOverrides[memFlag.Name()][course]; got != experiments.ForceOn || !on(t, s, course) {
			t.Errorf("override = %v, want ForceOn", got)
		}
		if err := s.SetCourseOverride(ctx, memFlag.Name(), course, experiments.ForceOff); err != nil {
			t.Fatal(err)
		}
		if got := data(t, s).CourseOverrides[memFlag.Name()][course]; got != experiments.ForceOff || on(t, s, course) {
			t.Errorf("override = %v, want ForceOff", got)
		}
		if err := s.SetCourseOverride(ctx, memFlag.Name(), course, experiments.Unset); err != nil {
			t.Fatal(err)
		}
		if _, ok := data(t, s).CourseOverrides[memFlag.Name()][course]; ok {
			t.Error("override still stored after Unset")
		}
	})
	t.Run("ok, SetOrgOverride sets and Unset removes", func(t *testing.T) {
		s := experiments.NewMemStore()
		if err := s.SetOrgOverride(ctx, memFlag.Name(), "ORG", experiments.ForceOn); err != nil {
			t.Fatal(err)
		}
		if got := data(t, s).OrgOverrides[memFlag.Name()]["ORG"]; got != experiments.ForceOn || !on(t, s, course) {
			t.Errorf("override = %v, want ForceOn", got)
		}
		if err := s.SetOrgOverride(ctx, memFlag.Name(), "ORG", experiments.Unset); err != nil {
			t.Fatal(err)
		}
		if _, ok := data(t, s).OrgOverrides[memFlag.Name()]["ORG"]; ok || on(t, s, course) {
			t.Error("override still in effect after Unset")
		}
	})
	t.Run("ok, SetExperimentValue sets, replaces and an empty value removes", func(t *testing.T) {
		s := experiments.NewMemStore()
		long := strings.Repeat("v", 4096)
		steps := []struct {
			key, value string
			want       map[string]string
		}{
			{"enrollment_start", "2012-01-06", map[string]string{"enrollment_start": "2012-01-06"}},
			{"note", long, map[string]string{"enrollment_start": "2012-01-06", "note": long}},
			{"enrollment_start", "2013-01-06", map[string]string{"enrollment_start": "2013-01-06", "note": long}},
			{"note", "", map[string]string{"enrollment_start": "2013-01-06"}},
			{"enrollment_start", "", map[string]string{}},
		}
		for _, st := range steps {
			if err := s.SetExperimentValue(ctx, 12, st.key, st.value); err != nil {
				t.Fatalf("SetExperimentValue(12, %q, %.20q): %v", st.key, st.value, err)
			}
			got := data(t, s).ExperimentValues[12]
			if len(got) != len(st.want) || len(got) > 0 && !reflect.DeepEqual(got, st.want) {
				t.Fatalf("after %q = %.20q: values %v, want %v", st.key, st.value, got, st.want)
			}
		}
	})
	t.Run("ok, SetExperimentValue stores a date that does not parse", func(t *testing.T) {
		s := experiments.NewMemStore()
		if err := s.SetExperimentValue(ctx, 0, experiments.EnrollmentStart, "not-a-date"); err != nil {
			t.Errorf("SetExperimentValue = %v, want nil (edX stores it and fails to control)", err)
		}
	})
	t.Run("ok, SetEnrollment records and replaces, to the microsecond; Enrollment finds it", func(t *testing.T) {
		s := experiments.NewMemStore()
		at := time.Date(2012, 1, 7, 8, 9, 10, 11000, time.UTC)
		if _, found, err := s.Enrollment(ctx, "1", course); found || err != nil {
			t.Fatalf("Enrollment before SetEnrollment: found %v, err %v; want not found, nil", found, err)
		}
		for _, want := range []time.Time{at, at.Add(time.Hour)} {
			if err := s.SetEnrollment(ctx, "1", course, want); err != nil {
				t.Fatal(err)
			}
			got, found, err := s.Enrollment(ctx, "1", course)
			if err != nil || !found || !got.Equal(want) {
				t.Errorf("Enrollment = %v, %v, %v; want %v, true, nil", got, found, err, want)
			}
		}
		if _, found, _ := s.Enrollment(ctx, "1", "course-v1:ORG+C+Other"); found {
			t.Error("enrollment found in another course")
		}
		if _, found, _ := s.Enrollment(ctx, "2", course); found {
			t.Error("enrollment found for another user")
		}
	})
}

// TestMemStoreRefusesBadInput checks that every refused write wraps
// ErrInvalid, names the field and leaves the store as it was.
func TestMemStoreRefusesBadInput(t *testing.T) {
	ctx := context.Background()
	const course = "course-v1:ORG+C+R"
	long := func(n int) string { return strings.Repeat("x", n) }
	type op func(s *experiments.MemStore) error
	setFlag := func(name string, r experiments.Rule) op {
		return func(s *experiments.MemStore) error { return s.SetFlag(ctx, name, r) }
	}
	courseOv := func(name, key string, st experiments.State) op {
		return func(s *experiments.MemStore) error { return s.SetCourseOverride(ctx, name, key, st) }
	}
	orgOv := func(name, org string, st experiments.State) op {
		return func(s *experiments.MemStore) error { return s.SetOrgOverride(ctx, name, org, st) }
	}
	value := func(id int, key, v string) op {
		return func(s *experiments.MemStore) error { return s.SetExperimentValue(ctx, id, key, v) }
	}
	enroll := func(user, key string) op {
		return func(s *experiments.MemStore) error { return s.SetEnrollment(ctx, user, key, time.Unix(0, 0)) }
	}
	name := memFlag.Name()
	cases := []struct {
		name  string
		op    op
		field string
	}{
		{"nok, SetFlag with an empty name", setFlag("", experiments.On()), "flag name"},
		{"nok, SetFlag with a name without a dot", setFlag("noDot", experiments.On()), "flag name"},
		{"nok, SetFlag with an empty part", setFlag("a..b", experiments.On()), "flag name"},
		{"nok, SetFlag with a leading dot", setFlag(".a", experiments.On()), "flag name"},
		{"nok, SetFlag with a trailing dot", setFlag("a.", experiments.On()), "flag name"},
		{"nok, SetFlag with a space", setFlag("a.b c", experiments.On()), "flag name"},
		{"nok, SetFlag with a newline", setFlag("a.b\n", experiments.On()), "flag name"},
		{"nok, SetFlag with a slash", setFlag("a.b/c", experiments.On()), "flag name"},
		{"nok, SetFlag with a non-ASCII letter", setFlag("ä.b", experiments.On()), "flag name"},
		{"nok, SetFlag with 256 bytes", setFlag("a."+long(254), experiments.On()), "flag name"},
		{"nok, SetFlag with 300 bytes", setFlag("a."+long(298), experiments.On()), "flag name"},
		{"nok, SetFlag with percent -1", setFlag(name, experiments.Rule{Percent: -1}), "percent"},
		{"nok, SetFlag with percent 100.5", setFlag(name, experiments.Rule{Percent: 100.5}), "percent"},
		{"nok, SetFlag with percent NaN", setFlag(name, experiments.Rule{Percent: math.NaN()}), "percent"},
		{"nok, SetFlag with an empty user", setFlag(name, experiments.Rule{Users: []string{""}}), "users"},
		{"nok, SetFlag with a control character in a group", setFlag(name, experiments.Rule{Groups: []string{"a\x01"}}), "groups"},
		{"nok, DeleteFlag with an empty name", func(s *experiments.MemStore) error { return s.DeleteFlag(ctx, "") }, "flag name"},
		{"nok, DeleteFlag with a name without a dot", func(s *experiments.MemStore) error { return s.DeleteFlag(ctx, "noDot") }, "flag name"},
		{"nok, SetCourseOverride with a bad flag name", courseOv("a..b", course, experiments.ForceOn), "flag name"},
		{"nok, SetCourseOverride with State(7)", courseOv(name, course, experiments.State(7)), "state"},
		{"nok, SetCourseOverride with State(-1)", courseOv(name, course, experiments.State(-1)), "state"},
		{"nok, SetCourseOverride with an empty course key", courseOv(name, "", experiments.ForceOn), "course key"},
		{"nok, SetCourseOverride with a 256-byte course key", courseOv(name, long(256), experiments.ForceOn), "course key"},
		{"nok, SetCourseOverride with a NUL in the course key", courseOv(name, "course-v1:ORG+C\x00+R", experiments.ForceOn), "course key"},
		{"nok, SetCourseOverride with a newline in the course key", courseOv(name, course+"\n", experiments.ForceOn), "course key"},
		{"nok, SetCourseOverride with invalid UTF-8", courseOv(name, "course-v1:\xff+C+R", experiments.ForceOn), "course key"},
		{"nok, SetCourseOverride Unset with an empty course key", courseOv(name, "", experiments.Unset), "course key"},
		{"nok, SetOrgOverride with a bad flag name", orgOv("a.b c", "ORG", experiments.ForceOn), "flag name"},
		{"nok, SetOrgOverride with State(3)", orgOv(name, "ORG", experiments.State(3)), "state"},
		{"nok, SetOrgOverride with an empty org", orgOv(name, "", experiments.ForceOn), "org"},
		{"nok, SetOrgOverride with a 256-byte org", orgOv(name, long(256), experiments.ForceOn), "org"},
		{"nok, SetOrgOverride with a tab in the org", orgOv(name, "O\tRG", experiments.ForceOff), "org"},
		{"nok, SetOrgOverride with a space in the org", orgOv(name, "O RG", experiments.ForceOn), "org"},
		{"nok, SetOrgOverride with a whole course key as org", orgOv(name, "course-v1:ORG+C+R", experiments.ForceOn), "org"},
		{"nok, SetExperimentValue with a negative experiment ID", value(-1, "k", "v"), "experiment ID"},
		{"nok, SetExperimentValue with an empty key", value(12, "", "v"), "key"},
		{"nok, SetExperimentValue with a 256-byte key", value(12, long(256), "v"), "key"},
		{"nok, SetExperimentValue with a control character in the key", value(12, "enrollment_start\r", "2012-01-06"), "key"},
		{"nok, SetExperimentValue with a 4097-byte value", value(12, "note", long(4097)), "value"},
		{"nok, SetExperimentValue with a NUL in the value", value(12, "note", "a\x00b"), "value"},
		{"nok, SetExperimentValue with invalid UTF-8 in the value", value(12, "note", "\xc3\x28"), "value"},
		{"nok, SetEnrollment with an empty user ID", enroll("", course), "user ID"},
		{"nok, SetEnrollment with a control character in the user ID", enroll("1\n", course), "user ID"},
		{"nok, SetEnrollment with an empty course key", enroll("1", ""), "course key"},
		{"nok, SetEnrollment with a 256-byte course key", enroll("1", long(256)), "course key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := populatedMemStore(t)
			before, err := s.Snapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want := cloneData(before.Data())
			err = c.op(s)
			if !errors.Is(err, experiments.ErrInvalid) {
				t.Fatalf("err = %v, want an error wrapping ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), c.field) {
				t.Errorf("err = %q, want it to name %q", err, c.field)
			}
			after, err := s.Snapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if after != before {
				t.Error("a refused write published a new snapshot")
			}
			if !reflect.DeepEqual(after.Data(), want) {
				t.Errorf("data changed by a refused write:\n got %+v\nwant %+v", after.Data(), want)
			}
			if at, found, err := s.Enrollment(ctx, "1", course); err != nil || !found || !at.Equal(time.Date(2012, 1, 7, 0, 0, 0, 0, time.UTC)) {
				t.Errorf("enrollment changed by a refused write: %v, %v, %v", at, found, err)
			}
		})
	}
}

// populatedMemStore returns a store with some of everything.
func populatedMemStore(t *testing.T) *experiments.MemStore {
	t.Helper()
	ctx := context.Background()
	const course = "course-v1:ORG+C+R"
	s := experiments.NewMemStore()
	unitSetFlag(t, s, memFlag.Name(), experiments.Rule{Users: []string{"alice"}, Percent: 10})
	unitSetFlag(t, s, memFlag.BucketFlag(1), experiments.Off())
	for _, err := range []error{
		s.SetCourseOverride(ctx, memFlag.Name(), course, experiments.ForceOn),
		s.SetOrgOverride(ctx, memFlag.Name(), "ORG", experiments.ForceOff),
		s.SetExperimentValue(ctx, 12, experiments.EnrollmentStart, "2012-01-06"),
		s.SetExperimentValue(ctx, 12, "note", "kept"),
		s.SetEnrollment(ctx, "1", course, time.Date(2012, 1, 7, 0, 0, 0, 0, time.UTC)),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// cloneData deep-copies d, so that later writes cannot change the copy.
func cloneData(d experiments.SnapshotData) experiments.SnapshotData {
	var c experiments.SnapshotData
	if d.Flags != nil {
		c.Flags = make(map[string]experiments.Rule, len(d.Flags))
		for k, r := range d.Flags {
			if r.Everyone != nil {
				e := *r.Everyone
				r.Everyone = &e
			}
			if r.Users != nil {
				r.Users = append([]string{}, r.Users...)
			}
			if r.Groups != nil {
				r.Groups = append([]string{}, r.Groups...)
			}
			c.Flags[k] = r
		}
	}
	cloneStates := func(m map[string]map[string]experiments.State) map[string]map[string]experiments.State {
		if m == nil {
			return nil
		}
		out := make(map[string]map[string]experiments.State, len(m))
		for k, inner := range m {
			cp := make(map[string]experiments.State, len(inner))
			for k2, v := range inner {
				cp[k2] = v
			}
			out[k] = cp
		}
		return out
	}
	c.CourseOverrides = cloneStates(d.CourseOverrides)
	c.OrgOverrides = cloneStates(d.OrgOverrides)
	if d.ExperimentValues != nil {
		c.ExperimentValues = make(map[int]map[string]string, len(d.ExperimentValues))
		for id, values := range d.ExperimentValues {
			cp := make(map[string]string, len(values))
			for k, v := range values {
				cp[k] = v
			}
			c.ExperimentValues[id] = cp
		}
	}
	return c
}

func TestMemStoreSnapshotIsImmutable(t *testing.T) {
	ctx := context.Background()
	const course = "course-v1:ORG+C+R"
	writes := []struct {
		name  string
		write func(s *experiments.MemStore) error
	}{
		{"ok, SetFlag of the same flag", func(s *experiments.MemStore) error { return s.SetFlag(ctx, memFlag.Name(), experiments.Off()) }},
		{"ok, SetFlag of another flag", func(s *experiments.MemStore) error { return s.SetFlag(ctx, "other.flag", experiments.On()) }},
		{"ok, DeleteFlag", func(s *experiments.MemStore) error { return s.DeleteFlag(ctx, memFlag.Name()) }},
		{"ok, SetCourseOverride of the same course", func(s *experiments.MemStore) error {
			return s.SetCourseOverride(ctx, memFlag.Name(), course, experiments.ForceOff)
		}},
		{"ok, SetCourseOverride of another course", func(s *experiments.MemStore) error {
			return s.SetCourseOverride(ctx, memFlag.Name(), "course-v1:ORG+C+R2", experiments.ForceOff)
		}},
		{"ok, SetCourseOverride Unset", func(s *experiments.MemStore) error {
			return s.SetCourseOverride(ctx, memFlag.Name(), course, experiments.Unset)
		}},
		{"ok, SetOrgOverride of the same org", func(s *experiments.MemStore) error {
			return s.SetOrgOverride(ctx, memFlag.Name(), "ORG", experiments.ForceOn)
		}},
		{"ok, SetOrgOverride Unset", func(s *experiments.MemStore) error {
			return s.SetOrgOverride(ctx, memFlag.Name(), "ORG", experiments.Unset)
		}},
		{"ok, SetExperimentValue of the same key", func(s *experiments.MemStore) error {
			return s.SetExperimentValue(ctx, 12, experiments.EnrollmentStart, "9999-01-01")
		}},
		{"ok, SetExperimentValue removing a key", func(s *experiments.MemStore) error {
			return s.SetExperimentValue(ctx, 12, "note", "")
		}},
		{"ok, SetExperimentValue of another experiment", func(s *experiments.MemStore) error {
			return s.SetExperimentValue(ctx, 13, "k", "v")
		}},
	}
	for _, w := range writes {
		t.Run(w.name, func(t *testing.T) {
			s := populatedMemStore(t)
			old, err := s.Snapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want := cloneData(old.Data())
			// The old snapshot decides: alice is listed, the course is forced on.
			x := experiments.New(experiments.Config{Store: fixedStore{old}, Logger: unitLogger()})
			alice := experiments.User{ID: "1", Username: "alice"}
			wantOn := memFlag.IsExperimentOn(x.NewContext(ctx, alice), "")
			wantCourseOn := memFlag.IsExperimentOn(x.NewContext(ctx, alice), course)

			if err := w.write(s); err != nil {
				t.Fatal(err)
			}
			now, err := s.Snapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if now == old {
				t.Error("a write did not publish a new snapshot")
			}
			if !reflect.DeepEqual(old.Data(), want) {
				t.Errorf("old snapshot changed by a write:\n got %+v\nwant %+v", old.Data(), want)
			}
			if got := memFlag.IsExperimentOn(x.NewContext(ctx, alice), ""); got != wantOn {
				t.Errorf("old snapshot: IsExperimentOn = %v, want %v", got, wantOn)
			}
			if got := memFlag.IsExperimentOn(x.NewContext(ctx, alice), course); got != wantCourseOn {
				t.Errorf("old snapshot: IsExperimentOn(course) = %v, want %v", got, wantCourseOn)
			}
		})
	}
}

func TestMemStoreCopiesTheRule(t *testing.T) {
	ctx := context.Background()
	mallory := experiments.User{ID: "2", Username: "mallory", Groups: []string{"evil"}}
	alice := experiments.User{ID: "1", Username: "alice", Groups: []string{"beta"}}
	cases := []struct {
		name   string
		rule   func() (experiments.Rule, func(*experiments.Rule))
		user   experiments.User
		wantOn bool
	}{
		{"ok, changing Users after SetFlag does not let another user in",
			func() (experiments.Rule, func(*experiments.Rule)) {
				return experiments.Rule{Users: []string{"alice"}}, func(r *experiments.Rule) { r.Users[0] = "mallory" }
			}, mallory, false},
		{"ok, changing Users after SetFlag does not shut the listed user out",
			func() (experiments.Rule, func(*experiments.Rule)) {
				return experiments.Rule{Users: []string{"alice"}}, func(r *experiments.Rule) { r.Users[0] = "mallory" }
			}, alice, true},
		{"ok, changing Groups after SetFlag changes nothing",
			func() (experiments.Rule, func(*experiments.Rule)) {
				return experiments.Rule{Groups: []string{"beta"}}, func(r *experiments.Rule) { r.Groups[0] = "evil" }
			}, mallory, false},
		{"ok, changing Everyone after SetFlag changes nothing",
			func() (experiments.Rule, func(*experiments.Rule)) {
				return experiments.Rule{Everyone: unitBool(false)}, func(r *experiments.Rule) { *r.Everyone = true }
			}, alice, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := experiments.NewMemStore()
			r, mutate := c.rule()
			stored := cloneData(experiments.SnapshotData{Flags: map[string]experiments.Rule{"x.y": r}}).Flags["x.y"]
			unitSetFlag(t, s, memFlag.Name(), r)
			mutate(&r)
			x := experiments.New(experiments.Config{Store: s, Logger: unitLogger()})
			if got := memFlag.IsExperimentOn(x.NewContext(ctx, c.user), ""); got != c.wantOn {
				t.Errorf("IsExperimentOn(%s) = %v, want %v", c.user.Username, got, c.wantOn)
			}
			snap, _ := s.Snapshot(ctx)
			if got := snap.Data().Flags[memFlag.Name()]; !reflect.DeepEqual(got, stored) {
				t.Errorf("stored rule = %+v, want %+v", got, stored)
			}
		})
	}
}

func TestMemStoreConcurrency(t *testing.T) {
	ctx := context.Background()
	s := experiments.NewMemStore()
	x := experiments.New(experiments.Config{Store: s, Logger: unitLogger()})
	const writers, readers, rounds = 4, 4, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			own := "memstore_test.writer" + strconv.Itoa(w)
			course := "course-v1:ORG+C" + strconv.Itoa(w) + "+R"
			for i := range rounds {
				if err := s.SetFlag(ctx, own, experiments.Rule{Percent: float64(i % 101), Users: []string{"u" + strconv.Itoa(i)}}); err != nil {
					t.Error(err)
					return
				}
				// Writers contend on the shared flag and on experiment 12.
				rule := experiments.On()
				if i%2 == 1 {
					rule = experiments.Off()
				}
				if err := s.SetFlag(ctx, memFlag.Name(), rule); err != nil {
					t.Error(err)
					return
				}
				st := experiments.State(1 + i%2)
				if err := s.SetCourseOverride(ctx, memFlag.Name(), course, st); err != nil {
					t.Error(err)
					return
				}
				if err := s.SetOrgOverride(ctx, memFlag.Name(), "ORG"+strconv.Itoa(w), st); err != nil {
					t.Error(err)
					return
				}
				if err := s.SetExperimentValue(ctx, 12, "writer"+strconv.Itoa(w), strconv.Itoa(i)); err != nil {
					t.Error(err)
					return
				}
				if err := s.SetEnrollment(ctx, strconv.Itoa(w), course, time.Unix(int64(i), 0)); err != nil {
					t.Error(err)
					return
				}
				if i%10 == 0 {
					if err := s.DeleteFlag(ctx, memFlag.BucketFlag(1)); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	for r := range readers {
		wg.Go(func() {
			u := experiments.User{ID: strconv.Itoa(r), Username: "reader"}
			for range rounds * 2 {
				snap, err := s.Snapshot(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				d := snap.Data()
				for _, rule := range d.Flags {
					_ = len(rule.Users)
				}
				for _, m := range d.CourseOverrides {
					_ = len(m)
				}
				for _, m := range d.ExperimentValues {
					_ = len(m)
				}
				rctx := x.NewContext(ctx, u)
				memFlag.Bucket(rctx, "course-v1:ORG+C0+R")
				memFlag.IsExperimentOn(rctx, "")
				if _, _, err := s.Enrollment(ctx, "0", "course-v1:ORG+C0+R"); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()

	// No write was lost: every writer's last values are there.
	snap, _ := s.Snapshot(ctx)
	d := snap.Data()
	for w := range writers {
		own := "memstore_test.writer" + strconv.Itoa(w)
		last := rounds - 1
		if got := d.Flags[own]; got.Percent != float64(last%101) || len(got.Users) != 1 || got.Users[0] != "u"+strconv.Itoa(last) {
			t.Errorf("%s = %+v, want the last write", own, got)
		}
		if got := d.ExperimentValues[12]["writer"+strconv.Itoa(w)]; got != strconv.Itoa(last) {
			t.Errorf("experiment 12 writer%d = %q, want %q", w, got, strconv.Itoa(last))
		}
		course := "course-v1:ORG+C" + strconv.Itoa(w) + "+R"
		if got := d.CourseOverrides[memFlag.Name()][course]; got != experiments.State(1+last%2) {
			t.Errorf("course override of %s = %v, want %v", course, got, experiments.State(1+last%2))
		}
		if at, found, _ := s.Enrollment(ctx, strconv.Itoa(w), course); !found || at.Unix() != int64(last) {
			t.Errorf("enrollment of writer %d = %v, %v; want %d", w, at, found, last)
		}
	}
}
