// Package sqlstore keeps experiments' flags, overrides, experiment values,
// experiment meta, goals, enrollments, events, exposures and conversions
// in PostgreSQL, with sqlx and lib/pq. Every write is audited: History
// reads an experiment's changes back.
//
// Decisions never wait for the database: a Store serves them from an
// in-memory snapshot, reloaded when another process (or this one) changes
// something, announced by LISTEN/NOTIFY, and checked on a timer as a
// fallback. When the database goes away, the last snapshot keeps serving,
// and the store catches up when it comes back.
//
//	store, err := sqlstore.Open(ctx, "postgres://app@db/app?sslmode=disable")
//	if err != nil { … }
//	defer store.Close()
//	x := experiments.New(experiments.Config{Store: store, Recorder: store})
//
// Exposures and conversions (the Store is an experiments.Recorder) are
// queued in memory and written in batches in the background, like a
// Tracker's events: recording never waits for the database.
//
// Sticky buckets (the Store is an experiments.Assignments) are the
// exception: the first decision in a request of a flag made
// experiments.WithStickyBuckets reads the user's row of
// experiments_assignments, and a first bucketing writes it, each within
// WithAssignmentTimeout; a failure buckets as without stickiness.
package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/abkit/experiments"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

var (
	_ experiments.Store       = (*Store)(nil)
	_ experiments.Enrollments = (*Store)(nil)
	_ experiments.Auditor     = (*Store)(nil)
	_ experiments.Writer      = (*Store)(nil)
)

// Store is a PostgreSQL experiments.Store, experiments.Enrollments,
// experiments.Assignments, experiments.Recorder and experiments.Auditor
// with the write methods of experiments.MemStore. It is safe for
// concurrent use.
type Store struct {
	db      *sqlx.DB
	ownsDB  bool
	schema  string
	t       tables
	channel string // NOTIFY channel of the schema
	log     *slog.Logger
	poll    time.Duration

	enrollments *Enrollments
	assignments assignments // sticky buckets (assignments.go)

	snap      atomic.Pointer[experiments.Snapshot]
	version   atomic.Int64  // of snap
	loaded    atomic.Int64  // Unix nanoseconds of the start of the last reload that succeeded
	reloading chan struct{} // holds a token while a reload runs: one at a time
	down      atomic.Bool   // the last reload failed (and that was logged)

	listenerDown atomic.Bool // the LISTEN connection is lost (and that was logged)

	rec recorder // exposures and conversions, written in the background

	trackersMu sync.Mutex
	trackers   []*Tracker // closed by Close, before the pool
	closed     bool       // Close began: new trackers start closed

	listener *pq.Listener
	stop     context.CancelFunc
	done     chan struct{}
	close    sync.Once
}

// Option configures OpenWith and New.
type Option func(*options)

type options struct {
	schema        string
	logger        *slog.Logger
	poll          time.Duration
	listenDSN     string
	enrollTimeout time.Duration
	assignTimeout time.Duration
	recorder      []TrackerOption
	migrate       bool
	addr          string // host:port of the DSN, for errors; "" with New
}

// WithSchema puts the store's tables in schema, created if missing and
// the store migrates (OpenWith only; New takes the schema as an
// argument). Optional. Default: "public".
func WithSchema(schema string) Option { return func(o *options) { o.schema = schema } }

// WithLogger sets where failures to reach the database are logged (once
// per outage) and recoveries announced. Optional. Default: slog.Default().
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithPollInterval sets how often the store checks the database for
// changes it was not notified of (missed notifications, a store opened
// with New without WithListenDSN) and retries after an outage.
// Optional. Default: 5 s.
func WithPollInterval(d time.Duration) Option { return func(o *options) { o.poll = d } }

// WithListenDSN gives New a connection string for its LISTEN connection,
// so that changes arrive within milliseconds rather than within the poll
// interval. OpenWith listens with its own DSN. Optional. Default: none.
func WithListenDSN(dsn string) Option { return func(o *options) { o.listenDSN = dsn } }

