package prommetrics_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/prommetrics"
	"github.com/abkit/experiments/segment"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A segment Tracker's queue, posting to a fake Segment, exported with
// queue="segment" through Options.Queues.
func TestSegmentTracker(t *testing.T) {
	// Request n (0-based): 0 a batch accepted; 1 a batch refused with
	// 503, then 2 accepted on retry; 3 to 12 a batch refused with 400 on
	// each of analytics-go's 10 attempts; later ones 200.
	status := func(n int) int {
		switch {
		case n == 1:
			return http.StatusServiceUnavailable
		case n >= 3 && n <= 12:
			return http.StatusBadRequest
		}
		return http.StatusOK
	}
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(status(int(requests.Add(1) - 1)))
	}))
	t.Cleanup(srv.Close) // after the tracker's Close, below

	ctx := t.Context()
	// Batches of 2 go when full (the interval is longer than the test),
	// and are retried at once.
	tracker, err := segment.New("test-write-key", segment.WithEndpoint(srv.URL), segment.WithInterval(time.Hour),
		segment.WithBatchSize(2), segment.WithRetryAfter(func(int) time.Duration { return time.Millisecond }),
		segment.WithLogger(slog.New(slog.DiscardHandler))) // the batch refused below is logged
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tracker.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	m := prommetrics.New(prommetrics.Options{Queues: map[string]prommetrics.TrackerSource{"segment": tracker}})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)

	track := func(users ...string) {
		t.Helper()
		for _, id := range users {
			e := experiments.Event{Name: experiments.EventUserBucketed, UserID: id, Site: "learn.example.org",
				AppLabel: "course_experience", Experiment: "upgrade_button", Bucket: 1}
			if err := tracker.Track(ctx, e); err != nil {
				t.Fatalf("Track: %v", err)
			}
		}
	}
	// settle waits for the tracker's callbacks to report the batches.
	settle := func(want experiments.QueueStats) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); tracker.Stats() != want; {
			if time.Now().After(deadline) {
				t.Fatalf("Stats %+v, want %+v", tracker.Stats(), want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	track("1", "2") // 200
	settle(experiments.QueueStats{Written: 2, Batches: 1})
	track("3", "4") // 503, then 200
	settle(experiments.QueueStats{Written: 4, Batches: 2, Retries: 1})
	track("5", "6") // 400 on each attempt: given up
	settle(experiments.QueueStats{Written: 4, Dropped: 2, Batches: 2, FailedBatches: 1, Retries: 10})
	track("7") // stays queued

	want := `
# HELP experiments_queue_batches_total Batches written to their destination.
# TYPE experiments_queue_batches_total counter
experiments_queue_batches_total{queue="segment"} 2
# HELP experiments_queue_dropped_total Events or records not written: refused (queue full, closed, invalid) or given up after the last attempt.
# TYPE experiments_queue_dropped_total counter
experiments_queue_dropped_total{queue="segment"} 2
# HELP experiments_queue_failed_batches_total Batches given up after their last attempt; their events or records count as dropped.
# TYPE experiments_queue_failed_batches_total counter
experiments_queue_failed_batches_total{queue="segment"} 1
# HELP experiments_queue_length Events or records accepted and not yet written nor given up: in the queue or in a batch.
# TYPE experiments_queue_length gauge
experiments_queue_length{queue="segment"} 1
# HELP experiments_queue_retries_total Failed attempts at writing a batch that were retried.
# TYPE experiments_queue_retries_total counter
experiments_queue_retries_total{queue="segment"} 10
# HELP experiments_queue_written_total Events or records written to their destination (the database, Segment).
# TYPE experiments_queue_written_total counter
experiments_queue_written_total{queue="segment"} 4
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %+v", err, problems)
	}
}
