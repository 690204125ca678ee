package experiments_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/abkit/experiments"
)

// exampleMulti is the experiment of ExampleMultiTracker.
var exampleMulti = experiments.NewFlag("course_experience", "example_multi")

// Send every event both to the log, as JSON with edX's property names, and
// to a function of your own. The record's time is the event's: fixed here
// by Config.Now, and by ReplaceAttr for good measure.
func ExampleMultiTracker() {
	ctx := context.Background()
	store := experiments.NewMemStore()
	_ = store.SetFlag(ctx, exampleMulti.Name(), experiments.On())

	fixed := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	log := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Time(slog.TimeKey, fixed)
			}
			return a
		},
	}))

	x := experiments.New(experiments.Config{
		Store: store,
		Site:  "learn.example.org",
		Now:   func() time.Time { return fixed },
		Tracker: experiments.MultiTracker(
			experiments.SlogTracker(log, slog.LevelInfo),
			experiments.TrackerFunc(func(_ context.Context, e experiments.Event) error {
				fmt.Printf("to the warehouse: user %s, bucket %d\n", e.UserID, e.Bucket)
				return nil
			}),
		),
	})

	rctx := x.NewContext(ctx, experiments.User{ID: "42"})
	fmt.Println("bucket", exampleMulti.Bucket(rctx, "course-v1:edX+DemoX+2026"))
	// Output:
	// {"time":"2026-03-01T12:00:00Z","level":"INFO","msg":"edx.bi.experiment.user.bucketed","user_id":"42","site":"learn.example.org","app_label":"course_experience","experiment":"example_multi","course_id":"course-v1:edX+DemoX+2026","bucket":1,"is_staff":false,"nonInteraction":1}
	// to the warehouse: user 42, bucket 1
	// bucket 1
}
