// README "Enrollment windows": a user who enrolled before the window
// opened gets control.
package main

import (
	"context"
	"time"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/internal/readmecheck"
)

func main() {
	ctx := context.Background()
	store := experiments.NewMemStore()
	userID, courseKey := "7", "course-v1:edX+DemoX+2026"
	enrolledAt := time.Date(2026, 8, 15, 9, 0, 0, 0, time.UTC)

	//readme:block 1

	readmecheck.Must(store.SetFlag(ctx, outline.Name(), experiments.On()))
	x := experiments.New(experiments.Config{Store: store})
	readmecheck.Decision("enrolled before the start", outline.Decide(x.NewContext(ctx, experiments.User{ID: userID}), courseKey),
		0, experiments.ReasonOutsideWindow)
}
