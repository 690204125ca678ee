package ofprovider

import (
	"context"
	"fmt"
	"strconv"

	"github.com/open-feature/go-sdk/openfeature"

	"github.com/abkit/experiments"
)

// Name is the provider's name in its openfeature.Metadata.
const Name = "abkit-experiments"

// The keys of the flag metadata of an evaluation (EvaluationDetails'
// FlagMetadata).
const (
	// MetadataReason is the experiments.Reason of the decision, as a
	// string ("hashed", "forced", "flag_off", …). It is set on errors too
	// ("bad_window", "error"), but not for an unknown flag, a type
	// mismatch or an invalid evaluation context, where nothing was decided.
	MetadataReason = "reason"
	// MetadataBucket is the bucket, an int64. It is not set on errors,
	// where the caller gets its default value rather than a bucket.
	MetadataBucket = "bucket"
)

// Provider is an openfeature.FeatureProvider for experiment flags. Each
// flag registered with NewProvider is found under its full name
// ("namespace.name") and evaluates
//
//   - as an int (IntValue): its bucket, 0 for control;
//   - as a bool (BooleanValue): bucket != 0, like IsEnabled.
//
// String, float and object evaluations of a registered flag fail with
// TYPE_MISMATCH, and evaluations of any other key with FLAG_NOT_FOUND; an
// evaluation context whose attributes have the wrong types (see the Attr
// constants) fails with INVALID_CONTEXT. Failures give the caller's
// default value, as OpenFeature clients always do.
//
// The decision's experiments.Reason maps to the OpenFeature reason below,
// is kept as the flag metadata MetadataReason (with the bucket as
// MetadataBucket), and the variant is "bucket-<n>":
//
//	experiments.Reason   OpenFeature reason  value
//	-------------------  ------------------  ------------------------------------
//	ReasonHashed         SPLIT               the bucket the hash chose
//	ReasonSticky         SPLIT               the bucket remembered for the user (WithStickyBuckets)
//	ReasonForced         TARGETING_MATCH     the bucket whose bucket flag is on
//	ReasonOverride       STATIC              the bucket of Override/WithOverride
//	ReasonCached         CACHED              the bucket decided earlier in the request
//	ReasonFlagOff        DISABLED            0 (control)
//	ReasonNotInAudience  DEFAULT             0 (control)
//	ReasonAnonymous      DEFAULT             0 (control)
//	ReasonNoRequest      DEFAULT             0 (control)
//	ReasonOutsideWindow  DEFAULT             0 (control)
//	ReasonNoBucketingID  DEFAULT             0 (control)
//	ReasonOtherExperiment DEFAULT            0 (control)
//	ReasonBadWindow      ERROR, code GENERAL the caller's default; message: the error
//	ReasonError          ERROR, code GENERAL the caller's default; message: the error
//	(any other)          UNKNOWN             the bucket
//
// Evaluating sends no event (it is ExperimentFlag.DecideUntracked); the
// hook of Hooks sends it. A Provider is safe for concurrent use; it keeps
// no state of its own between evaluations.
type Provider struct {
	x     *experiments.Experiments
	flags map[string]*experiments.ExperimentFlag
	hooks []openfeature.Hook
}

var _ openfeature.FeatureProvider = (*Provider)(nil)

// NewProvider returns a provider that evaluates flags with x (its store,
// hasher, tracker and sessions). Flags are registered under their full
// names; listing a flag twice is allowed. NewProvider panics when x or a
// flag is nil, or when two different flags have the same name: like
// NewFlag, it runs at start-up, where the mistake shows at once.
func NewProvider(x *experiments.Experiments, flags ...*experiments.ExperimentFlag) *Provider {
	if x == nil {
		panic("ofprovider.NewProvider: nil *experiments.Experiments")
	}
	p := &Provider{x: x, flags: make(map[string]*experiments.ExperimentFlag, len(flags))}
	for i, f := range flags {
		if f == nil {
			panic(fmt.Sprintf("ofprovider.NewProvider: flag %d is nil", i))
		}
		if g, ok := p.flags[f.Name()]; ok && g != f {
			panic(fmt.Sprintf("ofprovider.NewProvider: two flags named %q", f.Name()))
		}
		p.flags[f.Name()] = f
	}
	p.hooks = []openfeature.Hook{trackingHook{p: p}}
	return p
}

// Metadata returns the provider's name, Name.
func (p *Provider) Metadata() openfeature.Metadata {
	return openfeature.Metadata{Name: Name}
}

// Hooks returns the hook that sends the "user bucketed" event after a
// successful evaluation whose decision calls for one (ReasonForced,
// ReasonSticky or ReasonHashed), through ExperimentFlag.TrackDecision:
// once per session per experiment with Config.Sessions and request state from the
// middleware, once per request state otherwise, and never for anonymous or
// masquerading users or under an override. An evaluation without request
// state for its user in ctx is a request of its own, so each such
// evaluation may send the event. A tracker failure is logged by the core
// and does not fail the evaluation.
func (p *Provider) Hooks() []openfeature.Hook { return p.hooks }

// BooleanEvaluation evaluates a flag as bucket != 0 (see Provider).
func (p *Provider) BooleanEvaluation(ctx context.Context, flag string, defaultValue bool, flatCtx openfeature.FlattenedContext) openfeature.BoolResolutionDetail {
	d, detail, ok := p.evaluate(ctx, flag, flatCtx)
	if !ok {
		return openfeature.BoolResolutionDetail{Value: defaultValue, ProviderResolutionDetail: detail}
	}
	return openfeature.BoolResolutionDetail{Value: d.Bucket != 0, ProviderResolutionDetail: detail}
}

