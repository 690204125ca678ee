package sqlstore_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/sqlstore"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

var trackedFlag = experiments.NewFlag("sqlstore_test", "tracked")

func TestTrackerWritesEveryField(t *testing.T) {
	s := openStore(t)
	tr := newTestTracker(t, s)
	at := time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.FixedZone("CET", 3600))
	want := []experiments.Event{
		{Name: experiments.EventUserBucketed, Time: at, UserID: "42", Site: "example.org",
			AppLabel: "course_experience", Experiment: "upgrade", CourseKey: "course-v1:Org+Course+Run", Bucket: 1, IsStaff: true},
		{Name: experiments.EventUserBucketed, Time: at.Add(time.Microsecond), UserID: `"quoted" \ {x,y} NULL`, Site: "",
			AppLabel: "ns", Experiment: "é", CourseKey: "", Bucket: math.MaxInt32, IsStaff: false},
		{Name: experiments.EventUserBucketed, Time: at.Add(2 * time.Microsecond), UserID: "", Site: "example.org",
			AppLabel: "ns", Experiment: "anonymous", Bucket: 1, AnonymousID: "0123456789abcdef0123456789abcdef"},
	}
	for _, e := range want {
		if err := tr.Track(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	closeTracker(t, tr)

	got := trackerRows(t, s)
	if len(got) != len(want) {
		t.Fatalf("%d rows, want %d: %+v", len(got), len(want), got)
	}
	uuidV4 := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	for i, r := range got { // ordered by time
		if !uuidV4.MatchString(r.ID) {
			t.Errorf("row %d: id %q is not a random UUID", i, r.ID)
		}
		if !r.Event.Time.Equal(want[i].Time) {
			t.Errorf("row %d: time %v, want %v", i, r.Event.Time, want[i].Time)
		}
		r.Event.Time = want[i].Time
		if r.Event != want[i] {
			t.Errorf("row %d:\n got %+v\nwant %+v", i, r.Event, want[i])
		}
	}
	if got[0].ID == got[1].ID || got[1].ID == got[2].ID {
		t.Errorf("two events have the same id %s", got[0].ID)
	}
}

func TestTrackerBatchesBySize(t *testing.T) {
	s := openStore(t)
	tr := newTestTracker(t, s, sqlstore.WithBatchSize(3), sqlstore.WithFlushInterval(time.Hour))
	trackN(t, tr, 7)
	waitTracker(t, tr, "two full batches", func(st sqlstore.TrackerStats) bool { return st.Written == 6 })
	if st := tr.Stats(); st.Batches != 2 || st.Queued != 1 {
		t.Errorf("before Close: %+v, want 2 batches written and 1 event queued", st)
	}
	closeTracker(t, tr)
	if st := tr.Stats(); st.Written != 7 || st.Batches != 3 || st.Queued != 0 {
		t.Errorf("after Close: %+v, want 7 events in 3 batches", st)
	}
	if n := len(trackerRows(t, s)); n != 7 {
		t.Errorf("%d rows, want 7", n)
	}
}

func TestTrackerFlushesOnInterval(t *testing.T) {
	s := openStore(t)
	tr := newTestTracker(t, s, sqlstore.WithBatchSize(1000), sqlstore.WithFlushInterval(10*time.Millisecond))
	trackN(t, tr, 5)
	waitTracker(t, tr, "the interval to write a batch that is not full",
		func(st sqlstore.TrackerStats) bool { return st.Written == 5 })
	if n := len(trackerRows(t, s)); n != 5 {
		t.Errorf("%d rows before Close, want 5", n)
	}
}

func TestTrackerCloseWritesEverythingQueued(t *testing.T) {
	s := openStore(t)
	tr := newTestTracker(t, s, sqlstore.WithFlushInterval(time.Hour))
	const goroutines, each = 8, 300
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() { trackN(t, tr, each) })
	}
	wg.Wait()
	closeTracker(t, tr)
	const n = goroutines * each
	st := tr.Stats()
	if st.Written != n || st.Dropped != 0 || st.Queued != 0 || st.Batches < n/500 {
		t.Errorf("after Close: %+v, want %d written in at least %d batches", st, n, n/500)
	}
	if got := len(trackerRows(t, s)); got != n {
		t.Errorf("%d rows, want %d", got, n)
	}
}

