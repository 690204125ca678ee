package ofprovider_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/sessions"
	"github.com/open-feature/go-sdk/openfeature"

	"github.com/abkit/experiments"
	ofprovider "github.com/abkit/experiments/openfeature"
)

// The flags of the tests. Each test has its own store, so they share
// nothing but their names; no test uses the process-wide Override.
var (
	threeWay  = experiments.NewFlag("ofp_test", "three_way", experiments.WithBuckets(3))
	neverOn   = experiments.NewFlag("ofp_test", "never_on")
	windowed  = experiments.NewFlag("ofp_test", "windowed", experiments.WithExperimentID(7))
	badWindow = experiments.NewFlag("ofp_test", "bad_window", experiments.WithExperimentID(8))
	notGiven  = experiments.NewFlag("ofp_test", "not_given") // not registered with the provider
	byCompany = experiments.NewFlag("ofp_test", "by_company", experiments.WithBucketingAttribute("company"))
)

const course = "course-v1:edX+DemoX+2026"

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// events is a recording Tracker.
type events struct {
	mu   sync.Mutex
	list []experiments.Event
	err  error // returned by Track
}

func (e *events) track(_ context.Context, ev experiments.Event) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, ev)
	return e.err
}

func (e *events) all() []experiments.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]experiments.Event(nil), e.list...)
}

type fixture struct {
	store    *experiments.MemStore
	x        *experiments.Experiments
	events   *events
	provider *ofprovider.Provider
	client   *openfeature.Client
}

