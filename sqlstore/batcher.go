package sqlstore

import (
	"context"
	"crypto/rand"
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
	"github.com/abkit/experiments/internal/queuestats"
	"github.com/abkit/experiments/internal/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// batcher is the machinery shared by Tracker and the Store's recorder: a
// bounded in-memory queue of rows of type T, gathered into batches, each
// inserted with one statement by one of a few writers, retried, and
// counted. What differs between them is the statement and how a batch
// becomes its arguments (args); the options (trackerConfig) are the same.
//
// One goroutine (run) gathers the queued rows into batches: a batch is
// handed to a writer when it is full, and at least every flush interval.
// The batches are recycled: there are writers+1 of them, one being
// gathered and one in each writer, so that a writer stuck retrying holds
// back new rows in the queue rather than in memory without bound.
type batcher[T any] struct {
	db    *sqlx.DB
	query string
	// args returns the arguments of query for a batch; it is called once a
	// batch, and its result is reused by every attempt, so that IDs it
	// makes are the same in a retry.
	args func([]T) []any
	cfg  trackerConfig
	log  *slog.Logger
	// what names the batcher in logs and errors ("tracker", "recorder"),
	// noun its rows ("events", "exposures").
	what, noun string
	closedErr  error // of enqueue after close

	queue     chan T
	mu        sync.RWMutex // held shared to send on queue, exclusively to close it
	closed    bool
	closeOnce sync.Once

	// The batches: gathered by run, handed to the writers on full, back on
	// free once written.
	full chan *batch[T]
	free chan *batch[T]
	// flushes asks run to hand over what is queued and to wait for the
	// writers; run closes the channel sent when that is done.
	flushes chan chan struct{}

	// The writers' context and its cancel, by close when its ctx ends.
	ctx   context.Context
	abort context.CancelCauseFunc
	done  chan struct{} // closed when run and the writers have returned

	down atomic.Bool // the last attempt failed (and that was logged)

	counts queuestats.Counters
}

// newBatcher starts a batcher inserting with query and args. cfg must
// have been checked.
func newBatcher[T any](db *sqlx.DB, query string, args func([]T) []any, cfg trackerConfig, what, noun string, closedErr error) *batcher[T] {
	ctx, abort := context.WithCancelCause(context.Background())
	b := &batcher[T]{
		db: db, query: query, args: args, cfg: cfg, log: cfg.log,
		what: what, noun: noun, closedErr: closedErr,
		queue:   make(chan T, cfg.queueSize),
		full:    make(chan *batch[T]),
		free:    make(chan *batch[T], cfg.writers+1),
		flushes: make(chan chan struct{}),
		ctx:     ctx,
		abort:   abort,
		done:    make(chan struct{}),
	}
	for range cfg.writers + 1 {
		b.free <- &batch[T]{rows: make([]T, 0, cfg.batchSize)}
	}
	go b.run()
	return b
}

// enqueue queues v and returns at once: closedErr after close,
// ErrQueueFull when the queue is full.
func (b *batcher[T]) enqueue(v T) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		b.counts.Drop()
		return b.closedErr
	}
	b.counts.Queued.Add(1) // before the send: a writer may be done with v first
	select {
	case b.queue <- v:
		return nil
	default:
		b.counts.Unqueue()
		return ErrQueueFull
	}
}

// refuse counts a row refused before enqueue (invalid) as dropped.
func (b *batcher[T]) refuse() { b.counts.Drop() }

// stats returns the counters.
func (b *batcher[T]) stats() TrackerStats { return b.counts.Stats() }

// close stops accepting rows, writes those queued, and stops the
// goroutines; see Tracker.Close.
func (b *batcher[T]) close(ctx context.Context) error {
	b.closeOnce.Do(b.stopAccepting)
	lost, cause := b.counts.AwaitClosed(ctx, b.ctx, b.abort, b.done)
	if lost == 0 {
		return nil
	}
	return fmt.Errorf("sqlstore: %s closed with %d %s not written: %w", b.what, lost, b.noun, cause)
}

