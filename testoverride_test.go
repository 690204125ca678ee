package experiments_test

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/abkit/experiments"
)

// Every test here has its own flags: Override is process-wide.
var (
	ovNest     = experiments.NewFlag("override_test", "nest", experiments.WithBuckets(4))
	ovPanic    = experiments.NewFlag("override_test", "panic")
	ovNoReq    = experiments.NewFlag("override_test", "no_request", experiments.WithBuckets(3))
	ovScoped   = experiments.NewFlag("override_test", "scoped", experiments.WithBuckets(4))
	ovOther    = experiments.NewFlag("override_test", "other")
	ovBeats    = experiments.NewFlag("override_test", "beats", experiments.WithBuckets(3))
	ovParallel = experiments.NewFlag("override_test", "parallel", experiments.WithBuckets(4))
	ovRange    = experiments.NewFlag("override_test", "range", experiments.WithBuckets(3))
	ovEvents   = experiments.NewFlag("override_test", "events", experiments.WithBuckets(3))
)

// ovRuntime returns an Experiments whose store has flags on for everyone,
// and a tracker that counts events.
func ovRuntime(t *testing.T, flags ...*experiments.ExperimentFlag) (*experiments.Experiments, *atomic.Int64) {
	t.Helper()
	store := experiments.NewMemStore()
	for _, f := range flags {
		unitSetFlag(t, store, f.Name(), experiments.On())
	}
	var events atomic.Int64
	tracker := experiments.TrackerFunc(func(context.Context, experiments.Event) error {
		events.Add(1)
		return nil
	})
	return experiments.New(experiments.Config{Store: store, Tracker: tracker, Logger: unitLogger()}), &events
}

var ovUser = experiments.User{ID: "77", Username: "overridden"}

// wantOverride checks that f is pinned to bucket (on) in ctx.
func wantOverride(t *testing.T, f *experiments.ExperimentFlag, ctx context.Context, on bool, bucket int) {
	t.Helper()
	d := f.Decide(ctx, "course-v1:ORG+C+R")
	if d.Bucket != bucket || d.Reason != experiments.ReasonOverride || d.Err != nil || d.Tracked {
		t.Errorf("Decide = %+v, want bucket %d, reason %q", d, bucket, experiments.ReasonOverride)
	}
	if got := f.Bucket(ctx, ""); got != bucket {
		t.Errorf("Bucket = %d, want %d", got, bucket)
	}
	if got := f.IsEnabled(ctx, ""); got != (bucket != 0) {
		t.Errorf("IsEnabled = %v, want %v", got, bucket != 0)
	}
	if got := f.IsExperimentOn(ctx, ""); got != on {
		t.Errorf("IsExperimentOn = %v, want %v", got, on)
	}
}

// wantNoOverride checks that f decides normally in ctx (the flag is off in
// the store, or there is no request state).
func wantNoOverride(t *testing.T, f *experiments.ExperimentFlag, ctx context.Context, reason experiments.Reason) {
	t.Helper()
	if d := f.Decide(ctx, ""); d.Reason != reason {
		t.Errorf("Decide = %+v, want reason %q (no override)", d, reason)
	}
}

// ovState is the override in effect: none, or (on, bucket).
type ovState struct {
	on     bool
	bucket int
	none   bool
}