// newFixture makes a store with threeWay, windowed and badWindow on, a
// runtime with a recording tracker, and an OpenFeature client bound to a
// provider of its own (a domain named after the test).
func newFixture(t *testing.T, cfg experiments.Config) *fixture {
	t.Helper()
	ctx := context.Background()
	fx := &fixture{store: experiments.NewMemStore(), events: &events{}}
	for _, f := range []*experiments.ExperimentFlag{threeWay, windowed, badWindow, notGiven} {
		must(t, fx.store.SetFlag(ctx, f.Name(), experiments.On()))
	}
	must(t, fx.store.SetExperimentValue(ctx, 7, experiments.EnrollmentStart, "2030-01-01"))
	must(t, fx.store.SetExperimentValue(ctx, 8, experiments.EnrollmentStart, "not a date"))
	cfg.Store = fx.store
	cfg.Tracker = experiments.TrackerFunc(fx.events.track)
	cfg.Now = func() time.Time { return now }
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	fx.x = experiments.New(cfg)
	fx.provider = ofprovider.NewProvider(fx.x, threeWay, neverOn, windowed, badWindow, byCompany)
	domain := t.Name()
	must(t, openfeature.SetNamedProviderAndWait(domain, fx.provider))
	fx.client = openfeature.NewClient(domain)
	return fx
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// userInBucket returns a user ID that SHA256Bucket puts in bucket of f,
// for courseKey ("" for none).
func userInBucket(t *testing.T, f *experiments.ExperimentFlag, courseKey string, bucket int) string {
	t.Helper()
	group := f.Name()
	if courseKey != "" {
		group += "." + courseKey
	}
	for i := range 1000 {
		id := fmt.Sprintf("learner-%d", i)
		if experiments.SHA256Bucket(group, id, f.Buckets()) == bucket {
			return id
		}
	}
	t.Fatalf("no user in bucket %d of %s", bucket, group)
	return ""
}

// evalCtx is the evaluation context of user id in courseKey, with attrs.
func evalCtx(id, courseKey string, attrs map[string]any) openfeature.EvaluationContext {
	m := map[string]any{}
	if courseKey != "" {
		m[ofprovider.AttrCourseKey] = courseKey
	}
	for k, v := range attrs {
		m[k] = v
	}
	return openfeature.NewEvaluationContext(id, m)
}

func metaString(t *testing.T, md openfeature.FlagMetadata, key string) string {
	t.Helper()
	s, err := md.GetString(key)
	if err != nil {
		t.Fatalf("flag metadata %q: %v (metadata %v)", key, err, md)
	}
	return s
}

func TestEvaluatesTheBucketAsIntAndBool(t *testing.T) {
	t.Parallel()
	for _, courseKey := range []string{course, ""} {
		for b := range threeWay.Buckets() {
			t.Run(fmt.Sprintf("ok, hashed into bucket %d, course %q", b, courseKey), func(t *testing.T) {
				t.Parallel()
				fx := newFixture(t, experiments.Config{})
				id := userInBucket(t, threeWay, courseKey, b)
				ec := evalCtx(id, courseKey, nil)
				ctx := context.Background()

				n, err := fx.client.IntValueDetails(ctx, threeWay.Name(), -1, ec)
				must(t, err)
				if n.Value != int64(b) || n.Reason != openfeature.SplitReason || n.Variant != ofprovider.Variant(b) {
					t.Errorf("int: got %d %s %q, want %d SPLIT %q", n.Value, n.Reason, n.Variant, b, ofprovider.Variant(b))
				}
				if got := metaString(t, n.FlagMetadata, ofprovider.MetadataReason); got != string(experiments.ReasonHashed) {
					t.Errorf("metadata reason %q, want hashed", got)
				}
				if got, err := n.FlagMetadata.GetInt(ofprovider.MetadataBucket); err != nil || got != int64(b) {
					t.Errorf("metadata bucket %d (%v), want %d", got, err, b)
				}

				on, err := fx.client.BooleanValueDetails(ctx, threeWay.Name(), b == 0, ec)
				must(t, err)
				if on.Value != (b != 0) || on.Reason != openfeature.SplitReason || on.Variant != ofprovider.Variant(b) {
					t.Errorf("bool: got %v %s %q, want %v SPLIT", on.Value, on.Reason, on.Variant, b != 0)
				}

				// The core agrees.
				if got := threeWay.DecideUntracked(fx.x.NewContext(ctx, experiments.User{ID: id}), courseKey).Bucket; got != b {
					t.Errorf("DecideUntracked: bucket %d, want %d", got, b)
				}
			})
		}
	}
}

func TestMapsAttributesToTheUser(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name   string
		rule   experiments.Rule
		bucket int
		attrs  map[string]any
	}{
		{"ok, username matches Rule.Users", experiments.Rule{Users: []string{"bob"}}, 2, map[string]any{ofprovider.AttrUsername: "bob"}},
		{"ok, staff matches Rule.Staff", experiments.Rule{Staff: true}, 1, map[string]any{ofprovider.AttrStaff: true}},
		{"ok, superuser matches Rule.Superusers", experiments.Rule{Superusers: true}, 2, map[string]any{ofprovider.AttrSuperuser: true}},
		{"ok, groups as []string match Rule.Groups", experiments.Rule{Groups: []string{"beta"}}, 1, map[string]any{ofprovider.AttrGroups: []string{"alpha", "beta"}}},
		{"ok, groups as []any match Rule.Groups", experiments.Rule{Groups: []string{"beta"}}, 2, map[string]any{ofprovider.AttrGroups: []any{"beta"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fx := newFixture(t, experiments.Config{})
			must(t, fx.store.SetFlag(ctx, threeWay.BucketFlag(tt.bucket), tt.rule))
			// A user hashed into the other variant: only the rule can move them.
			id := userInBucket(t, threeWay, course, 3-tt.bucket)

			n, err := fx.client.IntValueDetails(ctx, threeWay.Name(), -1, evalCtx(id, course, tt.attrs))
			must(t, err)
			if n.Value != int64(tt.bucket) || n.Reason != openfeature.TargetingMatchReason {
				t.Errorf("with the attribute: %d %s, want %d TARGETING_MATCH", n.Value, n.Reason, tt.bucket)
			}
			n, err = fx.client.IntValueDetails(ctx, threeWay.Name(), -1, evalCtx(id, course, nil))
			must(t, err)
			if n.Value != int64(3-tt.bucket) || n.Reason != openfeature.SplitReason {
				t.Errorf("without it: %d %s, want %d SPLIT", n.Value, n.Reason, 3-tt.bucket)
			}
		})
	}

	t.Run("ok, the course key comes from its attribute", func(t *testing.T) {
		t.Parallel()
		fx := newFixture(t, experiments.Config{})
		must(t, fx.store.SetCourseOverride(ctx, threeWay.BucketFlag(2), course, experiments.ForceOn))
		id := userInBucket(t, threeWay, "", 0)
		n, err := fx.client.IntValueDetails(ctx, threeWay.Name(), -1, evalCtx(id, course, nil))
		must(t, err)
		if n.Value != 2 || n.Reason != openfeature.TargetingMatchReason {
			t.Errorf("in the course: %d %s, want 2 TARGETING_MATCH", n.Value, n.Reason)
		}
		n, err = fx.client.IntValueDetails(ctx, threeWay.Name(), -1, evalCtx(id, "", nil))
		must(t, err)
		if n.Value != 0 || n.Reason != openfeature.SplitReason {
			t.Errorf("no course: %d %s, want 0 SPLIT", n.Value, n.Reason)
		}
	})
}

func TestMapsEveryReason(t *testing.T) {
	t.Parallel()
	const def = 7 // the caller's default: what errors give
	tests := []struct {
		name       string
		flag       *experiments.ExperimentFlag
		user       func(t *testing.T) string
		courseKey  string
		setup      func(t *testing.T, fx *fixture, ctx context.Context, id string) context.Context
		wantReason openfeature.Reason
		ours       experiments.Reason
		want       int64
		wantCode   openfeature.ErrorCode
		wantMsg    string
	}{
		{
			name: "ok, hashed is SPLIT", flag: threeWay, courseKey: course,
			user:       func(t *testing.T) string { return userInBucket(t, threeWay, course, 2) },
			wantReason: openfeature.SplitReason, ours: experiments.ReasonHashed, want: 2,
		},
		{
			name: "ok, forced is TARGETING_MATCH", flag: threeWay, courseKey: course,
			user: func(t *testing.T) string { return userInBucket(t, threeWay, course, 0) },
			setup: func(t *testing.T, fx *fixture, ctx context.Context, _ string) context.Context {
				must(t, fx.store.SetFlag(ctx, threeWay.BucketFlag(1), experiments.Rule{Authenticated: true}))
				return ctx
			},
			wantReason: openfeature.TargetingMatchReason, ours: experiments.ReasonForced, want: 1,
		},
		{
			name: "ok, override is STATIC", flag: threeWay, courseKey: course,
			user: func(t *testing.T) string { return userInBucket(t, threeWay, course, 0) },
			setup: func(t *testing.T, fx *fixture, ctx context.Context, _ string) context.Context {
				return threeWay.WithOverride(ctx, true, 2)
			},
			wantReason: openfeature.StaticReason, ours: experiments.ReasonOverride, want: 2,
		},
		{
			name: "ok, decided earlier in the request is CACHED", flag: threeWay, courseKey: course,
			user: func(t *testing.T) string { return userInBucket(t, threeWay, course, 1) },
			setup: func(t *testing.T, fx *fixture, ctx context.Context, id string) context.Context {
				ctx = fx.x.NewContext(ctx, experiments.User{ID: id})
				threeWay.DecideUntracked(ctx, course)
				return ctx
			},
			wantReason: openfeature.CachedReason, ours: experiments.ReasonCached, want: 1,
		},
		{
			name: "ok, flag off is DISABLED with control", flag: neverOn, courseKey: course,
			user:       func(t *testing.T) string { return "42" },
			wantReason: openfeature.DisabledReason, ours: experiments.ReasonFlagOff, want: 0,
		},
		{
			name: "ok, anonymous is DEFAULT with control", flag: threeWay, courseKey: course,
			user:       func(t *testing.T) string { return "" },
			wantReason: openfeature.DefaultReason, ours: experiments.ReasonAnonymous, want: 0,
		},
		{
			name: "ok, outside the enrollment window is DEFAULT with control", flag: windowed, courseKey: course,
			user:       func(t *testing.T) string { return "42" },
			wantReason: openfeature.DefaultReason, ours: experiments.ReasonOutsideWindow, want: 0,
		},
		{
			name: "ok, no bucketing attribute is DEFAULT with control", flag: byCompany, courseKey: course,
			user: func(t *testing.T) string { return "42" },
			setup: func(t *testing.T, fx *fixture, ctx context.Context, _ string) context.Context {
				must(t, fx.store.SetFlag(ctx, byCompany.Name(), experiments.On()))
				return ctx
			},
			wantReason: openfeature.DefaultReason, ours: experiments.ReasonNoBucketingID, want: 0,
		},
		{
			name: "nok, a bound that does not parse is ERROR GENERAL with the default", flag: badWindow, courseKey: course,
			user:       func(t *testing.T) string { return "42" },
			wantReason: openfeature.ErrorReason, ours: experiments.ReasonBadWindow, want: def,
			wantCode: openfeature.GeneralCode, wantMsg: `enrollment_start "not a date"`,
		},
		{
			name: "nok, an override bucket out of range is ERROR GENERAL with the default", flag: threeWay, courseKey: course,
			user: func(t *testing.T) string { return "42" },
			setup: func(t *testing.T, fx *fixture, ctx context.Context, _ string) context.Context {
				return threeWay.WithOverride(ctx, true, 99)
			},
			wantReason: openfeature.ErrorReason, ours: experiments.ReasonError, want: def,
			wantCode: openfeature.GeneralCode, wantMsg: "override bucket 99",
		},
		{
			name: "nok, a course key with a control character is ERROR GENERAL with the default", flag: threeWay, courseKey: "course\x00",
			user:       func(t *testing.T) string { return "42" },
			wantReason: openfeature.ErrorReason, ours: experiments.ReasonError, want: def,
			wantCode: openfeature.GeneralCode, wantMsg: "control character",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fx := newFixture(t, experiments.Config{})
			id := tt.user(t)
			ctx := context.Background()
			if tt.setup != nil {
				ctx = tt.setup(t, fx, ctx, id)
			}
			n, err := fx.client.IntValueDetails(ctx, tt.flag.Name(), def, evalCtx(id, tt.courseKey, nil))
			if (err != nil) != (tt.wantCode != "") {
				t.Fatalf("err %v, want code %q", err, tt.wantCode)
			}
			if n.Value != tt.want || n.Reason != tt.wantReason || n.ErrorCode != tt.wantCode {
				t.Errorf("got %d %s %q, want %d %s %q", n.Value, n.Reason, n.ErrorCode, tt.want, tt.wantReason, tt.wantCode)
			}
			if !strings.Contains(n.ErrorMessage, tt.wantMsg) {
				t.Errorf("error message %q, want it to contain %q", n.ErrorMessage, tt.wantMsg)
			}
			if got := metaString(t, n.FlagMetadata, ofprovider.MetadataReason); got != string(tt.ours) {
				t.Errorf("metadata reason %q, want %q", got, tt.ours)
			}
			bucket, bucketErr := n.FlagMetadata.GetInt(ofprovider.MetadataBucket)
			switch {
			case tt.wantCode != "" && (bucketErr == nil || n.Variant != ""):
				t.Errorf("error: metadata bucket %d, variant %q; want neither", bucket, n.Variant)
			case tt.wantCode == "" && (bucketErr != nil || bucket != tt.want || n.Variant != ofprovider.Variant(int(tt.want))):
				t.Errorf("metadata bucket %d (%v), variant %q; want %d", bucket, bucketErr, n.Variant, tt.want)
			}
		})
	}
}