// flush waits until the rows queued before the call are written or given
// up. It returns ctx's error if ctx ends first, and an error when rows
// were given up since the last flush that reported some. After close it
// returns at once.
func (b *batcher[T]) flush(ctx context.Context) error {
	reply := make(chan struct{})
	select {
	case b.flushes <- reply:
	case <-b.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-reply:
	case <-ctx.Done():
		return ctx.Err()
	}
	if n, cause := b.counts.TakeLost(); n > 0 {
		return fmt.Errorf("sqlstore: %s: %d %s not written: %w", b.what, n, b.noun, cause)
	}
	return nil
}

// stopAccepting closes the queue: run hands over what it holds and
// returns.
func (b *batcher[T]) stopAccepting() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	b.counts.Closing()
	close(b.queue)
}

// run gathers the queued rows into batches for the writers, until the
// queue is closed and drained, then waits for the writers.
func (b *batcher[T]) run() {
	var writers sync.WaitGroup
	for range b.cfg.writers {
		writers.Go(b.writeBatches)
	}
	defer func() {
		close(b.full)
		writers.Wait()
		close(b.done)
	}()
	tick := time.NewTicker(b.cfg.interval)
	defer tick.Stop()
	cur := <-b.free
	for {
		select {
		case v, ok := <-b.queue:
			if !ok {
				b.handOver(cur)
				return
			}
			cur = b.add(cur, v)
		case <-tick.C:
			cur = b.handOver(cur)
		case reply := <-b.flushes:
			cur = b.flushNow(cur)
			close(reply)
		}
	}
}

// add adds v to cur and hands cur over if that makes it full; it returns
// the batch to gather into next.
func (b *batcher[T]) add(cur *batch[T], v T) *batch[T] {
	cur.rows = append(cur.rows, v)
	if len(cur.rows) >= b.cfg.batchSize {
		return b.handOver(cur)
	}
	return cur
}

// flushNow hands over cur and the rows in the queue now (those queued
// before the flush began, and maybe a few more), then waits for every
// writer to be done: until each batch but the one run holds is back.
func (b *batcher[T]) flushNow(cur *batch[T]) *batch[T] {
	for n := len(b.queue); n > 0; n-- {
		v, ok := <-b.queue // only run receives: n rows are there
		if !ok {
			break // closed: run's next receive sees it too
		}
		cur = b.add(cur, v)
	}
	cur = b.handOver(cur)
	idle := make([]*batch[T], 0, b.cfg.writers)
	for range b.cfg.writers {
		idle = append(idle, <-b.free)
	}
	for _, x := range idle {
		b.free <- x
	}
	return cur
}

// handOver gives cur, unless empty, to a writer, waiting for one to be
// free, and returns an empty batch.
func (b *batcher[T]) handOver(cur *batch[T]) *batch[T] {
	if len(cur.rows) == 0 {
		return cur
	}
	b.full <- cur
	return <-b.free
}

// writeBatches is a writer: it writes the batches handed over until run
// returns.
func (b *batcher[T]) writeBatches() {
	idle := make(chan struct{}, 1) // holds a token while none of the writer's INSERTs runs
	idle <- struct{}{}
	for x := range b.full {
		b.writeBatch(x, idle)
		clear(x.rows) // let the strings go
		x.rows = x.rows[:0]
		b.free <- x
	}
}

// writeBatch writes x, retrying as configured, and counts the outcome.
func (b *batcher[T]) writeBatch(x *batch[T], idle chan struct{}) {
	n := len(x.rows)
	err := b.write(b.args(x.rows), idle)
	// The batch first, then its rows: see queuestats.Counters.
	if err == nil {
		b.counts.Batches.Add(1)
		b.counts.Wrote(n)
		return
	}
	b.counts.FailedBatches.Add(1)
	b.counts.GaveUp(n, err)
	if b.ctx.Err() == nil { // else close gave up and reports it
		b.log.Error("sqlstore: "+b.what+": writing "+b.noun+" failed; batch dropped",
			b.noun, n, "attempts", b.cfg.attempts, "err", err)
	}
}

// write inserts one batch: up to cfg.attempts tries, the same arguments
// (so the same IDs) each time.
func (b *batcher[T]) write(args []any, idle chan struct{}) error {
	for attempt := 1; ; attempt++ {
		err := b.insert(args, idle)
		if err == nil {
			b.healthy()
			return nil
		}
		if attempt == b.cfg.attempts {
			return err
		}
		b.failing(err)
		if !b.sleep(b.backoff(attempt)) {
			return err
		}
		b.counts.Retries.Add(1)
	}
}

