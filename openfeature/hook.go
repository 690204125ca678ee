package ofprovider

import (
	"context"

	"github.com/open-feature/go-sdk/openfeature"

	"github.com/abkit/experiments"
)

// trackingHook sends the "user bucketed" event after an evaluation of the
// provider, as Bucket would have: see Provider.Hooks.
type trackingHook struct {
	openfeature.UnimplementedHook
	p *Provider
}

// After sends the event for the evaluation's decision, read back from its
// flag metadata, with the same request state the evaluation used. It never
// fails the evaluation: a tracker failure is logged by the core.
func (h trackingHook) After(ctx context.Context, hc openfeature.HookContext, details openfeature.InterfaceEvaluationDetails, _ openfeature.HookHints) error {
	f, ok := h.p.flags[hc.FlagKey()]
	if !ok {
		return nil
	}
	reason, err := details.FlagMetadata.GetString(MetadataReason)
	if err != nil {
		return nil // not our evaluation
	}
	if r := experiments.Reason(reason); r != experiments.ReasonForced && r != experiments.ReasonHashed && r != experiments.ReasonSticky {
		return nil // cheap exit for the common, cached case
	}
	bucket, err := details.FlagMetadata.GetInt(MetadataBucket)
	if err != nil {
		return nil
	}
	rctx, courseKey, err := h.p.requestContext(ctx, flatten(hc.EvaluationContext()))
	if err != nil {
		return nil // the evaluation failed with it already
	}
	f.TrackDecision(rctx, courseKey, experiments.Decision{Bucket: int(bucket), Reason: experiments.Reason(reason)})
	return nil
}
