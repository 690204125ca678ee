package sqlstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	mathrand "math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/abkit/experiments"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

var _ experiments.Tracker = (*Tracker)(nil)

var (
	// ErrQueueFull is returned by Tracker.Track when the queue is full
	// (the database is slow or away): the event is dropped and counted in
	// TrackerStats.Dropped. With experiments.Config.Tracker, the error
	// shows in Decision.Err and the session is not marked, so the event is
	// tried again on the user's next request.
	ErrQueueFull = errors.New("sqlstore: tracker queue is full; event dropped")
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

// TrackerOption configures Store.NewTracker.
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
	db    *sqlx.DB
	query string
	cfg   trackerConfig
	log   *slog.Logger

	queue     chan experiments.Event
	mu        sync.RWMutex // held shared to send on queue, exclusively to close it
	closed    bool
	closeOnce sync.Once
	lostAtEnd uint64 // lost when Close began; set once, by Close

	// The batches: gathered by run, handed to the writers on full, back on
	// free once written.
	full chan *batch
	free chan *batch

	// The writers' context and its cancel, by Close when its ctx ends.
	ctx   context.Context
	abort context.CancelCauseFunc
	done  chan struct{} // closed when run and the writers have returned

	down    atomic.Bool // the last attempt failed (and that was logged)
	errMu   sync.Mutex
	lastErr error // of the last batch given up

	queued        atomic.Int64
	written       atomic.Uint64
	dropped       atomic.Uint64
	lost          atomic.Uint64 // the part of dropped that was given up after Track accepted it
	batches       atomic.Uint64
	failedBatches atomic.Uint64
	retries       atomic.Uint64
}