func TestOverrideNesting(t *testing.T) {
	x, _ := ovRuntime(t) // ovNest is off in the store
	req := func() context.Context { return x.NewContext(context.Background(), ovUser) }
	f := ovNest
	cases := []struct {
		name   string
		pushes [][2]int  // Override(active == 1, bucket), in order
		pops   []int     // restore the i-th push, in order
		after  []ovState // in effect after each pop
	}{
		{"ok, restore inner first", [][2]int{{1, 1}, {1, 2}}, []int{1, 0},
			[]ovState{{true, 1, false}, {false, 0, true}}},
		{"ok, restore outer first", [][2]int{{1, 1}, {1, 2}}, []int{0, 1},
			[]ovState{{true, 2, false}, {false, 0, true}}},
		{"ok, restore the middle of three", [][2]int{{1, 1}, {0, 0}, {1, 3}}, []int{1, 2, 0},
			[]ovState{{true, 3, false}, {true, 1, false}, {false, 0, true}}},
		{"ok, restore twice is a no-op", [][2]int{{1, 1}, {1, 2}}, []int{1, 1, 1, 0, 0},
			[]ovState{{true, 1, false}, {true, 1, false}, {true, 1, false}, {false, 0, true}, {false, 0, true}}},
		{"ok, inactive over active", [][2]int{{1, 3}, {0, 0}}, []int{1, 0},
			[]ovState{{true, 3, false}, {false, 0, true}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var restores []func()
			t.Cleanup(func() {
				for _, r := range restores {
					r()
				}
			})
			for _, p := range c.pushes {
				restores = append(restores, f.Override(p[0] == 1, p[1]))
				wantOverride(t, f, req(), p[0] == 1, p[1])
				wantOverride(t, f, context.Background(), p[0] == 1, p[1])
			}
			for i, pop := range c.pops {
				restores[pop]()
				if a := c.after[i]; a.none {
					wantNoOverride(t, f, req(), experiments.ReasonFlagOff)
					wantNoOverride(t, f, context.Background(), experiments.ReasonNoRequest)
				} else {
					wantOverride(t, f, req(), a.on, a.bucket)
				}
			}
		})
	}
}

func TestOverrideStaleRestore(t *testing.T) {
	x, _ := ovRuntime(t)
	req := func() context.Context { return x.NewContext(context.Background(), ovUser) }
	first := ovNest.Override(true, 1)
	first()
	second := ovNest.Override(true, 2)
	defer second()
	first() // restoring an override already restored must not touch a newer one
	wantOverride(t, ovNest, req(), true, 2)
}

func TestOverrideWithoutRequestState(t *testing.T) {
	cases := []struct {
		name   string
		active bool
		bucket int
		want   int
	}{
		{"ok, active in bucket 2", true, 2, 2},
		{"ok, active in control", true, 0, 0},
		{"ok, inactive", false, 1, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			restore := ovNoReq.Override(c.active, c.bucket)
			defer restore()
			wantOverride(t, ovNoReq, context.Background(), c.active, c.want)
		})
	}
}

func TestOverrideBeatsTheRequestCache(t *testing.T) {
	x, _ := ovRuntime(t)
	ctx := x.NewContext(context.Background(), ovUser)
	if d := ovNoReq.Decide(ctx, ""); d.Reason != experiments.ReasonFlagOff {
		t.Fatalf("Decide = %+v, want flag off", d)
	}
	restore := ovNoReq.Override(true, 2)
	defer restore()
	wantOverride(t, ovNoReq, ctx, true, 2)
}

func TestOverridePanics(t *testing.T) {
	cases := []struct {
		name   string
		active bool
		bucket int
		panics bool
	}{
		{"nok, active with bucket == buckets panics", true, 2, true},
		{"nok, active with a negative bucket panics", true, -1, true},
		{"nok, active with a huge bucket panics", true, 1 << 40, true},
		{"ok, inactive with bucket 5 does not panic", false, 5, false},
		{"ok, inactive with a negative bucket does not panic", false, -1, false},
		{"ok, active with the last bucket does not panic", true, 1, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var restore func()
			panicked := func() (p bool) {
				defer func() { p = recover() != nil }()
				restore = ovPanic.Override(c.active, c.bucket)
				return false
			}()
			if panicked != c.panics {
				t.Fatalf("panicked = %v, want %v", panicked, c.panics)
			}
			if panicked {
				// Nothing was pushed.
				wantNoOverride(t, ovPanic, context.Background(), experiments.ReasonNoRequest)
				return
			}
			want := 0
			if c.active {
				want = c.bucket
			}
			wantOverride(t, ovPanic, context.Background(), c.active, want)
			restore()
			wantNoOverride(t, ovPanic, context.Background(), experiments.ReasonNoRequest)
		})
	}
}