func TestTrackerDropsWhenTheQueueIsFull(t *testing.T) {
	f := newFaultyStore(t)
	tr := newTestTracker(t, f.Store, sqlstore.WithQueueSize(4), sqlstore.WithBatchSize(2), sqlstore.WithWriters(1),
		sqlstore.WithRetry(3, time.Millisecond), sqlstore.WithWriteTimeout(time.Hour))
	f.set(faultHang)
	// The writer hangs on a batch of 2, the next batch of 2 waits for it,
	// and 4 events fill the queue.
	refused := fillTracker(t, tr, 8)
	f.waitHung(t)

	const extra = 10
	errs := make(chan error, extra)
	go func() {
		for range extra {
			errs <- tr.Track(context.Background(), testEvent(0))
		}
	}()
	timeout := time.After(5 * time.Second)
	for range extra {
		select {
		case err := <-errs:
			if !errors.Is(err, sqlstore.ErrQueueFull) {
				t.Fatalf("Track on a full queue: %v, want ErrQueueFull", err)
			}
		case <-timeout:
			t.Fatal("Track blocked on a full queue")
		}
	}
	if st := tr.Stats(); st.Queued != 8 || st.Dropped != refused+extra || st.Written != 0 {
		t.Errorf("with the database away: %+v, want 8 queued, %d dropped", st, refused+extra)
	}

	f.set(faultNone) // the hung attempt fails; the retry succeeds
	closeTracker(t, tr)
	st := tr.Stats()
	if st.Written != 8 || st.Dropped != refused+extra || st.Queued != 0 || st.Retries == 0 {
		t.Errorf("after Close: %+v, want the 8 queued written after a retry", st)
	}
	if n := len(trackerRows(t, f.Store)); n != 8 {
		t.Errorf("%d rows, want 8", n)
	}
}

func TestTrackerRetriesUntilTheDatabaseIsBack(t *testing.T) {
	f := newFaultyStore(t)
	tr := newTestTracker(t, f.Store, sqlstore.WithBatchSize(3), sqlstore.WithRetry(math.MaxInt, time.Millisecond))
	f.set(faultFail)
	trackN(t, tr, 3)
	waitTracker(t, tr, "failed attempts", func(st sqlstore.TrackerStats) bool { return st.Retries >= 3 })
	f.set(faultNone)
	st := waitTracker(t, tr, "the batch to be written", func(st sqlstore.TrackerStats) bool { return st.Written == 3 })
	if st.FailedBatches != 0 || st.Dropped != 0 || st.Batches != 1 {
		t.Errorf("%+v, want one batch written, nothing dropped", st)
	}
	if n := len(trackerRows(t, f.Store)); n != 3 {
		t.Errorf("%d rows, want 3", n)
	}
}

func TestTrackerGivesUpABatchAfterItsLastAttempt(t *testing.T) {
	f := newFaultyStore(t)
	tr := newTestTracker(t, f.Store, sqlstore.WithBatchSize(2), sqlstore.WithRetry(3, time.Millisecond))
	f.set(faultFail)
	trackN(t, tr, 2)
	st := waitTracker(t, tr, "the batch to be given up", func(st sqlstore.TrackerStats) bool { return st.FailedBatches == 1 })
	if st.Retries != 2 || st.Dropped != 2 || st.Queued != 0 || st.Written != 0 {
		t.Errorf("%+v, want 3 attempts (2 retries) and the 2 events dropped", st)
	}
	f.set(faultNone)
	trackN(t, tr, 1)
	if err := tr.Close(context.Background()); err != nil {
		t.Errorf("Close: %v; the batch given up before Close is not Close's failure", err)
	}
	if st := tr.Stats(); st.Written != 1 || st.Dropped != 2 {
		t.Errorf("after Close: %+v, want 1 written, 2 dropped", st)
	}
}

