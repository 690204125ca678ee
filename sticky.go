package experiments

import (
	"context"
	"errors"
	"fmt"
)

// Sticky assignments, after Optimizely's user profile service: a flag made
// WithStickyBuckets remembers the bucket the hash first gave each user, so
// that changing its buckets or lowering its Percent does not move users
// already bucketed.

// ErrAssignments is wrapped by Decision.Err when Config.Assignments failed
// (or panicked) to read or save a sticky bucket. A failed read buckets the
// user as if the flag were not sticky, and saves nothing; a failed save
// keeps the bucket. Either is logged once per request and experiment.
var ErrAssignments = errors.New("assignments failed")

// maxAssignmentKey bounds the experiment key of an assignment, in bytes: a
// full flag name (201) + "." + a course key (255) fits.
const maxAssignmentKey = 512

// Assignments remembers, per user and experiment, the bucket that a flag
// made WithStickyBuckets gave by hashing (Config.Assignments). MemStore and
// sqlstore.Store implement it.
//
// experiment is the flag's hashing group, AssignmentKey: its full name,
// plus "." and the course key when the flag is course-aware and a course
// is given ("course_experience.upgrade.course-v1:edX+DemoX+2024"). A flag
// that is not course-aware thus remembers one bucket per user for every
// course, as it hashes one. User IDs are at most 255 bytes, experiments
// at most 512.
//
// Bucket calls the methods synchronously, with the request's context, for
// first decisions only (a cached decision reads nothing), at most one read
// and one save each. Implementations must be safe for concurrent use, and
// should bound their I/O: the request waits for it. Errors and panics are
// tolerated (see ErrAssignments).
type Assignments interface {
	// Assignment returns the bucket remembered for userID in experiment.
	// None is ok=false with a nil error; err means the lookup failed.
	Assignment(ctx context.Context, userID, experiment string) (bucket int, ok bool, err error)
	// SaveAssignment remembers bucket for userID in experiment. When a
	// bucket is already remembered, the smaller of the two is kept. Bucket
	// saves only for a user with no bucket remembered, or with one the flag
	// no longer has (WithBuckets was lowered), which the new bucket is
	// below: so the first bucket saved stays, a bucket the flag lost is
	// replaced, and concurrent saves agree whatever their order. Input
	// that ValidateAssignment refuses gives an error wrapping ErrInvalid.
	SaveAssignment(ctx context.Context, userID, experiment string, bucket int) error
}

// WithStickyBuckets makes the flag remember, in Config.Assignments, the
// bucket the hash first gives each user, as Optimizely's user profile
// service does, so that raising or lowering WithBuckets or lowering the
// main flag's Percent does not move users already bucketed:
//
//   - A user with a remembered bucket below the flag's buckets gets it
//     (ReasonSticky) where the hash would have decided. A remembered
//     bucket the flag no longer has (WithBuckets lowered) is replaced by
//     a new hash (ReasonHashed), saved over it.
//   - For a user with a remembered bucket, the main flag's Percent counts
//     as 100: a user that a lowered Percent leaves out keeps the bucket.
//     Everything else still comes first: overrides (Override,
//     WithOverride); the main flag off for the user by anything but its
//     Percent (Off(), a ForceOff course or org override, a rule without
//     Percent or with Percent 0, a deleted flag) gives control; the
//     enrollment window; and a bucket flag that is on wins.
//   - Only hashed buckets are saved, not forced ones; a masquerading
//     user's remembered bucket is read but nothing is saved for them.
//
// A failure or panic of Config.Assignments is logged and tolerated (see
// ErrAssignments). Stickiness costs a read of Config.Assignments per first
// decision in a request, for users the main flag is on for or leaves out
// by its Percent only; a flag without it reads nothing.
// Optional. Default: false. Without Config.Assignments it has no effect.
func WithStickyBuckets(on bool) FlagOption { return func(f *ExperimentFlag) { f.sticky = on } }

// StickyBuckets reports whether the flag remembers its users' buckets
// (WithStickyBuckets).
func (f *ExperimentFlag) StickyBuckets() bool { return f.sticky }

