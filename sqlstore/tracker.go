package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/abkit/experiments"
	"github.com/lib/pq"
)

var _ experiments.Tracker = (*Tracker)(nil)

var (
	// ErrQueueFull is returned by Tracker.Track, Store.RecordExposure and
	// Store.RecordConversion when their queue is full (the database is
	// slow or away): the event or record is dropped and counted in
	// TrackerStats.Dropped (RecorderStats). With experiments.Config.Tracker
	// or Recorder, the error shows in Decision.Err and the session is not
	// marked, so the event and the exposure are tried again on the user's
	// next request.
	ErrQueueFull = errors.New("sqlstore: queue is full (the database is slow or away); dropped")
	// ErrTrackerClosed is returned by Tracker.Track after Close: the event
	// is dropped and counted in TrackerStats.Dropped.
	ErrTrackerClosed = errors.New("sqlstore: tracker is closed; event dropped")
)

// The defaults of NewTracker's options, and the longest wait between two
// attempts at a batch.
const (
	defaultQueueSize     = 10_000
	defaultBatchSize     = 500
	defaultFlushInterval = time.Second
	defaultWriters       = 2
	defaultAttempts      = 5
	defaultBackoff       = 200 * time.Millisecond
	defaultWriteTimeout  = 10 * time.Second
	maxBackoff           = 10 * time.Second
)

// TrackerOption configures Store.NewTracker and, through WithRecorder,
// each of the store's recorder queues (exposures, conversions).
type TrackerOption func(*trackerConfig)

type trackerConfig struct {
	queueSize, batchSize int
	interval             time.Duration
	writers              int
	attempts             int
	backoff, timeout     time.Duration
	log                  *slog.Logger
}

// WithQueueSize bounds how many events wait in memory to be written; Track
// drops events beyond it. Optional. Default: 10,000.
func WithQueueSize(n int) TrackerOption { return func(c *trackerConfig) { c.queueSize = n } }

// WithBatchSize sets how many events one INSERT writes: a batch is written
// as soon as it has that many. Optional. Default: 500.
func WithBatchSize(n int) TrackerOption { return func(c *trackerConfig) { c.batchSize = n } }

// WithFlushInterval sets how often a batch that is not full is written, so
// that no event waits much longer than d while traffic is low.
// Optional. Default: 1 s.
func WithFlushInterval(d time.Duration) TrackerOption {
	return func(c *trackerConfig) { c.interval = d }
}

// WithWriters sets how many batches are written at once, each on its own
// connection of the store's pool: a second writer overlaps one batch's
// commit with the next batch's insert. Optional. Default: 2.
func WithWriters(n int) TrackerOption { return func(c *trackerConfig) { c.writers = n } }

// WithRetry sets how a batch that failed to be written is retried: at most
// attempts tries in all (1: no retry), waiting about backoff before the
// second, then twice as long before each next one, up to 10 s, with
// jitter. Meanwhile new events wait in the queue. A batch that fails every
// attempt is dropped. Optional. Default: 5 attempts, 200 ms: a batch is
// given up after 1.5 to 3 s of failures.
func WithRetry(attempts int, backoff time.Duration) TrackerOption {
	return func(c *trackerConfig) { c.attempts, c.backoff = attempts, backoff }
}

// WithWriteTimeout bounds each attempt at writing a batch, so that a hung
// database counts as a failed attempt. The attempt is abandoned, not
// waited for: lib/pq cancels a query by asking the server, and waits for
// the answer, so on a hung server or a dropped network the call would
// hold on until TCP gives up. The writer's next attempt waits for the
// abandoned one to end (at most one a writer); if it commits after all,
// the retry's rows conflict with its IDs. Optional. Default: 10 s.
func WithWriteTimeout(d time.Duration) TrackerOption {
	return func(c *trackerConfig) { c.timeout = d }
}

// WithTrackerLogger sets where the tracker logs failed writes (the first
// failure of an outage, each batch given up) and recoveries.
// Optional. Default: the store's logger (WithLogger).
func WithTrackerLogger(l *slog.Logger) TrackerOption { return func(c *trackerConfig) { c.log = l } }