func TestTrackerRetryOfACommittedBatchCountsOnce(t *testing.T) {
	f := newFaultyStore(t)
	tr := newTestTracker(t, f.Store, sqlstore.WithBatchSize(5), sqlstore.WithRetry(3, time.Millisecond))
	f.set(faultLoseReply) // the first INSERT commits, but its reply is lost
	trackN(t, tr, 5)
	st := waitTracker(t, tr, "the batch to be written or given up",
		func(st sqlstore.TrackerStats) bool { return st.Written == 5 || st.FailedBatches > 0 })
	if got := f.committed.Load(); got != 2 {
		t.Fatalf("the batch was committed %d times, want 2 (the lost reply, then the retry)", got)
	}
	if st.Retries != 1 || st.Batches != 1 || st.FailedBatches != 0 {
		t.Errorf("%+v, want one batch written after one retry", st)
	}
	if n := len(trackerRows(t, f.Store)); n != 5 {
		t.Errorf("%d rows, want 5: the retry duplicated events", n)
	}
}

func TestTrackerRefusesEventsAfterClose(t *testing.T) {
	s := openStore(t)
	tr := newTestTracker(t, s)
	closeTracker(t, tr)
	if err := tr.Track(context.Background(), testEvent(1)); !errors.Is(err, sqlstore.ErrTrackerClosed) {
		t.Errorf("Track after Close: %v, want ErrTrackerClosed", err)
	}
	if st := tr.Stats(); st.Dropped != 1 || st.Queued != 0 || st.Written != 0 {
		t.Errorf("%+v, want the event dropped", st)
	}
	if err := tr.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestTrackerCloseGivesUpWhenItsContextEnds(t *testing.T) {
	f := newFaultyStore(t)
	tr := newTestTracker(t, f.Store, sqlstore.WithBatchSize(2), sqlstore.WithWriteTimeout(time.Hour))
	f.set(faultHang)
	trackN(t, tr, 2)
	f.waitHung(t)
	trackN(t, tr, 3)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := tr.Close(ctx)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "5 events not written") {
		t.Errorf("Close with a canceled context while the database hangs: %v, want 5 events not written: context canceled", err)
	}
	if again := tr.Close(context.Background()); again == nil || again.Error() != err.Error() {
		t.Errorf("second Close: %v, want the first outcome again", again)
	}
	if st := tr.Stats(); st.Dropped != 5 || st.Queued != 0 || st.Written != 0 {
		t.Errorf("%+v, want the 5 events dropped", st)
	}
}

// On a hung server or a dropped network, lib/pq's calls end only when TCP
// gives up, whatever their context: Close must still return by its
// deadline.
func TestTrackerCloseReturnsWhileTheDatabaseHangs(t *testing.T) {
	u, err := url.Parse(testDSN())
	if err != nil || u.Host == "" {
		t.Skipf("the test DSN %q is not a postgres:// URL with a host: cannot put a proxy in front of it", testDSN())
	}
	proxy := startProxy(t, u.Host)
	s := openStoreAt(t, proxy.DSN(testDSN()))
	tr := newTestTracker(t, s, sqlstore.WithWriteTimeout(100*time.Millisecond), sqlstore.WithRetry(3, time.Millisecond))
	proxy.Stall()
	defer proxy.Restore() // let the abandoned calls end
	trackN(t, tr, 3)

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	closed := make(chan error, 1)
	start := time.Now()
	go func() { closed <- tr.Close(ctx) }()
	select {
	case err := <-closed:
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "3 events not written") {
			t.Errorf("Close while the database hangs: %v, want 3 events not written: deadline exceeded", err)
		}
		t.Logf("Close while the database hangs returned after %v: %v", time.Since(start), err)
	case <-time.After(5 * time.Second):
		t.Fatal("Close while the database hangs: still blocked after 5 s: an INSERT holds a writer past its timeout")
	}
	if st := tr.Stats(); st.Dropped != 3 || st.Queued != 0 || st.Written != 0 {
		t.Errorf("%+v, want the 3 events dropped", st)
	}
}