// AssignmentKey returns the experiment under which Assignments keeps the
// flag's buckets for courseKey ("" for none): the flag's hashing group,
// its full name plus "." + courseKey when the flag is course-aware and
// courseKey is not empty.
func (f *ExperimentFlag) AssignmentKey(courseKey string) string {
	return joinGroup(f.full, f.hashCourse(courseKey))
}

// ValidateAssignment checks the arguments of SaveAssignment as stores
// accept them: a user ID of 1 to 255 bytes and an experiment of 1 to 512
// bytes, valid UTF-8 without control characters, and a bucket from 0 to
// 1023. The error wraps ErrInvalid.
func ValidateAssignment(userID, experiment string, bucket int) error {
	if err := checkText("user ID", userID, maxNameLen); err != nil {
		return err
	}
	if err := checkText("experiment", experiment, maxAssignmentKey); err != nil {
		return err
	}
	if bucket < 0 || bucket >= maxBucketFlag {
		return fmt.Errorf("%w: experiment %s: bucket %d: want 0 to %d", ErrInvalid, experiment, bucket, maxBucketFlag-1)
	}
	return nil
}

// sticksFor reports whether the flag keeps the buckets of the request's
// user: WithStickyBuckets, with Config.Assignments, for a signed-in user
// (anonymous visitors keep none).
func (f *ExperimentFlag) sticksFor(st *reqState) bool {
	return f.sticky && st.x.assignments != nil && st.user.ID != ""
}

// recall is what a sticky flag read of a user's remembered bucket.
type recall struct {
	bucket int
	found  bool  // bucket is remembered and below the flag's buckets
	err    error // the read failed: wraps ErrAssignments
}

// recallOutsidePercent reads the bucket remembered for a user whom the
// main flag c leaves out, when only its Percent does. st.mu is held.
func (f *ExperimentFlag) recallOutsidePercent(ctx context.Context, st *reqState, c *compiledFlag, courseKey string) recall {
	if !f.sticksFor(st) || !c.offByPercentOnly(courseKey) {
		return recall{}
	}
	return f.recall(ctx, st, f.AssignmentKey(courseKey))
}

// offByPercentOnly reports whether, for a user the flag is off for in
// courseKey, a larger Percent could have turned it on: the rule has a
// Percent, does not decide for everyone, and no override turns the flag
// off in the course or its org.
func (c *compiledFlag) offByPercentOnly(courseKey string) bool {
	if c == nil || !c.hasRule || c.rule.Everyone != nil || c.rule.Percent <= 0 {
		return false
	}
	if courseKey != "" {
		if st := c.courses[courseKey]; st != Unset {
			return st != ForceOff
		}
		if c.orgs != nil {
			if org := CourseOrg(courseKey); org != "" && c.orgs[org] == ForceOff {
				return false
			}
		}
	}
	return true
}

// recall reads the bucket remembered for the request's user in
// experiment. st.mu is held.
func (f *ExperimentFlag) recall(ctx context.Context, st *reqState, experiment string) recall {
	a := st.x.assignments
	var b int
	var ok bool
	err := safeCall(func() (err error) { b, ok, err = a.Assignment(ctx, st.user.ID, experiment); return err })
	switch {
	case err != nil:
		return recall{err: fmt.Errorf("%s: %w: reading %q: %w", f.full, ErrAssignments, experiment, err)}
	case ok && b < 0:
		return recall{err: fmt.Errorf("%s: %w: reading %q: bucket %d", f.full, ErrAssignments, experiment, b)}
	}
	return recall{bucket: b, found: ok && b < f.buckets}
}

// saveAssignment remembers bucket b, which the hash gave the user, for
// a sticky flag (step 12 of decide): unless the read r failed, after
// which a save could replace a bucket still valid (the smaller is kept),
// or the user is masquerading. st.mu is held.
func (f *ExperimentFlag) saveAssignment(ctx context.Context, st *reqState, courseKey string, b int, r recall) error {
	if r.err != nil || st.user.Masquerading {
		return nil
	}
	a, experiment := st.x.assignments, f.AssignmentKey(courseKey)
	if err := safeCall(func() error { return a.SaveAssignment(ctx, st.user.ID, experiment, b) }); err != nil {
		return fmt.Errorf("%s: %w: saving %q bucket %d: %w", f.full, ErrAssignments, experiment, b, err)
	}
	return nil
}