// WithMigrate says whether opening the store may migrate its tables when
// the schema is behind SchemaVersion (or has no store yet). With false,
// such a schema fails Open, OpenWith and New with an error wrapping
// ErrSchemaBehind that names the schema and both versions, and nothing
// is written: for roles that may only read and write the store's rows,
// with the schema migrated beforehand (Migrate, MigrationSQL, or
// "experiments migrate"). Either way a schema already at SchemaVersion
// is only read, and one newer than it is refused (ErrSchemaAhead).
// Optional. Default: true.
func WithMigrate(on bool) Option { return func(o *options) { o.migrate = on } }

// ErrConnect is wrapped by the errors of Open, OpenWith and New when the
// database cannot be reached or refuses the connection; the error names
// the host and port of the DSN and wraps the driver's error too.
var ErrConnect = errors.New("sqlstore: connecting to PostgreSQL")

// WithEnrollmentTimeout bounds each enrollment lookup (the request's
// context may bound it further). Optional. Default: 500 ms.
func WithEnrollmentTimeout(d time.Duration) Option {
	return func(o *options) { o.enrollTimeout = d }
}

// Open connects to the PostgreSQL database at dsn, migrates the store's
// tables in schema "public" if they are behind SchemaVersion (a schema
// already migrated is only read, so a role with no more privileges than
// the store's use needs can open it; see WithMigrate), loads the
// configuration and listens for changes. Close releases the connections.
// A database that cannot be reached gives an error wrapping ErrConnect.
func Open(ctx context.Context, dsn string) (*Store, error) { return OpenWith(ctx, dsn) }

// OpenWith is Open with options.
func OpenWith(ctx context.Context, dsn string, opts ...Option) (*Store, error) {
	o := newOptions(opts)
	db, err := sqlx.Open("postgres", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: %w", err)
	}
	db.SetMaxOpenConns(20)
	db.SetMaxIdleConns(5)
	db.SetConnMaxIdleTime(5 * time.Minute)
	o.listenDSN = dsn
	o.addr = dsnAddr(dsn)
	s, err := start(ctx, db, true, o)
	if err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// New is Open for an app that owns its pool: the store uses db, puts its
// tables in schema ("" is "public"; created if missing when the store
// migrates), and does not close db. Without WithListenDSN it finds
// changes by polling.
func New(ctx context.Context, db *sqlx.DB, schema string, opts ...Option) (*Store, error) {
	o := newOptions(opts)
	if schema != "" {
		o.schema = schema
	}
	return start(ctx, db, false, o)
}

func newOptions(opts []Option) options {
	o := options{migrate: true, schema: "public", poll: 5 * time.Second, enrollTimeout: 500 * time.Millisecond, assignTimeout: 500 * time.Millisecond}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	return o
}

func start(ctx context.Context, db *sqlx.DB, ownsDB bool, o options) (*Store, error) {
	if err := checkSchema(o.schema); err != nil {
		return nil, err
	}
	if o.poll <= 0 {
		return nil, fmt.Errorf("sqlstore: poll interval %v: must be positive", o.poll)
	}
	recCfg, err := newTrackerConfig(o.logger, o.recorder)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: recorder: %w", err)
	}
	if err := db.PingContext(ctx); err != nil {
		return nil, connectError(o.addr, err)
	}
	if err := prepareSchema(ctx, db, o.schema, o.migrate); err != nil {
		return nil, err
	}
	t := newTables(o.schema)
	s := &Store{
		db: db, ownsDB: ownsDB, schema: o.schema, t: t,
		channel: channelPrefix + o.schema, log: o.logger, poll: o.poll,
		enrollments: NewEnrollments(db,
			"SELECT created FROM "+t.enrollments+" WHERE user_id = $1 AND course_key = $2",
			o.enrollTimeout),
		assignments: newAssignments(db, o.schema, o.assignTimeout),
		reloading:   make(chan struct{}, 1),
		done:        make(chan struct{}),
	}
	if err := s.reload(ctx); err != nil {
		return nil, fmt.Errorf("sqlstore: loading flags: %w", err)
	}
	if o.listenDSN != "" {
		if err := s.listen(ctx, o.listenDSN); err != nil {
			return nil, fmt.Errorf("sqlstore: listening on %q: %w", s.channel, err)
		}
	}
	s.startRecorder(recCfg)
	loop, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.stop = stop
	go s.run(loop)
	return s, nil
}