func TestOtherTypesAreATypeMismatch(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, experiments.Config{})
	id := userInBucket(t, threeWay, course, 1)
	ctx := fx.x.NewContext(context.Background(), experiments.User{ID: id})
	ec := evalCtx(id, course, nil)

	s, err := fx.client.StringValueDetails(ctx, threeWay.Name(), "default", ec)
	if err == nil || s.ErrorCode != openfeature.TypeMismatchCode || s.Value != "default" || s.Reason != openfeature.ErrorReason {
		t.Errorf("string: %q %s %q (%v), want the default and TYPE_MISMATCH", s.Value, s.Reason, s.ErrorCode, err)
	}
	f, err := fx.client.FloatValueDetails(ctx, threeWay.Name(), 0.5, ec)
	if err == nil || f.ErrorCode != openfeature.TypeMismatchCode || f.Value != 0.5 {
		t.Errorf("float: %v %q (%v), want the default and TYPE_MISMATCH", f.Value, f.ErrorCode, err)
	}
	o, err := fx.client.ObjectValueDetails(ctx, threeWay.Name(), "obj", ec)
	if err == nil || o.ErrorCode != openfeature.TypeMismatchCode || o.Value != "obj" {
		t.Errorf("object: %v %q (%v), want the default and TYPE_MISMATCH", o.Value, o.ErrorCode, err)
	}

	// Nothing was decided: the next evaluation in the request is the first.
	n, err := fx.client.IntValueDetails(ctx, threeWay.Name(), -1, ec)
	must(t, err)
	if n.Value != 1 || n.Reason != openfeature.SplitReason {
		t.Errorf("then int: %d %s, want 1 SPLIT", n.Value, n.Reason)
	}
	if got := len(fx.events.all()); got != 1 {
		t.Errorf("%d events, want 1 (the int evaluation's)", got)
	}
}

