package sqlstore_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/internal/pgtest"
	"github.com/abkit/experiments/sqlstore"
)

// counted wraps a Tracker and a Recorder, counting what they accepted
// and refused.
type counted struct {
	tracker              experiments.Tracker
	recorder             experiments.Recorder
	tracked, trackRefuse atomic.Int64
	exposed, exposeFail  atomic.Int64
}

func (c *counted) Track(ctx context.Context, e experiments.Event) error {
	err := c.tracker.Track(ctx, e)
	if err != nil {
		c.trackRefuse.Add(1)
	} else {
		c.tracked.Add(1)
	}
	return err
}

func (c *counted) RecordExposure(ctx context.Context, e experiments.Exposure) error {
	err := c.recorder.RecordExposure(ctx, e)
	if err != nil {
		c.exposeFail.Add(1)
	} else {
		c.exposed.Add(1)
	}
	return err
}

func (c *counted) RecordConversion(ctx context.Context, cv experiments.Conversion) error {
	return c.recorder.RecordConversion(ctx, cv)
}

// An echo app under load while its database goes away for a while and
// comes back: every request is answered 200, with its bucket; what the
// tracker and recorder accepted during the outage, up to their queue
// bounds, is in the tables afterwards; what they refused is counted as
// dropped, and nothing else is lost.
func TestLoadThroughAnOutageLosesNothingAccepted(t *testing.T) {
	u, err := url.Parse(pgtest.DSN())
	if err != nil || u.Host == "" {
		t.Skipf("the test DSN %q is not a postgres:// URL with a host: cannot put a proxy in front of it", pgtest.DSN())
	}
	ctx := context.Background()
	proxy := startProxy(t, u.Host)
	const queue, batch, writers = 200, 50, 2
	// What the tracker can hold while the database is away: the queue, the
	// batch being gathered, and one batch per writer being retried.
	const capacity = queue + (writers+1)*batch
	queueOpts := []sqlstore.TrackerOption{
		sqlstore.WithQueueSize(queue), sqlstore.WithBatchSize(batch), sqlstore.WithWriters(writers),
		sqlstore.WithFlushInterval(10 * time.Millisecond),
		sqlstore.WithWriteTimeout(300 * time.Millisecond), sqlstore.WithRetry(math.MaxInt, 20*time.Millisecond),
	}
	s := openStoreAt(t, proxy.DSN(pgtest.DSN()), sqlstore.WithPollInterval(100*time.Millisecond),
		sqlstore.WithRecorder(queueOpts...))
	if err := s.SetFlag(ctx, recordedFlag.Name(), experiments.On()); err != nil {
		t.Fatal(err)
	}
	tracker := s.NewTracker(queueOpts...)
	c := &counted{tracker: tracker, recorder: s}
	x := experiments.New(experiments.Config{Store: s, Tracker: c, Recorder: c, Logger: slog.New(slog.DiscardHandler)})

	e := echo.New()
	var next atomic.Int64 // a new user per request: one event and one exposure each
	e.Use(x.Middleware(experiments.MiddlewareConfig{User: func(echo.Context) experiments.User {
		return experiments.User{ID: "load-" + strconv.FormatInt(next.Add(1), 10)}
	}}))
	e.GET("/", func(c echo.Context) error {
		d := recordedFlag.Decide(c.Request().Context(), "")
		if d.Reason != experiments.ReasonHashed {
			return c.String(http.StatusOK, "unexpected reason "+string(d.Reason))
		}
		return c.String(http.StatusOK, strconv.Itoa(d.Bucket))
	})
	srv := httptest.NewServer(e)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: 5 * time.Second}

	// phase runs 8 clients for d and counts the answers by status.
	var statuses sync.Map // int → *atomic.Int64
	var bad atomic.Int64  // 200s whose body is not a bucket
	phase := func(d time.Duration) int64 {
		var n atomic.Int64
		var wg sync.WaitGroup
		stop := time.Now().Add(d)
		for range 8 {
			wg.Go(func() {
				for time.Now().Before(stop) {
					resp, err := client.Get(srv.URL)
					if err != nil {
						t.Errorf("request: %v", err)
						return
					}
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					v, _ := statuses.LoadOrStore(resp.StatusCode, new(atomic.Int64))
					v.(*atomic.Int64).Add(1)
					if b, err := strconv.Atoi(string(body)); resp.StatusCode == http.StatusOK && (err != nil || b < 0 || b >= recordedFlag.Buckets()) {
						bad.Add(1)
					}
					n.Add(1)
				}
			})
		}
		wg.Wait()
		return n.Load()
	}

	before := phase(300 * time.Millisecond)
	proxy.Cut()
	acceptedBefore := c.tracked.Load()
	during := phase(700 * time.Millisecond)
	acceptedDuring, refusedDuring := c.tracked.Load()-acceptedBefore, c.trackRefuse.Load()
	proxy.Restore()
	after := phase(300 * time.Millisecond)

	statuses.Range(func(k, v any) bool {
		if k.(int) != http.StatusOK {
			t.Errorf("%d answers with status %d, want none", v.(*atomic.Int64).Load(), k)
		}
		return true
	})
	if bad.Load() > 0 {
		t.Errorf("%d answers without a hashed bucket", bad.Load())
	}
	total := before + during + after
	t.Logf("requests: %d before, %d during a 700 ms outage, %d after; all 200", before, during, after)
	if during < 2*queue {
		t.Fatalf("only %d requests during the outage: too few to fill the queue of %d", during, queue)
	}

	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := tracker.Close(cctx); err != nil {
		t.Fatalf("tracker Close: %v", err)
	}
	if err := s.Flush(cctx); err != nil {
		t.Fatalf("recorder Flush: %v", err)
	}
	ts, rs := tracker.Stats(), s.RecorderStats()
	t.Logf("tracker: %+v; exposures: %+v", ts, rs.Exposures)

	// Events: every request tried one; those accepted were all written,
	// those refused (queue full) are the dropped ones.
	if got := c.tracked.Load() + c.trackRefuse.Load(); got != total {
		t.Errorf("%d events tried for %d requests", got, total)
	}
	if ts.Written != uint64(c.tracked.Load()) || ts.Dropped != uint64(c.trackRefuse.Load()) || ts.Queued != 0 {
		t.Errorf("tracker wrote %d and dropped %d (%d still queued); accepted %d, refused %d",
			ts.Written, ts.Dropped, ts.Queued, c.tracked.Load(), c.trackRefuse.Load())
	}
	if rows := countRows(t, s.Schema(), "experiments_events"); rows != int64(ts.Written) {
		t.Errorf("%d rows in experiments_events, tracker wrote %d", rows, ts.Written)
	}
	// Exposures, the same.
	if rs.Exposures.Written != uint64(c.exposed.Load()) || rs.Exposures.Dropped != uint64(c.exposeFail.Load()) {
		t.Errorf("recorder wrote %d exposures and dropped %d; accepted %d, refused %d",
			rs.Exposures.Written, rs.Exposures.Dropped, c.exposed.Load(), c.exposeFail.Load())
	}
	if rows := countRows(t, s.Schema(), "experiments_exposures"); rows != int64(rs.Exposures.Written) {
		t.Errorf("%d rows in experiments_exposures, recorder wrote %d", rows, rs.Exposures.Written)
	}
	// During the outage, the tracker took events up to what it can hold
	// and refused the rest; the ones it took are among those written.
	if acceptedDuring == 0 || refusedDuring == 0 || acceptedDuring > capacity {
		t.Errorf("during the outage the tracker accepted %d events and refused %d; want some of each, at most %d accepted",
			acceptedDuring, refusedDuring, capacity)
	}
	t.Logf("during the outage: %d events held (bound %d) and written after it, %d refused", acceptedDuring, capacity, refusedDuring)
}

// countRows counts the rows of a table of schema.
func countRows(t *testing.T, schema, table string) int64 {
	t.Helper()
	var n int64
	if err := pgtest.DB(t).Get(&n, fmt.Sprintf(`SELECT count(*) FROM %q.%q`, schema, table)); err != nil {
		t.Fatal(err)
	}
	return n
}
