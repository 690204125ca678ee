// Package storetest checks that a store behaves like experiments.MemStore,
// the reference store: same flags on for the same users, same overrides,
// same enrollment windows, same refusals of bad input. It is for anyone
// writing a store, this module's sqlstore included:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) storetest.Store {
//			s := mystore.Open(…) // empty, in its own database or schema
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// The tests decide through experiments.New and flag.Decide, as an app
// does, so they check what users see rather than how a store keeps its
// data.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/abkit/experiments"
)

// Store is what a conformant store offers: experiments.Store,
// experiments.Enrollments, experiments.Recorder, experiments.Auditor and
// the writes of experiments.MemStore, with the same meaning.
type Store interface {
	experiments.Store
	experiments.Enrollments
	experiments.Recorder
	experiments.Auditor
	experiments.Writer
	SetEnrollment(ctx context.Context, userID, courseKey string, created time.Time) error
	SetGoal(ctx context.Context, g experiments.Goal) error
	DeleteGoal(ctx context.Context, name string) error
}

// Reader reads back what a store's Recorder kept, oldest first, with
// experiments.MemStore's signatures. A store that implements it has its
// recording checked (the "recording" tests are skipped otherwise).
type Reader interface {
	Exposures() []experiments.Exposure
	Conversions() []experiments.Conversion
}

// Flusher is a store that writes what it records in the background:
// Flush returns once what was recorded before the call is written, so
// that Reader sees it.
type Flusher interface {
	Flush(ctx context.Context) error
}

var (
	_ Store  = (*experiments.MemStore)(nil)
	_ Reader = (*experiments.MemStore)(nil)
)

// Run runs the conformance tests as subtests of t. Every subtest calls
// newStore with its own *testing.T for a new, empty store, which must
// see its own writes as soon as they return; newStore releases the store
// with t.Cleanup. Writes run with the subtest's t.Context(). Run does not
// call t.Parallel; newStore may.
func Run(t *testing.T, newStore func(t *testing.T) Store) {
	t.Helper()
	for _, g := range []struct {
		name string
		run  func(*testing.T, func(*testing.T) Store)
	}{
		{"flags", testFlags},
		{"rules", testRules},
		{"percent", testPercent},
		{"overrides", testOverrides},
		{"bucket flags", testBucketFlags},
		{"experiment values", testValues},
		{"enrollment window", testWindow},
		{"enrollments", testEnrollments},
		{"invalid input", testInvalid},
		{"limits", testLimits},
		{"round trip", testRoundTrip},
		{"snapshots", testSnapshots},
		{"concurrency", testConcurrency},
		{"goals", testGoals},
		{"recording", testRecording},
		{"meta and history", testMetaAndHistory},
		{"weights", testWeights},         // weights.go
		{"assignments", testAssignments}, // assignments.go: when the store is an experiments.Assignments
		{"audiences", testAudiences},     // audience.go
	} {
		t.Run(g.name, func(t *testing.T) { g.run(t, newStore) })
	}
}

// The clock of every decision: "not enrolled" means enrolled at fixedNow.
var fixedNow = time.Date(2020, 6, 1, 12, 0, 0, 0, time.UTC)

const windowID = 7 // the experiment of windowFlag

var (
	mainFlag    = experiments.NewFlag("storetest", "main")
	percentFlag = experiments.NewFlag("storetest", "percent")
	bucketFlag  = experiments.NewFlag("storetest", "buckets", experiments.WithBuckets(3))
	windowFlag  = experiments.NewFlag("storetest", "window", experiments.WithExperimentID(windowID))
)

var (
	anonymous = experiments.User{}
	alice     = experiments.User{ID: "1", Username: "alice"}
	bob       = experiments.User{ID: "2", Username: "bob", Staff: true}
	carol     = experiments.User{ID: "3", Username: "carol", Superuser: true}
	dave      = experiments.User{ID: "4", Username: "dave", Groups: []string{"alpha", "beta"}}
)

const (
	courseA    = "course-v1:edX+DemoX+2024"
	courseB    = "course-v1:edX+Other+2024" // same org as courseA
	courseOld  = "edX/DemoX/2019"           // old-style key, org edX
	courseMIT  = "course-v1:MITx+6.002x+2024"
	notACourse = "not-a-course-key" // no org
)

// fixture is one subtest's store and the way to ask it for decisions.
type fixture struct {
	t   *testing.T
	s   Store
	ctx context.Context
}

func setUp(t *testing.T, newStore func(*testing.T) Store) *fixture {
	t.Helper()
	s := newStore(t)
	if s == nil {
		t.Fatal("newStore returned nil")
	}
	return &fixture{t: t, s: s, ctx: t.Context()}
}

// write is one call of a Store's write methods.
type write func(ctx context.Context, s Store) error

func setFlag(name string, r experiments.Rule) write {
	return func(ctx context.Context, s Store) error { return s.SetFlag(ctx, name, r) }
}

func deleteFlag(name string) write {
	return func(ctx context.Context, s Store) error { return s.DeleteFlag(ctx, name) }
}

func courseOverride(name, courseKey string, st experiments.State) write {
	return func(ctx context.Context, s Store) error { return s.SetCourseOverride(ctx, name, courseKey, st) }
}

func orgOverride(name, org string, st experiments.State) write {
	return func(ctx context.Context, s Store) error { return s.SetOrgOverride(ctx, name, org, st) }
}

func value(id int, key, v string) write {
	return func(ctx context.Context, s Store) error { return s.SetExperimentValue(ctx, id, key, v) }
}

func enroll(userID, courseKey string, at time.Time) write {
	return func(ctx context.Context, s Store) error { return s.SetEnrollment(ctx, userID, courseKey, at) }
}

// apply runs writes in order, failing the test at the first error.
func (f *fixture) apply(ws ...write) {
	f.t.Helper()
	for i, w := range ws {
		if err := w(f.ctx, f.s); err != nil {
			f.t.Fatalf("write %d: %v", i, err)
		}
	}
}

// runtime returns an Experiments on store, with the fixed clock.
func (f *fixture) runtime(store experiments.Store) *experiments.Experiments {
	return experiments.New(experiments.Config{
		Store:       store,
		Enrollments: f.s,
		Now:         func() time.Time { return fixedNow },
		Logger:      slog.New(slog.DiscardHandler),
	})
}

// decide decides for u in a request of its own.
func (f *fixture) decide(flag *experiments.ExperimentFlag, u experiments.User, courseKey string) experiments.Decision {
	return flag.Decide(f.runtime(f.s).NewContext(f.ctx, u), courseKey)
}

// on reports IsExperimentOn for u in a request of its own.
func (f *fixture) on(flag *experiments.ExperimentFlag, u experiments.User, courseKey string) bool {
	return flag.IsExperimentOn(f.runtime(f.s).NewContext(f.ctx, u), courseKey)
}

// refuse runs write, which the store must refuse: its error wraps
// experiments.ErrInvalid and names field, and the configuration stays as
// it was. It returns the error.
func (f *fixture) refuse(t *testing.T, field string, write func() error) error {
	t.Helper()
	before := f.data()
	err := write()
	if !errors.Is(err, experiments.ErrInvalid) || !strings.Contains(err.Error(), field) {
		t.Errorf("error = %v; want one wrapping experiments.ErrInvalid and naming %q", err, field)
	}
	if after := f.data(); !reflect.DeepEqual(before, after) {
		t.Errorf("configuration changed by a refused write:\n got %+v\nwant %+v", after, before)
	}
	return err
}

// data returns a normalized copy of the store's current configuration.
func (f *fixture) data() experiments.SnapshotData {
	f.t.Helper()
	snap, err := f.s.Snapshot(f.ctx)
	if err != nil || snap == nil {
		f.t.Fatalf("Snapshot() = %v, %v; want a snapshot", snap, err)
	}
	return normalized(snap.Data())
}

// want is an expected decision: the bucket is checked unless the reason
// is ReasonHashed, whose bucket only has to be in range.
type want struct {
	bucket int
	reason experiments.Reason
}

