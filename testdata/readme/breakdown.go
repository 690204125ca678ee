// README "Results": dimensions recorded with the exposures, a breakdown
// by browser and the weekly series in Los Angeles, on a MemStore.
package main

import (
	"context"
	"os"
	"strconv"
	"time"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/internal/readmecheck"
	"github.com/abkit/experiments/results"
)

func main() { readmecheck.Must(run(context.Background())) }

func run(ctx context.Context) error {
	store := experiments.NewMemStore()
	flag := experiments.NewFlag("course_experience", "upgrade_button")
	if err := store.SetFlag(ctx, flag.Name(), experiments.On()); err != nil {
		return err
	}
	if err := store.SetGoal(ctx, experiments.Goal{Name: "enrolled", Once: true}); err != nil {
		return err
	}

	//readme:block 1

	// 30 users, in Firefox, Chrome or an unknown browser; a third enrol.
	for i := range 30 {
		u := experiments.User{ID: strconv.Itoa(i)}
		if b := []string{"", "Firefox", "Chrome"}[i%3]; b != "" {
			u.Attributes = map[string]any{"browser": b}
		}
		rctx := x.NewContext(ctx, u)
		flag.Bucket(rctx, "")
		if i%3 == 0 {
			if err := experiments.Convert(rctx, "enrolled"); err != nil {
				return err
			}
		}
	}
	goal := experiments.Goal{Name: "enrolled", Once: true}

	//readme:block 2

	if len(breakdown.Rows) != 3 || breakdown.Rows[1].Value != "Chrome" || breakdown.Rows[0].Report.Buckets[0].Converted+breakdown.Rows[0].Report.Buckets[1].Converted != 10 {
		readmecheck.Failf("breakdown %+v: want 3 rows, (none), Chrome, Firefox, the 10 enrolled without a browser", breakdown.Rows)
	}
	if report.Zone != "America/Los_Angeles" || len(report.Weekly) != 1 {
		readmecheck.Failf("report in %s with %d weeks, want America/Los_Angeles and 1", report.Zone, len(report.Weekly))
	}
	if s, ok := store.Exposures()[1].Dimensions.Get(experiments.DimensionSite); !ok || s != "learn.example" {
		readmecheck.Failf("exposure dimensions %v: want the site", store.Exposures()[1].Dimensions)
	}
	return nil
}
