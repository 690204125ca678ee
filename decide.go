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
	return f.decide(ctx, courseKey, askBucket).Bucket
}

// IsEnabled reports whether the user is in a bucket other than control.
func (f *ExperimentFlag) IsEnabled(ctx context.Context, courseKey string) bool {
	return f.Bucket(ctx, courseKey) != 0
}

// Decide is Bucket with the reason for the bucket, whether this call
// emitted the bucketing event, and the failure that forced control, if any.
func (f *ExperimentFlag) Decide(ctx context.Context, courseKey string) Decision {
	return f.decide(ctx, courseKey, askBucket)
}

// DecideUntracked is Decide without the bucketing event (edX's
// get_bucket(track=False)): for code that needs the bucket but shows the
// user nothing of the experiment. The decision is cached in the request
// like any other, so a later Bucket call in the same request does not emit
// the event either.
func (f *ExperimentFlag) DecideUntracked(ctx context.Context, courseKey string) Decision {
	return f.decide(ctx, courseKey, askUntracked)
}

// IsExperimentOn reports whether the main flag is on for the user and
// course (course override, else org override, else its rule, which is
// off for a user outside its audience), ignoring
// bucket flags and the enrollment window. It is false without request
// state, unless an override is in effect.
func (f *ExperimentFlag) IsExperimentOn(ctx context.Context, courseKey string) bool {
	return f.decide(ctx, courseKey, askMainFlag).Bucket == 1
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

// The reasons of a Decision, in the order of the steps that give them;
// the README's "The decision order" numbers the steps.
const (
	ReasonOverride        Reason = "override"         // 1: Override or WithOverride is in effect
	ReasonNoRequest       Reason = "no_request"       // 2: ctx has no request state: control, not cached
	ReasonAnonymous       Reason = "anonymous"        // 3, 5: the user has no ID (nor, WithAnonymous, an anonymous ID): control, not cached
	ReasonCached          Reason = "cached"           // 4: decided earlier in this request
	ReasonError           Reason = "error"            // 5 to 12: a course key no store accepts, or the store, the enrollment lookup or a custom Hasher failed: control
	ReasonNotInAudience   Reason = "not_in_audience"  // 6: the main flag's rule that applies has Conditions the user fails: control, not tracked
	ReasonFlagOff         Reason = "flag_off"         // 6: the main flag is off for the user and course
	ReasonBadWindow       Reason = "bad_window"       // 7: an enrollment bound does not parse: control
	ReasonOutsideWindow   Reason = "outside_window"   // 7: enrolled outside the enrollment window: control
	ReasonForced          Reason = "forced"           // 8: a bucket flag "name.i" is on
	ReasonNoBucketingID   Reason = "no_bucketing_id"  // 9: WithBucketingAttribute: the user has no such attribute
	ReasonOtherExperiment Reason = "other_experiment" // 10: InLayer: the user's part of the layer is another experiment's, or none's
	ReasonSticky          Reason = "sticky"           // 11: WithStickyBuckets: the bucket remembered for the user
	ReasonHashed          Reason = "hashed"           // 12: the hash of group and user chose the bucket
)

// ask is what a caller wants of decide.
type ask uint8

const (
	askBucket    ask = iota // Bucket, IsEnabled, Decide: the bucket and, once per session, its event
	askUntracked            // DecideUntracked: the bucket without the event
	askMainFlag             // IsExperimentOn: whether the main flag is on (Bucket 1), by steps 1, 2 and 6 alone
)

// decide runs the decision order, the steps of the README's "The
// decision order" with the same numbers: each step ends the decision or
// passes it on. A cached decision runs steps 1 to 4, which read nothing
// but the request; a fresh one goes on with 6 to 12 under the request's
// lock, and 13 and 14 run as it returns, whichever step decided.
func (f *ExperimentFlag) decide(ctx context.Context, courseKey string, q ask) (d Decision) {
	// Every return with request state reports the decision to
	// Config.OnDecision (report, observe.go).
	sc := scopeOf(ctx)

	// 1. Override (testoverride.go): WithOverride in ctx, else Override,
	// pins the bucket; nothing is read, tracked or cached.
	if o, ok := f.override(sc); ok {
		d = o.decision(f, q)
		if sc != nil && sc.st != nil {
			sc.st.report(ctx, f, courseKey, q, &d)
		}
		return d
	}

	// 2. Request (request.go): without request state (no Middleware,
	// Handler or NewContext) the answer is control, not cached.
	if sc == nil || sc.st == nil {
		hintNoRequest(ctx, f)
		return Decision{Reason: ReasonNoRequest}
	}
	st := sc.st

	// 3. Anonymous (bucketing.go): a user without an ID gets control, not
	// cached, unless the flag is WithAnonymous; then the visitor's
	// anonymous ID stands for the ID, and is looked for after the cache.
	if st.user.ID == "" && !f.anonymous && q != askMainFlag {
		d = Decision{Reason: ReasonAnonymous}
		st.report(ctx, f, courseKey, q, &d)
		return d
	}

	// 4. Cache (request.go): a decision made earlier in the request
	// stands. IsExperimentOn is not cached.
	st.mu.Lock()
	if q != askMainFlag {
		if b, ok := st.cached(f, courseKey); ok {
			st.mu.Unlock()
			d = Decision{Bucket: b, Reason: ReasonCached}
			st.report(ctx, f, courseKey, q, &d)
			return d
		}

		// 5. Key (validate.go): a course key that no store accepts is no
		// course: an error, not cached. Checked after the cache, which
		// holds accepted keys only, so that cached decisions do not pay for
		// it. So is the anonymous ID of step 3 (bucketing.go): a visitor
		// without one gets control.
		var ok bool
		if d, ok = f.uncachable(st, courseKey); !ok {
			st.mu.Unlock()
			st.report(ctx, f, courseKey, q, &d)
			return d
		}
	}

	// 13. Event and 14. Remember run as decide returns, whichever of the
	// steps 6 to 12 decided: see finish. decide has one deferred call and
	// at most 15 return statements, so that the compiler open-codes the
	// call; with more, every return calls into the runtime. A new step
	// folds its outcomes into one return, as steps 7 and 10 do.
	defer st.finish(ctx, f, courseKey, q, &d)

	// 6. Main flag (rule.go, audience.go): off for the user and course
	// (the course override, else the org override, else the rule, whose
	// Conditions the user must pass) gives control. A flag
	// WithStickyBuckets keeps a bucket remembered for a user whom the
	// rule's Percent alone leaves out (sticky.go).
	x := st.x
	snap, err := snapshot(ctx, x.store)
	if err != nil {
		return Decision{Reason: ReasonError, Err: fmt.Errorf("%s: %w", f.full, err)}
	}
	entry := snap.entry(f)
	c := entry.flag
	on, audience := c.eval(x, &st.user, courseKey)
	if q == askMainFlag {
		return mainFlagOn(on)
	}
	if !audience {
		return Decision{Reason: ReasonNotInAudience}
	}
	var kept recall
	if !on {
		if kept = f.recallOutsidePercent(ctx, st, c, courseKey); !kept.found {
			return Decision{Reason: ReasonFlagOff, Err: kept.err}
		}
	}

	// 7. Window (enrollment.go): for a course and a flag WithExperimentID
	// whose experiment has an enrollment window, a bound that does not
	// parse, or an enrollment (now, when not enrolled) outside
	// start <= t < end, gives control.
	if courseKey != "" && f.hasExperimentID {
		if d, out := f.outsideWindow(ctx, st, snap, courseKey); out {
			return d
		}
	}

	// 8. Bucket flags (bucketflags.go): the first bucket flag "name.i"
	// on for the user and course forces bucket i.
	if c != nil && c.buckets != nil {
		if i, ok := c.forced(x, &st.user, courseKey, f.buckets); ok {
			return Decision{Bucket: i, Reason: ReasonForced}
		}
	}

	// 9. Bucketing ID (bucketing.go): the user the hashes of steps 10 and
	// 12 see, whose ID is the bucketing attribute's value for a flag
	// WithBucketingAttribute, or the anonymous ID; a user without the
	// attribute gets control.
	var buf User
	u, ok := f.hashUser(st, &buf)
	if !ok {
		return Decision{Reason: ReasonNoBucketingID}
	}

	// 10. Layer (layer.go): a flag InLayer gives control to a user whose
	// point of the layer is outside the flag's range.
	if f.layer != nil {
		if d, out := f.outsideLayer(st, u); out {
			return d
		}
	}

	// The weights of step 12 (weights.go): the store's, else the flag's.
	// werr reports stored weights that do not fit the flag; the bucket
	// stands.
	w, werr := f.slotWeightsIn(entry.weights)

	// 11. Sticky (sticky.go): a flag WithStickyBuckets gives the bucket
	// remembered for the user, the one kept at step 6 included.
	sticky := f.sticksFor(st)
	var r recall
	if sticky {
		if r = kept; !r.found {
			r = f.recall(ctx, st, f.AssignmentKey(courseKey))
		}
		if r.found {
			return Decision{Bucket: r.bucket, Reason: ReasonSticky, Err: werr}
		}
	}

	// 12. Hash (hash.go, weights.go): the hash of the flag's group and the
	// user's ID (or bucketing attribute, or anonymous ID) chooses the
	// bucket: the hash mod buckets or, with weights, the bucket whose
	// range holds the user's slot. A sticky flag remembers it.
	h := f.hashed(st, courseKey, u, w)
	h.Err = joinErr(werr, joinErr(h.Err, r.err))
	if sticky && h.Reason == ReasonHashed {
		h.Err = joinErr(h.Err, f.saveAssignment(ctx, st, courseKey, h.Bucket, r))
	}
	return h
}

// mainFlagOn is decide's answer to askMainFlag: Bucket 1 when on.
func mainFlagOn(on bool) Decision {
	if on {
		return Decision{Bucket: 1}
	}
	return Decision{}
}

// uncachable returns the decision, not cached, of step 5: for a course
// key that no store would accept (longer than 255 bytes, control
// characters, not UTF-8), which is no course and would reach session
// marks, events and exposures; and for an anonymous visitor without an
// anonymous ID (for a flag WithAnonymous). ok is false when one refuses.
// st.mu is held.
func (f *ExperimentFlag) uncachable(st *reqState, courseKey string) (d Decision, ok bool) {
	if len(courseKey) > maxNameLen {
		return Decision{Reason: ReasonError, Err: fmt.Errorf("%s: %w: course key of %d bytes: longer than %d", f.full, ErrInvalid, len(courseKey), maxNameLen)}, false
	}
	if st.user.ID == "" && st.anonymousID() == "" {
		return Decision{Reason: ReasonAnonymous}, false
	}
	if err := checkCourseKey(courseKey); err != nil {
		return Decision{Reason: ReasonError, Err: fmt.Errorf("%s: %w", f.full, err)}, false
	}
	return Decision{}, true
}

// tracked reports whether a decision of reason r is tracked: its bucket
// came from the experiment (a bucket flag, the sticky bucket, the hash),
// not from a fallback to control.
func (r Reason) tracked() bool {
	return r == ReasonForced || r == ReasonHashed || r == ReasonSticky
}

// finish runs steps 13 and 14 as decide returns, unlocks st.mu, then
// logs a failure and reports the decision to Config.OnDecision, outside
// the lock. A panic in the steps before (an app's Store, Enrollments or
// session store) gives control, with the panic as the error. finish has
// no deferred calls of its own (they would cost each fresh decision
// about 7 ns): nothing it calls under the lock calls the app's code
// unguarded, as event recovers.
func (st *reqState) finish(ctx context.Context, f *ExperimentFlag, courseKey string, q ask, d *Decision) {
	if p := recover(); p != nil {
		*d = panicked(f, p)
	}

	// 13. Event (tracking.go): a bucket from the experiment (a bucket
	// flag, the sticky bucket, the hash) that Bucket or Decide asked for,
	// of a user who is not masquerading, sends the event and records the
	// exposure, each once per session.
	if q == askBucket && d.Reason.tracked() && !st.user.Masquerading && st.x.tracks() {
		st.event(ctx, f, courseKey, d)
	}

	// 14. Remember (request.go): the decision stands for the rest of the
	// request, and its failure is logged once per request and experiment.
	if q != askMainFlag {
		st.remember(f, courseKey, d.Bucket)
	}
	failed := d.Err != nil && st.firstFailure(f, courseKey)
	st.mu.Unlock()
	if failed {
		st.x.logFailure(ctx, f, courseKey, *d)
	}
	st.report(ctx, f, courseKey, q, d)
}

// panicked is the decision of a step that panicked: control.
func panicked(f *ExperimentFlag, p any) Decision {
	return Decision{Reason: ReasonError, Err: fmt.Errorf("%s: panic: %v", f.full, p)}
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