var (
	hashed  = want{reason: experiments.ReasonHashed}
	flagOff = want{reason: experiments.ReasonFlagOff}
	outside = want{reason: experiments.ReasonOutsideWindow}
	badDate = want{reason: experiments.ReasonBadWindow}
	refused = want{reason: experiments.ReasonError} // a course key no store accepts: ErrInvalid
)

func forced(i int) want { return want{bucket: i, reason: experiments.ReasonForced} }

func (w want) String() string {
	if w.reason == experiments.ReasonHashed {
		return "a hashed bucket"
	}
	return fmt.Sprintf("bucket %d, reason %q", w.bucket, w.reason)
}

// checkMainFlag checks that mainFlag is on (hashed) or off (control) for
// u in courseKey, both by IsExperimentOn and by Decide.
func (f *fixture) checkMainFlag(u experiments.User, courseKey string, on bool) {
	f.t.Helper()
	if got := f.on(mainFlag, u, courseKey); got != on {
		f.t.Errorf("IsExperimentOn(%q) = %v, want %v", courseKey, got, on)
	}
	w := flagOff
	if on {
		w = hashed
	}
	f.checkDecision(mainFlag, u, courseKey, w)
}

func (f *fixture) checkDecision(flag *experiments.ExperimentFlag, u experiments.User, courseKey string, w want) {
	f.t.Helper()
	d := f.decide(flag, u, courseKey)
	ok := d.Reason == w.reason && d.Bucket >= 0 && d.Bucket < flag.Buckets() &&
		(w.reason == experiments.ReasonHashed || d.Bucket == w.bucket)
	switch {
	case w.reason == experiments.ReasonBadWindow:
		ok = ok && errors.Is(d.Err, experiments.ErrBadWindow)
	case w.reason == experiments.ReasonError:
		ok = ok && errors.Is(d.Err, experiments.ErrInvalid)
	default:
		ok = ok && d.Err == nil
	}
	if !ok {
		f.t.Errorf("%s.Decide(user %q, course %q) = bucket %d, reason %q, err %v; want %v",
			flag.Name(), u.ID, courseKey, d.Bucket, d.Reason, d.Err, w)
	}
}

// normalized returns a deep copy of d in which absent and empty maps and
// slices are the same, so that stores can be compared.
func normalized(d experiments.SnapshotData) experiments.SnapshotData {
	n := experiments.SnapshotData{
		Flags:            make(map[string]experiments.Rule),
		CourseOverrides:  make(map[string]map[string]experiments.State),
		OrgOverrides:     make(map[string]map[string]experiments.State),
		ExperimentValues: make(map[int]map[string]string),
		Goals:            make(map[string]experiments.Goal),
		Meta:             make(map[string]experiments.ExperimentMeta),
	}
	for name, g := range d.Goals {
		g.Include, g.Exclude = clipped(g.Include), clipped(g.Exclude)
		n.Goals[name] = g
	}
	for name, r := range d.Flags {
		n.Flags[name] = normalizedRule(r)
	}
	for flag, m := range d.Meta {
		n.Meta[flag] = normalizedMeta(m)
	}
	for name, m := range d.CourseOverrides {
		if len(m) > 0 {
			n.CourseOverrides[name] = maps.Clone(m)
		}
	}
	for name, m := range d.OrgOverrides {
		if len(m) > 0 {
			n.OrgOverrides[name] = maps.Clone(m)
		}
	}
	for id, m := range d.ExperimentValues {
		if len(m) > 0 {
			n.ExperimentValues[id] = maps.Clone(m)
		}
	}
	return n
}

// normalizedRule returns a deep copy of r, normalized as normalized does.
func normalizedRule(r experiments.Rule) experiments.Rule {
	if r.Everyone != nil {
		e := *r.Everyone
		r.Everyone = &e
	}
	r.Users, r.Groups = clipped(r.Users), clipped(r.Groups)
	if len(r.Conditions) == 0 {
		r.Conditions = nil
		return r
	}
	cs := make([]experiments.Condition, len(r.Conditions))
	for i, c := range r.Conditions {
		c.Values = clipped(c.Values)
		cs[i] = c
	}
	r.Conditions = cs
	return r
}

// normalizedMeta returns a deep copy of m, normalized as normalized does.
func normalizedMeta(m experiments.ExperimentMeta) experiments.ExperimentMeta {
	if m.Winner == nil {
		return m
	}
	w := experiments.Winner{Bucket: m.Winner.Bucket}
	if len(m.Winner.Previous) > 0 {
		w.Previous = make(map[string]experiments.Rule, len(m.Winner.Previous))
	}
	for name, r := range m.Winner.Previous {
		w.Previous[name] = normalizedRule(r)
	}
	m.Winner = &w
	return m
}

// clipped returns a copy of s without spare capacity, nil when empty.
func clipped(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return slices.Clip(slices.Clone(s))
}

func testFlags(t *testing.T, newStore func(*testing.T) Store) {
	name := mainFlag.Name()
	cases := []struct {
		name   string
		writes []write
		course string
		want   bool
	}{
		{"nok, a flag never set is off", nil, "", false},
		{"nok, a flag never set is off in a course", nil, courseA, false},
		{"ok, a flag set On is on", []write{setFlag(name, experiments.On())}, "", true},
		{"ok, a flag set On is on in a course", []write{setFlag(name, experiments.On())}, courseA, true},
		{"nok, a flag set Off is off", []write{setFlag(name, experiments.Off())}, "", false},
		{"nok, a flag set On then Off is off", []write{setFlag(name, experiments.On()), setFlag(name, experiments.Off())}, "", false},
		{"ok, a flag set Off then On is on", []write{setFlag(name, experiments.Off()), setFlag(name, experiments.On())}, "", true},
		{"nok, a deleted flag is off", []write{setFlag(name, experiments.On()), deleteFlag(name)}, "", false},
		{"ok, a flag set again after DeleteFlag is on", []write{setFlag(name, experiments.On()), deleteFlag(name), setFlag(name, experiments.On())}, "", true},
		{"ok, a deleted flag keeps its course override", []write{
			setFlag(name, experiments.Off()), courseOverride(name, courseA, experiments.ForceOn), deleteFlag(name),
		}, courseA, true},
		{"ok, a deleted flag keeps its org override", []write{
			setFlag(name, experiments.Off()), orgOverride(name, "edX", experiments.ForceOn), deleteFlag(name),
		}, courseB, true},
		{"nok, a deleted flag with overrides is off outside them", []write{
			setFlag(name, experiments.On()), courseOverride(name, courseA, experiments.ForceOn), deleteFlag(name),
		}, courseMIT, false},
		{"nok, deleting another flag leaves this one on", []write{setFlag(name, experiments.On()), deleteFlag(name + "x")}, "", true},
		{"nok, a bucket flag set On does not turn its main flag on", []write{setFlag(mainFlag.BucketFlag(1), experiments.On())}, "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := setUp(t, newStore)
			f.apply(c.writes...)
			f.checkMainFlag(alice, c.course, c.want)
		})
	}
	t.Run("ok, deleting a flag never set is not an error and changes nothing", func(t *testing.T) {
		f := setUp(t, newStore)
		f.apply(setFlag("storetest.other", experiments.On()))
		before := f.data()
		if err := f.s.DeleteFlag(f.ctx, name); err != nil {
			t.Fatalf("DeleteFlag(%q) = %v, want nil", name, err)
		}
		if after := f.data(); !reflect.DeepEqual(before, after) {
			t.Errorf("Data() after DeleteFlag of an unset flag = %+v, want %+v", after, before)
		}
	})
	t.Run("ok, deleting a flag twice is not an error", func(t *testing.T) {
		f := setUp(t, newStore)
		f.apply(setFlag(name, experiments.On()), deleteFlag(name))
		if err := f.s.DeleteFlag(f.ctx, name); err != nil {
			t.Fatalf("second DeleteFlag(%q) = %v, want nil", name, err)
		}
	})
	t.Run("ok, a deleted flag leaves the snapshot data but its overrides stay", func(t *testing.T) {
		f := setUp(t, newStore)
		f.apply(setFlag(name, experiments.On()),
			courseOverride(name, courseA, experiments.ForceOff),
			orgOverride(name, "MITx", experiments.ForceOn),
			deleteFlag(name))
		d := f.data()
		if _, ok := d.Flags[name]; ok {
			t.Errorf("Data().Flags[%q] present after DeleteFlag", name)
		}
		if got := d.CourseOverrides[name][courseA]; got != experiments.ForceOff {
			t.Errorf("Data().CourseOverrides[%q][%q] = %v, want %v", name, courseA, got, experiments.ForceOff)
		}
		if got := d.OrgOverrides[name]["MITx"]; got != experiments.ForceOn {
			t.Errorf("Data().OrgOverrides[%q][MITx] = %v, want %v", name, got, experiments.ForceOn)
		}
	})
}