func (c *trackerConfig) check() error {
	switch {
	case c.queueSize < 1:
		return fmt.Errorf("queue size %d: must be at least 1", c.queueSize)
	case c.batchSize < 1:
		return fmt.Errorf("batch size %d: must be at least 1", c.batchSize)
	case c.interval <= 0:
		return fmt.Errorf("flush interval %v: must be positive", c.interval)
	case c.writers < 1:
		return fmt.Errorf("writers %d: must be at least 1", c.writers)
	case c.attempts < 1:
		return fmt.Errorf("retry attempts %d: must be at least 1", c.attempts)
	case c.backoff < 0:
		return fmt.Errorf("retry backoff %v: must not be negative", c.backoff)
	case c.timeout <= 0:
		return fmt.Errorf("write timeout %v: must be positive", c.timeout)
	}
	return nil
}

// Tracker is a durable experiments.Tracker: it writes events into the
// store's experiments_events table, in batches, from a bounded in-memory
// queue, so that Track never waits for the database.
//
//	tracker := store.NewTracker()
//	x := experiments.New(experiments.Config{Store: store, Tracker: tracker})
//	…
//	// At shutdown, after the HTTP server, before the store:
//	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
//	defer cancel()
//	if err := tracker.Close(ctx); err != nil { … } // events not written
//	store.Close()
//
// One goroutine gathers the queued events into batches: a batch is handed
// to a writer (WithWriters) when it is full (WithBatchSize), and at least
// every flush interval (WithFlushInterval). A writer inserts a batch with
// one statement. Each event gets a random UUID (version 4) when its batch
// is first written, and a retried batch is sent with the same IDs and ON
// CONFLICT (id) DO NOTHING: a batch that was committed although the reply
// was lost counts once. Events live in memory until written: those queued
// when the process dies are lost.
//
// While the database is away, the writers retry their batches (WithRetry)
// and new events wait, up to WithQueueSize in the queue plus one batch in
// each writer and one being gathered; beyond that Track drops them. Stats
// counts all of it. A Tracker is safe for concurrent use.
type Tracker struct {
	b *batcher[experiments.Event]
}

// newTrackerConfig returns the options' configuration, with log the
// default logger.
func newTrackerConfig(log *slog.Logger, opts []TrackerOption) (trackerConfig, error) {
	cfg := trackerConfig{
		queueSize: defaultQueueSize, batchSize: defaultBatchSize, interval: defaultFlushInterval, writers: defaultWriters,
		attempts: defaultAttempts, backoff: defaultBackoff, timeout: defaultWriteTimeout, log: log,
	}
	for _, opt := range opts {
		opt(&cfg)
	}
	return cfg, cfg.check()
}

// NewTracker returns a Tracker writing into the store's experiments_events
// table and starts its goroutines. Close it (which writes what is queued)
// at shutdown, or let Store.Close do it. NewTracker panics on an invalid option (a
// size, writer count or attempt count below 1, an interval or timeout that
// is not positive, a negative backoff), like time.NewTicker.
func (s *Store) NewTracker(opts ...TrackerOption) *Tracker {
	cfg, err := newTrackerConfig(s.log, opts)
	if err != nil {
		panic("sqlstore: NewTracker: " + err.Error())
	}
	t := &Tracker{b: newBatcher(s.db, insertEventsQuery(s.t.events), eventArgs, cfg, "tracker", "events", ErrTrackerClosed)}
	s.trackersMu.Lock()
	closed := s.closed
	if !closed {
		s.trackers = append(s.trackers, t)
	}
	s.trackersMu.Unlock()
	if closed {
		t.Close(context.Background()) // nothing queued: returns at once
	}
	return t
}

