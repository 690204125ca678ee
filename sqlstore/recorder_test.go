package sqlstore_test

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/internal/syncbuf"
	"github.com/abkit/experiments/sqlstore"
	"github.com/lib/pq"
)

var recordedFlag = experiments.NewFlag("sqlstore_test", "recorded", experiments.WithBuckets(3))

var signupGoal = experiments.Goal{Name: "signup"}

func TestRecorderKeepsTheEarliestExposure(t *testing.T) {
	ctx := context.Background()
	// Only Flush hands a batch over: each step is one batch.
	s := openStore(t, sqlstore.WithRecorder(sqlstore.WithFlushInterval(time.Hour)))
	at := func(minutes int) time.Time { return time.Date(2026, 5, 4, 12, minutes, 0, 0, time.UTC) }
	// Each exposure has dimensions of its own: those of the one kept stay.
	exposure := func(minutes, bucket int) experiments.Exposure {
		dims, err := experiments.NewDimensions(map[string]string{"browser": "b" + strconv.Itoa(10*minutes+bucket), "site": "s"})
		if err != nil {
			t.Fatal(err)
		}
		return experiments.Exposure{Flag: recordedFlag.Name(), CourseKey: "course-v1:X+Y+Z", UserID: "7", Bucket: bucket, Time: at(minutes),
			Dimensions: dims}
	}
	for _, step := range []struct {
		name   string
		record []experiments.Exposure
		want   experiments.Exposure
	}{
		{"ok, in one batch the earliest is kept, and of two at once the one recorded first",
			[]experiments.Exposure{exposure(2, 2), exposure(1, 1), exposure(1, 0)}, exposure(1, 1)},
		{"ok, a later exposure in a later batch is ignored", []experiments.Exposure{exposure(3, 2)}, exposure(1, 1)},
		{"ok, an earlier exposure written later (a retry, another process) replaces the one kept",
			[]experiments.Exposure{exposure(0, 0)}, exposure(0, 0)},
	} {
		for _, e := range step.record {
			if err := s.RecordExposure(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		got := s.Exposures()
		if len(got) != 1 || got[0] != step.want {
			t.Errorf("%s: exposures %+v, want only %+v", step.name, got, step.want)
		}
	}
	if st := s.RecorderStats().Exposures; st.Written != 5 || st.Batches != 3 || st.Queued != 0 {
		t.Errorf("%+v, want 5 exposures written in 3 batches", st)
	}
}

func TestRecorderRefusesRecordsTheTableCannotHold(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	good := experiments.Exposure{Flag: recordedFlag.Name(), UserID: "7", Time: time.Now()}
	for _, tc := range []struct {
		name string
		edit func(*experiments.Exposure)
	}{
		{"nok, exposure: NUL byte in the course key", func(e *experiments.Exposure) { e.CourseKey = "course-v1:X+Y\x00+Z" }},
		{"nok, exposure: user ID not UTF-8", func(e *experiments.Exposure) { e.UserID = "\xff\xfe" }},
		{"nok, exposure: flag of 256 bytes", func(e *experiments.Exposure) { e.Flag = strings.Repeat("f", 256) }},
		{"nok, exposure: bucket beyond a 32-bit integer", func(e *experiments.Exposure) { e.Bucket = math.MaxInt32 + 1 }},
		{"nok, exposure: year beyond 9999", func(e *experiments.Exposure) { e.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := good
			tc.edit(&e)
			if err := s.RecordExposure(ctx, e); !errors.Is(err, experiments.ErrInvalid) {
				t.Errorf("RecordExposure: %v, want ErrInvalid", err)
			}
		})
	}
	goodC := experiments.Conversion{Goal: "signup", UserID: "7", Time: time.Now()}
	for _, tc := range []struct {
		name string
		edit func(*experiments.Conversion)
	}{
		{"nok, conversion: NUL byte in the goal", func(c *experiments.Conversion) { c.Goal = "sign\x00up" }},
		{"nok, conversion: user ID not UTF-8", func(c *experiments.Conversion) { c.UserID = "\xc3" }},
		{"nok, conversion: value NaN", func(c *experiments.Conversion) { c.Value = math.NaN() }},
		{"nok, conversion: value +Inf", func(c *experiments.Conversion) { c.Value = math.Inf(1) }},
		{"nok, conversion: year 0", func(c *experiments.Conversion) { c.Time = time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := goodC
			tc.edit(&c)
			if err := s.RecordConversion(ctx, c); !errors.Is(err, experiments.ErrInvalid) {
				t.Errorf("RecordConversion: %v, want ErrInvalid", err)
			}
		})
	}
	if err := errors.Join(s.RecordExposure(ctx, good), s.RecordConversion(ctx, goodC), s.Flush(ctx)); err != nil {
		t.Fatal(err)
	}
	st := s.RecorderStats()
	if st.Exposures.Written != 1 || st.Exposures.Dropped != 5 || st.Conversions.Written != 1 || st.Conversions.Dropped != 5 {
		t.Errorf("%+v, want the valid exposure and conversion written, the 5 others of each dropped", st)
	}
	if e, c := s.ExposureStats(), s.ConversionStats(); e != st.Exposures || c != st.Conversions {
		t.Errorf("ExposureStats %+v, ConversionStats %+v, want those of RecorderStats %+v", e, c, st)
	}
}

func TestRecorderStampsRecordsWithoutATime(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	before := time.Now().Truncate(time.Microsecond)
	err := errors.Join(
		s.RecordExposure(ctx, experiments.Exposure{Flag: recordedFlag.Name(), UserID: "7"}),
		s.RecordConversion(ctx, experiments.Conversion{Goal: "signup", UserID: "7"}),
		s.Flush(ctx))
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	es, cs := s.Exposures(), s.Conversions()
	if len(es) != 1 || es[0].Time.Before(before) || es[0].Time.After(after) {
		t.Errorf("exposures %+v, want one stamped between %v and %v", es, before, after)
	}
	if len(cs) != 1 || cs[0].Time.Before(before) || cs[0].Time.After(after) {
		t.Errorf("conversions %+v, want one stamped between %v and %v", cs, before, after)
	}
}

// The requests of an app go on while the database is down or hung: the
// decisions and conversions do not wait for it, and what they recorded is
// written once it is back.
func TestRecorderDoesNotBlockWhileTheDatabaseIsAway(t *testing.T) {
	u, err := url.Parse(testDSN())
	if err != nil || u.Host == "" {
		t.Skipf("the test DSN %q is not a postgres:// URL with a host: cannot put a proxy in front of it", testDSN())
	}
	for _, tc := range []struct {
		name string
		away func(*tcpProxy)
	}{
		{"ok, the database is down", (*tcpProxy).Cut},
		{"ok, the database hangs", (*tcpProxy).Stall},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			proxy := startProxy(t, u.Host)
			s := openStoreAt(t, proxy.DSN(testDSN()), sqlstore.WithRecorder(
				sqlstore.WithFlushInterval(10*time.Millisecond), sqlstore.WithBatchSize(20),
				sqlstore.WithWriteTimeout(200*time.Millisecond), sqlstore.WithRetry(math.MaxInt, 10*time.Millisecond)))
			if err := errors.Join(s.SetFlag(ctx, recordedFlag.Name(), experiments.On()), s.SetGoal(ctx, signupGoal)); err != nil {
				t.Fatal(err)
			}
			x := experiments.New(experiments.Config{Store: s, Recorder: s, Logger: slog.New(slog.DiscardHandler)})

			tc.away(proxy)
			defer proxy.Restore()
			const users = 50
			for i := range users {
				start := time.Now()
				rctx := x.NewContext(ctx, experiments.User{ID: strconv.Itoa(i)})
				d := recordedFlag.Decide(rctx, "")
				err := experiments.ConvertValue(rctx, signupGoal.Name, float64(i))
				if took := time.Since(start); took > outageFast {
					t.Errorf("user %d: a decision and a conversion took %v with the database away, want under %v", i, took, outageFast)
				}
				if d.Err != nil || d.Reason != experiments.ReasonHashed || err != nil {
					t.Fatalf("user %d: decision %+v, conversion error %v; want hashed without errors", i, d, err)
				}
			}
			st := waitRecorder(t, s, "failed attempts at writing",
				func(st sqlstore.RecorderStats) bool { return st.Exposures.Retries > 0 && st.Conversions.Retries > 0 })
			if st.Exposures.Queued != users || st.Conversions.Queued != users || st.Exposures.Written+st.Conversions.Written != 0 {
				t.Errorf("with the database away: %+v, want %d of each queued, none written", st, users)
			}

			proxy.Restore()
			fctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			if err := s.Flush(fctx); err != nil {
				t.Fatalf("Flush once the database is back: %v", err)
			}
			st = s.RecorderStats()
			if st.Exposures.Written != users || st.Conversions.Written != users || st.Exposures.Dropped+st.Conversions.Dropped != 0 {
				t.Errorf("once the database is back: %+v, want %d of each written, none dropped", st, users)
			}
			if e, c := countRecords(t, s.Schema()); e != users || c != users {
				t.Errorf("%d exposures and %d conversions in the tables, want %d of each", e, c, users)
			}
		})
	}
}