func testRules(t *testing.T, newStore func(*testing.T) Store) {
	no := false
	cases := []struct {
		name string
		rule experiments.Rule
		user experiments.User
		want bool
	}{
		{"ok, Everyone true is on for an anonymous user", experiments.On(), anonymous, true},
		{"ok, Everyone true is on for a signed-in user", experiments.On(), alice, true},
		{"nok, Everyone false beats every other field", experiments.Rule{
			Everyone: &no, Percent: 100, Authenticated: true, Staff: true, Superusers: true,
			Users: []string{"dave"}, Groups: []string{"beta"},
		}, experiments.User{ID: "4", Username: "dave", Staff: true, Superuser: true, Groups: []string{"beta"}}, false},
		{"nok, an empty rule is off", experiments.Rule{}, bob, false},
		{"ok, Authenticated is on for a signed-in user", experiments.Rule{Authenticated: true}, alice, true},
		{"nok, Authenticated is off for an anonymous user", experiments.Rule{Authenticated: true}, anonymous, false},
		{"ok, Staff is on for staff", experiments.Rule{Staff: true}, bob, true},
		{"nok, Staff is off for a superuser who is not staff", experiments.Rule{Staff: true}, carol, false},
		{"nok, Staff is off for an anonymous user marked staff", experiments.Rule{Staff: true}, experiments.User{Staff: true}, false},
		{"ok, Superusers is on for a superuser", experiments.Rule{Superusers: true}, carol, true},
		{"nok, Superusers is off for staff", experiments.Rule{Superusers: true}, bob, false},
		{"ok, Users is on for a listed username", experiments.Rule{Users: []string{"zed", "alice"}}, alice, true},
		{"nok, Users is off for a username not listed", experiments.Rule{Users: []string{"zed", "alice"}}, bob, false},
		{"nok, Users matches usernames, not user IDs", experiments.Rule{Users: []string{"1"}}, alice, false},
		{"nok, Users is off for an anonymous user with a listed username", experiments.Rule{Users: []string{"alice"}}, experiments.User{Username: "alice"}, false},
		{"ok, Groups is on for a member of a listed group", experiments.Rule{Groups: []string{"gamma", "beta"}}, dave, true},
		{"nok, Groups is off for a user in no listed group", experiments.Rule{Groups: []string{"gamma"}}, dave, false},
		{"nok, Groups is off for a user in no group", experiments.Rule{Groups: []string{"beta"}}, alice, false},
		{"nok, Percent 100 is off for an anonymous user", experiments.Rule{Percent: 100}, anonymous, false},
		{"ok, Percent 100 is on for a signed-in user", experiments.Rule{Percent: 100}, alice, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := setUp(t, newStore)
			f.apply(setFlag(mainFlag.Name(), c.rule))
			if got := f.on(mainFlag, c.user, ""); got != c.want {
				t.Errorf("IsExperimentOn = %v, want %v", got, c.want)
			}
			switch {
			case c.user.ID == "":
				f.checkDecision(mainFlag, c.user, "", want{reason: experiments.ReasonAnonymous})
			case c.want:
				f.checkDecision(mainFlag, c.user, "", hashed)
			default:
				f.checkDecision(mainFlag, c.user, "", flagOff)
			}
		})
	}
}

// percent30 are the users among "1" to "200" for whom percentFlag at 30%
// is on in MemStore (SHA256Hasher), computed once and frozen here: every
// store must put the very same users in.
var percent30 = []int{
	3, 4, 7, 16, 19, 23, 24, 25, 27, 29, 34, 37, 39, 41, 42, 49, 55, 56, 63, 65,
	68, 76, 77, 79, 80, 82, 87, 89, 90, 91, 92, 94, 95, 98, 99, 100, 102, 107, 110, 114,
	115, 116, 118, 121, 122, 125, 126, 128, 133, 135, 136, 138, 140, 143, 149, 153, 155, 157, 158, 159,
	165, 168, 172, 173, 179, 181, 184, 192,
}

func testPercent(t *testing.T, newStore func(*testing.T) Store) {
	const users = 200
	in := func(f *fixture) []int {
		var on []int
		for i := 1; i <= users; i++ {
			if f.on(percentFlag, experiments.User{ID: strconv.Itoa(i)}, "") {
				on = append(on, i)
			}
		}
		return on
	}
	all := make([]int, users)
	for i := range all {
		all[i] = i + 1
	}
	cases := []struct {
		name    string
		percent float64
		want    []int
	}{
		{"nok, percent 0 is off for every user", 0, nil},
		{"ok, percent 100 is on for every user", 100, all},
		{"ok, percent 30 is on for the same users as in MemStore", 30, percent30},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := setUp(t, newStore)
			f.apply(setFlag(percentFlag.Name(), experiments.Rule{Percent: c.percent}))
			if got := in(f); !slices.Equal(got, c.want) {
				t.Errorf("users on at %v%%: %d of %d, %v; want %d, %v", c.percent, len(got), users, got, len(c.want), c.want)
			}
		})
	}
	t.Run("ok, raising percent from 30 to 60 keeps the users already in", func(t *testing.T) {
		f := setUp(t, newStore)
		f.apply(setFlag(percentFlag.Name(), experiments.Rule{Percent: 30}), setFlag(percentFlag.Name(), experiments.Rule{Percent: 60}))
		got := in(f)
		for _, id := range percent30 {
			if !slices.Contains(got, id) {
				t.Errorf("user %d is on at 30%% but not at 60%%", id)
			}
		}
		if len(got) <= len(percent30) || len(got) >= users {
			t.Errorf("%d of %d users on at 60%%, want more than %d and fewer than %d", len(got), users, len(percent30), users)
		}
	})
}

