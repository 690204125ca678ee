// Package ofprovider is an OpenFeature provider (github.com/open-feature/go-sdk)
// for experiment flags: an OpenFeature client evaluates an
// *experiments.ExperimentFlag, by its full name, as the user's bucket (an
// int) or as "not control" (a bool), decided exactly as
// ExperimentFlag.Bucket decides it.
//
// The package lives in the directory openfeature but is named ofprovider,
// so that it does not clash with the SDK's package openfeature; import it
// under that name:
//
//	import (
//		"github.com/open-feature/go-sdk/openfeature"
//
//		"github.com/abkit/experiments"
//		ofprovider "github.com/abkit/experiments/openfeature"
//	)
//
//	openfeature.SetProviderAndWait(ofprovider.NewProvider(x, upgradeButton))
//	client := openfeature.NewDefaultClient()
//
//	evalCtx := openfeature.NewEvaluationContext(userID, map[string]any{
//		ofprovider.AttrUsername:  username,
//		ofprovider.AttrCourseKey: courseKey,
//	})
//	bucket, _ := client.IntValue(r.Context(), "course_experience.upgrade_button", 0, evalCtx)
//
// The evaluation context's targeting key is the user ID ("" is anonymous:
// bucket 0, never tracked); the attributes named by the Attr constants fill
// in the rest of the experiments.User and the course key. Pass the
// request's context (Middleware, Handler or NewContext state): when it
// carries the state of the same user, the evaluation shares its request
// cache and session with Bucket calls.
//
// Evaluating does not send the "user bucketed" event; the hook the
// provider returns from Hooks does, in its After stage, through the same
// step as Bucket (once per session per experiment, never for anonymous or
// masquerading users). OpenFeature clients run provider hooks on their
// own. See Provider for how reasons map to OpenFeature's.
package ofprovider