func TestUnknownFlagIsNotFound(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, experiments.Config{})
	ctx := context.Background()
	ec := evalCtx("42", course, nil)
	for _, key := range []string{"ofp_test.unknown", notGiven.Name(), threeWay.BucketFlag(1), ""} {
		n, err := fx.client.IntValueDetails(ctx, key, 5, ec)
		if err == nil || n.ErrorCode != openfeature.FlagNotFoundCode || n.Value != 5 || n.Reason != openfeature.ErrorReason {
			t.Errorf("int %q: %d %s %q (%v), want 5 and FLAG_NOT_FOUND", key, n.Value, n.Reason, n.ErrorCode, err)
		}
		b, err := fx.client.BooleanValueDetails(ctx, key, true, ec)
		if err == nil || b.ErrorCode != openfeature.FlagNotFoundCode || !b.Value {
			t.Errorf("bool %q: %v %q (%v), want true and FLAG_NOT_FOUND", key, b.Value, b.ErrorCode, err)
		}
		s, err := fx.client.StringValueDetails(ctx, key, "d", ec)
		if err == nil || s.ErrorCode != openfeature.FlagNotFoundCode || s.Value != "d" {
			t.Errorf("string %q: %q %q (%v), want the default and FLAG_NOT_FOUND", key, s.Value, s.ErrorCode, err)
		}
	}
	if got := fx.events.all(); len(got) != 0 {
		t.Errorf("events %v, want none", got)
	}
}