func testOverrides(t *testing.T, newStore func(*testing.T) Store) {
	name := mainFlag.Name()
	on, off := setFlag(name, experiments.On()), setFlag(name, experiments.Off())
	cases := []struct {
		name   string
		writes []write
		course string
		want   bool
	}{
		{"ok, a course override ForceOn beats the rule", []write{off, courseOverride(name, courseA, experiments.ForceOn)}, courseA, true},
		{"nok, a course override applies only to its course", []write{off, courseOverride(name, courseA, experiments.ForceOn)}, courseB, false},
		{"nok, a course override does not apply without a course", []write{off, courseOverride(name, courseA, experiments.ForceOn)}, "", false},
		{"nok, a course override matches the course key exactly", []write{off, courseOverride(name, courseA, experiments.ForceOn)}, "course-v1:EDX+DemoX+2024", false},
		{"nok, a course override ForceOff beats the rule", []write{on, courseOverride(name, courseA, experiments.ForceOff)}, courseA, false},
		{"ok, a course override ForceOff leaves other courses to the rule", []write{on, courseOverride(name, courseA, experiments.ForceOff)}, courseB, true},
		{"ok, a course override turns on a flag never set", []write{courseOverride(name, courseA, experiments.ForceOn)}, courseA, true},
		{"nok, a course override replaced by ForceOff is off", []write{on, courseOverride(name, courseA, experiments.ForceOn), courseOverride(name, courseA, experiments.ForceOff)}, courseA, false},
		{"ok, an org override ForceOn beats the rule in a course-v1 key", []write{off, orgOverride(name, "edX", experiments.ForceOn)}, courseA, true},
		{"ok, an org override ForceOn applies to an old slash-separated key", []write{off, orgOverride(name, "edX", experiments.ForceOn)}, courseOld, true},
		{"nok, an org override does not apply to another org", []write{off, orgOverride(name, "edX", experiments.ForceOn)}, courseMIT, false},
		{"nok, an org override matches the org exactly", []write{off, orgOverride(name, "edx", experiments.ForceOn)}, courseA, false},
		{"nok, an org override does not apply without a course", []write{off, orgOverride(name, "edX", experiments.ForceOn)}, "", false},
		{"nok, an org override does not apply to a key without an org", []write{off, orgOverride(name, "not-a-course-key", experiments.ForceOn)}, notACourse, false},
		{"nok, an org override ForceOff beats the rule", []write{on, orgOverride(name, "edX", experiments.ForceOff)}, courseOld, false},
		{"ok, an org override turns on a flag never set", []write{orgOverride(name, "MITx", experiments.ForceOn)}, courseMIT, true},
		{"nok, a course override ForceOff beats an org override ForceOn", []write{
			on, orgOverride(name, "edX", experiments.ForceOn), courseOverride(name, courseA, experiments.ForceOff),
		}, courseA, false},
		{"ok, a course override ForceOn beats an org override ForceOff", []write{
			off, orgOverride(name, "edX", experiments.ForceOff), courseOverride(name, courseA, experiments.ForceOn),
		}, courseA, true},
		{"nok, the org override still applies to the org's other courses", []write{
			on, orgOverride(name, "edX", experiments.ForceOff), courseOverride(name, courseA, experiments.ForceOn),
		}, courseB, false},
		{"ok, Unset removes a course override", []write{
			on, courseOverride(name, courseA, experiments.ForceOff), courseOverride(name, courseA, experiments.Unset),
		}, courseA, true},
		{"ok, Unset removes an org override", []write{
			on, orgOverride(name, "edX", experiments.ForceOff), orgOverride(name, "edX", experiments.Unset),
		}, courseA, true},
		{"ok, Unset of a course override lets the org override decide", []write{
			off, orgOverride(name, "edX", experiments.ForceOn), courseOverride(name, courseA, experiments.ForceOff), courseOverride(name, courseA, experiments.Unset),
		}, courseA, true},
		{"ok, Unset of overrides never set is not an error", []write{
			on, courseOverride(name, courseA, experiments.Unset), orgOverride(name, "edX", experiments.Unset),
		}, courseA, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := setUp(t, newStore)
			f.apply(c.writes...)
			f.checkMainFlag(alice, c.course, c.want)
		})
	}
	t.Run("ok, Unset leaves no override in the snapshot data", func(t *testing.T) {
		f := setUp(t, newStore)
		f.apply(courseOverride(name, courseA, experiments.ForceOn), orgOverride(name, "edX", experiments.ForceOff),
			courseOverride(name, courseA, experiments.Unset), orgOverride(name, "edX", experiments.Unset))
		if d := f.data(); len(d.CourseOverrides)+len(d.OrgOverrides) != 0 {
			t.Errorf("Data() overrides = %v, %v; want none", d.CourseOverrides, d.OrgOverrides)
		}
	})
}

func testBucketFlags(t *testing.T, newStore func(*testing.T) Store) {
	main := setFlag(bucketFlag.Name(), experiments.On())
	b := bucketFlag.BucketFlag
	cases := []struct {
		name   string
		writes []write
		user   experiments.User
		course string
		want   want
	}{
		{"ok, no bucket flag: the hash decides", []write{main}, alice, courseA, hashed},
		{"ok, bucket flag .1 on forces bucket 1", []write{main, setFlag(b(1), experiments.On())}, alice, courseA, forced(1)},
		{"ok, bucket flag .1 on forces bucket 1 without a course", []write{main, setFlag(b(1), experiments.On())}, alice, "", forced(1)},
		{"ok, bucket flag .0 on forces control", []write{main, setFlag(b(0), experiments.On())}, alice, courseA, forced(0)},
		{"ok, the lowest bucket flag on wins", []write{main, setFlag(b(2), experiments.On()), setFlag(b(1), experiments.On())}, alice, courseA, forced(1)},
		{"ok, a bucket flag that is off is skipped", []write{main, setFlag(b(1), experiments.Off()), setFlag(b(2), experiments.On())}, alice, courseA, forced(2)},
		{"ok, a bucket flag beyond the flag's buckets is ignored", []write{main, setFlag(b(3), experiments.On())}, alice, courseA, hashed},
		{"nok, a bucket flag does not count when the main flag is off", []write{setFlag(bucketFlag.Name(), experiments.Off()), setFlag(b(1), experiments.On())}, alice, courseA, flagOff},
		{"ok, a deleted bucket flag no longer forces", []write{main, setFlag(b(1), experiments.On()), deleteFlag(b(1))}, alice, courseA, hashed},
		{"ok, a bucket flag's rule is per user: listed", []write{main, setFlag(b(2), experiments.Rule{Users: []string{"alice"}})}, alice, courseA, forced(2)},
		{"ok, a bucket flag's rule is per user: not listed", []write{main, setFlag(b(2), experiments.Rule{Users: []string{"alice"}})}, bob, courseA, hashed},
		{"ok, a course override on a bucket flag forces it in that course", []write{main, courseOverride(b(2), courseA, experiments.ForceOn)}, alice, courseA, forced(2)},
		{"ok, a course override on a bucket flag does not apply in another course", []write{main, courseOverride(b(2), courseA, experiments.ForceOn)}, alice, courseB, hashed},
		{"ok, a course override on a bucket flag does not apply without a course", []write{main, courseOverride(b(2), courseA, experiments.ForceOn)}, alice, "", hashed},
		{"ok, an org override on a bucket flag forces it in the org's courses", []write{main, orgOverride(b(1), "edX", experiments.ForceOn)}, alice, courseOld, forced(1)},
		{"ok, an org override on a bucket flag does not apply to another org", []write{main, orgOverride(b(1), "edX", experiments.ForceOn)}, alice, courseMIT, hashed},
		{"ok, a course override ForceOff on a bucket flag beats its rule", []write{main, setFlag(b(1), experiments.On()), courseOverride(b(1), courseA, experiments.ForceOff)}, alice, courseA, hashed},
		{"ok, a course override ForceOff on .1 lets .2 win", []write{
			main, setFlag(b(1), experiments.On()), setFlag(b(2), experiments.On()), courseOverride(b(1), courseA, experiments.ForceOff),
		}, alice, courseA, forced(2)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := setUp(t, newStore)
			f.apply(c.writes...)
			f.checkDecision(bucketFlag, c.user, c.course, c.want)
		})
	}
}

