package experiments_test

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/abkit/experiments"
)

// observed is one call of Config.OnDecision.
type observed struct {
	flag, course string
	bucket       int
	reason       experiments.Reason
}

// observations records Config.OnDecision calls.
type observations struct {
	mu   sync.Mutex
	seen []observed
}

func (o *observations) observe(_ context.Context, f *experiments.ExperimentFlag, courseKey string, d experiments.Decision) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seen = append(o.seen, observed{f.Name(), courseKey, d.Bucket, d.Reason})
}

func TestOnDecision(t *testing.T) {
	const course = "course-v1:edX+DemoX+2026"
	ctx := context.Background()
	store := experiments.NewMemStore()
	if err := store.SetFlag(ctx, benchFlag.Name(), experiments.On()); err != nil {
		t.Fatal(err)
	}
	var o observations
	x := experiments.New(experiments.Config{Store: store, OnDecision: o.observe})
	u := experiments.User{ID: "42"}
	hashed := experiments.SHA256Bucket(benchFlag.Name()+"."+course, u.ID, benchFlag.Buckets())

	req := x.NewContext(ctx, u)
	benchFlag.Bucket(req, course)
	benchFlag.Decide(req, course)
	benchFlag.IsEnabled(req, course)
	benchFlag.DecideUntracked(req, "")
	benchFlag.Bucket(x.NewContext(ctx, experiments.User{}), course)
	benchFlag.Bucket(benchFlag.WithOverride(x.NewContext(ctx, u), true, 1), course)
	benchFlag.Bucket(ctx, course) // no request state: no Experiments to report to
	benchFlag.IsExperimentOn(req, course)

	want := []observed{
		{benchFlag.Name(), course, hashed, experiments.ReasonHashed},
		{benchFlag.Name(), course, hashed, experiments.ReasonCached},
		{benchFlag.Name(), course, hashed, experiments.ReasonCached},
		{benchFlag.Name(), "", experiments.SHA256Bucket(benchFlag.Name(), u.ID, benchFlag.Buckets()), experiments.ReasonHashed},
		{benchFlag.Name(), course, 0, experiments.ReasonAnonymous},
		{benchFlag.Name(), course, 1, experiments.ReasonOverride},
	}
	if len(o.seen) != len(want) {
		t.Fatalf("observed %d decisions, want %d:\n got %v\nwant %v", len(o.seen), len(want), o.seen, want)
	}
	for i := range want {
		if o.seen[i] != want[i] {
			t.Errorf("decision %d: observed %+v, want %+v", i, o.seen[i], want[i])
		}
	}
}

func TestOnDecisionPanics(t *testing.T) {
	ctx := context.Background()
	var logs logBuffer
	store := experiments.NewMemStore()
	if err := store.SetFlag(ctx, benchFlag.Name(), experiments.On()); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	x := experiments.New(experiments.Config{
		Store:  store,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		OnDecision: func(context.Context, *experiments.ExperimentFlag, string, experiments.Decision) {
			calls.Add(1)
			panic("observer bug")
		},
	})
	plain := experiments.New(experiments.Config{Store: store})
	for _, id := range []string{"1", "2", "3"} {
		u := experiments.User{ID: id}
		req := x.NewContext(ctx, u)
		got := []experiments.Decision{benchFlag.Decide(req, benchCourse), benchFlag.Decide(req, benchCourse)}
		want := benchFlag.Decide(plain.NewContext(ctx, u), benchCourse)
		if got[0] != want {
			t.Errorf("user %s: Decide = %+v with a panicking observer, want %+v", id, got[0], want)
		}
		if got[1].Bucket != want.Bucket || got[1].Reason != experiments.ReasonCached {
			t.Errorf("user %s: second Decide = %+v, want bucket %d, cached", id, got[1], want.Bucket)
		}
	}
	if n := calls.Load(); n != 6 {
		t.Errorf("observer called %d times, want 6", n)
	}
	if n := logs.errors(); n != 1 {
		t.Errorf("%d errors logged, want 1 (the first panic):\n%s", n, logs.String())
	}
}

// Totals equal calls when requests decide concurrently (run with -race).
func TestOnDecisionConcurrent(t *testing.T) {
	var n atomic.Int64
	x, users := benchRuntime(t, experiments.Config{
		OnDecision: func(context.Context, *experiments.ExperimentFlag, string, experiments.Decision) { n.Add(1) },
	})
	const goroutines, calls = 8, 50
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			ctx := x.NewContext(context.Background(), users[g])
			for range calls {
				benchFlag.Bucket(ctx, benchCourse)
			}
		})
	}
	wg.Wait()
	if got := n.Load(); got != goroutines*calls {
		t.Errorf("observed %d decisions, want %d", got, goroutines*calls)
	}
}

// An observer that does not allocate keeps cached decisions free of
// allocations.
func TestOnDecisionAllocations(t *testing.T) {
	var n atomic.Int64
	x, users := benchRuntime(t, experiments.Config{
		OnDecision: func(context.Context, *experiments.ExperimentFlag, string, experiments.Decision) { n.Add(1) },
	})
	ctx := x.NewContext(context.Background(), users[0])
	benchFlag.Bucket(ctx, benchCourse)
	if got := testing.AllocsPerRun(200, func() { benchFlag.Bucket(ctx, benchCourse) }); got != 0 {
		t.Errorf("allocs = %v, want 0", got)
	}
}

// BenchmarkBucketCachedObserved is BenchmarkBucketCached with an
// observer that counts.
func BenchmarkBucketCachedObserved(b *testing.B) {
	var n atomic.Int64
	x, users := benchRuntime(b, experiments.Config{
		OnDecision: func(context.Context, *experiments.ExperimentFlag, string, experiments.Decision) { n.Add(1) },
	})
	ctx := x.NewContext(context.Background(), users[0])
	benchFlag.Bucket(ctx, benchCourse)
	b.ReportAllocs()
	for b.Loop() {
		benchFlag.Bucket(ctx, benchCourse)
	}
}
