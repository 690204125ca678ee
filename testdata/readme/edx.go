// README "Reproducing Open edX buckets": EdXHasher buckets by username
// as edX does.
package main

import (
	"context"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/internal/readmecheck"
)

func main() {
	ctx := context.Background()
	store := experiments.NewMemStore()
	flag := experiments.NewFlag("course_experience", "upgrade_button", experiments.WithBuckets(3))
	readmecheck.Must(store.SetFlag(ctx, flag.Name(), experiments.On()))

	//readme:block 1

	const course = "course-v1:edX+DemoX+2026"
	u := experiments.User{ID: "7", Username: "learner1"}
	readmecheck.Decision("learner1", flag.Decide(x.NewContext(ctx, u), course),
		experiments.EdXBucket(flag.Name()+"."+course, "learner1", 3), experiments.ReasonHashed)
}
