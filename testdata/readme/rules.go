// README "Flags, bucket flags and rules": a rule, a bucket flag and the
// overrides, then what they decide.
package main

import (
	"context"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/internal/readmecheck"
)

func main() {
	store := experiments.NewMemStore()

	//readme:block 1

	flag := experiments.NewFlag("course_experience", "upgrade_button", experiments.WithBuckets(3))
	x := experiments.New(experiments.Config{Store: store})
	alice := experiments.User{ID: "1", Username: "alice"}
	readmecheck.Decision("alice in the course forced on", flag.Decide(x.NewContext(ctx, alice), "course-v1:HarvardX+CS50+2026"), 2, experiments.ReasonForced)
	readmecheck.Decision("alice elsewhere in HarvardX", flag.Decide(x.NewContext(ctx, alice), "course-v1:HarvardX+Other+2026"), 0, experiments.ReasonFlagOff)
	staff := experiments.User{ID: "2", Username: "bob", Staff: true}
	readmecheck.Decision("staff in another org", flag.Decide(x.NewContext(ctx, staff), "course-v1:MITx+6.002x+2026"),
		experiments.SHA256Bucket(flag.Name()+".course-v1:MITx+6.002x+2026", "2", 3), experiments.ReasonHashed)
}
