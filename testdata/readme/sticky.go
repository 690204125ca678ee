// README "Sticky buckets": the first decision is hashed and remembered,
// the next one recalls it.
package main

import (
	"context"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/internal/readmecheck"
)

func main() {
	ctx := context.Background()
	store := experiments.NewMemStore()
	readmecheck.Must(store.SetFlag(ctx, "course_experience.upgrade_button", experiments.On()))

	//readme:block 1

	u := experiments.User{ID: "42"}
	first := upgradeButton.Decide(x.NewContext(ctx, u), "")
	readmecheck.Decision("the first decision", first, experiments.SHA256Bucket(upgradeButton.Name(), "42", 3), experiments.ReasonHashed)
	readmecheck.Decision("the next request", upgradeButton.Decide(x.NewContext(ctx, u), ""), first.Bucket, experiments.ReasonSticky)
}
