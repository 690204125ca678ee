package experiments_test

import (
	"context"
	"errors"
	"testing"

	"github.com/abkit/experiments"
)

// Sticky buckets end to end: decisions in real handlers behind echo's
// middleware and the net/http Handler, on the app's MemStore (the default
// Config.Assignments), with sessions in a cookie jar.

var (
	e2eSticky = experiments.NewFlag("e2e", "sticky", experiments.WithStickyBuckets(true))
	e2ePlain  = experiments.NewFlag("e2e", "plain")
)

// failingAssignments is an Assignments whose reads and saves fail.
type failingAssignments struct{}

var errAssignmentsDown = errors.New("assignments down")

func (failingAssignments) Assignment(context.Context, string, string) (int, bool, error) {
	return 0, false, errAssignmentsDown
}

func (failingAssignments) SaveAssignment(context.Context, string, string, int) error {
	return errAssignmentsDown
}

func TestE2EStickyBucketsSurviveALowerPercent(t *testing.T) {
	// u is in bucket 1 of both experiments in e2eCourse, and out of a 30%
	// rule of both.
	u := findUser(t, func(id string) bool {
		for _, f := range []*experiments.ExperimentFlag{e2eSticky, e2ePlain} {
			if experiments.SHA256Bucket(f.Name()+"."+e2eCourse, id, 2) != 1 ||
				experiments.SHA256Bucket("percent:"+f.Name(), id, 10000) < 3000 {
				return false
			}
		}
		return true
	})
	both := inOrder(decide(e2eSticky, e2eCourse), decide(e2ePlain, e2eCourse))
	forEachServer(t, func(t *testing.T, kind serverKind) {
		a := newApp(t, kind)
		setPercent := func(p float64) {
			t.Helper()
			for _, f := range []*experiments.ExperimentFlag{e2eSticky, e2ePlain} {
				mustE2E(t, a.store.SetFlag(t.Context(), f.Name(), experiments.Rule{Percent: p}))
			}
		}
		setPercent(100)
		b := a.newBrowser(t)

		r := b.get(t, pathBody, u, both)
		r.wantOK(t, pathBody)
		r.wantSessionCookie(t)
		if len(r.decisions) != 2 {
			t.Fatalf("decisions %+v, want 2", r.decisions)
		}
		for _, d := range r.decisions {
			if d.Bucket != 1 || d.Reason != experiments.ReasonHashed || !d.Tracked || d.Err != nil {
				t.Errorf("at 100%%: decision %+v, want bucket 1, hashed, tracked", d)
			}
		}
		a.wantEvents(t, 2)

		setPercent(30)
		r = b.get(t, pathBody, u, both)
		r.wantOK(t, pathBody)
		r.wantNoSetCookie(t)
		if len(r.decisions) != 2 {
			t.Fatalf("decisions %+v, want 2", r.decisions)
		}
		if d := r.decisions[0]; d != (experiments.Decision{Bucket: 1, Reason: experiments.ReasonSticky}) {
			t.Errorf("sticky flag at 30%%: %+v, want bucket 1, sticky, not tracked again in the session", d)
		}
		wantDecision(t, r.decisions[1], 0, experiments.ReasonFlagOff)
		a.wantEvents(t, 2)

		// Another session: the remembered bucket is tracked there too.
		r = a.newBrowser(t).get(t, pathEmpty, u, decide(e2eSticky, e2eCourse))
		r.wantOK(t, pathEmpty)
		r.wantSessionCookie(t)
		if d := r.one(t); d != (experiments.Decision{Bucket: 1, Reason: experiments.ReasonSticky, Tracked: true}) {
			t.Errorf("sticky flag in a new session: %+v, want bucket 1, sticky, tracked", d)
		}
		if e := a.wantEvents(t, 3)[2]; e.Bucket != 1 || e.Experiment != "sticky" || e.CourseKey != e2eCourse || e.UserID != u.ID {
			t.Errorf("event %+v, want bucket 1 of e2e.sticky in %s for %s", e, e2eCourse, u.ID)
		}

		// The main flag off for everyone still gives control.
		mustE2E(t, a.store.SetFlag(t.Context(), e2eSticky.Name(), experiments.Off()))
		wantDecision(t, b.get(t, pathBody, u, decide(e2eSticky, e2eCourse)).one(t), 0, experiments.ReasonFlagOff)
	})
}

func TestE2EStickyBucketsFailSafe(t *testing.T) {
	u := userInBucket(t, e2eSticky.Name()+"."+e2eCourse, 2, 1)
	forEachServer(t, func(t *testing.T, kind serverKind) {
		a := newApp(t, kind, func(c *experiments.Config) { c.Assignments = failingAssignments{} })
		mustE2E(t, a.store.SetFlag(t.Context(), e2eSticky.Name(), experiments.On()))
		r := a.newBrowser(t).get(t, pathBody, u, twice(decide(e2eSticky, e2eCourse)))
		r.wantOK(t, pathBody)
		r.wantSessionCookie(t)
		d := r.decisions[0]
		if d.Bucket != 1 || d.Reason != experiments.ReasonHashed || !d.Tracked || !errors.Is(d.Err, experiments.ErrAssignments) {
			t.Errorf("decision %+v, want the hashed bucket 1, tracked, with ErrAssignments", d)
		}
		wantDecision(t, r.decisions[1], 1, experiments.ReasonCached)
		if n := a.logs.errors(); n != 1 {
			t.Errorf("%d errors logged, want 1:\n%s", n, a.logs)
		}
		a.wantEvents(t, 1)
	})
}