// insert runs one attempt, within the write timeout, and returns at its
// end even if the INSERT does not (see WithWriteTimeout): the INSERT runs
// in a goroutine that gives the idle token back when it ends.
func (b *batcher[T]) insert(args []any, idle chan struct{}) error {
	ctx, cancel := context.WithTimeout(b.ctx, b.cfg.timeout)
	defer cancel()
	select {
	case <-idle:
	case <-ctx.Done():
		return fmt.Errorf("waiting for an abandoned INSERT: %w", ctx.Err())
	}
	done := make(chan error, 1)
	go func() {
		defer func() { idle <- struct{}{} }()
		_, err := b.db.ExecContext(ctx, b.query, args...)
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
func (b *batcher[T]) backoff(attempt int) time.Duration {
	d := b.cfg.backoff
	for i := 1; i < attempt && d < maxBackoff; i++ {
		d *= 2
	}
	d = min(d, maxBackoff)
	return d - mathrand.N(d/2+1)
}

// sleep waits d, or less if close gives up; it reports whether to go on.
func (b *batcher[T]) sleep(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-b.ctx.Done():
		return false
	}
}

// failing logs the first failure of an outage.
func (b *batcher[T]) failing(err error) {
	if b.ctx.Err() == nil && !b.down.Swap(true) {
		b.log.Warn("sqlstore: "+b.what+": writing "+b.noun+" failed; retrying", "err", err)
	}
}

// healthy logs the end of an outage.
func (b *batcher[T]) healthy() {
	if b.down.Load() && b.down.Swap(false) {
		b.log.Info("sqlstore: " + b.what + ": writing " + b.noun + " again")
	}
}

// maxEventText bounds the strings of an event, exposure or conversion:
// indexed columns hold at most about 2.7 kB a row, and stores refuse
// longer names and course keys.
const maxEventText = 255

// textField is a string of a row, named for errors.
type textField struct{ name, s string }

// checkRow refuses what a table cannot hold, for a row of kind ("event",
// "exposure"): one such row would make its whole batch fail every attempt.
func checkRow(kind string, texts []textField, bucket int, at time.Time) error {
	for _, f := range texts {
		if !utf8.ValidString(f.s) {
			return fmt.Errorf("%w: %s %s %q: not valid UTF-8", experiments.ErrInvalid, kind, f.name, f.s)
		}
		if strings.IndexByte(f.s, 0) >= 0 {
			return fmt.Errorf("%w: %s %s %q: NUL byte", experiments.ErrInvalid, kind, f.name, f.s)
		}
		if len(f.s) > maxEventText {
			return fmt.Errorf("%w: %s %s of %d bytes: longer than %d", experiments.ErrInvalid, kind, f.name, len(f.s), maxEventText)
		}
	}
	if bucket < math.MinInt32 || bucket > math.MaxInt32 {
		return fmt.Errorf("%w: %s bucket %d: beyond a 32-bit integer", experiments.ErrInvalid, kind, bucket)
	}
	if y := at.Year(); y < 1 || y > 9999 {
		return fmt.Errorf("%w: %s time %v: year outside 1–9999", experiments.ErrInvalid, kind, at)
	}
	return nil
}

// batch is the rows of one INSERT.
type batch[T any] struct{ rows []T }

// newUUIDs returns n random UUIDs (version 4, RFC 9562), formatted.
func newUUIDs(n int) pq.StringArray {
	ids := make([]byte, 16*n)
	rand.Read(ids) // never fails (it crashes the program instead)
	out := make(pq.StringArray, n)
	for i := range out {
		id := ids[16*i : 16*i+16]
		id[6] = id[6]&0x0f | 0x40 // version 4
		id[8] = id[8]&0x3f | 0x80 // variant 10
		out[i] = uuid.Format(id)
	}
	return out
}

// pgTime formats t for a timestamptz array: in UTC with its offset, so
// that the session's TimeZone does not matter, truncated to the
// microsecond (PostgreSQL would round it).
func pgTime(t time.Time) string {
	return t.Truncate(time.Microsecond).UTC().Format("2006-01-02 15:04:05.999999Z07:00")
}
