package segment

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/internal/queuestats"
	"github.com/segmentio/analytics-go/v3"
)

var _ experiments.Tracker = (*Tracker)(nil)

var (
	// ErrQueueFull is returned by Tracker.Track when its queue is full
	// (Segment is slow or away): the event is dropped and counted as
	// Dropped by Tracker.Stats. With experiments.Config.Tracker, the error
	// shows in Decision.Err (wrapping experiments.ErrTracker) and the
	// session is not marked, so the event is tried again on the user's next
	// request.
	ErrQueueFull = errors.New("segment: queue is full (Segment is slow or away); event dropped")
	// ErrTrackerClosed is returned by Tracker.Track after Close: the event
	// is dropped and counted as Dropped by Tracker.Stats.
	ErrTrackerClosed = errors.New("segment: tracker is closed; event dropped")
)

// DefaultEndpoint is Segment's HTTP Tracking API, analytics-go's default;
// batches go to DefaultEndpoint + "/v1/batch".
const DefaultEndpoint = analytics.DefaultEndpoint

// The defaults of New's options that are not analytics-go's, and the
// bounds Segment sets.
const (
	defaultQueueSize = 10_000
	// maxBatchSize is the most events Segment accepts in one batch.
	maxBatchSize = 2500
)

// Option configures New.
type Option func(*config)

type config struct {
	endpoint   string
	transport  http.RoundTripper
	batchSize  int
	interval   time.Duration
	queueSize  int
	retryAfter func(int) time.Duration // nil: analytics-go's
	log        *slog.Logger
}

// WithEndpoint sets the base URL of the Tracking API, without "/v1": a
// regional endpoint, a proxy, or a test server (analytics.Config.Endpoint).
// Batches are posted to endpoint + "/v1/batch". It must be an http or
// https URL with a host and no query, fragment or user info. Optional.
// Default: DefaultEndpoint (https://api.segment.io).
func WithEndpoint(endpoint string) Option { return func(c *config) { c.endpoint = endpoint } }

// WithTransport sets the http.RoundTripper that posts the batches, for a
// proxy, custom TLS or instrumentation (analytics.Config.Transport). It
// must honour the request's context (http.Transport does): that is how
// Close gives up on a hung server. analytics-go bounds each attempt to
// 10 s. Optional. Default: http.DefaultTransport.
func WithTransport(rt http.RoundTripper) Option { return func(c *config) { c.transport = rt } }

// WithBatchSize sets the most events one request carries
// (analytics.Config.BatchSize): a batch is posted as soon as it has that
// many, or earlier if it would exceed Segment's 500 KB a request. 1 to
// 2,500 (Segment's limit). Optional. Default: analytics.DefaultBatchSize
// (250).
func WithBatchSize(n int) Option { return func(c *config) { c.batchSize = n } }

// WithInterval sets how often a batch that is not full is posted
// (analytics.Config.Interval), so that no event waits much longer than d
// while traffic is low. Optional. Default: analytics.DefaultInterval (5 s).
func WithInterval(d time.Duration) Option { return func(c *config) { c.interval = d } }

// WithQueueSize bounds how many events the tracker holds, waiting to be
// sent or being sent (Stats' Queued); Track drops the events beyond it
// (ErrQueueFull, counted as Dropped by Tracker.Stats). Optional. Default:
// 10,000.
func WithQueueSize(n int) Option { return func(c *config) { c.queueSize = n } }

// WithRetryAfter sets how long analytics-go waits before it posts a batch
// again (analytics.Config.RetryAfter): fn(n) after the batch's n+1-th
// failed attempt. analytics-go makes 10 attempts a batch, whatever the
// failure (a network error, a timeout, any status from 300 up, 400
// included; a 429's Retry-After is not read), and then gives it up.
// Optional. Default (and with nil): analytics-go's, 100 ms doubling up to
// 10 s (about 43 s of waits in all).
func WithRetryAfter(fn func(n int) time.Duration) Option {
	return func(c *config) { c.retryAfter = fn }
}