func TestAttributesOfTheWrongTypeAreAnInvalidContext(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		attrs map[string]any
	}{
		{"nok, staff is a string", map[string]any{ofprovider.AttrStaff: "yes"}},
		{"nok, superuser is an int", map[string]any{ofprovider.AttrSuperuser: 1}},
		{"nok, masquerading is a string", map[string]any{ofprovider.AttrMasquerading: "true"}},
		{"nok, username is an int", map[string]any{ofprovider.AttrUsername: 12}},
		{"nok, groups is a string", map[string]any{ofprovider.AttrGroups: "beta"}},
		{"nok, groups holds an int", map[string]any{ofprovider.AttrGroups: []any{"beta", 3}}},
		{"nok, the course key is an int", map[string]any{ofprovider.AttrCourseKey: 12}},
	}
	fx := newFixture(t, experiments.Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := fx.client.IntValueDetails(context.Background(), threeWay.Name(), 5, evalCtx("42", "", tt.attrs))
			if err == nil || n.ErrorCode != openfeature.InvalidContextCode || n.Value != 5 {
				t.Errorf("%d %q (%v), want 5 and INVALID_CONTEXT", n.Value, n.ErrorCode, err)
			}
		})
	}
	if got := fx.events.all(); len(got) != 0 {
		t.Errorf("events %v, want none", got)
	}
}

func TestHookTracksOncePerRequest(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, experiments.Config{Site: "courses.example.org"})
	id := userInBucket(t, threeWay, course, 2)
	// Request state from the middleware's side: its user (staff) is the
	// one decided for, though the evaluation context says nothing of it.
	ctx := fx.x.NewContext(context.Background(), experiments.User{ID: id, Staff: true})
	ec := evalCtx(id, course, nil)

	first, err := fx.client.IntValueDetails(ctx, threeWay.Name(), -1, ec)
	must(t, err)
	again, err := fx.client.IntValueDetails(ctx, threeWay.Name(), -1, ec)
	must(t, err)
	on, err := fx.client.BooleanValueDetails(ctx, threeWay.Name(), false, ec)
	must(t, err)
	if first.Reason != openfeature.SplitReason || again.Reason != openfeature.CachedReason || on.Reason != openfeature.CachedReason {
		t.Errorf("reasons %s, %s, %s; want SPLIT, CACHED, CACHED", first.Reason, again.Reason, on.Reason)
	}
	if d := threeWay.Decide(ctx, course); d.Bucket != 2 || d.Reason != experiments.ReasonCached || d.Tracked {
		t.Errorf("Decide after: %+v, want bucket 2, cached, not tracked", d)
	}

	got := fx.events.all()
	want := experiments.Event{
		Name: experiments.EventUserBucketed, Time: now, UserID: id, Site: "courses.example.org",
		AppLabel: "ofp_test", Experiment: "three_way", CourseKey: course, Bucket: 2, IsStaff: true,
	}
	if len(got) != 1 || got[0] != want {
		t.Fatalf("events %+v, want exactly %+v", got, want)
	}

	// Another experiment (same flag, other course) is tracked on its own.
	_, err = fx.client.IntValueDetails(ctx, threeWay.Name(), -1, evalCtx(id, "course-v1:edX+Other+2026", nil))
	must(t, err)
	if got := len(fx.events.all()); got != 2 {
		t.Errorf("%d events after another course, want 2", got)
	}
}

