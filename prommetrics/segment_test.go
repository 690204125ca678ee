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
	// The n-th request (0-based) gets statuses[n]; later ones 200.
	statuses := []int{http.StatusOK, http.StatusServiceUnavailable, http.StatusOK, http.StatusBadRequest}
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		status := http.StatusOK
		if n := int(requests.Add(1) - 1); n < len(statuses) {
			status = statuses[n]
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close) // after the tracker's Close, below

	ctx := t.Context()
	// An interval longer than the test: batches go on Flush only.
	tracker, err := segment.New("test-write-key", segment.WithEndpoint(srv.URL), segment.WithInterval(time.Hour),
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
	track("1", "2")
	if err := tracker.Flush(ctx); err != nil { // 200
		t.Fatal(err)
	}
	track("3")
	if err := tracker.Flush(ctx); err != nil { // 503, then 200
		t.Fatal(err)
	}
	track("4")
	if err := tracker.Flush(ctx); err == nil { // 400: given up
		t.Error("Flush of a batch Segment refused: nil error")
	}
	track("5") // stays queued

	want := `
# HELP experiments_queue_batches_total Batches written to their destination.
# TYPE experiments_queue_batches_total counter
experiments_queue_batches_total{queue="segment"} 2
# HELP experiments_queue_dropped_total Events or records not written: refused (queue full, closed, invalid) or given up after the last attempt.
# TYPE experiments_queue_dropped_total counter
experiments_queue_dropped_total{queue="segment"} 1
# HELP experiments_queue_failed_batches_total Batches given up after their last attempt; their events or records count as dropped.
# TYPE experiments_queue_failed_batches_total counter
experiments_queue_failed_batches_total{queue="segment"} 1
# HELP experiments_queue_length Events or records accepted and not yet written nor given up: in the queue or in a batch.
# TYPE experiments_queue_length gauge
experiments_queue_length{queue="segment"} 1
# HELP experiments_queue_retries_total Failed attempts at writing a batch that were retried.
# TYPE experiments_queue_retries_total counter
experiments_queue_retries_total{queue="segment"} 1
# HELP experiments_queue_written_total Events or records written to their destination (the database, Segment).
# TYPE experiments_queue_written_total counter
experiments_queue_written_total{queue="segment"} 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %+v", err, problems)
	}
}