func testValues(t *testing.T, newStore func(*testing.T) Store) {
	cases := []struct {
		name   string
		writes []write
		want   map[int]map[string]string
	}{
		{"ok, a value reads back", []write{value(1, "k", "v")}, map[int]map[string]string{1: {"k": "v"}}},
		{"ok, a value is replaced", []write{value(1, "k", "v"), value(1, "k", "w")}, map[int]map[string]string{1: {"k": "w"}}},
		{"ok, an empty value removes the key and keeps the others", []write{value(1, "k", "v"), value(1, "j", "u"), value(1, "k", "")}, map[int]map[string]string{1: {"j": "u"}}},
		{"ok, an empty value removes the experiment's last key", []write{value(1, "k", "v"), value(1, "k", "")}, map[int]map[string]string{}},
		{"ok, removing a key never set is not an error", []write{value(1, "k", "")}, map[int]map[string]string{}},
		{"ok, experiments keep their own values", []write{value(1, "k", "one"), value(2, "k", "two"), value(0, "k", "zero")},
			map[int]map[string]string{0: {"k": "zero"}, 1: {"k": "one"}, 2: {"k": "two"}}},
		{"ok, keys differing by case or space are distinct", []write{value(1, "k", "a"), value(1, "K", "b"), value(1, "k ", "c")},
			map[int]map[string]string{1: {"k": "a", "K": "b", "k ": "c"}}},
		{"ok, a date that does not parse is stored", []write{value(1, experiments.EnrollmentStart, "not-a-date")},
			map[int]map[string]string{1: {experiments.EnrollmentStart: "not-a-date"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := setUp(t, newStore)
			f.apply(c.writes...)
			if got := f.data().ExperimentValues; !reflect.DeepEqual(got, c.want) {
				t.Errorf("Data().ExperimentValues = %#v, want %#v", got, c.want)
			}
		})
	}
}

func testWindow(t *testing.T, newStore func(*testing.T) Store) {
	on := setFlag(windowFlag.Name(), experiments.On())
	start := func(v string) write { return value(windowID, experiments.EnrollmentStart, v) }
	end := func(v string) write { return value(windowID, experiments.EnrollmentEnd, v) }
	at := func(s string) write {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			panic(err)
		}
		return enroll(alice.ID, courseA, tm)
	}
	now := fixedNow.Format("2006-01-02T15:04:05")
	cases := []struct {
		name   string
		writes []write
		course string
		want   want
	}{
		{"ok, main flag on, no window", []write{on}, courseA, hashed},
		{"ok, start 2012-01-06, not enrolled", []write{on, start("2012-01-06")}, courseA, hashed},
		{"nok, start 9999-01-06, not enrolled", []write{on, start("9999-01-06")}, courseA, outside},
		{"nok, start 2012-01-06, enrolled 2012-01-05", []write{on, start("2012-01-06"), at("2012-01-05T00:00:00Z")}, courseA, outside},
		{"ok, start 2012-01-06, enrolled 2012-01-07", []write{on, start("2012-01-06"), at("2012-01-07T00:00:00Z")}, courseA, hashed},
		{"nok, start does not parse", []write{on, start("not-a-date")}, courseA, badDate},
		{"nok, end 2012-01-06, not enrolled", []write{on, end("2012-01-06")}, courseA, outside},
		{"ok, end 9999-01-06, not enrolled", []write{on, end("9999-01-06")}, courseA, hashed},
		{"ok, end 2012-01-06, enrolled 2012-01-05", []write{on, end("2012-01-06"), at("2012-01-05T00:00:00Z")}, courseA, hashed},
		{"nok, end 2012-01-06, enrolled 2012-01-07", []write{on, end("2012-01-06"), at("2012-01-07T00:00:00Z")}, courseA, outside},
		{"nok, end does not parse", []write{on, end("not-a-date")}, courseA, badDate},
		{"ok, enrolled exactly at start", []write{on, start("2012-01-06"), at("2012-01-06T00:00:00Z")}, courseA, hashed},
		{"nok, enrolled exactly at end", []write{on, end("2012-01-06"), at("2012-01-06T00:00:00Z")}, courseA, outside},
		{"ok, enrolled between start and end", []write{on, start("2012-01-06"), end("2012-02-06"), at("2012-01-20T10:00:00Z")}, courseA, hashed},
		{"ok, not enrolled is enrolled at Config.Now: start at Now", []write{on, start(now)}, courseA, hashed},
		{"nok, not enrolled is enrolled at Config.Now: start a second after Now", []write{on, start(fixedNow.Add(time.Second).Format("2006-01-02T15:04:05"))}, courseA, outside},
		{"nok, not enrolled is enrolled at Config.Now: end at Now", []write{on, end(now)}, courseA, outside},
		{"nok, enrolled in another zone before the start instant", []write{on, start("2012-01-06"), at("2012-01-06T03:00:00+05:00")}, courseA, outside},
		{"ok, enrolled in another zone after the start instant", []write{on, start("2012-01-06"), at("2012-01-05T20:00:00-05:00")}, courseA, hashed},
		{"nok, enrolled 0.4 µs before the start", []write{on, start("2012-01-06"), at("2012-01-05T23:59:59.9999996Z")}, courseA, outside},
		{"nok, enrolled 1 µs before the start", []write{on, start("2012-01-06"), at("2012-01-05T23:59:59.999999Z")}, courseA, outside},
		{"ok, an enrollment in another course does not count", []write{on, start("2012-01-06"), enroll(alice.ID, courseB, time.Date(2012, 1, 5, 0, 0, 0, 0, time.UTC))}, courseA, hashed},
		{"ok, a start removed with an empty value no longer applies", []write{on, start("9999-01-06"), start("")}, courseA, hashed},
		{"ok, another experiment's window does not apply", []write{on, value(windowID+1, experiments.EnrollmentStart, "9999-01-06")}, courseA, hashed},
		{"ok, the window does not apply without a course", []write{on, start("9999-01-06")}, "", hashed},
		{"nok, the window comes after the main flag", []write{setFlag(windowFlag.Name(), experiments.Off()), start("not-a-date")}, courseA, flagOff},
		{"nok, a course key no store can hold gives control", []write{on, start("2012-01-06")}, "course-v1:edX+DemoX+2024\x00", refused},
		{"nok, a course key that is not UTF-8 gives control", []write{on, start("2012-01-06")}, "course-v1:edX+DemoX+\xff", refused},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := setUp(t, newStore)
			f.apply(c.writes...)
			f.checkDecision(windowFlag, alice, c.course, c.want)
		})
	}
}

func testEnrollments(t *testing.T, newStore func(*testing.T) Store) {
	ist := time.FixedZone("IST", 5*3600+1800)
	cases := []struct {
		name string
		at   time.Time
	}{
		{"ok, an enrollment reads back as the same instant", time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)},
		{"ok, an enrollment in another zone reads back as the same instant", time.Date(2021, 3, 4, 5, 6, 7, 0, ist)},
		{"ok, an enrollment keeps its microseconds", time.Date(2021, 3, 4, 5, 6, 7, 123456000, ist)},
		{"ok, an enrollment is truncated to the microsecond", time.Date(2021, 3, 4, 5, 6, 7, 123456789, time.UTC)},
		{"ok, an enrollment in 1900 reads back", time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"ok, an enrollment in 9999 reads back", time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := setUp(t, newStore)
			f.apply(enroll(alice.ID, courseA, c.at))
			got, found, err := f.s.Enrollment(f.ctx, alice.ID, courseA)
			if want := c.at.Truncate(time.Microsecond); err != nil || !found || !got.Equal(want) {
				t.Errorf("Enrollment() = %v, %v, %v; want %v, true, nil", got, found, err, want)
			}
		})
	}
	t.Run("ok, a second enrollment replaces the first", func(t *testing.T) {
		f := setUp(t, newStore)
		first, second := time.Date(2012, 1, 5, 0, 0, 0, 0, time.UTC), time.Date(2013, 2, 6, 0, 0, 0, 0, time.UTC)
		f.apply(enroll(alice.ID, courseA, first), enroll(alice.ID, courseA, second))
		got, found, err := f.s.Enrollment(f.ctx, alice.ID, courseA)
		if err != nil || !found || !got.Equal(second) {
			t.Errorf("Enrollment() = %v, %v, %v; want %v, true, nil", got, found, err, second)
		}
	})
	notFound := []struct {
		name         string
		user, course string
	}{
		{"nok, a user never enrolled is not found", "99", courseA},
		{"nok, an enrollment in another course is not found", alice.ID, courseB},
		{"nok, another user's enrollment is not found", bob.ID, courseA},
		{"nok, the course key matches exactly", alice.ID, "course-v1:EDX+DemoX+2024"},
		{"nok, an empty user ID is not found", "", courseA},
		{"nok, a course key with a NUL byte is not found", alice.ID, courseA + "\x00"},
		{"nok, a user ID that is not UTF-8 is not found", "\xff", courseA},
	}
	for _, c := range notFound {
		t.Run(c.name, func(t *testing.T) {
			f := setUp(t, newStore)
			f.apply(enroll(alice.ID, courseA, fixedNow))
			got, found, err := f.s.Enrollment(f.ctx, c.user, c.course)
			if err != nil || found {
				t.Errorf("Enrollment(%q, %q) = %v, %v, %v; want found=false, err=nil", c.user, c.course, got, found, err)
			}
		})
	}
	t.Run("ok, an enrollment does not change the configuration", func(t *testing.T) {
		f := setUp(t, newStore)
		f.apply(setFlag(mainFlag.Name(), experiments.On()))
		before := f.data()
		f.apply(enroll(alice.ID, courseA, fixedNow))
		if after := f.data(); !reflect.DeepEqual(before, after) {
			t.Errorf("Data() after SetEnrollment = %+v, want %+v", after, before)
		}
	})
}

