package experiments_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/abkit/experiments"
	"github.com/labstack/echo/v4"
)

// upgradeButton is an experiment with control and one variant, declared
// once at package level like edX's flags.
var upgradeButton = experiments.NewFlag("course_experience", "upgrade_button")

func Example() {
	ctx := context.Background()
	store := experiments.NewMemStore()
	_ = store.SetFlag(ctx, upgradeButton.Name(), experiments.On())
	// Force bucket 1 for everyone in one course with the bucket flag ".1".
	_ = store.SetCourseOverride(ctx, upgradeButton.BucketFlag(1), "course-v1:edX+DemoX+2026", experiments.ForceOn)

	x := experiments.New(experiments.Config{
		Store: store,
		Tracker: experiments.TrackerFunc(func(_ context.Context, e experiments.Event) error {
			fmt.Printf("event %s: user %s in bucket %d of %s.%s\n", e.Name, e.UserID, e.Bucket, e.AppLabel, e.Experiment)
			return nil
		}),
	})

	e := echo.New()
	e.Use(x.Middleware(experiments.MiddlewareConfig{
		User: func(c echo.Context) experiments.User {
			return experiments.User{ID: c.Request().Header.Get("X-User-ID")}
		},
	}))
	e.GET("/courses/:course", func(c echo.Context) error {
		d := upgradeButton.Decide(c.Request().Context(), c.Param("course"))
		return c.String(http.StatusOK, fmt.Sprintf("bucket %d (%s)", d.Bucket, d.Reason))
	})

	for _, course := range []string{"course-v1:edX+DemoX+2026", "course-v1:edX+Stats+2026"} {
		req := httptest.NewRequest(http.MethodGet, "/courses/"+course, nil)
		req.Header.Set("X-User-ID", "42")
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		fmt.Println(rec.Body.String())
	}
	// Output:
	// event edx.bi.experiment.user.bucketed: user 42 in bucket 1 of course_experience.upgrade_button
	// bucket 1 (forced)
	// event edx.bi.experiment.user.bucketed: user 42 in bucket 0 of course_experience.upgrade_button
	// bucket 0 (hashed)
}

// Tests pin a bucket for one context, safe under t.Parallel.
func ExampleExperimentFlag_WithOverride() {
	x := experiments.New(experiments.Config{})
	ctx := x.NewContext(context.Background(), experiments.User{ID: "7"})
	ctx = upgradeButton.WithOverride(ctx, true, 1)
	fmt.Println(upgradeButton.Bucket(ctx, ""), upgradeButton.IsExperimentOn(ctx, ""))
	// Output: 1 true
}

// Process-wide overrides nest and are undone by the function they return.
func ExampleExperimentFlag_Override() {
	restore := upgradeButton.Override(false, 0)
	defer restore()
	fmt.Println(upgradeButton.Bucket(context.Background(), "course-v1:edX+DemoX+2026"))
	// Output: 0
}