func TestRecorderDropsWhenTheQueueIsFull(t *testing.T) {
	ctx := context.Background()
	f := newFaultyStore(t, sqlstore.WithRecorder(sqlstore.WithQueueSize(4), sqlstore.WithBatchSize(2), sqlstore.WithWriters(1),
		sqlstore.WithRetry(3, time.Millisecond), sqlstore.WithWriteTimeout(time.Hour)))
	if err := errors.Join(f.SetFlag(ctx, recordedFlag.Name(), experiments.On()), f.SetGoal(ctx, signupGoal)); err != nil {
		t.Fatal(err)
	}
	f.set(faultHang)
	// Each queue: the writer hangs on a batch of 2, the next batch of 2
	// waits for it, and 4 records fill the queue.
	const capacity = 8
	refused := fillQueue(t, "exposures", capacity, func() int { return f.RecorderStats().Exposures.Queued }, func(i int) error {
		return f.RecordExposure(ctx, experiments.Exposure{Flag: recordedFlag.Name(), UserID: strconv.Itoa(i), Time: time.Now()})
	})
	refused += fillQueue(t, "conversions", capacity, func() int { return f.RecorderStats().Conversions.Queued }, func(i int) error {
		return f.RecordConversion(ctx, experiments.Conversion{Goal: signupGoal.Name, UserID: strconv.Itoa(i), Time: time.Now()})
	})
	f.waitHung(t)

	x := experiments.New(experiments.Config{Store: f.Store, Recorder: f.Store, Logger: slog.New(slog.DiscardHandler)})
	rctx := x.NewContext(ctx, experiments.User{ID: "late"})
	d := recordedFlag.Decide(rctx, "")
	if !errors.Is(d.Err, sqlstore.ErrQueueFull) || !errors.Is(d.Err, experiments.ErrRecorder) || d.Reason != experiments.ReasonHashed {
		t.Errorf("decision %+v, want the hashed bucket, Err wrapping ErrRecorder and ErrQueueFull", d)
	}
	if err := experiments.Convert(rctx, signupGoal.Name); !errors.Is(err, sqlstore.ErrQueueFull) {
		t.Errorf("Convert = %v, want an error wrapping ErrQueueFull", err)
	}
	st := f.RecorderStats()
	if got := st.Exposures.Dropped + st.Conversions.Dropped; got != refused+2 {
		t.Errorf("%+v: %d dropped, want %d", st, got, refused+2)
	}

	f.set(faultNone) // the hung attempts fail; the retries succeed
	if err := f.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := f.RecorderStats(); st.Exposures.Written != capacity || st.Conversions.Written != capacity || st.Exposures.Queued+st.Conversions.Queued != 0 {
		t.Errorf("after Flush: %+v, want the %d queued of each written", st, capacity)
	}
	if e, c := countRecords(t, f.Schema()); e != capacity || c != capacity {
		t.Errorf("%d exposures and %d conversions in the tables, want %d of each", e, c, capacity)
	}
}

