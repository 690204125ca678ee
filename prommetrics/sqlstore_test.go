package prommetrics_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/internal/pgtest"
	"github.com/abkit/experiments/prommetrics"
	"github.com/abkit/experiments/sqlstore"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The queues and reload age of a real sqlstore Store and Tracker.
func TestSQLStore(t *testing.T) {
	ctx := t.Context()
	// Flush intervals longer than the test: what is queued stays queued
	// until Flush or Close.
	store, err := sqlstore.OpenWith(ctx, pgtest.DSN(), sqlstore.WithSchema(pgtest.Schema(t, "exptest_prom_")),
		sqlstore.WithRecorder(sqlstore.WithFlushInterval(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := store.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	tracker := store.NewTracker(sqlstore.WithFlushInterval(time.Hour))
	if err := store.SetFlag(ctx, upgrade.Name(), experiments.On()); err != nil {
		t.Fatal(err)
	}
	if err := store.SetCourseOverride(ctx, upgrade.BucketFlag(2), course, experiments.ForceOn); err != nil {
		t.Fatal(err)
	}

	m := prommetrics.New(prommetrics.Options{Tracker: tracker, Recorder: store, Store: store})
	x := experiments.New(experiments.Config{Store: store, Tracker: tracker, Recorder: store, OnDecision: m.ObserveDecision,
		Logger: slog.New(slog.DiscardHandler)}) // the event dropped below is logged
	m.SetExperiments(x)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)

	for _, id := range []string{"1", "2", "3"} {
		if d := upgrade.Decide(x.NewContext(ctx, experiments.User{ID: id}), course); d.Bucket != 2 || !d.Tracked || d.Err != nil {
			t.Fatalf("user %s: %+v, want bucket 2, tracked", id, d)
		}
	}
	queues := func(length, written int) string {
		var b strings.Builder
		b.WriteString("# HELP experiments_queue_length Events or records accepted and not yet written nor given up: in the queue or in a batch.\n")
		b.WriteString("# TYPE experiments_queue_length gauge\n")
		b.WriteString(`experiments_queue_length{queue="conversions"} 0` + "\n")
		b.WriteString(`experiments_queue_length{queue="events"} ` + itoa(length) + "\n")
		b.WriteString(`experiments_queue_length{queue="exposures"} ` + itoa(length) + "\n")
		b.WriteString("# HELP experiments_queue_written_total Events or records written to their destination (the database, Segment).\n")
		b.WriteString("# TYPE experiments_queue_written_total counter\n")
		b.WriteString(`experiments_queue_written_total{queue="conversions"} 0` + "\n")
		b.WriteString(`experiments_queue_written_total{queue="events"} ` + itoa(written) + "\n")
		b.WriteString(`experiments_queue_written_total{queue="exposures"} ` + itoa(written) + "\n")
		return b.String()
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(queues(3, 0)), "experiments_queue_length", "experiments_queue_written_total"); err != nil {
		t.Errorf("before writing: %v", err)
	}

	if err := store.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tracker.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(queues(0, 3)), "experiments_queue_length", "experiments_queue_written_total"); err != nil {
		t.Errorf("after writing: %v", err)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP experiments_decisions_total Decisions made with request state (calls of Bucket, IsEnabled, Decide, DecideUntracked), by flag, bucket and reason; cached ones have reason "cached".
# TYPE experiments_decisions_total counter
experiments_decisions_total{bucket="2",flag="course_experience.upgrade_button",reason="forced"} 3
# HELP experiments_queue_dropped_total Events or records not written: refused (queue full, closed, invalid) or given up after the last attempt.
# TYPE experiments_queue_dropped_total counter
experiments_queue_dropped_total{queue="conversions"} 0
experiments_queue_dropped_total{queue="events"} 0
experiments_queue_dropped_total{queue="exposures"} 0
`), "experiments_decisions_total", "experiments_queue_dropped_total"); err != nil {
		t.Error(err)
	}

	// After Close, events are dropped, and counted.
	upgrade.Bucket(x.NewContext(ctx, experiments.User{ID: "4"}), course)
	if got := tracker.Stats().Dropped; got != 1 {
		t.Errorf("dropped after Close: %d, want 1", got)
	}

	// The reload age is the time since the last reload, which Reload
	// moves on even when nothing changed.
	loaded := store.LoadedAt()
	if age := gauge(t, reg, "experiments_store_reload_age_seconds"); age < 0 || age > time.Since(loaded).Seconds() {
		t.Errorf("reload age %vs, want 0 to %vs", age, time.Since(loaded).Seconds())
	}
	if err := store.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if again := store.LoadedAt(); !again.After(loaded) {
		t.Errorf("LoadedAt after Reload = %v, want after %v", again, loaded)
	}
}

// gauge returns the value of the metric name, which has no labels.
func gauge(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
