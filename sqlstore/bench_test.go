package sqlstore_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/abkit/experiments"
)

// The sqlstore serves decisions from the same kind of in-memory snapshot
// as the MemStore, so the first decision of a request should cost the
// same on both (within 10%). Compare the medians of
//
//	go test -run '^$' -bench BucketFirst -count 10 ./sqlstore/ > bench.txt && benchstat bench.txt
//
// These mirror the core package's BenchmarkBucketFirst: fresh request
// state, warm store, two buckets, a course key, a different user each time.

const benchSQLCourse = "course-v1:edX+DemoX+2026"

var benchSQLFlag = experiments.NewFlag("bench", "upgrade")

// experimentsStore is what both stores offer the benchmark.
type experimentsStore interface {
	experiments.Store
	SetFlag(ctx context.Context, name string, r experiments.Rule) error
}

func benchBucketFirst(b *testing.B, store experimentsStore) {
	bg := context.Background()
	if err := store.SetFlag(bg, benchSQLFlag.Name(), experiments.On()); err != nil {
		b.Fatal(err)
	}
	x := experiments.New(experiments.Config{Store: store})
	users := make([]experiments.User, 1024)
	for i := range users {
		users[i] = experiments.User{ID: strconv.Itoa(100000 + i), Username: "user" + strconv.Itoa(i)}
	}
	// Warm: the flag is in the snapshot and decides as hashed.
	if d := benchSQLFlag.Decide(x.NewContext(bg, users[0]), benchSQLCourse); d.Reason != experiments.ReasonHashed {
		b.Fatalf("warm-up decision: %+v, want hashed", d)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		ctx := x.NewContext(bg, users[i%len(users)])
		benchSQLFlag.Bucket(ctx, benchSQLCourse)
		i++
	}
}

func BenchmarkBucketFirstSQLStore(b *testing.B) {
	benchBucketFirst(b, openStore(b))
}

func BenchmarkBucketFirstMemStore(b *testing.B) {
	benchBucketFirst(b, experiments.NewMemStore())
}