func TestHookTracksTheForcedBucket(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, experiments.Config{})
	must(t, fx.store.SetFlag(context.Background(), threeWay.BucketFlag(1), experiments.Rule{Users: []string{"bob"}}))
	id := userInBucket(t, threeWay, course, 2)
	on, err := fx.client.BooleanValue(context.Background(), threeWay.Name(), false,
		evalCtx(id, course, map[string]any{ofprovider.AttrUsername: "bob"}))
	must(t, err)
	got := fx.events.all()
	if !on || len(got) != 1 || got[0].Bucket != 1 || got[0].UserID != id {
		t.Errorf("on=%v, events %+v; want true and one event for bucket 1", on, got)
	}
}

func TestHookTracksTheStickyBucket(t *testing.T) {
	t.Parallel()
	sticky := experiments.NewFlagSet().NewFlag("ofp_test", "sticky", experiments.WithBuckets(3), experiments.WithStickyBuckets(true))
	fx := newFixture(t, experiments.Config{})
	ctx := context.Background()
	must(t, fx.store.SetFlag(ctx, sticky.Name(), experiments.On()))
	id := userInBucket(t, sticky, course, 2)
	// The user was put in bucket 1 before: bucket 1 sticks, not the hash's 2.
	must(t, fx.store.SaveAssignment(ctx, id, sticky.AssignmentKey(course), 1))
	domain := t.Name() + "/sticky"
	must(t, openfeature.SetNamedProviderAndWait(domain, ofprovider.NewProvider(fx.x, sticky)))
	d, err := openfeature.NewClient(domain).IntValueDetails(ctx, sticky.Name(), -1, evalCtx(id, course, nil))
	must(t, err)
	if d.Value != 1 || d.Reason != openfeature.SplitReason || metaString(t, d.FlagMetadata, ofprovider.MetadataReason) != string(experiments.ReasonSticky) {
		t.Errorf("got %d %s %v; want 1 SPLIT with reason sticky in the metadata", d.Value, d.Reason, d.FlagMetadata)
	}
	if got := fx.events.all(); len(got) != 1 || got[0].Bucket != 1 || got[0].UserID != id {
		t.Errorf("events %+v; want one event for bucket 1", got)
	}
}

func TestEvaluatingAloneSendsNoEvent(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, experiments.Config{})
	id := userInBucket(t, threeWay, course, 1)
	ctx := fx.x.NewContext(context.Background(), experiments.User{ID: id})
	flat := openfeature.FlattenedContext{openfeature.TargetingKey: id, ofprovider.AttrCourseKey: course}

	// The provider's evaluation, without the client and its hooks, is
	// DecideUntracked.
	n := fx.provider.IntEvaluation(ctx, threeWay.Name(), -1, flat)
	b := fx.provider.BooleanEvaluation(ctx, threeWay.Name(), false, flat)
	if n.Value != 1 || n.Reason != openfeature.SplitReason || !b.Value || b.Reason != openfeature.CachedReason {
		t.Errorf("got %d %s, %v %s; want 1 SPLIT, true CACHED", n.Value, n.Reason, b.Value, b.Reason)
	}
	if got := fx.events.all(); len(got) != 0 {
		t.Errorf("events %+v, want none", got)
	}
}

