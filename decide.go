package experiments

import (
	"context"
	"errors"
	"fmt"
)

// Bucket returns the user's bucket in the experiment for courseKey ("" for
// none); 0 is control. The first call in a request decides and emits the
// bucketing event once per session; later calls in the request return the
// same bucket. It never fails: see Decide for why a bucket was chosen.
func (f *ExperimentFlag) Bucket(ctx context.Context, courseKey string) int {
	return f.decide(ctx, courseKey, true).Bucket
}

// IsEnabled reports whether the user is in a bucket other than control.
func (f *ExperimentFlag) IsEnabled(ctx context.Context, courseKey string) bool {
	return f.Bucket(ctx, courseKey) != 0
}

// Decide is Bucket with the reason for the bucket, whether this call
// emitted the bucketing event, and the failure that forced control, if any.
func (f *ExperimentFlag) Decide(ctx context.Context, courseKey string) Decision {
	return f.decide(ctx, courseKey, true)
}

// DecideUntracked is Decide without the bucketing event (edX's
// get_bucket(track=False)): for code that needs the bucket but shows the
// user nothing of the experiment. The decision is cached in the request
// like any other, so a later Bucket call in the same request does not emit
// the event either.
func (f *ExperimentFlag) DecideUntracked(ctx context.Context, courseKey string) Decision {
	return f.decide(ctx, courseKey, false)
}

// IsExperimentOn reports whether the main flag is on for the user and
// course (course override, else org override, else its rule, which is
// off for a user outside its audience), ignoring
// bucket flags and the enrollment window. It is false without request
// state, unless an override is in effect.
func (f *ExperimentFlag) IsExperimentOn(ctx context.Context, courseKey string) bool {
	sc := scopeOf(ctx)
	if o, ok := f.override(sc); ok {
		return o.active
	}
	if sc == nil || sc.st == nil {
		hintNoRequest(ctx, f)
		return false
	}
	st := sc.st
	snap, err := snapshot(ctx, st.x.store)
	if err != nil {
		st.mu.Lock()
		defer st.mu.Unlock()
		st.logOnce(ctx, f, courseKey, Decision{Reason: ReasonError, Err: fmt.Errorf("%s: %w", f.full, err)})
		return false
	}
	c := snap.flags[f.full]
	return c != nil && c.on(st.x, &st.user, courseKey)
}

// Decision is the outcome of one Decide call.
type Decision struct {
	Bucket  int
	Reason  Reason // why this bucket; see the constants
	Tracked bool   // this call emitted the bucketing event
	Err     error  // a store/enrollment failure that forced control (or a tracker, recorder or Assignments failure: bucket kept)
}

// Reason says why a decision gave its bucket.
type Reason string

// The reasons of a Decision, in the order the steps are tried.
const (
	ReasonOverride        Reason = "override"         // Override or WithOverride is in effect
	ReasonNoRequest       Reason = "no_request"       // ctx has no request state: control, not cached
	ReasonAnonymous       Reason = "anonymous"        // the user has no ID (nor, WithAnonymous, an anonymous ID): control, not cached
	ReasonCached          Reason = "cached"           // decided earlier in this request
	ReasonError           Reason = "error"            // the store or enrollment lookup failed: control
	ReasonNotInAudience   Reason = "not_in_audience"  // the main flag's rule that applies has Conditions the user fails: control, not tracked
	ReasonFlagOff         Reason = "flag_off"         // the main flag is off for the user and course
	ReasonBadWindow       Reason = "bad_window"       // an enrollment bound does not parse: control
	ReasonOutsideWindow   Reason = "outside_window"   // enrolled outside the enrollment window: control
	ReasonForced          Reason = "forced"           // a bucket flag "name.i" is on
	ReasonNoBucketingID   Reason = "no_bucketing_id"  // WithBucketingAttribute: the user has no such attribute (bucketing.go)
	ReasonOtherExperiment Reason = "other_experiment" // InLayer: the user's part of the layer is another experiment's, or none's (layer.go)
	ReasonSticky          Reason = "sticky"           // WithStickyBuckets: the bucket remembered for the user (assignments.go)
	ReasonHashed          Reason = "hashed"           // the hash of group and user chose the bucket
)

// decide is decideIn, reported to Config.OnDecision: see observing.
func (f *ExperimentFlag) decide(ctx context.Context, courseKey string, track bool) Decision {
	do := (*ExperimentFlag).decideIn
	if observing.Load() {
		do = (*ExperimentFlag).decideObserved // observe.go
	}
	return do(f, ctx, courseKey, track)
}

