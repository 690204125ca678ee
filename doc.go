// Package experiments runs A/B experiments in Go web apps the way Open
// edX's ExperimentWaffleFlag does: a main flag gates the experiment,
// bucket flags force users into a bucket, an optional enrollment window
// limits who takes part, and everyone else is assigned a bucket by a
// stable hash of the flag, course and user. Bucket 0 is control.
//
// Declare flags as package-level values, install the middleware, and ask
// for the bucket in handlers:
//
//	var upgrade = experiments.NewFlag("course_experience", "upgrade_button")
//
//	x := experiments.New(experiments.Config{Store: store, Tracker: tracker, Sessions: sessionStore})
//	e.Use(x.Middleware(experiments.MiddlewareConfig{User: currentUser}))
//
//	if upgrade.Bucket(c.Request().Context(), courseKey) == 1 { … }
//
// The first call in a request decides and caches the bucket in the
// request, so the request sees one bucket even if flags change meanwhile;
// the first decision in a session sends a "user bucketed" event to the
// Tracker. Bucket never fails: whatever goes wrong gives control, with
// the cause in Decision.Err.
//
// A flag may hash another key than the user ID (WithBucketingAttribute),
// bucket anonymous visitors by a cookie's ID (WithAnonymous with
// Config.AnonymousCookie), and share a Layer with other flags so that no
// user is in two of its experiments (InLayer).
//
// Tests pin buckets with ExperimentFlag.Override (process-wide) or
// ExperimentFlag.WithOverride (one context, safe under t.Parallel).
//
// MemStore keeps flags in memory; package sqlstore keeps them in
// PostgreSQL. Both serve decisions from an immutable in-memory Snapshot,
// so deciding takes no lock a writer can hold and does no I/O (but for
// the enrollment lookup of an experiment with an enrollment window).
package experiments