func TestTrackerRefusesEventsTheTableCannotHold(t *testing.T) {
	s := openStore(t)
	tr := newTestTracker(t, s)
	for _, tc := range []struct {
		name string
		edit func(*experiments.Event)
	}{
		{"nok, NUL byte in the course key", func(e *experiments.Event) { e.CourseKey = "course-v1:X+Y\x00+Z" }},
		{"nok, user ID not UTF-8", func(e *experiments.Event) { e.UserID = "\xff\xfe" }},
		{"nok, bucket beyond a 32-bit integer", func(e *experiments.Event) { e.Bucket = math.MaxInt32 + 1 }},
		{"nok, year beyond 9999", func(e *experiments.Event) { e.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := testEvent(1)
			tc.edit(&e)
			if err := tr.Track(context.Background(), e); !errors.Is(err, experiments.ErrInvalid) {
				t.Errorf("Track: %v, want ErrInvalid", err)
			}
		})
	}
	trackN(t, tr, 2)
	closeTracker(t, tr)
	if st := tr.Stats(); st.Written != 2 || st.Dropped != 4 || st.FailedBatches != 0 {
		t.Errorf("%+v, want the 2 valid events written, the 4 others dropped", st)
	}
}

func TestTrackerStampsEventsWithoutATime(t *testing.T) {
	s := openStore(t)
	tr := newTestTracker(t, s)
	before := time.Now()
	e := testEvent(1)
	e.Time = time.Time{}
	if err := tr.Track(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	closeTracker(t, tr)
	rows := trackerRows(t, s)
	if len(rows) != 1 || rows[0].Event.Time.Before(before.Truncate(time.Microsecond)) || rows[0].Event.Time.After(time.Now()) {
		t.Errorf("rows %+v, want one stamped between %v and now", rows, before)
	}
}

func TestTrackerCountersAddUp(t *testing.T) {
	s := openStore(t)
	tr := newTestTracker(t, s, sqlstore.WithQueueSize(50), sqlstore.WithBatchSize(20))
	const goroutines, each = 8, 500
	var refused atomic.Uint64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				if err := tr.Track(context.Background(), testEvent(g*each+i)); err != nil {
					if !errors.Is(err, sqlstore.ErrQueueFull) {
						t.Errorf("Track: %v", err)
					}
					refused.Add(1)
				}
			}
		})
	}
	wg.Wait()
	closeTracker(t, tr)
	st := tr.Stats()
	if got := uint64(st.Queued) + st.Written + st.Dropped; got != goroutines*each {
		t.Errorf("%+v: queued+written+dropped = %d, want %d Track calls", st, got, goroutines*each)
	}
	if st.Dropped != refused.Load() || st.Queued != 0 {
		t.Errorf("%+v: want %d dropped (the ErrQueueFull returned) and none queued", st, refused.Load())
	}
	if n := uint64(len(trackerRows(t, s))); n != st.Written {
		t.Errorf("%d rows, want %d written", n, st.Written)
	}
	t.Logf("%+v", st)
}

