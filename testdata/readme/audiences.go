// README "Audiences": a rule narrowed by three conditions, then who is
// in it.
package main

import (
	"context"
	"strconv"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/internal/readmecheck"
)

func main() {
	store := experiments.NewMemStore()
	player := experiments.NewFlag("course_experience", "new_player")
	x := experiments.New(experiments.Config{Store: store})

	//readme:block 1

	readmecheck.Decision("a user outside the audience", d, 0, experiments.ReasonNotInAudience)
	if player.IsExperimentOn(x.NewContext(ctx, user), "") {
		readmecheck.Failf("IsExperimentOn is true outside the audience")
	}
	rc := experiments.User{ID: "8", Attributes: map[string]any{"country": "US", "app_version": "2.3.0-rc.1", "age": 30}}
	readmecheck.Decision("a pre-release below 2.3.0", player.Decide(x.NewContext(ctx, rc), ""), 0, experiments.ReasonNotInAudience)
	on := 0
	for i := range 1000 {
		u := experiments.User{ID: strconv.Itoa(i), Attributes: map[string]any{"country": "CA", "app_version": "v2.3.0", "age": uint8(18)}}
		switch d := player.Decide(x.NewContext(ctx, u), ""); d.Reason {
		case experiments.ReasonHashed:
			on++
		case experiments.ReasonFlagOff:
		default:
			readmecheck.Failf("user %s of the audience: %+v", u.ID, d)
		}
	}
	if on < 400 || on > 600 {
		readmecheck.Failf("%d of 1000 users of the audience are in, want about half", on)
	}
}
