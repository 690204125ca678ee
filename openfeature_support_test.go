package experiments_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/abkit/experiments"
)

// twoStep is the flag of the DecideUntracked + TrackDecision tests.
var twoStep = experiments.NewFlag("support_test", "two_step", experiments.WithBuckets(3))

// twoStepRuntime returns a runtime with twoStep on and a recording tracker.
func twoStepRuntime(t *testing.T) (*experiments.Experiments, func() []experiments.Event) {
	t.Helper()
	store := experiments.NewMemStore()
	if err := store.SetFlag(context.Background(), twoStep.Name(), experiments.On()); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var events []experiments.Event
	x := experiments.New(experiments.Config{
		Store:  store,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Tracker: experiments.TrackerFunc(func(_ context.Context, e experiments.Event) error {
			mu.Lock()
			defer mu.Unlock()
			events = append(events, e)
			return nil
		}),
	})
	return x, func() []experiments.Event {
		mu.Lock()
		defer mu.Unlock()
		return append([]experiments.Event(nil), events...)
	}
}

func TestRequestUser(t *testing.T) {
	t.Parallel()
	x := experiments.New(experiments.Config{})
	u := experiments.User{ID: "7", Username: "ada", Staff: true, Groups: []string{"beta"}}
	ctx := x.NewContext(context.Background(), u)

	if _, ok := x.RequestUser(context.Background()); ok {
		t.Error("no request state: ok")
	}
	got, ok := x.RequestUser(ctx)
	if !ok || got.ID != "7" || got.Username != "ada" || !got.Staff || len(got.Groups) != 1 {
		t.Errorf("got %+v, %v; want %+v", got, ok, u)
	}
	got.Groups[0] = "changed"
	if again, _ := x.RequestUser(ctx); again.Groups[0] != "beta" {
		t.Error("Groups is not a copy")
	}
	if got, ok := x.RequestUser(twoStep.WithOverride(ctx, true, 1)); !ok || got.ID != "7" {
		t.Errorf("under WithOverride: %+v, %v", got, ok)
	}
	if _, ok := experiments.New(experiments.Config{}).RequestUser(ctx); ok {
		t.Error("another runtime's state: ok")
	}
}