// refusal is a write a store refuses with an error wrapping
// experiments.ErrInvalid that names field, changing nothing.
type refusal struct {
	name  string
	write write
	field string // in the error's text
}

func testInvalid(t *testing.T, newStore func(*testing.T) Store) {
	name := mainFlag.Name()
	long := strings.Repeat("x", 256)
	cases := []refusal{
		{"nok, SetFlag with an empty flag name", setFlag("", experiments.On()), "flag name"},
		{"nok, SetFlag with a flag name without a namespace", setFlag("upgrade", experiments.On()), "flag name"},
		{"nok, SetFlag with an empty flag name part", setFlag("ns..upgrade", experiments.On()), "flag name"},
		{"nok, SetFlag with a trailing dot", setFlag("ns.upgrade.", experiments.On()), "flag name"},
		{"nok, SetFlag with a space in the flag name", setFlag("ns.up grade", experiments.On()), "flag name"},
		{"nok, SetFlag with a slash in the flag name", setFlag("ns.up/grade", experiments.On()), "flag name"},
		{"nok, SetFlag with a non-ASCII flag name", setFlag("ns.café", experiments.On()), "flag name"},
		{"nok, SetFlag with a flag name of 256 bytes", setFlag("ns."+strings.Repeat("a", 253), experiments.On()), "flag name"},
		{"nok, DeleteFlag with a bad flag name", deleteFlag("ns"), "flag name"},
		{"nok, SetCourseOverride with a bad flag name", courseOverride("ns", courseA, experiments.ForceOn), "flag name"},
		{"nok, SetOrgOverride with a bad flag name", orgOverride("ns.", "edX", experiments.ForceOn), "flag name"},
		{"nok, SetFlag with percent -1", setFlag(name, experiments.Rule{Percent: -1}), "percent"},
		{"nok, SetFlag with percent 101", setFlag(name, experiments.Rule{Percent: 101}), "percent"},
		{"nok, SetFlag with percent NaN", setFlag(name, experiments.Rule{Percent: math.NaN()}), "percent"},
		{"nok, SetFlag with percent +Inf", setFlag(name, experiments.Rule{Percent: math.Inf(1)}), "percent"},
		{"nok, SetFlag with an empty username", setFlag(name, experiments.Rule{Users: []string{""}}), "users"},
		{"nok, SetFlag with a control character in a username", setFlag(name, experiments.Rule{Users: []string{"alice", "bo\nb"}}), "users"},
		{"nok, SetFlag with a username of 256 bytes", setFlag(name, experiments.Rule{Users: []string{long}}), "users"},
		{"nok, SetFlag with an empty group", setFlag(name, experiments.Rule{Groups: []string{""}}), "groups"},
		{"nok, SetFlag with a group that is not UTF-8", setFlag(name, experiments.Rule{Groups: []string{"\xff"}}), "groups"},
		{"nok, SetCourseOverride with State(7)", courseOverride(name, courseA, experiments.State(7)), "state"},
		{"nok, SetCourseOverride with State(-1)", courseOverride(name, courseA, experiments.State(-1)), "state"},
		{"nok, SetOrgOverride with State(7)", orgOverride(name, "edX", experiments.State(7)), "state"},
		{"nok, SetCourseOverride with an empty course key", courseOverride(name, "", experiments.ForceOn), "course key"},
		{"nok, SetCourseOverride with a control character in the course key", courseOverride(name, "course-v1:edX+Demo\tX+2024", experiments.ForceOn), "course key"},
		{"nok, SetCourseOverride with a NUL in the course key", courseOverride(name, courseA+"\x00", experiments.ForceOn), "course key"},
		{"nok, SetCourseOverride with a course key that is not UTF-8", courseOverride(name, "course-v1:\xff+X+Y", experiments.ForceOn), "course key"},
		{"nok, SetCourseOverride with a course key of 256 bytes", courseOverride(name, long, experiments.ForceOn), "course key"},
		{"nok, SetOrgOverride with an empty org", orgOverride(name, "", experiments.ForceOn), "org"},
		{"nok, SetOrgOverride with a control character in the org", orgOverride(name, "ed\x7fX", experiments.ForceOn), "org"},
		{"nok, SetOrgOverride with an org of 256 bytes", orgOverride(name, long, experiments.ForceOn), "org"},
		{"nok, SetOrgOverride with an org no course key can have", orgOverride(name, "edX+DemoX", experiments.ForceOn), "org"},
		{"nok, SetExperimentValue with a negative experiment ID", value(-1, "k", "v"), "experiment ID"},
		{"nok, SetExperimentValue with an empty key", value(1, "", "v"), "experiment value key"},
		{"nok, SetExperimentValue with a control character in the key", value(1, "k\r", "v"), "experiment value key"},
		{"nok, SetExperimentValue with a key of 256 bytes", value(1, long, "v"), "experiment value key"},
		{"nok, SetExperimentValue with a value of 4097 bytes", value(1, "k", strings.Repeat("v", 4097)), "experiment value"},
		{"nok, SetExperimentValue with a NUL in the value", value(1, "k", "2012-01-06\x00"), "experiment value"},
		{"nok, SetExperimentValue with a value that is not UTF-8", value(1, "k", "\xc3"), "experiment value"},
		{"nok, SetEnrollment with an empty user ID", enroll("", courseA, fixedNow), "user ID"},
		{"nok, SetEnrollment with a control character in the user ID", enroll("1\n", courseA, fixedNow), "user ID"},
		{"nok, SetEnrollment with a user ID of 256 bytes", enroll(long, courseA, fixedNow), "user ID"},
		{"nok, SetEnrollment with an empty course key", enroll(alice.ID, "", fixedNow), "course key"},
		{"nok, SetEnrollment with a course key of 256 bytes", enroll(alice.ID, long, fixedNow), "course key"},
	}
	for _, c := range append(cases, goalRefusals()...) {
		t.Run(c.name, func(t *testing.T) {
			f := setUp(t, newStore)
			f.apply(setFlag(name, experiments.Rule{Users: []string{"alice"}}),
				courseOverride(name, courseA, experiments.ForceOn),
				orgOverride(name, "MITx", experiments.ForceOff),
				value(1, "k", "before"),
				setGoal(signupGoal), setGoal(experiments.Goal{Name: "g", Value: experiments.ValueAverage}))
			f.refuse(t, c.field, func() error { return c.write(f.ctx, f.s) })
		})
	}
}