func TestWithOverride(t *testing.T) {
	x, _ := ovRuntime(t, ovScoped, ovOther)
	bg := context.Background()
	f := ovScoped

	t.Run("ok, scoped to its context only", func(t *testing.T) {
		base := x.NewContext(bg, ovUser)
		pinned := f.WithOverride(base, true, 3)
		wantOverride(t, f, pinned, true, 3)
		wantNoOverride(t, f, base, experiments.ReasonHashed)
		wantNoOverride(t, f, x.NewContext(bg, ovUser), experiments.ReasonHashed)
		wantNoOverride(t, f, bg, experiments.ReasonNoRequest)
	})
	t.Run("ok, derived contexts inherit it", func(t *testing.T) {
		type key struct{}
		pinned := f.WithOverride(x.NewContext(bg, ovUser), true, 2)
		derived, cancel := context.WithCancel(context.WithValue(pinned, key{}, "v"))
		defer cancel()
		wantOverride(t, f, derived, true, 2)
		if derived.Value(key{}) != "v" {
			t.Error("WithOverride lost the parent's values")
		}
	})
	t.Run("ok, works before NewContext", func(t *testing.T) {
		ctx := x.NewContext(f.WithOverride(bg, true, 1), ovUser)
		wantOverride(t, f, ctx, true, 1)
		// The request state is there for other flags.
		wantNoOverride(t, ovOther, ctx, experiments.ReasonHashed)
	})
	t.Run("ok, works after NewContext and keeps the request state", func(t *testing.T) {
		req := x.NewContext(bg, ovUser)
		ctx := f.WithOverride(req, true, 1)
		wantOverride(t, f, ctx, true, 1)
		// A decision through the pinned context is cached in the request.
		wantNoOverride(t, ovOther, ctx, experiments.ReasonHashed)
		wantNoOverride(t, ovOther, req, experiments.ReasonCached)
	})
	t.Run("ok, works without request state", func(t *testing.T) {
		wantOverride(t, f, f.WithOverride(bg, true, 2), true, 2)
		wantOverride(t, f, f.WithOverride(bg, false, 2), false, 0)
	})
	t.Run("ok, the innermost wins", func(t *testing.T) {
		outer := f.WithOverride(x.NewContext(bg, ovUser), true, 1)
		wantOverride(t, f, f.WithOverride(outer, true, 2), true, 2)
		wantOverride(t, f, f.WithOverride(outer, false, 0), false, 0)
		wantOverride(t, f, x.NewContext(f.WithOverride(outer, true, 3), ovUser), true, 3)
		wantOverride(t, f, outer, true, 1)
	})
	t.Run("ok, an override of another flag does not apply", func(t *testing.T) {
		ctx := ovOther.WithOverride(x.NewContext(bg, ovUser), false, 0)
		wantNoOverride(t, f, ctx, experiments.ReasonHashed)
		wantOverride(t, ovOther, ctx, false, 0)
		both := f.WithOverride(ctx, true, 2)
		wantOverride(t, f, both, true, 2)
		wantOverride(t, ovOther, both, false, 0)
	})
}

func TestWithOverrideBeatsOverride(t *testing.T) {
	x, _ := ovRuntime(t, ovBeats)
	bg := context.Background()
	restore := ovBeats.Override(true, 1)
	defer restore()
	cases := []struct {
		name   string
		ctx    context.Context
		on     bool
		bucket int
	}{
		{"ok, WithOverride active beats Override", ovBeats.WithOverride(bg, true, 2), true, 2},
		{"ok, WithOverride inactive beats Override", ovBeats.WithOverride(x.NewContext(bg, ovUser), false, 0), false, 0},
		{"ok, Override applies where WithOverride is absent", x.NewContext(bg, ovUser), true, 1},
		{"ok, Override applies without request state", bg, true, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantOverride(t, ovBeats, c.ctx, c.on, c.bucket)
		})
	}
}

