// README "Results": a report from PostgreSQL (DATABASE_URL).
package main

import (
	"context"
	"os"
	"strconv"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/internal/readmecheck"
	"github.com/abkit/experiments/results"
	"github.com/abkit/experiments/sqlstore"
)

func main() { readmecheck.Must(run(context.Background())) }

func run(ctx context.Context) error {
	store, err := sqlstore.Open(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		return err
	}
	defer store.Close()
	if err := store.SetGoal(ctx, experiments.Goal{Name: "enrolled", Once: true}); err != nil {
		return err
	}
	// Participants, a third of whom enrol.
	flag := experiments.NewFlag("course_experience", "upgrade_button")
	if err := store.SetFlag(ctx, flag.Name(), experiments.On()); err != nil {
		return err
	}
	x := experiments.New(experiments.Config{Store: store, Recorder: store})
	for i := range 30 {
		rctx := x.NewContext(ctx, experiments.User{ID: strconv.Itoa(i)})
		flag.Bucket(rctx, "course-v1:edX+DemoX+2026")
		if i%3 == 0 {
			if err := experiments.Convert(rctx, "enrolled"); err != nil {
				return err
			}
		}
	}
	if err := store.Flush(ctx); err != nil {
		return err
	}
	snap, err := store.Snapshot(ctx)
	if err != nil {
		return err
	}

	//readme:block 1

	var participants, converted int64
	for _, b := range report.Buckets {
		participants += b.Participants
		converted += b.Converted
	}
	if participants != 30 || converted != 10 {
		readmecheck.Failf("report of %d participants, %d converted; want 30 and 10", participants, converted)
	}
	return nil
}
