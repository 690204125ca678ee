package experiments

import (
	"context"
	"fmt"
	"slices"
)

// This file holds what integrations that decide and track in two steps
// need of the request state: package openfeature's provider decides in its
// evaluation (DecideUntracked) and sends the event in its After hook
// (TrackDecision).

// RequestUser returns the user of the request state that x's Middleware,
// Handler or NewContext put in ctx, and true; or the zero User and false
// when ctx carries no request state, or the state of another Experiments.
// Integrations use it to tell whether ctx already has the state (request
// cache, session) of the user they are asked about. The returned Groups is
// a copy.
func (x *Experiments) RequestUser(ctx context.Context) (User, bool) {
	sc := scopeOf(ctx)
	if sc == nil || sc.st == nil || sc.st.x != x {
		return User{}, false
	}
	u := sc.st.user
	u.Groups = slices.Clone(u.Groups)
	return u, true
}

// TrackDecision sends the "user bucketed" event for d, a decision that
// DecideUntracked returned for ctx and courseKey, as Decide would have sent
// it, and returns d with Tracked (and Err, on a failure) set: so that
// DecideUntracked followed by TrackDecision is Decide, for code that must
// decide before it knows whether the user will see the experiment.
//
// It goes through Decide's tracking step: the event and the exposure
// (Config.Recorder) are sent only when d.Reason is ReasonForced,
// ReasonSticky or ReasonHashed, ctx has request state for a signed-in user who is not
// masquerading, no override of f is in effect, and the session (with
// Config.Sessions) has no mark for the experiment yet; the session is then
// marked. Pass each decision once: without a session, nothing else stops a
// second call from sending a second event.
//
// d must be the request's decision: when the request cache holds another
// bucket for f and courseKey, nothing is sent and Err wraps ErrInvalid;
// when it holds none (ctx is not the context d was decided with), d.Bucket
// is cached, so that later calls with ctx agree with the event. A bucket
// outside [0, Buckets()) or a course key that decisions refuse also give
// ErrInvalid. A tracker failure is logged once per request and experiment
// and wraps ErrTracker, as with Decide; TrackDecision never panics.
func (f *ExperimentFlag) TrackDecision(ctx context.Context, courseKey string, d Decision) (out Decision) {
	if !d.Reason.tracked() {
		return d
	}
	sc := scopeOf(ctx)
	if _, ok := f.override(sc); ok || sc == nil || sc.st == nil {
		return d
	}
	st := sc.st
	if st.user.ID == "" || st.user.Masquerading {
		return d
	}
	if d.Bucket < 0 || d.Bucket >= f.buckets {
		d.Err = fmt.Errorf("%s: %w: bucket %d: want 0 to %d", f.full, ErrInvalid, d.Bucket, f.buckets-1)
		return d
	}
	if len(courseKey) > maxNameLen {
		d.Err = fmt.Errorf("%s: %w: course key of %d bytes: longer than %d", f.full, ErrInvalid, len(courseKey), maxNameLen)
		return d
	}
	if err := checkCourseKey(courseKey); err != nil {
		d.Err = fmt.Errorf("%s: %w", f.full, err)
		return d
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if b, ok := st.cached(f, courseKey); ok {
		if b != d.Bucket {
			d.Err = fmt.Errorf("%s: %w: bucket %d: the request decided bucket %d", f.full, ErrInvalid, d.Bucket, b)
			return d
		}
	} else {
		st.remember(f, courseKey, d.Bucket)
	}
	// A custom session store that panics loses the event, not the bucket.
	defer func() {
		if p := recover(); p != nil {
			out = d
			out.Tracked, out.Err = false, fmt.Errorf("%s: panic: %v", f.full, p)
			st.logOnce(ctx, f, courseKey, out)
		}
	}()
	d.Tracked, d.Err = st.track(ctx, f, courseKey, d.Bucket)
	if d.Err != nil {
		st.logOnce(ctx, f, courseKey, d)
	}
	return d
}