func TestNoEventWhereBucketSendsNone(t *testing.T) {
	t.Parallel()
	id := userInBucket(t, threeWay, course, 1)
	tests := []struct {
		name     string
		ctx      func(fx *fixture) context.Context
		ec       openfeature.EvaluationContext
		want     int64
		wantWhy  openfeature.Reason
		flagName string
	}{
		{
			name: "ok, anonymous: no targeting key",
			ctx:  func(*fixture) context.Context { return context.Background() },
			ec:   evalCtx("", course, nil), want: 0, wantWhy: openfeature.DefaultReason,
		},
		{
			name: "ok, anonymous: request state of an anonymous user",
			ctx: func(fx *fixture) context.Context {
				return fx.x.NewContext(context.Background(), experiments.User{})
			},
			ec: evalCtx("", course, nil), want: 0, wantWhy: openfeature.DefaultReason,
		},
		{
			name: "ok, masquerading by attribute: bucketed as the user",
			ctx:  func(*fixture) context.Context { return context.Background() },
			ec:   evalCtx(id, course, map[string]any{ofprovider.AttrMasquerading: true}), want: 1, wantWhy: openfeature.SplitReason,
		},
		{
			name: "ok, masquerading in the request state",
			ctx: func(fx *fixture) context.Context {
				return fx.x.NewContext(context.Background(), experiments.User{ID: id, Masquerading: true})
			},
			ec: evalCtx(id, course, nil), want: 1, wantWhy: openfeature.SplitReason,
		},
		{
			name: "ok, override",
			ctx:  func(*fixture) context.Context { return threeWay.WithOverride(context.Background(), true, 2) },
			ec:   evalCtx(id, course, nil), want: 2, wantWhy: openfeature.StaticReason,
		},
		{
			name: "ok, flag off", flagName: neverOn.Name(),
			ctx: func(*fixture) context.Context { return context.Background() },
			ec:  evalCtx(id, course, nil), want: 0, wantWhy: openfeature.DisabledReason,
		},
		{
			name: "ok, outside the window", flagName: windowed.Name(),
			ctx: func(*fixture) context.Context { return context.Background() },
			ec:  evalCtx(id, course, nil), want: 0, wantWhy: openfeature.DefaultReason,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fx := newFixture(t, experiments.Config{})
			name := tt.flagName
			if name == "" {
				name = threeWay.Name()
			}
			n, err := fx.client.IntValueDetails(tt.ctx(fx), name, -1, tt.ec)
			must(t, err)
			if n.Value != tt.want || n.Reason != tt.wantWhy {
				t.Errorf("got %d %s, want %d %s", n.Value, n.Reason, tt.want, tt.wantWhy)
			}
			if got := fx.events.all(); len(got) != 0 {
				t.Errorf("events %+v, want none", got)
			}
		})
	}
}

func TestUsesRequestStateOfTheSameUserOnly(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, experiments.Config{})
	alice := userInBucket(t, threeWay, course, 1)
	bob := userInBucket(t, threeWay, course, 2)
	ctx := fx.x.NewContext(context.Background(), experiments.User{ID: alice})
	if b := threeWay.Bucket(ctx, course); b != 1 {
		t.Fatalf("alice: bucket %d, want 1", b)
	}

	// Bob is not the request's user: he gets a request of his own.
	n, err := fx.client.IntValueDetails(ctx, threeWay.Name(), -1, evalCtx(bob, course, nil))
	must(t, err)
	if n.Value != 2 || n.Reason != openfeature.SplitReason {
		t.Errorf("bob: %d %s, want 2 SPLIT", n.Value, n.Reason)
	}
	// Alice is: her bucket comes from the request cache.
	n, err = fx.client.IntValueDetails(ctx, threeWay.Name(), -1, evalCtx(alice, course, nil))
	must(t, err)
	if n.Value != 1 || n.Reason != openfeature.CachedReason {
		t.Errorf("alice: %d %s, want 1 CACHED", n.Value, n.Reason)
	}
	got := fx.events.all()
	if len(got) != 2 || got[0].UserID != alice || got[1].UserID != bob || got[1].Bucket != 2 {
		t.Errorf("events %+v, want alice's (from Bucket) then bob's", got)
	}
}

func TestEachEvaluationWithoutRequestStateIsARequestOfItsOwn(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, experiments.Config{})
	id := userInBucket(t, threeWay, course, 1)
	for range 2 {
		n, err := fx.client.IntValueDetails(context.Background(), threeWay.Name(), -1, evalCtx(id, course, nil))
		must(t, err)
		if n.Reason != openfeature.SplitReason {
			t.Errorf("reason %s, want SPLIT: nothing to cache in", n.Reason)
		}
	}
	if got := len(fx.events.all()); got != 2 {
		t.Errorf("%d events, want 2: no request state, no session to dedupe in", got)
	}
}