// NewTracker returns a Tracker writing into the store's experiments_events
// table and starts its goroutines. Close it (which writes what is queued)
// at shutdown, or let Store.Close do it. NewTracker panics on an invalid option (a
// size, writer count or attempt count below 1, an interval or timeout that
// is not positive, a negative backoff), like time.NewTicker.
func (s *Store) NewTracker(opts ...TrackerOption) *Tracker {
	cfg := trackerConfig{
		queueSize: defaultQueueSize, batchSize: defaultBatchSize, interval: defaultFlushInterval, writers: defaultWriters,
		attempts: defaultAttempts, backoff: defaultBackoff, timeout: defaultWriteTimeout, log: s.log,
	}
	for _, opt := range opts {
		opt(&cfg)
	}
	if err := cfg.check(); err != nil {
		panic("sqlstore: NewTracker: " + err.Error())
	}
	ctx, abort := context.WithCancelCause(context.Background())
	t := &Tracker{
		db:    s.db,
		query: insertEventsQuery(s.t.events),
		cfg:   cfg,
		log:   cfg.log,
		queue: make(chan experiments.Event, cfg.queueSize),
		ctx:   ctx,
		abort: abort,
		done:  make(chan struct{}),
		full:  make(chan *batch),
		free:  make(chan *batch, cfg.writers+1),
	}
	for range cfg.writers + 1 {
		t.free <- newBatch(cfg.batchSize)
	}
	go t.run()
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
// A zero e.Time is the time of the call. Refused events count as dropped.
// ctx is not used: Track does no I/O.
func (t *Tracker) Track(_ context.Context, e experiments.Event) error {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if err := checkEvent(&e); err != nil {
		t.dropped.Add(1)
		return err
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.closed {
		t.dropped.Add(1)
		return ErrTrackerClosed
	}
	t.queued.Add(1) // before the send: a writer may be done with e first
	select {
	case t.queue <- e:
		return nil
	default:
		t.queued.Add(-1)
		t.dropped.Add(1)
		return ErrQueueFull
	}
}

// TrackerStats are a Tracker's counters since NewTracker. Every call to
// Track ends up in exactly one of Queued, Written and Dropped: when the
// tracker is idle, their sum is the number of calls. The fields are read
// one by one, so under load they may be off by the events in flight.
type TrackerStats struct {
	Queued        int    // accepted, not yet written nor given up: in the queue or in a batch
	Written       uint64 // in the table (a retried batch counts once)
	Dropped       uint64 // not written: refused by Track (queue full, closed, invalid), or given up (see WithWriteTimeout)
	Batches       uint64 // batches written
	FailedBatches uint64 // batches given up after their last attempt; their events are in Dropped
	Retries       uint64 // failed attempts that were retried
}

// Stats returns the tracker's counters. It is cheap: a few atomic loads.
func (t *Tracker) Stats() TrackerStats {
	return TrackerStats{
		Queued:        int(max(t.queued.Load(), 0)),
		Written:       t.written.Load(),
		Dropped:       t.dropped.Load(),
		Batches:       t.batches.Load(),
		FailedBatches: t.failedBatches.Load(),
		Retries:       t.retries.Load(),
	}
}

// Close stops accepting events (Track then returns ErrTrackerClosed),
// writes every event already queued, and stops its goroutines. If ctx ends
// first, Close abandons the writes in progress and the events still queued
// (counted as dropped) and returns an error wrapping ctx's error. It also
// returns an error when batches queued at Close were given up after their
// last attempt. Close returns when ctx ends even if the database hangs
// (see WithWriteTimeout). It is safe to call more than once and
// concurrently: every call waits for the writes and returns the same
// outcome.
func (t *Tracker) Close(ctx context.Context) error {
	t.closeOnce.Do(t.stopAccepting)
	select {
	case <-t.done:
	case <-ctx.Done():
		t.abort(ctx.Err())
		<-t.done
	}
	lost := t.lost.Load() - t.lostAtEnd
	if lost == 0 {
		return nil
	}
	cause := context.Cause(t.ctx)
	if cause == nil {
		t.errMu.Lock()
		cause = t.lastErr
		t.errMu.Unlock()
	}
	return fmt.Errorf("sqlstore: tracker closed with %d events not written: %w", lost, cause)
}

// stopAccepting closes the queue: run hands over what it holds and
// returns.
func (t *Tracker) stopAccepting() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	t.lostAtEnd = t.lost.Load()
	close(t.queue)
}

// run gathers the queued events into batches for the writers, until the
// queue is closed and drained, then waits for the writers.
func (t *Tracker) run() {
	var writers sync.WaitGroup
	for range t.cfg.writers {
		writers.Go(t.writeBatches)
	}
	defer func() {
		close(t.full)
		writers.Wait()
		close(t.done)
	}()
	tick := time.NewTicker(t.cfg.interval)
	defer tick.Stop()
	b := <-t.free
	for {
		select {
		case e, ok := <-t.queue:
			if !ok {
				t.handOver(b)
				return
			}
			b.add(e)
			if b.len() >= t.cfg.batchSize {
				b = t.handOver(b)
			}
		case <-tick.C:
			b = t.handOver(b)
		}
	}
}

// handOver gives b, unless empty, to a writer, waiting for one to be free,
// and returns an empty batch.
func (t *Tracker) handOver(b *batch) *batch {
	if b.len() == 0 {
		return b
	}
	t.full <- b
	return <-t.free
}

// writeBatches is a writer: it writes the batches handed over until run
// returns.
func (t *Tracker) writeBatches() {
	idle := make(chan struct{}, 1) // holds a token while none of the writer's INSERTs runs
	idle <- struct{}{}
	for b := range t.full {
		t.flush(b, idle)
		b.reset()
		t.free <- b
	}
}

// flush writes b, retrying as configured, and counts the outcome.
func (t *Tracker) flush(b *batch, idle chan struct{}) {
	n := b.len()
	err := t.write(b.args(), idle)
	if err == nil {
		t.written.Add(uint64(n))
		t.batches.Add(1)
		t.queued.Add(-int64(n))
		return
	}
	t.errMu.Lock()
	t.lastErr = err
	t.errMu.Unlock()
	t.lost.Add(uint64(n))
	t.dropped.Add(uint64(n))
	t.failedBatches.Add(1)
	t.queued.Add(-int64(n))
	if t.ctx.Err() == nil { // else Close gave up and reports it
		t.log.Error("sqlstore: tracker: writing events failed; batch dropped",
			"events", n, "attempts", t.cfg.attempts, "err", err)
	}
}

// write inserts one batch: up to cfg.attempts tries, the same arguments
// (so the same event IDs) each time.
func (t *Tracker) write(args []any, idle chan struct{}) error {
	for attempt := 1; ; attempt++ {
		err := t.insert(args, idle)
		if err == nil {
			t.healthy()
			return nil
		}
		if attempt == t.cfg.attempts {
			return err
		}
		t.failing(err)
		if !t.sleep(t.backoff(attempt)) {
			return err
		}
		t.retries.Add(1)
	}
}

// insert runs one attempt, within the write timeout, and returns at its
// end even if the INSERT does not (see WithWriteTimeout): the INSERT runs
// in a goroutine that gives the idle token back when it ends.
func (t *Tracker) insert(args []any, idle chan struct{}) error {
	ctx, cancel := context.WithTimeout(t.ctx, t.cfg.timeout)
	defer cancel()
	select {
	case <-idle:
	case <-ctx.Done():
		return fmt.Errorf("waiting for an abandoned INSERT: %w", ctx.Err())
	}
	done := make(chan error, 1)
	go func() {
		defer func() { idle <- struct{}{} }()
		_, err := t.db.ExecContext(ctx, t.query, args...)
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// backoff returns the wait after the attempt-th failed attempt: backoff,
// doubled each time up to maxBackoff, less up to half of it at random so
// that processes that failed together do not retry together.
func (t *Tracker) backoff(attempt int) time.Duration {
	d := t.cfg.backoff
	for i := 1; i < attempt && d < maxBackoff; i++ {
		d *= 2
	}
	d = min(d, maxBackoff)
	return d - mathrand.N(d/2+1)
}

// sleep waits d, or less if Close gives up; it reports whether to go on.
func (t *Tracker) sleep(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-t.ctx.Done():
		return false
	}
}

// failing logs the first failure of an outage.
func (t *Tracker) failing(err error) {
	if t.ctx.Err() == nil && !t.down.Swap(true) {
		t.log.Warn("sqlstore: tracker: writing events failed; retrying", "err", err)
	}
}

// healthy logs the end of an outage.
func (t *Tracker) healthy() {
	if t.down.Load() && t.down.Swap(false) {
		t.log.Info("sqlstore: tracker: writing events again")
	}
}

// checkEvent refuses what the events table cannot hold: one such event
// would make its whole batch fail every attempt.
// maxEventText bounds an event's strings: indexed columns hold at most
// about 2.7 kB a row, and stores refuse longer names and course keys.
const maxEventText = 255

func checkEvent(e *experiments.Event) error {
	for _, f := range [...]struct{ field, s string }{
		{"name", e.Name}, {"user ID", e.UserID}, {"site", e.Site}, {"app label", e.AppLabel},
		{"experiment", e.Experiment}, {"course key", e.CourseKey},
	} {
		if !utf8.ValidString(f.s) {
			return fmt.Errorf("sqlstore: tracker: %w: event %s %q: not valid UTF-8", experiments.ErrInvalid, f.field, f.s)
		}
		if strings.IndexByte(f.s, 0) >= 0 {
			return fmt.Errorf("sqlstore: tracker: %w: event %s %q: NUL byte", experiments.ErrInvalid, f.field, f.s)
		}
		if len(f.s) > maxEventText {
			return fmt.Errorf("sqlstore: tracker: %w: event %s of %d bytes: longer than %d", experiments.ErrInvalid, f.field, len(f.s), maxEventText)
		}
	}
	if e.Bucket < math.MinInt32 || e.Bucket > math.MaxInt32 {
		return fmt.Errorf("sqlstore: tracker: %w: event bucket %d: beyond a 32-bit integer", experiments.ErrInvalid, e.Bucket)
	}
	if y := e.Time.Year(); y < 1 || y > 9999 {
		return fmt.Errorf("sqlstore: tracker: %w: event time %v: year outside 1–9999", experiments.ErrInvalid, e.Time)
	}
	return nil
}

// insertEventsQuery inserts a batch in one statement: one array a column,
// unnested into rows. Ten parameters whatever the batch size, so the
// statement text never changes.
func insertEventsQuery(table string) string {
	return "INSERT INTO " + table +
		" (id, name, time, user_id, site, app_label, experiment, course_key, bucket, is_staff)" +
		" SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::text[], $5::text[]," +
		" $6::text[], $7::text[], $8::text[], $9::integer[], $10::boolean[])" +
		" ON CONFLICT (id) DO NOTHING"
}

// batch is the events of one INSERT, and its arguments: one array a
// column (lib/pq encodes them).
type batch struct {
	events []experiments.Event
	ids    []byte // 16 random bytes an event

	uuids, names, times, users, sites, apps, exps, courses pq.StringArray
	buckets                                                pq.Int64Array
	staff                                                  pq.BoolArray
}

func newBatch(size int) *batch {
	return &batch{events: make([]experiments.Event, 0, size)}
}

func (b *batch) add(e experiments.Event) { b.events = append(b.events, e) }
func (b *batch) len() int                { return len(b.events) }

func (b *batch) reset() {
	clear(b.events) // let the strings go
	b.events = b.events[:0]
}

// args gives each event a new UUID and returns the INSERT's arguments.
func (b *batch) args() []any {
	b.newIDs()
	// New slices each batch: an abandoned attempt (WithWriteTimeout) may
	// still be reading the last ones.
	n := len(b.events)
	for _, c := range []*pq.StringArray{&b.uuids, &b.names, &b.times, &b.users, &b.sites, &b.apps, &b.exps, &b.courses} {
		*c = make(pq.StringArray, 0, n)
	}
	b.buckets, b.staff = make(pq.Int64Array, 0, n), make(pq.BoolArray, 0, n)
	for i := range b.events {
		e := &b.events[i]
		b.uuids = append(b.uuids, formatUUID(b.ids[16*i:16*i+16]))
		b.names = append(b.names, e.Name)
		// In UTC with its offset, so that the session's TimeZone does not
		// matter; PostgreSQL rounds it to the microsecond.
		b.times = append(b.times, e.Time.UTC().Format("2006-01-02 15:04:05.999999999Z07:00"))
		b.users = append(b.users, e.UserID)
		b.sites = append(b.sites, e.Site)
		b.apps = append(b.apps, e.AppLabel)
		b.exps = append(b.exps, e.Experiment)
		b.courses = append(b.courses, e.CourseKey)
		b.buckets = append(b.buckets, int64(e.Bucket))
		b.staff = append(b.staff, e.IsStaff)
	}
	return []any{b.uuids, b.names, b.times, b.users, b.sites, b.apps, b.exps, b.courses, b.buckets, b.staff}
}

// newIDs fills b.ids with one random UUID version 4 (RFC 9562) an event.
func (b *batch) newIDs() {
	n := 16 * len(b.events)
	if cap(b.ids) < n {
		b.ids = make([]byte, n)
	}
	b.ids = b.ids[:n]
	rand.Read(b.ids) // never fails (it crashes the program instead)
	for i := 0; i < n; i += 16 {
		b.ids[i+6] = b.ids[i+6]&0x0f | 0x40 // version 4
		b.ids[i+8] = b.ids[i+8]&0x3f | 0x80 // variant 10
	}
}

// formatUUID formats 16 bytes as a UUID.
func formatUUID(id []byte) string {
	var buf [36]byte
	hex.Encode(buf[0:8], id[0:4])
	buf[8] = '-'
	hex.Encode(buf[9:13], id[4:6])
	buf[13] = '-'
	hex.Encode(buf[14:18], id[6:8])
	buf[18] = '-'
	hex.Encode(buf[19:23], id[8:10])
	buf[23] = '-'
	hex.Encode(buf[24:], id[10:])
	return string(buf[:])
}