func TestTrackDecision(t *testing.T) {
	t.Parallel()
	const course = "course-v1:edX+DemoX+2026"
	user := experiments.User{ID: "learner-1"}
	bucket := experiments.SHA256Bucket(twoStep.Name()+"."+course, user.ID, twoStep.Buckets())

	t.Run("ok, Decide after DecideUntracked is cached and sends nothing", func(t *testing.T) {
		t.Parallel()
		x, events := twoStepRuntime(t)
		ctx := x.NewContext(context.Background(), user)
		twoStep.DecideUntracked(ctx, course)
		if d := twoStep.Decide(ctx, course); d.Reason != experiments.ReasonCached || d.Tracked || len(events()) != 0 {
			t.Errorf("Decide: %+v, %d events; want cached, none", d, len(events()))
		}
	})
	t.Run("ok, DecideUntracked then TrackDecision is Decide", func(t *testing.T) {
		t.Parallel()
		x, events := twoStepRuntime(t)
		ctx := x.NewContext(context.Background(), user)
		d := twoStep.TrackDecision(ctx, course, twoStep.DecideUntracked(ctx, course))
		if d.Bucket != bucket || d.Reason != experiments.ReasonHashed || !d.Tracked || d.Err != nil {
			t.Errorf("got %+v, want bucket %d, hashed, tracked", d, bucket)
		}
		if got := events(); len(got) != 1 || got[0].Bucket != bucket || got[0].CourseKey != course {
			t.Errorf("events %+v", got)
		}
		if d := twoStep.Decide(ctx, course); d.Tracked || len(events()) != 1 {
			t.Errorf("Decide after: %+v, %d events; want no second event", d, len(events()))
		}
	})
	t.Run("ok, a fresh context caches the decision it tracks", func(t *testing.T) {
		t.Parallel()
		x, events := twoStepRuntime(t)
		d := twoStep.DecideUntracked(x.NewContext(context.Background(), user), course)
		ctx := x.NewContext(context.Background(), user)
		if d := twoStep.TrackDecision(ctx, course, d); !d.Tracked {
			t.Errorf("got %+v, want tracked", d)
		}
		if d := twoStep.Decide(ctx, course); d.Bucket != bucket || d.Reason != experiments.ReasonCached {
			t.Errorf("Decide after: %+v, want the cached bucket", d)
		}
		if got := len(events()); got != 1 {
			t.Errorf("%d events, want 1", got)
		}
	})

	nok := []struct {
		name    string
		ctx     func(x *experiments.Experiments) context.Context
		d       experiments.Decision
		course  string
		wantErr error
	}{
		{"nok, no request state", func(*experiments.Experiments) context.Context { return context.Background() },
			experiments.Decision{Bucket: 1, Reason: experiments.ReasonHashed}, course, nil},
		{"nok, anonymous", func(x *experiments.Experiments) context.Context {
			return x.NewContext(context.Background(), experiments.User{})
		}, experiments.Decision{Bucket: 1, Reason: experiments.ReasonHashed}, course, nil},
		{"nok, masquerading", func(x *experiments.Experiments) context.Context {
			return x.NewContext(context.Background(), experiments.User{ID: "1", Masquerading: true})
		}, experiments.Decision{Bucket: 1, Reason: experiments.ReasonForced}, course, nil},
		{"nok, override in effect", func(x *experiments.Experiments) context.Context {
			return twoStep.WithOverride(x.NewContext(context.Background(), user), true, 1)
		}, experiments.Decision{Bucket: 1, Reason: experiments.ReasonHashed}, course, nil},
		{"nok, cached is not tracked again", func(x *experiments.Experiments) context.Context {
			return x.NewContext(context.Background(), user)
		}, experiments.Decision{Bucket: 1, Reason: experiments.ReasonCached}, course, nil},
		{"nok, flag off is never tracked", func(x *experiments.Experiments) context.Context {
			return x.NewContext(context.Background(), user)
		}, experiments.Decision{Reason: experiments.ReasonFlagOff}, course, nil},
		{"nok, bucket out of range", func(x *experiments.Experiments) context.Context {
			return x.NewContext(context.Background(), user)
		}, experiments.Decision{Bucket: 3, Reason: experiments.ReasonHashed}, course, experiments.ErrInvalid},
		{"nok, course key with a control character", func(x *experiments.Experiments) context.Context {
			return x.NewContext(context.Background(), user)
		}, experiments.Decision{Bucket: 1, Reason: experiments.ReasonHashed}, "c\n", experiments.ErrInvalid},
		{"nok, another bucket than the request decided", func(x *experiments.Experiments) context.Context {
			ctx := x.NewContext(context.Background(), user)
			twoStep.DecideUntracked(ctx, course)
			return ctx
		}, experiments.Decision{Bucket: (bucket + 1) % 3, Reason: experiments.ReasonHashed}, course, experiments.ErrInvalid},
	}
	for _, tt := range nok {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			x, events := twoStepRuntime(t)
			got := twoStep.TrackDecision(tt.ctx(x), tt.course, tt.d)
			if got.Tracked || !errors.Is(got.Err, tt.wantErr) || (tt.wantErr == nil) != (got.Err == nil) {
				t.Errorf("got %+v, want untracked with err %v", got, tt.wantErr)
			}
			if got.Bucket != tt.d.Bucket || got.Reason != tt.d.Reason {
				t.Errorf("got %+v, want the decision unchanged: %+v", got, tt.d)
			}
			if n := len(events()); n != 0 {
				t.Errorf("%d events, want none", n)
			}
		})
	}
}

func ExampleExperimentFlag_TrackDecision() {
	store := experiments.NewMemStore()
	_ = store.SetFlag(context.Background(), upgradeButton.Name(), experiments.On())
	x := experiments.New(experiments.Config{
		Store: store,
		Tracker: experiments.TrackerFunc(func(_ context.Context, e experiments.Event) error {
			fmt.Println("event for bucket", e.Bucket)
			return nil
		}),
	})
	ctx := x.NewContext(context.Background(), experiments.User{ID: "7"})

	d := upgradeButton.DecideUntracked(ctx, "") // decide first…
	fmt.Println("decided", d.Bucket, d.Reason)
	d = upgradeButton.TrackDecision(ctx, "", d) // …track once the user sees it
	fmt.Println("tracked", d.Tracked)
	// Output:
	// decided 1 hashed
	// event for bucket 1
	// tracked true
}