func TestTrackerEndToEnd(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	if err := s.SetFlag(ctx, trackedFlag.Name(), experiments.On()); err != nil {
		t.Fatal(err)
	}
	tr := newTestTracker(t, s)
	at := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	x := experiments.New(experiments.Config{Store: s, Tracker: tr, Site: "learn.example.org", Now: func() time.Time { return at }})
	rctx := x.NewContext(ctx, experiments.User{ID: "7", Username: "ada", Staff: true})
	const course = "course-v1:Org+Course+Run"
	d := trackedFlag.Decide(rctx, course)
	if !d.Tracked || d.Err != nil {
		t.Fatalf("decision %+v, want tracked without error", d)
	}
	if again := trackedFlag.Decide(rctx, course); again.Tracked {
		t.Errorf("second decision in the request tracked again: %+v", again)
	}
	closeTracker(t, tr)

	rows := trackerRows(t, s)
	want := experiments.Event{Name: experiments.EventUserBucketed, Time: at, UserID: "7", Site: "learn.example.org",
		AppLabel: "sqlstore_test", Experiment: "tracked", CourseKey: course, Bucket: d.Bucket, IsStaff: true}
	if len(rows) != 1 || !rows[0].Event.Time.Equal(at) {
		t.Fatalf("rows %+v, want one event at %v", rows, at)
	}
	rows[0].Event.Time = at
	if rows[0].Event != want {
		t.Errorf("row\n got %+v\nwant %+v", rows[0].Event, want)
	}
}

func TestTrackerFullQueueShowsInTheDecision(t *testing.T) {
	ctx := context.Background()
	f := newFaultyStore(t)
	if err := f.Store.SetFlag(ctx, trackedFlag.Name(), experiments.On()); err != nil {
		t.Fatal(err)
	}
	tr := newTestTracker(t, f.Store, sqlstore.WithQueueSize(1), sqlstore.WithBatchSize(1), sqlstore.WithWriters(1),
		sqlstore.WithWriteTimeout(time.Hour))
	f.set(faultHang)
	fillTracker(t, tr, 3) // one event in the hung writer, one waiting for it, one in the queue
	x := experiments.New(experiments.Config{Store: f.Store, Tracker: tr, Logger: slog.New(slog.DiscardHandler)})
	d := trackedFlag.Decide(x.NewContext(ctx, experiments.User{ID: "7"}), "")
	if !errors.Is(d.Err, sqlstore.ErrQueueFull) || !errors.Is(d.Err, experiments.ErrTracker) || d.Tracked {
		t.Errorf("decision %+v, want not tracked, Err wrapping ErrTracker and ErrQueueFull", d)
	}
	f.set(faultNone)
}

func TestNewTrackerPanicsOnInvalidOptions(t *testing.T) {
	s := openStore(t)
	for _, tc := range []struct {
		name string
		opt  sqlstore.TrackerOption
	}{
		{"nok, queue size 0", sqlstore.WithQueueSize(0)},
		{"nok, batch size 0", sqlstore.WithBatchSize(0)},
		{"nok, flush interval 0", sqlstore.WithFlushInterval(0)},
		{"nok, no writer", sqlstore.WithWriters(0)},
		{"nok, no attempt", sqlstore.WithRetry(0, time.Second)},
		{"nok, negative backoff", sqlstore.WithRetry(3, -time.Second)},
		{"nok, write timeout 0", sqlstore.WithWriteTimeout(0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("NewTracker did not panic")
				}
			}()
			tr := s.NewTracker(tc.opt)
			tr.Close(context.Background())
		})
	}
}