// Track queues e to be written and returns at once. It never blocks: when
// the queue is full it drops e and returns ErrQueueFull; after Close it
// returns ErrTrackerClosed. An event the table cannot hold (strings that
// are not UTF-8, hold a NUL byte or are longer than 255 bytes, a bucket
// beyond a 32-bit integer, a year outside 1–9999) is refused with an error wrapping
// experiments.ErrInvalid, so that it cannot fail the batch it would join.
// A zero e.Time is the time of the call; times are truncated to the
// microsecond. Refused events count as dropped. ctx is not used: Track
// does no I/O.
func (t *Tracker) Track(_ context.Context, e experiments.Event) error {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if err := checkEvent(&e); err != nil {
		t.b.refuse()
		return err
	}
	return t.b.enqueue(e)
}

// TrackerStats are a Tracker's counters since NewTracker (and those of
// each of the Store's recorder queues, see RecorderStats). It is
// experiments.QueueStats, the counters segment's Tracker has too, so one
// metrics exporter reads them all. Every call to Track ends up in exactly
// one of Queued, Written and Dropped: when the tracker is idle, their sum
// is the number of calls. Written counts the rows in the table; Dropped
// counts the events refused by Track (queue full, closed, invalid) and
// those given up with their batch (see WithRetry and WithWriteTimeout).
// The fields are read one by one, so under load they may be off by the
// events in flight.
type TrackerStats = experiments.QueueStats

// Stats returns the tracker's counters. It is cheap: a few atomic loads.
func (t *Tracker) Stats() TrackerStats { return t.b.stats() }

// Close stops accepting events (Track then returns ErrTrackerClosed),
// writes every event already queued, and stops its goroutines. If ctx ends
// first, Close abandons the writes in progress and the events still queued
// (counted as dropped) and returns an error wrapping ctx's error. It also
// returns an error when batches queued at Close were given up after their
// last attempt. Close returns when ctx ends even if the database hangs
// (see WithWriteTimeout). It is safe to call more than once and
// concurrently: every call waits for the writes and returns the same
// outcome.
func (t *Tracker) Close(ctx context.Context) error { return t.b.close(ctx) }

func checkEvent(e *experiments.Event) error {
	err := checkRow("event", []textField{
		{"name", e.Name}, {"user ID", e.UserID}, {"site", e.Site}, {"app label", e.AppLabel},
		{"experiment", e.Experiment}, {"course key", e.CourseKey}, {"anonymous ID", e.AnonymousID},
	}, e.Bucket, e.Time)
	if err != nil {
		return fmt.Errorf("sqlstore: tracker: %w", err)
	}
	return nil
}

// insertEventsQuery inserts a batch in one statement: one array a column,
// unnested into rows. Eleven parameters whatever the batch size, so the
// statement text never changes.
func insertEventsQuery(table string) string {
	return "INSERT INTO " + table +
		" (id, name, time, user_id, site, app_label, experiment, course_key, bucket, is_staff, anonymous_id)" +
		" SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::text[], $5::text[]," +
		" $6::text[], $7::text[], $8::text[], $9::integer[], $10::boolean[], $11::text[])" +
		" ON CONFLICT (id) DO NOTHING"
}

// eventArgs gives each event a new UUID and returns the INSERT's
// arguments: one array a column (lib/pq encodes them). The slices are new
// each batch: an abandoned attempt (WithWriteTimeout) may still be reading
// the last ones.
func eventArgs(events []experiments.Event) []any {
	n := len(events)
	names, times, users, sites := make(pq.StringArray, n), make(pq.StringArray, n), make(pq.StringArray, n), make(pq.StringArray, n)
	apps, exps, courses := make(pq.StringArray, n), make(pq.StringArray, n), make(pq.StringArray, n)
	buckets, staff, anonymous := make(pq.Int64Array, n), make(pq.BoolArray, n), make(pq.StringArray, n)
	for i := range events {
		e := &events[i]
		names[i], times[i], users[i], sites[i] = e.Name, pgTime(e.Time), e.UserID, e.Site
		apps[i], exps[i], courses[i] = e.AppLabel, e.Experiment, e.CourseKey
		buckets[i], staff[i], anonymous[i] = int64(e.Bucket), e.IsStaff, e.AnonymousID
	}
	return []any{newUUIDs(n), names, times, users, sites, apps, exps, courses, buckets, staff, anonymous}
}
