package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/abkit/experiments"
	"github.com/lib/pq"
)

var _ experiments.Recorder = (*Store)(nil)

// ErrRecorderClosed is returned by Store.RecordExposure and
// Store.RecordConversion after Close: the record is dropped and counted
// in RecorderStats.
var ErrRecorderClosed = errors.New("sqlstore: store is closed; record dropped")

// WithRecorder configures the store's recorder: the two queues, one for
// exposures and one for conversions, that RecordExposure and
// RecordConversion fill and that are written in batches in the
// background. Each queue takes the options, with the meaning and
// defaults they have for NewTracker (so 10,000 records a queue, batches
// of 500, written at least every second by 2 writers). An invalid option
// makes OpenWith and New fail. Optional. Default: NewTracker's defaults.
func WithRecorder(opts ...TrackerOption) Option {
	return func(o *options) { o.recorder = append(o.recorder, opts...) }
}

// recorder is the store's queues of exposures and conversions.
type recorder struct {
	exposures   *batcher[experiments.Exposure]
	conversions *batcher[experiments.Conversion]
}

func (s *Store) startRecorder(cfg trackerConfig) {
	s.rec = recorder{
		exposures: newBatcher(s.db, insertExposuresQuery(s.t.exposures), exposureArgs, cfg,
			"recorder", "exposures", ErrRecorderClosed),
		conversions: newBatcher(s.db, insertConversionsQuery(s.t.conversions), conversionArgs, cfg,
			"recorder", "conversions", ErrRecorderClosed),
	}
}

// RecordExposure queues e to be written into experiments_exposures and
// returns at once; the table keeps one exposure per user and experiment
// (flag and course key), the earliest. It never blocks: when the queue is
// full it drops e and returns ErrQueueFull; after Close it returns
// ErrRecorderClosed. An exposure the table cannot hold (strings that are
// not UTF-8, hold a NUL byte or are longer than 255 bytes, a bucket
// beyond a 32-bit integer, a year outside 1–9999) is refused with an
// error wrapping experiments.ErrInvalid. e.Dimensions go with it, as a
// JSON object in the dimensions column (those of the exposure kept). A
// zero e.Time is the time of the call; times are truncated to the
// microsecond. ctx is not used.
func (s *Store) RecordExposure(_ context.Context, e experiments.Exposure) error {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	err := checkRow("exposure", []textField{{"flag", e.Flag}, {"course key", e.CourseKey}, {"user ID", e.UserID}}, e.Bucket, e.Time)
	if err != nil {
		s.rec.exposures.refuse()
		return fmt.Errorf("sqlstore: recorder: %w", err)
	}
	return s.rec.exposures.enqueue(e)
}

// RecordConversion queues c to be written into experiments_conversions
// and returns at once, like RecordExposure; every conversion is kept,
// each with its own random UUID so that a retried batch counts once. A
// value that is not finite is refused with an error wrapping
// experiments.ErrInvalid.
func (s *Store) RecordConversion(_ context.Context, c experiments.Conversion) error {
	if c.Time.IsZero() {
		c.Time = time.Now()
	}
	err := checkRow("conversion", []textField{{"goal", c.Goal}, {"user ID", c.UserID}}, 0, c.Time)
	if err == nil {
		err = experiments.ValidateConversionValue(c.Value)
	}
	if err != nil {
		s.rec.conversions.refuse()
		return fmt.Errorf("sqlstore: recorder: %w", err)
	}
	return s.rec.conversions.enqueue(c)
}

// RecorderStats are the counters of the store's recorder queues, each
// with the meaning of a Tracker's.
type RecorderStats struct {
	Exposures   TrackerStats
	Conversions TrackerStats
}

// RecorderStats returns the recorder's counters. It is cheap.
func (s *Store) RecorderStats() RecorderStats {
	return RecorderStats{Exposures: s.rec.exposures.stats(), Conversions: s.rec.conversions.stats()}
}

// ExposureStats returns the counters of the exposures' queue, as
// RecorderStats().Exposures. With ConversionStats, it lets code that
// knows only experiments.QueueStats (prommetrics.Options.Recorder) read
// the recorder without importing sqlstore. It is cheap.
func (s *Store) ExposureStats() experiments.QueueStats { return s.rec.exposures.stats() }

// ConversionStats returns the counters of the conversions' queue, as
// RecorderStats().Conversions. It is cheap.
func (s *Store) ConversionStats() experiments.QueueStats { return s.rec.conversions.stats() }

// Flush waits until the exposures and conversions recorded before the
// call are written (or given up after their last attempt, which makes
// Flush return an error, as do rows given up since the last Flush that
// reported some), without waiting for the flush interval. It
// returns ctx's error if ctx ends first; after Close it returns nil at
// once. Trackers are not flushed.
func (s *Store) Flush(ctx context.Context) error {
	return errors.Join(s.rec.exposures.flush(ctx), s.rec.conversions.flush(ctx))
}