func TestRecorderFlushWritesWhatWasRecordedBeforeIt(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, sqlstore.WithRecorder(sqlstore.WithQueueSize(200), sqlstore.WithBatchSize(50), sqlstore.WithFlushInterval(time.Hour)))
	const goroutines, flushes = 4, 20
	var calls, accepted atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			full := time.NewTicker(time.Millisecond) // a full queue: wait a little, not spin
			defer full.Stop()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				calls.Add(1)
				err := s.RecordConversion(ctx, experiments.Conversion{Goal: signupGoal.Name, UserID: strconv.Itoa(g), Value: float64(i), Time: time.Now()})
				switch {
				case err == nil:
					accepted.Add(1)
				case !errors.Is(err, sqlstore.ErrQueueFull):
					t.Errorf("RecordConversion: %v", err)
					return
				default:
					select {
					case <-stop:
						return
					case <-full.C:
					}
				}
			}
		})
	}
	for i := range flushes {
		before := accepted.Load()
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if st := s.RecorderStats().Conversions; st.Written < before {
			t.Errorf("flush %d: %+v: %d written, want at least the %d recorded before Flush", i, st, st.Written, before)
		}
	}
	close(stop)
	wg.Wait()
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	st := s.RecorderStats().Conversions
	if st.Written != accepted.Load() || st.Queued != 0 || st.Written+st.Dropped != calls.Load() {
		t.Errorf("%+v, want the %d accepted of %d calls written, the others dropped", st, accepted.Load(), calls.Load())
	}
	if n := uint64(len(s.Conversions())); n != st.Written {
		t.Errorf("%d rows, want %d", n, st.Written)
	}
}