// openStoreAt opens a Store at dsn on a fresh schema, logging nothing,
// closed when the test ends.
func openStoreAt(t *testing.T, dsn string, opts ...sqlstore.Option) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.OpenWith(context.Background(), dsn, append([]sqlstore.Option{sqlstore.WithSchema(newSchema(t)),
		sqlstore.WithLogger(slog.New(slog.DiscardHandler))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// newTestTracker returns a tracker on s that logs nothing, closed when the
// test ends.
func newTestTracker(t *testing.T, s *sqlstore.Store, opts ...sqlstore.TrackerOption) *sqlstore.Tracker {
	t.Helper()
	tr := s.NewTracker(append([]sqlstore.TrackerOption{sqlstore.WithTrackerLogger(slog.New(slog.DiscardHandler))}, opts...)...)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		tr.Close(ctx)
	})
	return tr
}

func closeTracker(t *testing.T, tr *sqlstore.Tracker) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tr.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func testEvent(i int) experiments.Event {
	return experiments.Event{
		Name: experiments.EventUserBucketed, Time: time.Now(), UserID: fmt.Sprint(i), Site: "example.org",
		AppLabel: "course_experience", Experiment: "upgrade", CourseKey: "course-v1:Org+Course+Run", Bucket: i % 2,
	}
}

// trackN tracks n events, failing the test if one is refused.
func trackN(t *testing.T, tr *sqlstore.Tracker, n int) {
	t.Helper()
	for i := range n {
		if err := tr.Track(context.Background(), testEvent(i)); err != nil {
			t.Errorf("Track: %v", err)
			return
		}
	}
}

// fillTracker tracks events until capacity of them are queued (while the
// database hangs, so that nothing is written), and returns how many Track
// refused on the way: those that came before the writers took theirs.
func fillTracker(t *testing.T, tr *sqlstore.Tracker, capacity int) (refused uint64) {
	t.Helper()
	return fillQueue(t, "tracker", capacity, func() int { return tr.Stats().Queued },
		func(i int) error { return tr.Track(context.Background(), testEvent(i)) })
}

// fillQueue records until capacity records are queued (while the
// database hangs, so that nothing is written), and returns how many
// record refused on the way: those that came before the writers took
// theirs.
func fillQueue(t *testing.T, what string, capacity int, queued func() int, record func(i int) error) (refused uint64) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for i := 0; queued() < capacity; i++ {
		err := record(i)
		if err == nil {
			continue
		}
		if !errors.Is(err, sqlstore.ErrQueueFull) {
			t.Fatalf("filling the %s queue: %v", what, err)
		}
		refused++
		select {
		case <-timeout:
			t.Fatalf("filling the %s queue: %d queued, want %d", what, queued(), capacity)
		case <-tick.C:
		}
	}
	return refused
}

// waitTracker waits, at most 10 s, for the tracker's counters to satisfy
// cond, and returns them.
func waitTracker(t *testing.T, tr *sqlstore.Tracker, what string, cond func(sqlstore.TrackerStats) bool) sqlstore.TrackerStats {
	t.Helper()
	return waitStats(t, what, tr.Stats, cond)
}

// waitStats waits, at most 10 s, for the counters that stats returns to
// satisfy cond, and returns them.
func waitStats[S any](t *testing.T, what string, stats func() S, cond func(S) bool) S {
	t.Helper()
	timeout := time.After(10 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		st := stats()
		if cond(st) {
			return st
		}
		select {
		case <-timeout:
			t.Fatalf("waiting for %s: %+v", what, st)
		case <-tick.C:
		}
	}
}

type trackerRow struct {
	ID    string
	Event experiments.Event
}

