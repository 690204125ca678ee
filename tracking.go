package experiments

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// EventUserBucketed is the name of the event sent when a user is first
// bucketed into an experiment in a session (Open edX's name).
const EventUserBucketed = "edx.bi.experiment.user.bucketed"

// Event is a "user bucketed" event. Open edX sends the same fields as the
// properties site, app_label, experiment, course_id, bucket, is_staff
// (and nonInteraction: 1).
type Event struct {
	Name       string    // EventUserBucketed
	Time       time.Time // from Config.Now
	UserID     string    // "" for an anonymous visitor (WithAnonymous)
	Site       string    // Config.Site
	AppLabel   string    // the flag's namespace
	Experiment string    // the flag's name, without namespace
	CourseKey  string    // "" when none
	Bucket     int
	IsStaff    bool
	// AnonymousID is the anonymous visitor's ID (Config.AnonymousCookie)
	// when a flag WithAnonymous bucketed one; "" for signed-in users.
	AnonymousID string
}

// Tracker receives events. Track is called synchronously, before Bucket
// returns, with the request's context: a tracker that does I/O should
// queue the event and return. It must not call Bucket with ctx. An error
// (or a panic) is logged and shows in Decision.Err; the bucket stands, and
// the session is not marked, so the event is tried again next request.
type Tracker interface {
	Track(ctx context.Context, e Event) error
}

// TrackerFunc adapts a function to Tracker.
type TrackerFunc func(ctx context.Context, e Event) error

// Track calls fn(ctx, e).
func (fn TrackerFunc) Track(ctx context.Context, e Event) error { return fn(ctx, e) }

// event sends the event of decision d and records its exposure (step 13
// of decide), adding to d whether the event was sent and what failed; a
// panic (of the session store) gives control, as in the other steps.
// st.mu is held.
func (st *reqState) event(ctx context.Context, f *ExperimentFlag, courseKey string, d *Decision) {
	defer func() {
		if p := recover(); p != nil {
			*d = panicked(f, p)
		}
	}()
	var err error
	d.Tracked, err = st.track(ctx, f, courseKey, d.Bucket)
	d.Err = joinErr(d.Err, err) // keeps an Assignments failure
}

// track sends the bucketing event and records the exposure, each unless
// the session already has its mark, and marks the session for each that
// succeeded: a failure of one does not stop the other, and is tried again
// next request. st.mu is held.
func (st *reqState) track(ctx context.Context, f *ExperimentFlag, courseKey string, bucket int) (bool, error) {
	x := st.x
	if !x.tracks() {
		return false, nil
	}
	experiment := joinGroup(f.full, courseKey) // the session marks' key: flag and course
	sess := st.session()
	// done reports whether the session has the mark prefix+experiment.
	done := func(prefix string) bool {
		if sess == nil {
			return false
		}
		_, ok := sess.Values[prefix+experiment]
		return ok
	}
	now := x.now()
	var errs []error
	// Exposures are of signed-in users: results count users.
	if x.recorder != nil && st.user.ID != "" && !done(exposedPrefix) {
		exp := Exposure{Flag: f.full, CourseKey: courseKey, UserID: st.user.ID, Bucket: bucket, Time: now}
		if len(x.dimensions) > 0 {
			exp.Dimensions = x.dimensionsOf(&st.user)
		}
		if err := safeCall(func() error { return x.recorder.RecordExposure(ctx, exp) }); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w: %w", f.full, ErrRecorder, err))
		} else {
			st.mark(ctx, sess, exposedPrefix+experiment)
		}
	}
	tracked := false
	if x.tracker != nil && !done(markPrefix) {
		e := Event{
			Name: EventUserBucketed, Time: now, UserID: st.user.ID, Site: x.site,
			AppLabel: f.namespace, Experiment: f.name, CourseKey: courseKey,
			Bucket: bucket, IsStaff: st.user.Staff,
		}
		if st.user.ID == "" {
			e.AnonymousID = st.sess.anonID
		}
		if err := safeCall(func() error { return x.tracker.Track(ctx, e) }); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w: %w", f.full, ErrTracker, err))
		} else {
			tracked = true
			st.mark(ctx, sess, markPrefix+experiment)
		}
	}
	return tracked, errors.Join(errs...)
}

// safeCall calls fn, a Tracker's, Recorder's or Assignments' method,
// turning a panic into an error.
func safeCall(fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return fn()
}

// tracks reports whether x sends events or records exposures.
func (x *Experiments) tracks() bool { return x.tracker != nil || x.recorder != nil }
