// Package segment sends the experiments' "user bucketed" events to
// Segment (segment.com), with the properties Open edX sends: site,
// app_label, experiment, course_id (null without a course), bucket,
// is_staff and nonInteraction: 1, under the event name
// experiments.EventUserBucketed and the user's ID as userId.
//
// It is built on Segment's Go library, github.com/segmentio/analytics-go/v3:
// an analytics.Client queues the events, posts them in batches to
// {endpoint}/v1/batch with the source's write key, and retries failed
// batches with backoff. This package maps experiments.Event to an
// analytics.Track, bounds the queue, and counts the outcome of every event
// through analytics.Callback for Stats:
//
//	tracker, err := segment.New(os.Getenv("SEGMENT_WRITE_KEY"))
//	if err != nil { … }
//	x := experiments.New(experiments.Config{Store: store, Tracker: tracker, Site: "learn.example.org"})
//	…
//	// At shutdown, after the HTTP server:
//	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
//	defer cancel()
//	if err := tracker.Close(ctx); err != nil { … } // events not sent
//
// The design is that of sqlstore.Tracker: Track never waits for the
// network, the queue is bounded and drops (and counts) what does not fit,
// Stats counts everything, and Close sends what is queued within its
// context's deadline. Retries are analytics-go's: 10 attempts a batch for
// any failure, none once Close has begun (see Tracker).
package segment