// WithLogger sets where analytics-go's logs go: each failed attempt and
// each batch given up, at level Error, with Segment's answer (never the
// write key); each answer other than 2xx at level Warn. Optional.
// Default: slog.Default() at New.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// check validates c and returns its endpoint without a trailing slash.
func (c *config) check() (string, error) {
	u, err := url.Parse(c.endpoint)
	switch {
	case err != nil:
		return "", fmt.Errorf("segment: WithEndpoint(%q): %w: %w", c.endpoint, experiments.ErrInvalid, err)
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		return "", fmt.Errorf("segment: WithEndpoint(%q): %w: want an http or https URL with a host", c.endpoint, experiments.ErrInvalid)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.User != nil || u.Opaque != "":
		return "", fmt.Errorf("segment: WithEndpoint(%q): %w: want no query, fragment or user info", c.endpoint, experiments.ErrInvalid)
	case c.transport == nil:
		return "", fmt.Errorf("segment: WithTransport(nil): %w: want a transport", experiments.ErrInvalid)
	case c.batchSize < 1 || c.batchSize > maxBatchSize:
		return "", fmt.Errorf("segment: WithBatchSize(%d): %w: want 1 to %d", c.batchSize, experiments.ErrInvalid, maxBatchSize)
	case c.interval <= 0:
		return "", fmt.Errorf("segment: WithInterval(%v): %w: want a positive interval", c.interval, experiments.ErrInvalid)
	case c.queueSize < 1:
		return "", fmt.Errorf("segment: WithQueueSize(%d): %w: want at least 1", c.queueSize, experiments.ErrInvalid)
	case c.log == nil:
		return "", fmt.Errorf("segment: WithLogger(nil): %w: want a logger", experiments.ErrInvalid)
	}
	// analytics-go appends "/v1/batch" to the endpoint as it is.
	return strings.TrimSuffix(c.endpoint, "/"), nil
}

// Tracker is an experiments.Tracker that sends events to Segment through
// an analytics-go client (analytics.Client), so that Track never waits
// for the network.
//
// analytics-go gathers the events into batches and posts them: a batch
// goes when it is full (WithBatchSize, or 500 KB), and at least every
// interval (WithInterval), each in its own request, several at a time.
// Each event gets a random messageId (a version 4 UUID) when it is
// queued; a retried batch carries the same IDs, which Segment uses to
// drop duplicates. Events live in memory until sent: those held when the
// process dies are lost.
//
// A batch that fails is posted again after WithRetryAfter's wait, up to
// 10 attempts, then given up; that is analytics-go's policy, for any
// failure. Once Close (or Flush) has begun, analytics-go retries no more:
// a batch that fails then is given up at once. While Segment is away, the
// tracker holds up to WithQueueSize events, sent or waiting; beyond that
// Track drops them. Stats counts all of it. A Tracker is safe for
// concurrent use.
type Tracker struct {
	cfg      config
	writeKey string

	mu        sync.RWMutex // held shared to enqueue on client, exclusively to replace or close it
	client    analytics.Client
	closed    bool
	closing   sync.WaitGroup // the clients being closed, by Flush or Close
	closeOnce sync.Once
	done      chan struct{} // closed when every client is closed

	// The context of the requests, cancelled by Close when its ctx ends.
	ctx   context.Context
	abort context.CancelCauseFunc

	attempts attempts
	counts   queuestats.Counters
}

// New returns a Tracker sending to the Segment source of writeKey, and
// starts its analytics-go client. Close it at shutdown: that sends what
// is queued. New returns an error wrapping experiments.ErrInvalid, naming
// the option, for an empty write key or an invalid option (an endpoint
// that is not an http(s) URL, a batch size outside 1–2,500, an interval
// that is not positive, a queue size below 1, a nil transport or
// logger).
func New(writeKey string, opts ...Option) (*Tracker, error) {
	if writeKey == "" {
		return nil, fmt.Errorf("segment: New: %w: write key is empty", experiments.ErrInvalid)
	}
	cfg := config{
		endpoint: DefaultEndpoint, transport: http.DefaultTransport,
		batchSize: analytics.DefaultBatchSize, interval: analytics.DefaultInterval,
		queueSize: defaultQueueSize, log: slog.Default(),
	}
	for _, opt := range opts {
		opt(&cfg)
	}
	endpoint, err := cfg.check()
	if err != nil {
		return nil, err
	}
	cfg.endpoint = endpoint
	ctx, abort := context.WithCancelCause(context.Background())
	t := &Tracker{
		cfg:      cfg,
		writeKey: writeKey,
		done:     make(chan struct{}),
		ctx:      ctx,
		abort:    abort,
		attempts: attempts{failing: make(map[string]*failingBatch), byMessage: make(map[string]*failingBatch)},
	}
	if t.client, err = t.newClient(); err != nil {
		abort(err)
		return nil, err
	}
	return t, nil
}

// newClient returns a new analytics-go client of t's configuration.
func (t *Tracker) newClient() (analytics.Client, error) {
	c, err := analytics.NewWithConfig(t.writeKey, analytics.Config{
		Endpoint:   t.cfg.endpoint,
		Interval:   t.cfg.interval,
		Transport:  &transport{base: t.cfg.transport, t: t},
		Logger:     logger{t.cfg.log},
		Callback:   callback{t},
		BatchSize:  t.cfg.batchSize,
		RetryAfter: t.cfg.retryAfter,
	})
	if err != nil { // the options were checked: cannot happen
		return nil, fmt.Errorf("segment: %w", err)
	}
	return c, nil
}

