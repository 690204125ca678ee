package prommetrics_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/prommetrics"
	"github.com/abkit/experiments/segment"
	"github.com/abkit/experiments/sqlstore"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

var upgradeButton = experiments.NewFlag("course_experience", "upgrade_button")

// Decisions are counted as they are made; the page Prometheus scrapes
// shows them with the runtime's other counters.
func Example() {
	ctx := context.Background()
	store := experiments.NewMemStore()
	_ = store.SetFlag(ctx, upgradeButton.Name(), experiments.On())
	_ = store.SetCourseOverride(ctx, upgradeButton.BucketFlag(1), "course-v1:edX+DemoX+2026", experiments.ForceOn)

	m := prommetrics.New(prommetrics.Options{})
	x := experiments.New(experiments.Config{Store: store, OnDecision: m.ObserveDecision})
	m.SetExperiments(x)
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)

	user := x.NewContext(ctx, experiments.User{ID: "42"})
	upgradeButton.Bucket(user, "course-v1:edX+DemoX+2026")
	upgradeButton.Bucket(user, "course-v1:edX+DemoX+2026")

	// What Prometheus reads at /metrics.
	page := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(page, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for line := range strings.Lines(page.Body.String()) {
		if strings.HasPrefix(line, "experiments_") {
			fmt.Print(line)
		}
	}
	// Output:
	// experiments_conversions_ignored_total 0
	// experiments_conversions_total 0
	// experiments_decisions_total{bucket="1",flag="course_experience.upgrade_button",reason="cached"} 1
	// experiments_decisions_total{bucket="1",flag="course_experience.upgrade_button",reason="forced"} 1
}

// With PostgreSQL: the tracker's and the recorder's queues, and the age
// of the flags served.
func Example_sqlstore() {
	ctx := context.Background()
	store, err := sqlstore.Open(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	tracker := store.NewTracker()

	m := prommetrics.New(prommetrics.Options{Tracker: tracker, Recorder: store, Store: store})
	x := experiments.New(experiments.Config{
		Store: store, Tracker: tracker, Recorder: store,
		OnDecision: m.ObserveDecision,
	})
	m.SetExperiments(x)
	prometheus.MustRegister(m)

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.Handler())
	mux.Handle("/", x.Handler(http.NotFoundHandler(), nil))
	log.Fatal(http.ListenAndServe(":8080", mux))
}

// Any queue with experiments.QueueStats, here a segment Tracker's, is
// exported under a label of its own. A local server stands in for
// api.segment.io.
func Example_segment() {
	fakeSegment := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer fakeSegment.Close()
	ctx := context.Background()
	tracker, err := segment.New("YOUR_WRITE_KEY", segment.WithEndpoint(fakeSegment.URL))
	if err != nil {
		log.Fatal(err)
	}
	defer tracker.Close(ctx)
	store := experiments.NewMemStore()
	_ = store.SetFlag(ctx, upgradeButton.Name(), experiments.On())

	m := prommetrics.New(prommetrics.Options{
		Queues: map[string]prommetrics.TrackerSource{"segment": tracker},
	})
	x := experiments.New(experiments.Config{Store: store, Tracker: tracker, OnDecision: m.ObserveDecision})
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)

	upgradeButton.Bucket(x.NewContext(ctx, experiments.User{ID: "42"}), "") // tracked: one event
	_ = tracker.Flush(ctx)

	page := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(page, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for line := range strings.Lines(page.Body.String()) {
		if strings.HasPrefix(line, "experiments_queue_") {
			fmt.Print(line)
		}
	}
	// Output:
	// experiments_queue_batches_total{queue="segment"} 1
	// experiments_queue_dropped_total{queue="segment"} 0
	// experiments_queue_failed_batches_total{queue="segment"} 0
	// experiments_queue_length{queue="segment"} 0
	// experiments_queue_retries_total{queue="segment"} 0
	// experiments_queue_written_total{queue="segment"} 1
}
