package experiments

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
)

// SlogTracker returns a Tracker that logs each event to l at level, as one
// record whose message is the event's name and whose time is the event's
// Time (Config.Now), with the attributes Open edX sends to Segment:
// user_id, site, app_label, experiment, course_id, bucket, is_staff and
// nonInteraction (always 1). course_id is nil (JSON null, as edX's None)
// when the event has no course; anonymous_id follows for an anonymous
// visitor's event (WithAnonymous).
//
// A nil l means slog.Default() at the time of each event. Nothing is
// logged, and Track returns nil, when l is not enabled for level. Track
// returns the handler's error, if any; it does not block beyond what the
// handler does. The Tracker is safe for concurrent use if l's handler is
// (slog's handlers are).
func SlogTracker(l *slog.Logger, level slog.Level) Tracker {
	return &slogTracker{log: l, level: level}
}

type slogTracker struct {
	log   *slog.Logger
	level slog.Level
}

// Track logs e.
func (t *slogTracker) Track(ctx context.Context, e Event) error {
	l := t.log
	if l == nil {
		l = slog.Default()
	}
	if ctx == nil {
		ctx = context.Background()
	}
	if !l.Enabled(ctx, t.level) {
		return nil
	}
	var course slog.Attr
	if e.CourseKey != "" {
		course = slog.String("course_id", e.CourseKey)
	} else {
		course = slog.Any("course_id", nil)
	}
	// A record built by hand carries the event's time rather than the
	// time of the call; pc 0: the caller is the runtime, not the user's code.
	r := slog.NewRecord(e.Time, t.level, e.Name, 0)
	r.AddAttrs(
		slog.String("user_id", e.UserID),
		slog.String("site", e.Site),
		slog.String("app_label", e.AppLabel),
		slog.String("experiment", e.Experiment),
		course,
		slog.Int("bucket", e.Bucket),
		slog.Bool("is_staff", e.IsStaff),
		slog.Int("nonInteraction", 1),
	)
	if e.AnonymousID != "" {
		r.AddAttrs(slog.String("anonymous_id", e.AnonymousID))
	}
	return l.Handler().Handle(ctx, r)
}

// MultiTracker returns a Tracker that sends each event to every one of ts,
// in order, like io.MultiWriter; nil trackers are skipped, and no tracker
// at all gives a Tracker that does nothing. ts is copied.
//
// Every tracker is called even when an earlier one fails or panics (a
// panic is recovered and becomes an error). Track returns errors.Join of
// the failures, each wrapped as "tracker <index>: …", so errors.Is finds
// any of them; nil when all succeeded. Note that any failure makes the
// runtime retry the event on the next request (the session is not
// marked), so the trackers that succeeded see it again: trackers behind a
// MultiTracker should tolerate duplicates or not fail.
//
// The trackers are called one after the other on the caller's goroutine:
// the Tracker is safe for concurrent use if each of ts is.
func MultiTracker(ts ...Tracker) Tracker {
	m := &multiTracker{ts: make([]indexedTracker, 0, len(ts))}
	for i, t := range ts {
		if t != nil {
			m.ts = append(m.ts, indexedTracker{i: i, t: t})
		}
	}
	return m
}

type multiTracker struct {
	ts []indexedTracker
}

// indexedTracker is a tracker and its position in MultiTracker's
// arguments, for the errors: nil ones are not kept but keep their place.
type indexedTracker struct {
	i int
	t Tracker
}

// Track sends e to every tracker.
func (m *multiTracker) Track(ctx context.Context, e Event) error {
	var errs []error
	for _, it := range m.ts {
		if err := safeCall(func() error { return it.t.Track(ctx, e) }); err != nil {
			errs = append(errs, fmt.Errorf("tracker %d: %w", it.i, err))
		}
	}
	return errors.Join(errs...)
}

// QueueStats are the counters of an asynchronous, bounded queue of events
// or records that are written in batches in the background: sqlstore's
// Tracker and the queues of its Store's recorder (exposures,
// conversions), segment's Tracker. They count from the queue's start.
//
// Every event or record offered to the queue ends up in exactly one of
// Queued, Written and Dropped: when the queue is idle, their sum is the
// number offered. The fields are read one by one, so under load they may
// be off by the events or records in flight.
type QueueStats struct {
	// Queued is the number of events or records accepted and not yet
	// written nor given up: in the queue or in a batch being written.
	Queued int
	// Written is the number of events or records written to their
	// destination (a batch that was retried counts once).
	Written uint64
	// Dropped is the number of events or records not written: refused
	// (queue full, queue closed, invalid) or given up with their batch.
	Dropped uint64
	// Batches is the number of batches written.
	Batches uint64
	// FailedBatches is the number of batches given up after their last
	// attempt; their events or records count in Dropped.
	FailedBatches uint64
	// Retries is the number of failed attempts at writing a batch that
	// were retried.
	Retries uint64
}