// decideIn runs the reference order: overrides, request state, user,
// request cache, then a fresh decision that is cached.
func (f *ExperimentFlag) decideIn(ctx context.Context, courseKey string, track bool) (d Decision) {
	sc := scopeOf(ctx)
	if o, ok := f.override(sc); ok {
		return o.decision(f)
	}
	if sc == nil || sc.st == nil {
		hintNoRequest(ctx, f)
		return Decision{Reason: ReasonNoRequest}
	}
	st := sc.st
	if st.user.ID == "" && !f.anonymous {
		return Decision{Reason: ReasonAnonymous}
	}
	if len(courseKey) > maxNameLen {
		// Course keys come from URLs: one this long is no course, and would
		// swell session marks and event rows.
		return Decision{Reason: ReasonError, Err: fmt.Errorf("%s: %w: course key of %d bytes: longer than %d", f.full, ErrInvalid, len(courseKey), maxNameLen)}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if b, ok := st.cached(f, courseKey); ok {
		return Decision{Bucket: b, Reason: ReasonCached}
	}
	// One return for the checks after the cache: the compiler open-codes
	// decideIn's two defers (cheaper on every call, cached ones included)
	// only while returns × defers stays at 15 or less.
	if d, ok := f.uncachable(st, courseKey); !ok {
		return d
	}
	// A custom Store, Enrollments or session store that panics gives
	// control, like any failure.
	defer func() {
		if p := recover(); p != nil {
			d = Decision{Reason: ReasonError, Err: fmt.Errorf("%s: panic: %v", f.full, p)}
			st.remember(f, courseKey, 0)
			st.logOnce(ctx, f, courseKey, d)
		}
	}()
	d = f.evaluate(ctx, st, courseKey)
	if d.Reason == ReasonForced || d.Reason == ReasonHashed || d.Reason == ReasonSticky {
		if track && !st.user.Masquerading {
			var err error
			d.Tracked, err = st.track(ctx, f, courseKey, d.Bucket)
			d.Err = joinErr(d.Err, err) // keeps an Assignments failure
		}
	}
	st.remember(f, courseKey, d.Bucket)
	if d.Err != nil {
		st.logOnce(ctx, f, courseKey, d)
	}
	return d
}

// uncachable returns the decision, not cached, for what the checks after
// the cache refuse: an anonymous visitor without an anonymous ID (for a
// flag WithAnonymous), and a course key that no store would accept
// (control characters, not UTF-8), which is no course either and would
// reach session marks, events and exposures. Such a key is never cached,
// so checking it after the cache costs cached calls nothing. ok is false
// when one refuses. st.mu is held.
func (f *ExperimentFlag) uncachable(st *reqState, courseKey string) (d Decision, ok bool) {
	if st.user.ID == "" && st.anonymousID() == "" {
		return Decision{Reason: ReasonAnonymous}, false
	}
	if err := checkCourseKey(courseKey); err != nil {
		return Decision{Reason: ReasonError, Err: fmt.Errorf("%s: %w", f.full, err)}, false
	}
	return Decision{}, true
}

// evaluate decides for the request's user without the cache or tracking.
func (f *ExperimentFlag) evaluate(ctx context.Context, st *reqState, courseKey string) Decision {
	x := st.x
	snap, err := snapshot(ctx, x.store)
	if err != nil {
		return Decision{Reason: ReasonError, Err: fmt.Errorf("%s: %w", f.full, err)}
	}
	c := snap.flags[f.full]
	var kept recall // WithStickyBuckets: a bucket kept outside Percent (assignments.go)
	on, audience := false, true
	if c != nil {
		on, audience = c.eval(x, &st.user, courseKey)
	}
	if !audience {
		return Decision{Reason: ReasonNotInAudience}
	}
	if !on {
		if kept = f.recallOutsidePercent(ctx, st, c, courseKey); !kept.found {
			return Decision{Reason: ReasonFlagOff, Err: kept.err}
		}
	}
	if courseKey != "" && f.hasExperimentID {
		if w := snap.windows[f.experimentID]; w != nil {
			if w.err != nil {
				return Decision{Reason: ReasonBadWindow, Err: fmt.Errorf("%s: %w: %w", f.full, ErrBadWindow, w.err)}
			}
			at, err := st.enrolled(ctx, courseKey)
			if err != nil {
				return Decision{Reason: ReasonError, Err: fmt.Errorf("%s: %w", f.full, err)}
			}
			if !w.contains(at) {
				return Decision{Reason: ReasonOutsideWindow}
			}
		}
	}
	for i, b := range c.buckets[:min(len(c.buckets), f.buckets)] {
		if b != nil && b.on(x, &st.user, courseKey) {
			return Decision{Bucket: i, Reason: ReasonForced}
		}
	}
	if f.bucketingAttr != "" {
		if _, ok := bucketingKey(st.user.Attributes[f.bucketingAttr]); !ok {
			return Decision{Reason: ReasonNoBucketingID} // bucketing.go
		}
	}
	if f.layer != nil {
		in, err := f.inLayerRange(st) // layer.go
		if err != nil {
			return Decision{Reason: ReasonError, Err: err}
		}
		if !in {
			return Decision{Reason: ReasonOtherExperiment}
		}
	}
	w, werr := f.slotWeightsIn(snap.weights[f.full]) // weights.go; werr: stored weights that do not fit, bucket kept
	if f.sticky && x.assignments != nil && st.user.ID != "" {
		d := f.stickyBucket(ctx, st, courseKey, kept, w) // assignments.go
		d.Err = joinErr(werr, d.Err)
		return d
	}
	b, err := f.hashBucket(st, courseKey, w)
	if err != nil {
		return Decision{Reason: ReasonError, Err: err}
	}
	return Decision{Bucket: b, Reason: ReasonHashed, Err: werr}
}

// joinErr returns a and b joined, or the one that is not nil.
func joinErr(a, b error) error {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	return errors.Join(a, b)
}
