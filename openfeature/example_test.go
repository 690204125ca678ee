package ofprovider_test

import (
	"context"
	"fmt"

	"github.com/open-feature/go-sdk/openfeature"

	"github.com/abkit/experiments"
	// The package is named ofprovider, apart from the SDK's openfeature.
	ofprovider "github.com/abkit/experiments/openfeature"
)

// upgradeButton is an experiment with control and one variant.
var upgradeButton = experiments.NewFlag("course_experience", "upgrade_button")

func Example() {
	ctx := context.Background()
	store := experiments.NewMemStore()
	_ = store.SetFlag(ctx, upgradeButton.Name(), experiments.On())
	// alice is forced into bucket 1 by the bucket flag ".1".
	_ = store.SetFlag(ctx, upgradeButton.BucketFlag(1), experiments.Rule{Users: []string{"alice"}})

	x := experiments.New(experiments.Config{
		Store: store,
		Tracker: experiments.TrackerFunc(func(_ context.Context, e experiments.Event) error {
			fmt.Printf("event %s: user %s in bucket %d of %s.%s\n", e.Name, e.UserID, e.Bucket, e.AppLabel, e.Experiment)
			return nil
		}),
	})
	if err := openfeature.SetProviderAndWait(ofprovider.NewProvider(x, upgradeButton)); err != nil {
		fmt.Println(err)
		return
	}
	client := openfeature.NewDefaultClient()

	// In a handler, pass the request's context: with the middleware's
	// state, evaluations share its request cache and session.
	ctx = x.NewContext(ctx, experiments.User{ID: "42", Username: "alice"})
	evalCtx := openfeature.NewEvaluationContext("42", map[string]any{
		ofprovider.AttrUsername:  "alice",
		ofprovider.AttrCourseKey: "course-v1:edX+DemoX+2026",
	})
	d, _ := client.IntValueDetails(ctx, upgradeButton.Name(), 0, evalCtx)
	fmt.Println(d.Value, d.Variant, d.Reason, d.FlagMetadata[ofprovider.MetadataReason])
	// Later evaluations in the request are cached, and send no event.
	on, _ := client.BooleanValueDetails(ctx, upgradeButton.Name(), false, evalCtx)
	fmt.Println(on.Value, on.Reason)
	// Output:
	// event edx.bi.experiment.user.bucketed: user 42 in bucket 1 of course_experience.upgrade_button
	// 1 bucket-1 TARGETING_MATCH forced
	// true CACHED
}