// IntEvaluation evaluates a flag as its bucket (see Provider).
func (p *Provider) IntEvaluation(ctx context.Context, flag string, defaultValue int64, flatCtx openfeature.FlattenedContext) openfeature.IntResolutionDetail {
	d, detail, ok := p.evaluate(ctx, flag, flatCtx)
	if !ok {
		return openfeature.IntResolutionDetail{Value: defaultValue, ProviderResolutionDetail: detail}
	}
	return openfeature.IntResolutionDetail{Value: int64(d.Bucket), ProviderResolutionDetail: detail}
}

// StringEvaluation returns defaultValue with TYPE_MISMATCH for a
// registered flag, FLAG_NOT_FOUND for any other key.
func (p *Provider) StringEvaluation(_ context.Context, flag string, defaultValue string, _ openfeature.FlattenedContext) openfeature.StringResolutionDetail {
	return openfeature.StringResolutionDetail{Value: defaultValue, ProviderResolutionDetail: p.mismatch(flag, "string")}
}

// FloatEvaluation returns defaultValue with TYPE_MISMATCH for a
// registered flag, FLAG_NOT_FOUND for any other key.
func (p *Provider) FloatEvaluation(_ context.Context, flag string, defaultValue float64, _ openfeature.FlattenedContext) openfeature.FloatResolutionDetail {
	return openfeature.FloatResolutionDetail{Value: defaultValue, ProviderResolutionDetail: p.mismatch(flag, "float")}
}

// ObjectEvaluation returns defaultValue with TYPE_MISMATCH for a
// registered flag, FLAG_NOT_FOUND for any other key.
func (p *Provider) ObjectEvaluation(_ context.Context, flag string, defaultValue any, _ openfeature.FlattenedContext) openfeature.InterfaceResolutionDetail {
	return openfeature.InterfaceResolutionDetail{Value: defaultValue, ProviderResolutionDetail: p.mismatch(flag, "object")}
}

// mismatch is the resolution of a flag evaluated as a type it has not.
func (p *Provider) mismatch(flag, typ string) openfeature.ProviderResolutionDetail {
	if _, ok := p.flags[flag]; !ok {
		return notFound(flag)
	}
	return openfeature.ProviderResolutionDetail{
		ResolutionError: openfeature.NewTypeMismatchResolutionError(
			fmt.Sprintf("experiment flag %q is an int (bucket) or a bool (bucket != 0), not a %s", flag, typ)),
		Reason: openfeature.ErrorReason,
	}
}

func notFound(flag string) openfeature.ProviderResolutionDetail {
	return openfeature.ProviderResolutionDetail{
		ResolutionError: openfeature.NewFlagNotFoundResolutionError(fmt.Sprintf("no experiment flag %q", flag)),
		Reason:          openfeature.ErrorReason,
	}
}

// evaluate decides flag for the user of flatCtx without sending the
// event, and maps the decision (see Provider). ok is false when the
// detail has a resolution error: the caller's default value is the value.
func (p *Provider) evaluate(ctx context.Context, flag string, flatCtx openfeature.FlattenedContext) (d experiments.Decision, detail openfeature.ProviderResolutionDetail, ok bool) {
	f, found := p.flags[flag]
	if !found {
		return d, notFound(flag), false
	}
	rctx, courseKey, err := p.requestContext(ctx, flatCtx)
	if err != nil {
		return d, openfeature.ProviderResolutionDetail{
			ResolutionError: openfeature.NewInvalidContextResolutionError(err.Error()),
			Reason:          openfeature.ErrorReason,
		}, false
	}
	d = f.DecideUntracked(rctx, courseKey)
	detail = resolution(d)
	return d, detail, detail.Reason != openfeature.ErrorReason
}

// resolution maps a decision to OpenFeature's reason, variant and
// metadata: the table of Provider.
func resolution(d experiments.Decision) openfeature.ProviderResolutionDetail {
	var reason openfeature.Reason
	switch d.Reason {
	case experiments.ReasonHashed, experiments.ReasonSticky:
		reason = openfeature.SplitReason
	case experiments.ReasonForced:
		reason = openfeature.TargetingMatchReason
	case experiments.ReasonOverride:
		reason = openfeature.StaticReason
	case experiments.ReasonCached:
		reason = openfeature.CachedReason
	case experiments.ReasonFlagOff:
		reason = openfeature.DisabledReason
	case experiments.ReasonAnonymous, experiments.ReasonNoRequest, experiments.ReasonOutsideWindow,
		experiments.ReasonNoBucketingID, experiments.ReasonOtherExperiment, experiments.ReasonNotInAudience:
		reason = openfeature.DefaultReason
	case experiments.ReasonError, experiments.ReasonBadWindow:
		msg := string(d.Reason)
		if d.Err != nil {
			msg = d.Err.Error()
		}
		return openfeature.ProviderResolutionDetail{
			ResolutionError: openfeature.NewGeneralResolutionError(msg, d.Err),
			Reason:          openfeature.ErrorReason,
			FlagMetadata:    openfeature.FlagMetadata{MetadataReason: string(d.Reason)},
		}
	default:
		reason = openfeature.UnknownReason
	}
	return openfeature.ProviderResolutionDetail{
		Reason:  reason,
		Variant: Variant(d.Bucket),
		FlagMetadata: openfeature.FlagMetadata{
			MetadataReason: string(d.Reason),
			MetadataBucket: int64(d.Bucket),
		},
	}
}

// Variant returns the variant name of bucket b, "bucket-<b>" ("bucket-0"
// is control).
func Variant(b int) string { return "bucket-" + strconv.Itoa(b) }