// trackerRows returns the rows of the store's events table, by time.
func trackerRows(t *testing.T, s *sqlstore.Store) []trackerRow {
	t.Helper()
	rows, err := s.DB().Query("SELECT id, name, time, user_id, site, app_label, experiment, course_key, bucket, is_staff, anonymous_id FROM " +
		pq.QuoteIdentifier(s.Schema()) + ".experiments_events ORDER BY time, id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []trackerRow
	for rows.Next() {
		var r trackerRow
		e := &r.Event
		if err := rows.Scan(&r.ID, &e.Name, &e.Time, &e.UserID, &e.Site, &e.AppLabel, &e.Experiment, &e.CourseKey, &e.Bucket, &e.IsStaff, &e.AnonymousID); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// The faults a faultyStore injects into the statements that insert
// events, exposures and conversions; other statements always reach the
// database.
type fault int

const (
	faultNone      fault = iota
	faultFail            // fail at once: the database is away
	faultHang            // wait until the fault changes or the context ends, then fail
	faultLoseReply       // once: run the statement, then fail as if the reply were lost
)

var errInjected = errors.New("injected fault")

// faultyStore is a Store on its own pool, whose connections are wrapped to
// inject faults into batch inserts (events, exposures, conversions).
type faultyStore struct {
	*sqlstore.Store
	mu        sync.Mutex
	fault     fault
	changed   chan struct{} // closed when fault changes
	hung      chan struct{} // an insert hangs
	committed atomic.Int32  // batch inserts that reached the database
}

func newFaultyStore(t *testing.T, opts ...sqlstore.Option) *faultyStore {
	t.Helper()
	schema := newSchema(t)
	c, err := pq.NewConnector(testDSN())
	if err != nil {
		t.Fatal(err)
	}
	f := &faultyStore{changed: make(chan struct{}), hung: make(chan struct{}, 1)}
	db := sqlx.NewDb(sql.OpenDB(faultyConnector{c, f}), "postgres")
	t.Cleanup(func() { db.Close() })
	f.Store, err = sqlstore.New(context.Background(), db, schema, append([]sqlstore.Option{sqlstore.WithLogger(slog.New(slog.DiscardHandler))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Store.Close() })
	return f
}

func (f *faultyStore) set(x fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fault = x
	close(f.changed)
	f.changed = make(chan struct{})
}

// waitHung waits for an insert to hang.
func (f *faultyStore) waitHung(t *testing.T) {
	t.Helper()
	select {
	case <-f.hung:
	case <-time.After(10 * time.Second):
		t.Fatal("no insert reached the database")
	}
}

// insert runs exec, a batch insert, with the current fault.
func (f *faultyStore) insert(ctx context.Context, exec func() (driver.Result, error)) (driver.Result, error) {
	f.mu.Lock()
	x, changed := f.fault, f.changed
	if x == faultLoseReply {
		f.fault = faultNone
	}
	f.mu.Unlock()
	switch x {
	case faultFail:
		return nil, errInjected
	case faultHang:
		select {
		case f.hung <- struct{}{}:
		default:
		}
		select {
		case <-changed:
			return nil, errInjected
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	res, err := exec()
	if err != nil {
		return nil, err
	}
	f.committed.Add(1)
	if x == faultLoseReply {
		return nil, errInjected
	}
	return res, nil
}

type faultyConnector struct {
	driver.Connector
	f *faultyStore
}

func (c faultyConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return faultyConn{conn, c.f}, nil
}

// faultyConn is a pq connection whose ExecContext goes through the
// faultyStore for batch inserts. It forwards the interfaces database/sql
// and golang-migrate use.
type faultyConn struct {
	driver.Conn
	f *faultyStore
}

// batchTables matches the tables written in batches.
var batchTables = regexp.MustCompile(`experiments_(events|exposures|conversions)`)

func (c faultyConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	exec := func() (driver.Result, error) { return c.Conn.(driver.ExecerContext).ExecContext(ctx, query, args) }
	if strings.HasPrefix(query, "INSERT INTO") && batchTables.MatchString(query) {
		return c.f.insert(ctx, exec)
	}
	return exec()
}

func (c faultyConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	return c.Conn.(driver.QueryerContext).QueryContext(ctx, query, args)
}

func (c faultyConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, query)
}

func (c faultyConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
}

func (c faultyConn) Ping(ctx context.Context) error { return c.Conn.(driver.Pinger).Ping(ctx) }

func (c faultyConn) ResetSession(ctx context.Context) error {
	return c.Conn.(driver.SessionResetter).ResetSession(ctx)
}

func (c faultyConn) IsValid() bool { return c.Conn.(driver.Validator).IsValid() }

func (c faultyConn) CheckNamedValue(nv *driver.NamedValue) error {
	return c.Conn.(driver.NamedValueChecker).CheckNamedValue(nv)
}