// closeRecorder writes what the recorder queued, until ctx ends.
func (s *Store) closeRecorder(ctx context.Context) error {
	return errors.Join(s.rec.exposures.close(ctx), s.rec.conversions.close(ctx))
}

// Exposures returns every exposure in the store's table, oldest first, in
// UTC. It has experiments.MemStore's signature, for storetest's
// conformance tests; it is for tests and small tables: it reads the whole
// table, within 10 s, and panics if that fails, having no error to
// return. Records still queued are not in it (Flush first). Results query
// the table with SQL.
func (s *Store) Exposures() []experiments.Exposure {
	type row struct {
		experiments.Exposure
		Dims []byte `db:"dims"`
	}
	rows := readAll(s, "exposures", "SELECT flag, course_key AS coursekey, user_id AS userid, bucket, time, dimensions AS dims FROM "+s.t.exposures+
		" ORDER BY time, flag, course_key, user_id", func(r *row) *time.Time { return &r.Time })
	out := make([]experiments.Exposure, len(rows))
	for i, r := range rows {
		out[i] = r.Exposure
		if err := out[i].Dimensions.UnmarshalJSON(r.Dims); err != nil {
			panic(fmt.Sprintf("sqlstore: reading exposures: dimensions %s: %v", r.Dims, err))
		}
	}
	return out
}

// Conversions returns every conversion in the store's table, oldest
// first, in UTC; see Exposures.
func (s *Store) Conversions() []experiments.Conversion {
	return readAll(s, "conversions", "SELECT goal, user_id AS userid, value, time FROM "+s.t.conversions+
		" ORDER BY time, goal, user_id, id", func(c *experiments.Conversion) *time.Time { return &c.Time })
}

// readAll returns the rows of query (sqlx maps the columns to the
// lowercased field names) with their time in UTC, panicking if the query
// fails.
func readAll[T any](s *Store, what, query string, timeOf func(*T) *time.Time) []T {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []T
	if err := s.db.SelectContext(ctx, &out, query); err != nil {
		panic(fmt.Sprintf("sqlstore: reading %s: %v", what, err))
	}
	for i := range out {
		t := timeOf(&out[i])
		*t = t.UTC()
	}
	return out
}

// insertExposuresQuery inserts a batch of exposures in one statement,
// like insertEventsQuery. Of the exposures of one user and experiment,
// the earliest is kept: in the batch (DISTINCT ON, ties going to the one
// recorded first) and against the table, whatever the order in which
// writers, retries and other processes commit. DISTINCT ON also sorts
// the rows by key, so concurrent batches lock rows in the same order.
func insertExposuresQuery(table string) string {
	return "INSERT INTO " + table + " AS x (flag, course_key, user_id, bucket, time, dimensions)" +
		" SELECT DISTINCT ON (flag, course_key, user_id) flag, course_key, user_id, bucket, time, dimensions::jsonb" +
		" FROM unnest($1::text[], $2::text[], $3::text[], $4::integer[], $5::timestamptz[], $6::text[])" +
		" WITH ORDINALITY AS u (flag, course_key, user_id, bucket, time, dimensions, n)" +
		" ORDER BY flag, course_key, user_id, time, n" +
		" ON CONFLICT (flag, course_key, user_id) DO UPDATE SET bucket = excluded.bucket, time = excluded.time," +
		" dimensions = excluded.dimensions WHERE excluded.time < x.time"
}

// exposureArgs returns the arguments of insertExposuresQuery.
func exposureArgs(exposures []experiments.Exposure) []any {
	n := len(exposures)
	flags, courses, users, times := make(pq.StringArray, n), make(pq.StringArray, n), make(pq.StringArray, n), make(pq.StringArray, n)
	dims := make(pq.StringArray, n)
	buckets := make(pq.Int64Array, n)
	for i := range exposures {
		e := &exposures[i]
		flags[i], courses[i], users[i], buckets[i], times[i] = e.Flag, e.CourseKey, e.UserID, int64(e.Bucket), pgTime(e.Time)
		j, _ := e.Dimensions.MarshalJSON() // a JSON object of valid strings: cannot fail
		dims[i] = string(j)
	}
	return []any{flags, courses, users, buckets, times, dims}
}

// insertConversionsQuery inserts a batch of conversions in one statement,
// like insertEventsQuery.
func insertConversionsQuery(table string) string {
	return "INSERT INTO " + table + " (id, goal, user_id, value, time)" +
		" SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::double precision[], $5::timestamptz[])" +
		" ON CONFLICT (id) DO NOTHING"
}

// conversionArgs gives each conversion a new UUID and returns the
// arguments of insertConversionsQuery.
func conversionArgs(conversions []experiments.Conversion) []any {
	n := len(conversions)
	goals, users, times := make(pq.StringArray, n), make(pq.StringArray, n), make(pq.StringArray, n)
	values := make(pq.Float64Array, n)
	for i := range conversions {
		c := &conversions[i]
		goals[i], users[i], values[i], times[i] = c.Goal, c.UserID, c.Value, pgTime(c.Time)
	}
	return []any{newUUIDs(n), goals, users, values, times}
}
