// README "Weights": a flag declared 90/10, then 80/20 from the store's
// meta: the weights decisions use, the share of users in each bucket,
// and the analysts' formula.
package main

import (
	"context"
	"log"
	"reflect"
	"strconv"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/internal/readmecheck"
)

func main() {
	ctx := context.Background()
	store := experiments.NewMemStore()
	readmecheck.Must(store.SetFlag(ctx, "course_experience.upgrade_button", experiments.On()))
	readmecheck.Must(store.SetExperimentMeta(ctx, "course_experience.upgrade_button", experiments.ExperimentMeta{Notes: "bigger button"}))
	snap, _ := store.Snapshot(ctx)

	//readme:block 1

	after, _ := store.Snapshot(ctx)
	if m := after.Data().Meta[upgradeButton.Name()]; m.Notes != "bigger button" {
		readmecheck.Failf("the notes are %q after setting the weights, want them kept", m.Notes)
	}
	if w, err := upgradeButton.WeightsIn(after); err != nil || !reflect.DeepEqual(w, []float64{80, 20}) {
		readmecheck.Failf("WeightsIn = %v, %v; want [80 20]", w, err)
	}
	x := experiments.New(experiments.Config{Store: store})
	var counts [2]int
	for i := range 2000 {
		id := strconv.Itoa(i)
		d := upgradeButton.Decide(x.NewContext(ctx, experiments.User{ID: id}), "")
		want := experiments.SlotBucket(experiments.SHA256Bucket(upgradeButton.Name(), id, experiments.WeightSlots), []float64{80, 20})
		readmecheck.Decision("user "+id, d, want, experiments.ReasonHashed)
		counts[d.Bucket]++
	}
	// 400 of 2000 expected in bucket 1; five standard deviations are 89.
	if counts[1] < 311 || counts[1] > 489 {
		readmecheck.Failf("bucket 1 has %d of 2000 users, want about 400", counts[1])
	}
}