// listen starts the LISTEN connection. lib/pq's Listen waits until it is
// connected, whatever ctx says: give up at ctx's end.
func (s *Store) listen(ctx context.Context, dsn string) error {
	l := pq.NewListener(dsn, 100*time.Millisecond, 2*time.Second, s.listenerEvent)
	done := make(chan error, 1)
	go func() { done <- l.Listen(s.channel) }()
	select {
	case err := <-done:
		if err != nil {
			l.Close()
			return err
		}
		s.listener = l
		return nil
	case <-ctx.Done():
		l.Close() // Listen returns once closed
		return ctx.Err()
	}
}

// Close closes the store's trackers and its recorder (writing what they
// queued, for at most 10 s in all), stops listening and closes the pool
// if Open made it. It returns an error when queued events or records
// could not be written. It is safe to call more than once.
func (s *Store) Close() error {
	var err error
	s.close.Do(func() {
		s.trackersMu.Lock()
		trackers := s.trackers
		s.closed = true
		s.trackersMu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		for _, t := range trackers {
			err = errors.Join(err, t.Close(ctx))
		}
		err = errors.Join(err, s.closeRecorder(ctx))
		cancel()
		s.stop()
		<-s.done
		if s.listener != nil {
			err = errors.Join(err, s.listener.Close())
		}
		if s.ownsDB {
			err = errors.Join(err, s.db.Close())
		}
	})
	return err
}

// DB returns the store's pool.
func (s *Store) DB() *sqlx.DB { return s.db }

// Schema returns the schema of the store's tables.
func (s *Store) Schema() string { return s.schema }

// Snapshot returns the configuration last loaded. It does no I/O and
// never fails: while the database is away, it is the last one loaded.
func (s *Store) Snapshot(context.Context) (*experiments.Snapshot, error) { return s.snap.Load(), nil }

// Enrollment returns when userID enrolled in courseKey, from the store's
// experiments_enrollments table, within the enrollment timeout.
func (s *Store) Enrollment(ctx context.Context, userID, courseKey string) (time.Time, bool, error) {
	return s.enrollments.Enrollment(ctx, userID, courseKey)
}

// Reload loads the configuration now, if it changed since the last load.
// Stores reload by themselves; Reload is for callers that cannot wait.
func (s *Store) Reload(ctx context.Context) error { return s.reload(ctx) }

// LoadedAt returns when the configuration the store serves was last
// found current: the start of the last reload that succeeded, whether
// the configuration had changed or not. While the database is away it
// stays put, so its age is how stale decisions may be; it is at most
// about the poll interval (WithPollInterval) while all is well.
// Package prommetrics exports the age as
// experiments_store_reload_age_seconds.
func (s *Store) LoadedAt() time.Time { return time.Unix(0, s.loaded.Load()) }