func testLimits(t *testing.T, newStore func(*testing.T) Store) {
	// 255 bytes: "course-v1:edX+C+" (16) + 119 × "é" (238) + "x".
	course255 := "course-v1:edX+C+" + strings.Repeat("é", 119) + "x"
	name255 := "storetest." + strings.Repeat("a", 245)
	org255 := strings.Repeat("o", 255)
	key255 := strings.Repeat("k", 255)
	user255 := strings.Repeat("u", 255)
	values := map[string]string{
		"4096 ASCII bytes":         strings.Repeat("v", 4096),
		"4096 bytes of 2-byte UTF": strings.Repeat("é", 2048),
		"4096 bytes of 4-byte UTF": strings.Repeat("🙂", 1024),
	}
	for _, s := range []string{course255, name255, org255, key255, user255} {
		if len(s) != 255 {
			panic(fmt.Sprintf("storetest: %d bytes, want 255", len(s)))
		}
	}
	t.Run("ok, a flag name of 255 bytes is accepted", func(t *testing.T) {
		f := setUp(t, newStore)
		f.apply(setFlag(name255, experiments.On()), courseOverride(name255, courseA, experiments.ForceOff))
		d := f.data()
		if _, ok := d.Flags[name255]; !ok || d.CourseOverrides[name255][courseA] != experiments.ForceOff {
			t.Errorf("flag of 255 bytes not in Data(): %+v", d)
		}
	})
	t.Run("ok, a course key of 255 bytes is accepted and matched", func(t *testing.T) {
		f := setUp(t, newStore)
		f.apply(courseOverride(mainFlag.Name(), course255, experiments.ForceOn))
		if !f.on(mainFlag, alice, course255) {
			t.Error("course override on a 255-byte course key is not on")
		}
	})
	t.Run("ok, an org of 255 bytes is accepted and matched", func(t *testing.T) {
		f := setUp(t, newStore)
		f.apply(orgOverride(mainFlag.Name(), org255, experiments.ForceOn))
		if !f.on(mainFlag, alice, "course-v1:"+org255+"+C+R") {
			t.Error("org override on a 255-byte org is not on")
		}
	})
	t.Run("ok, usernames and groups of 255 bytes are accepted", func(t *testing.T) {
		f := setUp(t, newStore)
		f.apply(setFlag(mainFlag.Name(), experiments.Rule{Users: []string{user255}, Groups: []string{key255}}))
		if !f.on(mainFlag, experiments.User{ID: "9", Username: user255}, "") || !f.on(mainFlag, experiments.User{ID: "8", Groups: []string{key255}}, "") {
			t.Error("rule with 255-byte username and group is not on for them")
		}
	})
	t.Run("ok, a rule listing 1000 users is accepted", func(t *testing.T) {
		f := setUp(t, newStore)
		users := make([]string, 1000)
		for i := range users {
			users[i] = "user" + strconv.Itoa(i)
		}
		f.apply(setFlag(mainFlag.Name(), experiments.Rule{Users: users}))
		if !f.on(mainFlag, experiments.User{ID: "1", Username: "user999"}, "") {
			t.Error("the 1000th listed user is not on")
		}
	})
	t.Run("ok, a value key of 255 bytes and experiment ID 0 are accepted", func(t *testing.T) {
		f := setUp(t, newStore)
		f.apply(value(0, key255, "v"))
		if got := f.data().ExperimentValues[0][key255]; got != "v" {
			t.Errorf("value = %q, want %q", got, "v")
		}
	})
	for what, v := range values {
		t.Run("ok, a value of "+what+" is accepted", func(t *testing.T) {
			f := setUp(t, newStore)
			f.apply(value(1, "k", v))
			if got := f.data().ExperimentValues[1]["k"]; got != v {
				t.Errorf("value of %d bytes reads back as %d bytes", len(v), len(got))
			}
		})
	}
	t.Run("ok, an enrollment with a user ID and course key of 255 bytes is accepted", func(t *testing.T) {
		f := setUp(t, newStore)
		f.apply(enroll(user255, course255, fixedNow))
		if got, found, err := f.s.Enrollment(f.ctx, user255, course255); err != nil || !found || !got.Equal(fixedNow) {
			t.Errorf("Enrollment() = %v, %v, %v; want %v, true, nil", got, found, err, fixedNow)
		}
	})
	t.Run("nok, an experiment ID beyond int32 is refused", func(t *testing.T) {
		var big int64 = math.MaxInt32 + 1
		id := int(big)
		if int64(id) != big {
			t.Skip("int is 32 bits")
		}
		f := setUp(t, newStore)
		before := f.data()
		err := f.s.SetExperimentValue(f.ctx, id, experiments.EnrollmentStart, "9999-01-06")
		if !errors.Is(err, experiments.ErrInvalid) || !strings.Contains(err.Error(), "experiment ID") {
			t.Errorf("error = %v; want one wrapping experiments.ErrInvalid and naming %q", err, "experiment ID")
		}
		if after := f.data(); !reflect.DeepEqual(before, after) {
			t.Errorf("configuration changed by a refused write: %+v", after)
		}
	})
}

func testRoundTrip(t *testing.T, newStore func(*testing.T) Store) {
	yes, no := true, false
	rules := map[string]experiments.Rule{
		"storetest.on":    experiments.On(),
		"storetest.off":   experiments.Off(),
		"storetest.empty": {},
		"storetest.every_field": {
			Everyone: &yes, Percent: 12.5, Authenticated: true, Staff: true, Superusers: true,
			Users: []string{"alice", "bob"}, Groups: []string{"beta"},
		},
		"storetest.everyone_false_kept": {Everyone: &no, Percent: 50},
		"storetest.percent_digits":      {Percent: 100.0 / 3},
		"storetest.percent_tiny":        {Percent: math.SmallestNonzeroFloat64},
		"storetest.percent_fraction":    {Percent: 0.1 + 0.2},
		"storetest.unicode": {
			Users:  []string{"Zoë", "李小龙", "🙂", `quote"back\slash`, "<tag>&amp;", "line\u2028sep", " spaced "},
			Groups: []string{"Ärzte", "group\u00a0nbsp"},
		},
		"storetest.main.1":   {Users: []string{"alice"}},
		"storetest.audience": {Percent: 50, Conditions: everyOperator()},
	}
	courses := map[string]experiments.State{
		courseA:                       experiments.ForceOn,
		courseOld:                     experiments.ForceOff,
		"ccx-v1:edX+DemoX+2024+ccx@3": experiments.ForceOn,
		"Kurs/Größe/ß":                experiments.ForceOff,
		"trailing space ":             experiments.ForceOn,
		"trailing space":              experiments.ForceOff,
	}
	orgs := map[string]experiments.State{"edX": experiments.ForceOn, "edx": experiments.ForceOff, "a.b~c:d_e-f": experiments.ForceOn}
	vals := map[int]map[string]string{
		0:              {experiments.EnrollmentStart: "2012-01-06", experiments.EnrollmentEnd: "9999-01-06T10:00:00+05:00"},
		42:             {"note": "naïve «quotes» 🙂 end", "K": "upper", "k": "lower"},
		math.MaxInt32:  {"big": strings.Repeat("é", 2048)},
		windowID + 100: {"json": `{"a": [1, 2.50, "x"]}`},
	}
	t.Run("ok, the configuration reads back as written", func(t *testing.T) {
		f := setUp(t, newStore)
		want := normalized(experiments.SnapshotData{
			Flags:            rules,
			CourseOverrides:  map[string]map[string]experiments.State{mainFlag.Name(): courses},
			OrgOverrides:     map[string]map[string]experiments.State{mainFlag.Name(): orgs},
			ExperimentValues: vals,
		})
		for _, name := range slices.Sorted(maps.Keys(rules)) {
			f.apply(setFlag(name, rules[name]))
		}
		for _, c := range slices.Sorted(maps.Keys(courses)) {
			f.apply(courseOverride(mainFlag.Name(), c, courses[c]))
		}
		for _, o := range slices.Sorted(maps.Keys(orgs)) {
			f.apply(orgOverride(mainFlag.Name(), o, orgs[o]))
		}
		for _, id := range slices.Sorted(maps.Keys(vals)) {
			for _, k := range slices.Sorted(maps.Keys(vals[id])) {
				f.apply(value(id, k, vals[id][k]))
			}
		}
		got := f.data()
		for name, r := range want.Flags {
			if g, ok := got.Flags[name]; !ok || !reflect.DeepEqual(g, r) {
				t.Errorf("flag %s reads back as %s, want %s", name, fmtRule(g), fmtRule(r))
			}
		}
		if !reflect.DeepEqual(got.Flags, want.Flags) {
			t.Errorf("flags %v, want %v", slices.Sorted(maps.Keys(got.Flags)), slices.Sorted(maps.Keys(want.Flags)))
		}
		if !reflect.DeepEqual(got.CourseOverrides, want.CourseOverrides) {
			t.Errorf("course overrides = %q, want %q", got.CourseOverrides, want.CourseOverrides)
		}
		if !reflect.DeepEqual(got.OrgOverrides, want.OrgOverrides) {
			t.Errorf("org overrides = %q, want %q", got.OrgOverrides, want.OrgOverrides)
		}
		if !reflect.DeepEqual(got.ExperimentValues, want.ExperimentValues) {
			t.Errorf("experiment values = %#v, want %#v", got.ExperimentValues, want.ExperimentValues)
		}
	})
}

