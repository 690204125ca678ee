package bench_test

import (
	"context"
	"testing"

	"github.com/abkit/experiments"
)

// benchCourse is the course key of this package's calls, as in the root
// bench_test.go. The flag is course-aware (the default), so the hash input
// is "bench.exp.<course>" and the user ID: longer than the other SDKs'.
const benchCourse = "course-v1:edX+DemoX+2026"

// abkitFlag is the experiment: 2 buckets, 0 is control, hashed 50/50.
var abkitFlag = experiments.NewFlag("bench", "exp")

// abkit is this package set up as the root BenchmarkBucketFirst does: a
// warm MemStore whose main flag is On(), no tracker, no sessions.
type abkit struct {
	x     *experiments.Experiments
	users []experiments.User
}

func newABKit(tb testing.TB, ids []string) *abkit {
	tb.Helper()
	store := experiments.NewMemStore()
	if err := store.SetFlag(context.Background(), abkitFlag.Name(), experiments.On()); err != nil {
		tb.Fatal(err)
	}
	users := make([]experiments.User, len(ids))
	for i, id := range ids {
		users[i] = experiments.User{ID: id}
	}
	return &abkit{x: experiments.New(experiments.Config{Store: store}), users: users}
}

// bucket is the first decision in a request: fresh request state, then
// Bucket.
func (a *abkit) bucket(i int) int {
	return abkitFlag.Bucket(a.x.NewContext(context.Background(), a.users[i]), benchCourse)
}

// BenchmarkBucketFirst is the first decision in a request: a fresh request
// context per iteration (its one allocation included), a different user
// each time.
func BenchmarkBucketFirst(b *testing.B) {
	a := newABKit(b, benchUsers)
	bg := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		ctx := a.x.NewContext(bg, a.users[i%len(a.users)])
		abkitFlag.Bucket(ctx, benchCourse)
		i++
	}
}

// BenchmarkBucketCached is a repeat call in the same request context.
func BenchmarkBucketCached(b *testing.B) {
	a := newABKit(b, benchUsers)
	ctx := a.x.NewContext(context.Background(), a.users[0])
	abkitFlag.Bucket(ctx, benchCourse)
	b.ReportAllocs()
	for b.Loop() {
		abkitFlag.Bucket(ctx, benchCourse)
	}
}