// run reloads on notifications and on the poll timer until ctx is done.
func (s *Store) run(ctx context.Context) {
	defer close(s.done)
	tick := time.NewTicker(s.poll)
	defer tick.Stop()
	var notify <-chan *pq.Notification
	if s.listener != nil {
		notify = s.listener.NotificationChannel()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-notify: // nil after a reconnect: something may have been missed
			drain(notify)
		case <-tick.C:
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := s.reload(rctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		s.health(err)
	}
}

// drain drops the notifications already queued: one reload covers them.
func drain(c <-chan *pq.Notification) {
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}

// health logs the first failure of an outage and the recovery.
func (s *Store) health(err error) {
	if err != nil {
		if !s.down.Swap(true) {
			s.log.Error("sqlstore: cannot reload flags; serving the last ones loaded", "schema", s.schema, "err", err)
		}
		return
	}
	if s.down.Swap(false) {
		s.log.Info("sqlstore: database back; flags reloaded", "schema", s.schema, "version", s.version.Load())
	}
}

// listenerEvent logs the loss of the LISTEN connection once, unless the
// reloads already reported the outage. lib/pq reconnects by itself and
// then sends a nil notification, which makes run reload.
func (s *Store) listenerEvent(ev pq.ListenerEventType, err error) {
	switch ev {
	case pq.ListenerEventDisconnected, pq.ListenerEventConnectionAttemptFailed:
		if !s.listenerDown.Swap(true) && !s.down.Load() {
			s.log.Warn("sqlstore: LISTEN connection lost; retrying, and polling meanwhile", "schema", s.schema, "err", err)
		}
	case pq.ListenerEventReconnected:
		s.listenerDown.Store(false)
	}
}

// reload loads the whole configuration in one consistent read, unless its
// version is the one already loaded.
//
// It returns when ctx is done even if the database does not answer: lib/pq
// cancels a query by asking the server, and waits for the answer, so a
// hung server or a dropped network would hold the call (and, through the
// run loop, Close) until TCP gives up. The abandoned reload finishes in
// the background and keeps later ones waiting until then.
func (s *Store) reload(ctx context.Context) error {
	select {
	case s.reloading <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	done := make(chan error, 1)
	go func() {
		defer func() { <-s.reloading }()
		done <- s.reloadNow(ctx)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// reloadNow is reload, with the reload token held.
func (s *Store) reloadNow(ctx context.Context) error {
	start := time.Now()
	tx, err := s.db.BeginTxx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var version int64
	if err := tx.GetContext(ctx, &version, "SELECT version FROM "+s.t.version); err != nil {
		return err
	}
	if s.snap.Load() != nil && version == s.version.Load() {
		s.loaded.Store(start.UnixNano())
		return nil
	}
	d, err := s.load(ctx, tx)
	if err != nil {
		return err
	}
	s.snap.Store(experiments.NewSnapshot(d))
	s.version.Store(version)
	s.loaded.Store(start.UnixNano())
	return nil
}

func (s *Store) load(ctx context.Context, tx *sqlx.Tx) (experiments.SnapshotData, error) {
	d := experiments.SnapshotData{
		Flags:            make(map[string]experiments.Rule),
		CourseOverrides:  make(map[string]map[string]experiments.State),
		OrgOverrides:     make(map[string]map[string]experiments.State),
		ExperimentValues: make(map[int]map[string]string),
		Goals:            make(map[string]experiments.Goal),
		Meta:             make(map[string]experiments.ExperimentMeta),
	}
	err := loadJSON(ctx, tx, "SELECT name, rule AS value FROM "+s.t.flags, d.Flags,
		func(_ string, b []byte) (experiments.Rule, error) { return decodeRule(b) },
		func(name string, err error) {
			// A row edited by hand: that flag is off, the others work.
			s.log.Error("sqlstore: flag has a bad rule; it is off", "flag", name, "err", err)
		})
	if err != nil {
		return d, err
	}
	err = loadJSON(ctx, tx, "SELECT name, goal AS value FROM "+s.t.goals, d.Goals, decodeGoal,
		func(name string, err error) {
			s.log.Error("sqlstore: goal is bad; it is left out (Convert reports it unknown)", "goal", name, "err", err)
		})
	if err != nil {
		return d, err
	}
	err = loadJSON(ctx, tx, "SELECT flag AS name, meta AS value FROM "+s.t.meta, d.Meta, decodeMeta,
		func(flag string, err error) {
			// Meta does not change decisions: the experiment only loses
			// its notes, archived state and winner.
			s.log.Error("sqlstore: experiment meta is bad; it is left out", "flag", flag, "err", err)
		})
	if err != nil {
		return d, err
	}
	for _, o := range []struct {
		query string
		into  map[string]map[string]experiments.State
	}{
		{"SELECT flag, course_key AS key, state FROM " + s.t.courseOverrides, d.CourseOverrides},
		{"SELECT flag, org AS key, state FROM " + s.t.orgOverrides, d.OrgOverrides},
	} {
		var rows []struct {
			Flag  string            `db:"flag"`
			Key   string            `db:"key"`
			State experiments.State `db:"state"`
		}
		if err := tx.SelectContext(ctx, &rows, o.query); err != nil {
			return d, err
		}
		for _, r := range rows {
			m := o.into[r.Flag]
			if m == nil {
				m = make(map[string]experiments.State)
				o.into[r.Flag] = m
			}
			m[r.Key] = r.State
		}
	}
	var values []struct {
		ID    int    `db:"experiment_id"`
		Key   string `db:"key"`
		Value string `db:"value"`
	}
	if err := tx.SelectContext(ctx, &values, "SELECT experiment_id, key, value FROM "+s.t.values); err != nil {
		return d, err
	}
	for _, v := range values {
		m := d.ExperimentValues[v.ID]
		if m == nil {
			m = make(map[string]string)
			d.ExperimentValues[v.ID] = m
		}
		m[v.Key] = v.Value
	}
	return d, nil
}

// loadJSON reads the rows (name, value: JSON) of query into m, decoding
// each with decode. A row that does not decode is skipped and reported
// to bad.
func loadJSON[T any](ctx context.Context, tx *sqlx.Tx, query string, m map[string]T,
	decode func(name string, b []byte) (T, error), bad func(name string, err error)) error {
	var rows []struct {
		Name  string `db:"name"`
		Value []byte `db:"value"`
	}
	if err := tx.SelectContext(ctx, &rows, query); err != nil {
		return err
	}
	for _, r := range rows {
		v, err := decode(r.Name, r.Value)
		if err != nil {
			bad(r.Name, err)
			continue
		}
		m[r.Name] = v
	}
	return nil
}

// decodeStrict decodes JSON into v, refusing unknown fields.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// decodeRule reads a rule stored as JSON, refusing unknown fields and
// values a store would not accept.
func decodeRule(b []byte) (experiments.Rule, error) {
	var r experiments.Rule
	if err := decodeStrict(b, &r); err != nil {
		return r, fmt.Errorf("%w: rule %s: %w", experiments.ErrInvalid, b, err)
	}
	return r, r.Validate()
}

// decodeGoal reads the goal of the row name, stored as JSON, refusing
// unknown fields, values a store would not accept, and a goal named
// otherwise than its row.
func decodeGoal(name string, b []byte) (experiments.Goal, error) {
	var g experiments.Goal
	if err := decodeStrict(b, &g); err != nil {
		return g, fmt.Errorf("%w: goal %s: %w", experiments.ErrInvalid, b, err)
	}
	if g.Name != name {
		return g, fmt.Errorf("%w: goal %s: named %q in a row named %q", experiments.ErrInvalid, b, g.Name, name)
	}
	return g, g.Validate()
}

// decodeMeta reads the meta of the experiment whose main flag is flag,
// stored as JSON, refusing unknown fields, values a store would not
// accept, and the zero value (a store deletes the row instead).
func decodeMeta(flag string, b []byte) (experiments.ExperimentMeta, error) {
	var m experiments.ExperimentMeta
	if err := decodeStrict(b, &m); err != nil {
		return m, fmt.Errorf("%w: experiment meta %s: %w", experiments.ErrInvalid, b, err)
	}
	if m.IsZero() {
		return m, fmt.Errorf("%w: experiment meta %s: empty", experiments.ErrInvalid, b)
	}
	return m, m.Validate(flag)
}