func fmtRule(r experiments.Rule) string {
	e := "nil"
	if r.Everyone != nil {
		e = strconv.FormatBool(*r.Everyone)
	}
	return fmt.Sprintf("{Everyone:%s Percent:%v Authenticated:%v Staff:%v Superusers:%v Users:%q Groups:%q Conditions:%+v}",
		e, r.Percent, r.Authenticated, r.Staff, r.Superusers, r.Users, r.Groups, r.Conditions)
}

// frozen is a Store that always serves one snapshot.
type frozen struct{ snap *experiments.Snapshot }

func (s frozen) Snapshot(context.Context) (*experiments.Snapshot, error) { return s.snap, nil }

func testSnapshots(t *testing.T, newStore func(*testing.T) Store) {
	name := mainFlag.Name()
	t.Run("ok, a snapshot taken before a write still answers the old way", func(t *testing.T) {
		f := setUp(t, newStore)
		f.apply(setFlag(name, experiments.On()), setFlag(bucketFlag.Name(), experiments.On()),
			value(windowID, experiments.EnrollmentStart, "2012-01-06"))
		old, err := f.s.Snapshot(f.ctx)
		if err != nil || old == nil {
			t.Fatalf("Snapshot() = %v, %v", old, err)
		}
		oldData := normalized(old.Data())
		f.apply(setFlag(name, experiments.Off()),
			courseOverride(name, courseA, experiments.ForceOff),
			orgOverride(name, "edX", experiments.ForceOff),
			setFlag(bucketFlag.BucketFlag(1), experiments.On()),
			value(windowID, experiments.EnrollmentStart, "9999-01-06"),
			setFlag(windowFlag.Name(), experiments.On()),
			deleteFlag(bucketFlag.Name()))

		x := f.runtime(frozen{old})
		if !mainFlag.IsExperimentOn(x.NewContext(f.ctx, alice), courseA) {
			t.Error("old snapshot: main flag off, want on as before the writes")
		}
		if d := bucketFlag.Decide(x.NewContext(f.ctx, alice), courseA); d.Reason != experiments.ReasonHashed {
			t.Errorf("old snapshot: bucket flag decision %+v, want hashed as before the writes", d)
		}
		if got := normalized(old.Data()); !reflect.DeepEqual(got, oldData) {
			t.Errorf("old snapshot's data changed by later writes:\n got %+v\nwant %+v", got, oldData)
		}
		if f.on(mainFlag, alice, courseA) {
			t.Error("current snapshot: main flag on, want off after the writes")
		}
		f.checkDecision(bucketFlag, alice, courseA, flagOff)
		f.checkDecision(windowFlag, alice, courseA, outside)
	})
	t.Run("ok, the caller's Rule slices and pointer are copied", func(t *testing.T) {
		f := setUp(t, newStore)
		yes := true
		r := experiments.Rule{Users: []string{"alice"}, Groups: []string{"beta"}}
		f.apply(setFlag(name, r))
		r.Users[0], r.Groups[0] = "mallory", "gamma"
		everyone := experiments.Rule{Everyone: &yes}
		f.apply(setFlag(percentFlag.Name(), everyone))
		yes = false
		if !f.on(mainFlag, alice, "") {
			t.Error("alice is off after the caller changed its Users slice")
		}
		if f.on(mainFlag, experiments.User{ID: "7", Username: "mallory"}, "") {
			t.Error("mallory is on after the caller changed its Users slice")
		}
		if !f.on(mainFlag, dave, "") {
			t.Error("a member of beta is off after the caller changed its Groups slice")
		}
		if !f.on(percentFlag, alice, "") {
			t.Error("Everyone flag is off after the caller changed *Everyone")
		}
		if d := f.data().Flags[name]; !slices.Equal(d.Users, []string{"alice"}) || !slices.Equal(d.Groups, []string{"beta"}) {
			t.Errorf("Data().Flags[%q] = %s, want Users [alice], Groups [beta]", name, fmtRule(d))
		}
	})
}

func testConcurrency(t *testing.T, newStore func(*testing.T) Store) {
	t.Run("ok, concurrent writes and decisions", func(t *testing.T) {
		const writers, writes, readers, reads = 4, 6, 4, 40
		f := setUp(t, newStore)
		f.apply(setFlag(windowFlag.Name(), experiments.On()), value(windowID, experiments.EnrollmentStart, "2000-01-01"))
		flagName := func(w, i int) string { return fmt.Sprintf("storetest.concurrent_%d_%d", w, i) }
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				user := strconv.Itoa(100 + w)
				for i := range writes {
					for _, do := range []write{
						setFlag(flagName(w, i), experiments.Rule{Users: []string{user}}),
						courseOverride(flagName(w, i), courseA, experiments.ForceOn),
						orgOverride(flagName(w, i), "edX", experiments.ForceOff),
						value(1000+w, strconv.Itoa(i), user),
						enroll(user, courseA, fixedNow.Add(-time.Duration(i)*time.Hour)),
						setFlag(mainFlag.Name(), experiments.Rule{Percent: float64(10 * i)}),
					} {
						if err := do(f.ctx, f.s); err != nil {
							t.Errorf("writer %d: %v", w, err)
						}
					}
				}
			})
		}
		for r := range readers {
			wg.Go(func() {
				x := f.runtime(f.s)
				for i := range reads {
					u := experiments.User{ID: strconv.Itoa(100 + (r+i)%writers), Username: "u"}
					ctx := x.NewContext(f.ctx, u)
					for _, flag := range []*experiments.ExperimentFlag{mainFlag, bucketFlag, windowFlag} {
						if d := flag.Decide(ctx, courseA); d.Err != nil || d.Bucket < 0 || d.Bucket >= flag.Buckets() {
							t.Errorf("reader %d: %s: %+v", r, flag.Name(), d)
						}
					}
					if _, _, err := f.s.Enrollment(f.ctx, u.ID, courseA); err != nil {
						t.Errorf("reader %d: Enrollment: %v", r, err)
					}
					if _, err := f.s.Snapshot(f.ctx); err != nil {
						t.Errorf("reader %d: Snapshot: %v", r, err)
					}
				}
			})
		}
		wg.Wait()
		d := f.data()
		for w := range writers {
			user := strconv.Itoa(100 + w)
			for i := range writes {
				n := flagName(w, i)
				if r, ok := d.Flags[n]; !ok || !slices.Equal(r.Users, []string{user}) {
					t.Errorf("flag %s = %s, %v after the writes", n, fmtRule(r), ok)
				}
				if d.CourseOverrides[n][courseA] != experiments.ForceOn || d.OrgOverrides[n]["edX"] != experiments.ForceOff {
					t.Errorf("flag %s: overrides %v, %v after the writes", n, d.CourseOverrides[n], d.OrgOverrides[n])
				}
				if got := d.ExperimentValues[1000+w][strconv.Itoa(i)]; got != user {
					t.Errorf("experiment %d value %d = %q, want %q", 1000+w, i, got, user)
				}
			}
			at, found, err := f.s.Enrollment(f.ctx, user, courseA)
			if want := fixedNow.Add(-(writes - 1) * time.Hour); err != nil || !found || !at.Equal(want) {
				t.Errorf("Enrollment(%s) = %v, %v, %v; want %v", user, at, found, err, want)
			}
		}
		if got, want := d.Flags[mainFlag.Name()].Percent, float64(10*(writes-1)); got != want {
			t.Errorf("percent = %v, want %v (every writer's last write)", got, want)
		}
	})
}