// Track queues e to be sent and returns at once: it hands e to
// analytics-go's goroutine and does no I/O; ctx is not used. When the
// tracker holds WithQueueSize events it drops e and returns ErrQueueFull;
// after Close it returns ErrTrackerClosed. An event Segment would refuse
// (no user ID or name, strings that are not valid UTF-8, a year outside
// 1–9999) is refused with an error wrapping experiments.ErrInvalid. A
// zero e.Time is the time of the call. Refused events count as Dropped.
// An event whose message is over 32 KB is accepted, then given up by
// analytics-go (and counted as Dropped).
func (t *Tracker) Track(_ context.Context, e experiments.Event) error {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	msg, err := trackOf(e)
	if err != nil {
		t.counts.Drop()
		return err
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.closed {
		t.counts.Drop()
		return ErrTrackerClosed
	}
	// Before Enqueue: analytics-go may be done with msg first.
	if t.counts.Queued.Add(1) > int64(t.cfg.queueSize) {
		t.counts.Unqueue()
		return ErrQueueFull
	}
	if err := t.client.Enqueue(msg); err != nil { // msg is valid and client open: should not happen
		t.counts.Unqueue()
		return fmt.Errorf("segment: event %q: %w", e.Name, err)
	}
	return nil
}

// Flush sends the events queued before the call and waits until they are
// sent or given up. analytics-go has no flush: Flush closes the client
// that holds them (which posts its last batch and waits for its
// requests) and goes on with a new one. So, as at Close, a batch that
// fails meanwhile is given up, not retried. Flush returns an error when
// events were given up since the last Flush that reported some (an event
// too big to send is given up as soon as it is queued, and the next
// Flush reports it), and ctx's error if ctx ends first (the
// events are still sent in the background; Close waits for them). After
// Close it returns nil at once.
func (t *Tracker) Flush(ctx context.Context) error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	next, err := t.newClient()
	if err != nil {
		t.mu.Unlock()
		return err
	}
	prev := t.client
	t.client = next
	t.closing.Add(1)
	t.mu.Unlock()

	flushed := make(chan struct{})
	go func() {
		defer t.closing.Done()
		defer close(flushed)
		_ = prev.Close() // the only error is a second Close
	}()
	select {
	case <-flushed:
	case <-ctx.Done():
		return ctx.Err()
	}
	if n, cause := t.counts.TakeLost(); n > 0 {
		return fmt.Errorf("segment: %d events not sent: %w", n, cause)
	}
	return nil
}

// Close stops accepting events (Track then returns ErrTrackerClosed),
// and closes the analytics-go client, which posts every event queued and
// waits for its requests; a batch that fails then is given up, not
// retried. If ctx ends first, Close cancels the requests in progress
// (their events count as dropped) and returns an error wrapping ctx's
// error: it does not hang on a server that does not answer. It also
// returns an error when events were given up after Close began. It is
// safe to call more than once and concurrently: every call waits for the
// end and returns the same outcome.
func (t *Tracker) Close(ctx context.Context) error {
	t.closeOnce.Do(t.stopAccepting)
	lost, cause := t.counts.AwaitClosed(ctx, t.ctx, t.abort, t.done)
	if lost == 0 {
		return nil
	}
	return fmt.Errorf("segment: closed with %d events not sent: %w", lost, cause)
}

// stopAccepting marks t closed and closes its client, and the clients
// Flush is closing, in the background; done is closed when all are.
func (t *Tracker) stopAccepting() {
	t.mu.Lock()
	t.closed = true
	t.counts.Closing()
	c := t.client
	t.closing.Add(1)
	t.mu.Unlock()
	go func() {
		defer t.closing.Done()
		_ = c.Close()
	}()
	go func() {
		t.closing.Wait()
		close(t.done)
	}()
}

// Stats returns the tracker's counters since New. It is cheap: a few
// atomic loads. They are experiments.QueueStats, as sqlstore's Tracker's,
// so one metrics exporter (prommetrics) reads both.
//
// Every call to Track ends up in exactly one of Queued, Written and
// Dropped: when the tracker is idle, their sum is the number of calls.
// Queued counts the events handed to analytics-go and not yet reported
// through its analytics.Callback, waiting or in a request; Written those
// Segment accepted (a retried batch counts once), and Batches their
// requests; Dropped the events refused by Track (queue full, closed,
// invalid) and those analytics-go gave up; FailedBatches the batches
// given up after one attempt or more; Retries the attempts at a batch
// after a failed one. The fields are read one by one, so under load they
// may be off by the events in flight.
func (t *Tracker) Stats() experiments.QueueStats { return t.counts.Stats() }