func TestRecorderRetryOfACommittedBatchCountsOnce(t *testing.T) {
	ctx := context.Background()
	f := newFaultyStore(t, sqlstore.WithRecorder(sqlstore.WithBatchSize(5), sqlstore.WithRetry(3, time.Millisecond)))
	f.set(faultLoseReply) // the first INSERT commits, but its reply is lost
	for i := range 5 {
		if err := f.RecordConversion(ctx, experiments.Conversion{Goal: signupGoal.Name, UserID: "7", Value: float64(i), Time: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.committed.Load(); got != 2 {
		t.Fatalf("the batch was committed %d times, want 2 (the lost reply, then the retry)", got)
	}
	if st := f.RecorderStats().Conversions; st.Retries != 1 || st.Batches != 1 || st.Written != 5 {
		t.Errorf("%+v, want 5 conversions written in one batch after one retry", st)
	}
	if n := len(f.Conversions()); n != 5 {
		t.Errorf("%d conversions, want 5: the retry duplicated them", n)
	}
}

func TestCloseWritesWhatTheRecorderQueued(t *testing.T) {
	ctx := context.Background()
	schema := newSchema(t)
	s := openStoreIn(t, schema, sqlstore.WithRecorder(sqlstore.WithFlushInterval(time.Hour)))
	for i := range 10 {
		err := errors.Join(
			s.RecordExposure(ctx, experiments.Exposure{Flag: recordedFlag.Name(), UserID: strconv.Itoa(i), Time: time.Now()}),
			s.RecordConversion(ctx, experiments.Conversion{Goal: signupGoal.Name, UserID: strconv.Itoa(i), Time: time.Now()}))
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if e, c := countRecords(t, schema); e != 10 || c != 10 {
		t.Errorf("%d exposures and %d conversions written by Close, want 10 of each", e, c)
	}
	if err := s.RecordConversion(ctx, experiments.Conversion{Goal: signupGoal.Name, UserID: "late"}); !errors.Is(err, sqlstore.ErrRecorderClosed) {
		t.Errorf("RecordConversion after Close = %v, want ErrRecorderClosed", err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Errorf("Flush after Close = %v, want nil", err)
	}
	if st := s.RecorderStats(); st.Conversions.Dropped != 1 || st.Conversions.Written != 10 || st.Exposures.Written != 10 {
		t.Errorf("%+v, want 10 of each written and the late conversion dropped", st)
	}
}

func TestInvalidRecorderOptionsFailOpen(t *testing.T) {
	_, err := sqlstore.OpenWith(context.Background(), testDSN(), sqlstore.WithSchema(newSchema(t)),
		sqlstore.WithRecorder(sqlstore.WithQueueSize(0)))
	if err == nil || !strings.Contains(err.Error(), "recorder: queue size 0") {
		t.Errorf("OpenWith(WithRecorder(WithQueueSize(0))) = %v, want an error naming the recorder's queue size", err)
	}
}

func TestBadGoalRowsAreLeftOutAndLogged(t *testing.T) {
	ctx := context.Background()
	logs := new(syncbuf.Buffer)
	s := openStore(t, sqlstore.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	if err := s.SetGoal(ctx, signupGoal); err != nil {
		t.Fatal(err)
	}
	q := pq.QuoteIdentifier(s.Schema()) + "."
	for name, goal := range map[string]string{
		"unknown_field": `{"name": "unknown_field", "colour": "red"}`,
		"renamed":       `{"name": "other"}`,
		"bad_value":     `{"name": "bad_value", "value": 7}`,
		"not_an_object": `[1, 2]`,
	} {
		s.DB().MustExec("INSERT INTO "+q+"experiments_goals (name, goal) VALUES ($1, $2)", name, goal)
	}
	s.DB().MustExec("UPDATE " + q + "experiments_version SET version = version + 1")
	if err := s.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	snap, _ := s.Snapshot(ctx)
	if got := snap.Data().Goals; len(got) != 1 || got[signupGoal.Name].Name != signupGoal.Name {
		t.Errorf("goals %+v, want only %s", got, signupGoal.Name)
	}
	if n := logCount(logs, "goal is bad"); n != 4 {
		t.Errorf("%d bad goals logged, want 4:\n%s", n, logs)
	}
	x := experiments.New(experiments.Config{Store: s, Recorder: s})
	if err := experiments.Convert(x.NewContext(ctx, experiments.User{ID: "7"}), "renamed"); !errors.Is(err, experiments.ErrUnknownGoal) {
		t.Errorf("Convert of a bad goal = %v, want ErrUnknownGoal", err)
	}
}

// countRecords counts the rows of schema's exposures and conversions.
func countRecords(t *testing.T, schema string) (exposures, conversions int) {
	t.Helper()
	q := pq.QuoteIdentifier(schema) + "."
	err := testDB(t).QueryRow("SELECT (SELECT count(*) FROM "+q+"experiments_exposures), (SELECT count(*) FROM "+
		q+"experiments_conversions)").Scan(&exposures, &conversions)
	if err != nil {
		t.Fatal(err)
	}
	return exposures, conversions
}

// waitRecorder waits, at most 10 s, for the store's recorder counters to
// satisfy cond, and returns them.
func waitRecorder(t *testing.T, s *sqlstore.Store, what string, cond func(sqlstore.RecorderStats) bool) sqlstore.RecorderStats {
	t.Helper()
	return waitStats(t, what, s.RecorderStats, cond)
}

// Recording is on the request path: it must not allocate. AllocsPerRun
// counts the allocations of every goroutine: the batches are large
// enough that none is written meanwhile, and the store does not poll.
func TestRecordingAllocatesNothing(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, sqlstore.WithPollInterval(time.Hour), sqlstore.WithRecorder(
		sqlstore.WithQueueSize(10_000), sqlstore.WithBatchSize(10_000), sqlstore.WithFlushInterval(time.Hour)))
	e := experiments.Exposure{Flag: recordedFlag.Name(), CourseKey: "course-v1:X+Y+Z", UserID: "1234567", Bucket: 1, Time: time.Now()}
	c := experiments.Conversion{Goal: signupGoal.Name, UserID: "1234567", Value: 9.99, Time: time.Now()}
	if n := testing.AllocsPerRun(1000, func() { s.RecordExposure(ctx, e) }); n != 0 {
		t.Errorf("RecordExposure: %v allocations, want 0", n)
	}
	if n := testing.AllocsPerRun(1000, func() { s.RecordConversion(ctx, c) }); n != 0 {
		t.Errorf("RecordConversion: %v allocations, want 0", n)
	}
}