func TestWithOverrideParallel(t *testing.T) {
	x, _ := ovRuntime(t, ovParallel)
	for b := range ovParallel.Buckets() {
		t.Run("ok, parallel test pinned to bucket "+strconv.Itoa(b), func(t *testing.T) {
			t.Parallel()
			for i := range 200 {
				u := experiments.User{ID: strconv.Itoa(i), Username: "u" + strconv.Itoa(i)}
				ctx := ovParallel.WithOverride(x.NewContext(context.Background(), u), true, b)
				if got := ovParallel.Bucket(ctx, ""); got != b {
					t.Fatalf("user %s: Bucket = %d, want %d", u.ID, got, b)
				}
			}
		})
	}
}

func TestWithOverrideOutOfRange(t *testing.T) {
	x, _ := ovRuntime(t, ovRange)
	bg := context.Background()
	cases := []struct {
		name    string
		ctx     context.Context
		wantErr bool
	}{
		{"nok, bucket == buckets gives control with an error", ovRange.WithOverride(x.NewContext(bg, ovUser), true, 3), true},
		{"nok, negative bucket gives control with an error", ovRange.WithOverride(x.NewContext(bg, ovUser), true, -1), true},
		{"nok, out of range without request state", ovRange.WithOverride(bg, true, 99), true},
		{"ok, inactive with bucket 5 is plain control", ovRange.WithOverride(bg, false, 5), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var d experiments.Decision
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Fatalf("Decide panicked: %v", p)
					}
				}()
				d = ovRange.Decide(c.ctx, "")
			}()
			if d.Bucket != 0 || d.Tracked {
				t.Errorf("Decide = %+v, want bucket 0, not tracked", d)
			}
			if c.wantErr {
				if d.Reason != experiments.ReasonError || !errors.Is(d.Err, experiments.ErrInvalid) {
					t.Errorf("Decide = %+v, want reason %q with an error wrapping ErrInvalid", d, experiments.ReasonError)
				}
			} else if d.Reason != experiments.ReasonOverride || d.Err != nil {
				t.Errorf("Decide = %+v, want reason %q without error", d, experiments.ReasonOverride)
			}
			if got := ovRange.Bucket(c.ctx, ""); got != 0 {
				t.Errorf("Bucket = %d, want 0", got)
			}
		})
	}
}

func TestOverridesEmitNoEvents(t *testing.T) {
	x, events := ovRuntime(t, ovEvents)
	bg := context.Background()
	const course = "course-v1:ORG+C+R"
	cases := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"ok, Override active emits nothing", func(t *testing.T) {
			defer ovEvents.Override(true, 2)()
			for i := range 5 {
				ctx := x.NewContext(bg, experiments.User{ID: strconv.Itoa(i)})
				ovEvents.Bucket(ctx, course)
				ovEvents.Decide(ctx, "")
			}
		}},
		{"ok, Override inactive emits nothing", func(t *testing.T) {
			defer ovEvents.Override(false, 0)()
			ovEvents.Bucket(x.NewContext(bg, ovUser), course)
		}},
		{"ok, WithOverride emits nothing", func(t *testing.T) {
			for i := range 5 {
				ctx := ovEvents.WithOverride(x.NewContext(bg, experiments.User{ID: strconv.Itoa(i)}), true, i%3)
				ovEvents.Bucket(ctx, course)
				ovEvents.IsEnabled(ctx, "")
			}
		}},
		{"ok, WithOverride out of range emits nothing", func(t *testing.T) {
			ovEvents.Bucket(ovEvents.WithOverride(x.NewContext(bg, ovUser), true, 7), course)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := events.Load()
			c.run(t)
			if n := events.Load() - before; n != 0 {
				t.Errorf("%d events, want 0", n)
			}
		})
	}
	t.Run("ok, without override the same call emits one event", func(t *testing.T) {
		before := events.Load()
		d := ovEvents.Decide(x.NewContext(bg, ovUser), course)
		if n := events.Load() - before; n != 1 || !d.Tracked {
			t.Errorf("%d events (Decide %+v), want 1", n, d)
		}
	})
}