func TestTrackerFailureKeepsTheValue(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	var mu sync.Mutex
	fx := newFixture(t, experiments.Config{Logger: slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))})
	fx.events.err = errors.New("analytics down")
	id := userInBucket(t, threeWay, course, 2)
	n, err := fx.client.IntValueDetails(context.Background(), threeWay.Name(), -1, evalCtx(id, course, nil))
	if err != nil || n.Value != 2 || n.Reason != openfeature.SplitReason {
		t.Errorf("got %d %s (%v), want 2 SPLIT and no error", n.Value, n.Reason, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "analytics down") {
		t.Errorf("log %q, want the tracker's error", logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestConcurrentEvaluationsInARequestTrackOnce(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, experiments.Config{})
	id := userInBucket(t, threeWay, course, 2)
	ctx := fx.x.NewContext(context.Background(), experiments.User{ID: id})
	ec := evalCtx(id, course, nil)
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			if i%2 == 0 {
				if n, err := fx.client.IntValue(ctx, threeWay.Name(), -1, ec); err != nil || n != 2 {
					t.Errorf("int: %d (%v), want 2", n, err)
				}
				return
			}
			if on, err := fx.client.BooleanValue(ctx, threeWay.Name(), false, ec); err != nil || !on {
				t.Errorf("bool: %v (%v), want true", on, err)
			}
		})
	}
	wg.Wait()
	if got := len(fx.events.all()); got != 1 {
		t.Errorf("%d events, want 1", got)
	}
}

// TestHookTracksOncePerSession runs the provider behind x.Handler with
// gorilla sessions, a real server and a cookie jar.
func TestHookTracksOncePerSession(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, experiments.Config{Sessions: sessions.NewCookieStore([]byte("0123456789abcdef0123456789abcdef"))})
	id := userInBucket(t, threeWay, course, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /courses/{course}", func(w http.ResponseWriter, r *http.Request) {
		ec := evalCtx(r.Header.Get("X-User-ID"), r.PathValue("course"), nil)
		n, err := fx.client.IntValueDetails(r.Context(), threeWay.Name(), -1, ec)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		// The handler's own Bucket call shares the request cache.
		fmt.Fprintf(w, "%d %s %d", n.Value, n.Reason, threeWay.Bucket(r.Context(), r.PathValue("course")))
	})
	srv := httptest.NewServer(fx.x.Handler(mux, func(r *http.Request) experiments.User {
		return experiments.User{ID: r.Header.Get("X-User-ID")}
	}))
	defer srv.Close()
	jar, err := cookiejar.New(nil)
	must(t, err)
	client := &http.Client{Jar: jar}

	for i := range 3 {
		req, err := http.NewRequest(http.MethodGet, srv.URL+"/courses/"+course, nil)
		must(t, err)
		req.Header.Set("X-User-ID", id)
		res, err := client.Do(req)
		must(t, err)
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		must(t, err)
		if string(body) != "1 SPLIT 1" {
			t.Errorf("request %d: %q, want %q", i, body, "1 SPLIT 1")
		}
		if setCookie := res.Header.Get("Set-Cookie"); (i == 0) != (setCookie != "") {
			t.Errorf("request %d: Set-Cookie %q; want one on the first request only", i, setCookie)
		}
	}
	if got := fx.events.all(); len(got) != 1 || got[0].Bucket != 1 || got[0].UserID != id {
		t.Errorf("events %+v, want one, for bucket 1", got)
	}
}

func TestNewProviderPanicsOnMistakes(t *testing.T) {
	t.Parallel()
	x := experiments.New(experiments.Config{})
	twin := experiments.NewFlagSet().NewFlag("ofp_test", "three_way")
	tests := []struct {
		name string
		fn   func()
	}{
		{"nok, nil Experiments", func() { ofprovider.NewProvider(nil, threeWay) }},
		{"nok, nil flag", func() { ofprovider.NewProvider(x, threeWay, nil) }},
		{"nok, two flags of one name", func() { ofprovider.NewProvider(x, threeWay, twin) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			tt.fn()
		})
	}
	t.Run("ok, the same flag twice", func(t *testing.T) {
		p := ofprovider.NewProvider(x, threeWay, threeWay)
		if p.Metadata().Name != ofprovider.Name || len(p.Hooks()) != 1 {
			t.Errorf("metadata %+v, %d hooks", p.Metadata(), len(p.Hooks()))
		}
	})
}
