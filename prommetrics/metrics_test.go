package prommetrics_test

import (
	"context"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/prommetrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

const course = "course-v1:edX+DemoX+2026"

var (
	upgrade = experiments.NewFlagSet().NewFlag("course_experience", "upgrade_button", experiments.WithBuckets(3))
	banner  = experiments.NewFlag("course_experience", "banner")
)

// newRuntime returns an Experiments reporting to m, with upgrade on and
// forced to bucket 2 in course, and banner off.
func newRuntime(t testing.TB, m *prommetrics.Metrics) *experiments.Experiments {
	t.Helper()
	ctx := context.Background()
	store := experiments.NewMemStore()
	if err := store.SetFlag(ctx, upgrade.Name(), experiments.On()); err != nil {
		t.Fatal(err)
	}
	if err := store.SetCourseOverride(ctx, upgrade.BucketFlag(2), course, experiments.ForceOn); err != nil {
		t.Fatal(err)
	}
	return experiments.New(experiments.Config{Store: store, OnDecision: m.ObserveDecision})
}

func TestDecisions(t *testing.T) {
	m := prommetrics.New(prommetrics.Options{})
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	x := newRuntime(t, m)
	ctx := context.Background()

	user := x.NewContext(ctx, experiments.User{ID: "42"})
	for range 3 {
		upgrade.Bucket(user, course) // forced, then cached twice
	}
	upgrade.IsEnabled(user, "")                                   // hashed
	banner.Bucket(user, course)                                   // flag off
	upgrade.Bucket(x.NewContext(ctx, experiments.User{}), course) // anonymous
	upgrade.Bucket(upgrade.WithOverride(user, true, 1), course)   // override
	upgrade.Bucket(ctx, course)                                   // no request state: not counted

	hashed := experiments.SHA256Bucket(upgrade.Name(), "42", upgrade.Buckets())
	want := `
# HELP experiments_decisions_total Decisions made with request state (calls of Bucket, IsEnabled, Decide, DecideUntracked), by flag, bucket and reason; cached ones have reason "cached".
# TYPE experiments_decisions_total counter
experiments_decisions_total{bucket="0",flag="course_experience.banner",reason="flag_off"} 1
experiments_decisions_total{bucket="0",flag="course_experience.upgrade_button",reason="anonymous"} 1
experiments_decisions_total{bucket="1",flag="course_experience.upgrade_button",reason="override"} 1
experiments_decisions_total{bucket="2",flag="course_experience.upgrade_button",reason="cached"} 2
experiments_decisions_total{bucket="2",flag="course_experience.upgrade_button",reason="forced"} 1
experiments_decisions_total{bucket="` + itoa(hashed) + `",flag="course_experience.upgrade_button",reason="hashed"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "experiments_decisions_total"); err != nil {
		t.Error(err)
	}
}

// Reasons beyond experiments' own, and buckets beyond the flag's, are
// counted too.
func TestDecisionsUnknownReasons(t *testing.T) {
	m := prommetrics.New(prommetrics.Options{})
	ctx := context.Background()
	for i := range 20 {
		r := experiments.Reason("custom_" + itoa(i%10))
		m.ObserveDecision(ctx, banner, "", experiments.Decision{Bucket: 1, Reason: r})
	}
	m.ObserveDecision(ctx, banner, "", experiments.Decision{Bucket: 7, Reason: experiments.ReasonHashed})
	if n := testutil.CollectAndCount(m, "experiments_decisions_total"); n != 11 {
		t.Errorf("%d series, want 11", n)
	}
	for _, c := range []struct {
		bucket, reason string
		want           float64
	}{{"1", "custom_0", 2}, {"1", "custom_9", 2}, {"7", "hashed", 1}} {
		got := decisions(t, m, banner.Name(), c.bucket, c.reason)
		if got != c.want {
			t.Errorf("bucket %s, reason %s: %v decisions, want %v", c.bucket, c.reason, got, c.want)
		}
	}
}

// decisions returns the value of one experiments_decisions_total series.
func decisions(t *testing.T, m *prommetrics.Metrics, flag, bucket, reason string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "experiments_decisions_total" {
			continue
		}
	metrics:
		for _, metric := range mf.GetMetric() {
			want := map[string]string{"flag": flag, "bucket": bucket, "reason": reason}
			for _, l := range metric.GetLabel() {
				if want[l.GetName()] != l.GetValue() {
					continue metrics
				}
			}
			return metric.GetCounter().GetValue()
		}
	}
	return 0
}

// fakeSources are sources with fixed stats and a clock that the test
// moves.
type fakeSources struct {
	mu                              sync.Mutex
	tracker, exposures, conversions experiments.QueueStats
	stats                           experiments.Stats
	loaded                          time.Time
	now                             time.Time
}

func (f *fakeSources) Stats() experiments.QueueStats           { return f.tracker }
func (f *fakeSources) ExposureStats() experiments.QueueStats   { return f.exposures }
func (f *fakeSources) ConversionStats() experiments.QueueStats { return f.conversions }
func (f *fakeSources) LoadedAt() time.Time                     { return f.loaded }
func (f *fakeSources) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}
func (f *fakeSources) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

// fakeExperiments is a StatsSource.
type fakeExperiments experiments.Stats

func (f fakeExperiments) Stats() experiments.Stats { return experiments.Stats(f) }

// fakeQueue is a TrackerSource.
type fakeQueue experiments.QueueStats

func (f fakeQueue) Stats() experiments.QueueStats { return experiments.QueueStats(f) }

func TestSources(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	src := &fakeSources{
		tracker:     experiments.QueueStats{Queued: 7, Written: 1000, Dropped: 3, Batches: 4, FailedBatches: 1, Retries: 5},
		exposures:   experiments.QueueStats{Queued: 1, Written: 20, Batches: 2},
		conversions: experiments.QueueStats{Written: 5, Dropped: 2, Batches: 1, FailedBatches: 1, Retries: 4},
		loaded:      at, now: at.Add(2500 * time.Millisecond),
	}
	m := prommetrics.New(prommetrics.Options{Tracker: src, Recorder: src, Store: src, Now: src.Now,
		Queues: map[string]prommetrics.TrackerSource{
			"segment": fakeQueue{Queued: 2, Written: 90, Dropped: 6, Batches: 3, FailedBatches: 2, Retries: 8},
			"unused":  nil,
		}})
	m.SetExperiments(fakeExperiments{Conversions: 12, IgnoredConversions: 4})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	want := `
# HELP experiments_conversions_ignored_total Conversions of anonymous or masquerading users, ignored.
# TYPE experiments_conversions_ignored_total counter
experiments_conversions_ignored_total 4
# HELP experiments_conversions_total Conversions recorded.
# TYPE experiments_conversions_total counter
experiments_conversions_total 12
# HELP experiments_queue_batches_total Batches written to their destination.
# TYPE experiments_queue_batches_total counter
experiments_queue_batches_total{queue="conversions"} 1
experiments_queue_batches_total{queue="events"} 4
experiments_queue_batches_total{queue="exposures"} 2
experiments_queue_batches_total{queue="segment"} 3
# HELP experiments_queue_dropped_total Events or records not written: refused (queue full, closed, invalid) or given up after the last attempt.
# TYPE experiments_queue_dropped_total counter
experiments_queue_dropped_total{queue="conversions"} 2
experiments_queue_dropped_total{queue="events"} 3
experiments_queue_dropped_total{queue="exposures"} 0
experiments_queue_dropped_total{queue="segment"} 6
# HELP experiments_queue_failed_batches_total Batches given up after their last attempt; their events or records count as dropped.
# TYPE experiments_queue_failed_batches_total counter
experiments_queue_failed_batches_total{queue="conversions"} 1
experiments_queue_failed_batches_total{queue="events"} 1
experiments_queue_failed_batches_total{queue="exposures"} 0
experiments_queue_failed_batches_total{queue="segment"} 2
# HELP experiments_queue_length Events or records accepted and not yet written nor given up: in the queue or in a batch.
# TYPE experiments_queue_length gauge
experiments_queue_length{queue="conversions"} 0
experiments_queue_length{queue="events"} 7
experiments_queue_length{queue="exposures"} 1
experiments_queue_length{queue="segment"} 2
# HELP experiments_queue_retries_total Failed attempts at writing a batch that were retried.
# TYPE experiments_queue_retries_total counter
experiments_queue_retries_total{queue="conversions"} 4
experiments_queue_retries_total{queue="events"} 5
experiments_queue_retries_total{queue="exposures"} 0
experiments_queue_retries_total{queue="segment"} 8
# HELP experiments_queue_written_total Events or records written to their destination (the database, Segment).
# TYPE experiments_queue_written_total counter
experiments_queue_written_total{queue="conversions"} 5
experiments_queue_written_total{queue="events"} 1000
experiments_queue_written_total{queue="exposures"} 20
experiments_queue_written_total{queue="segment"} 90
# HELP experiments_store_reload_age_seconds Seconds since the store last found its configuration current (how stale decisions may be).
# TYPE experiments_store_reload_age_seconds gauge
experiments_store_reload_age_seconds 2.5
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %+v", err, problems)
	}
}

func TestQueuesLabels(t *testing.T) {
	q := fakeQueue{Written: 1}
	for _, tc := range []struct {
		name      string
		opts      prommetrics.Options
		wantPanic string // "": no panic
		want      int    // queues exported
	}{
		{"ok, labels of their own", prommetrics.Options{Queues: map[string]prommetrics.TrackerSource{"segment": q, "kafka": q}}, "", 2},
		{"ok, the recorder's labels without a Recorder", prommetrics.Options{Queues: map[string]prommetrics.TrackerSource{"exposures": q, "events": q}}, "", 2},
		{"ok, a nil source is skipped, whatever its label", prommetrics.Options{Tracker: q, Queues: map[string]prommetrics.TrackerSource{"events": nil, "": nil}}, "", 1},
		{"nok, empty label", prommetrics.Options{Queues: map[string]prommetrics.TrackerSource{"": q}}, `prommetrics: Options.Queues: empty label`, 0},
		{"nok, label not UTF-8", prommetrics.Options{Queues: map[string]prommetrics.TrackerSource{"seg\xffment": q}}, `prommetrics: Options.Queues: label "seg\xffment" is not UTF-8`, 0},
		{"nok, label of the Tracker", prommetrics.Options{Tracker: q, Queues: map[string]prommetrics.TrackerSource{"events": q}}, `prommetrics: Options.Queues: label "events" is that of Options.Tracker`, 0},
		{"nok, label of the Recorder", prommetrics.Options{Recorder: &fakeSources{}, Queues: map[string]prommetrics.TrackerSource{"conversions": q}}, `prommetrics: Options.Queues: label "conversions" is that of Options.Recorder`, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				got, _ := recover().(string)
				if got != tc.wantPanic {
					t.Errorf("panic %q, want %q", got, tc.wantPanic)
				}
			}()
			m := prommetrics.New(tc.opts)
			if n := testutil.CollectAndCount(m, "experiments_queue_written_total"); n != tc.want {
				t.Errorf("%d queues exported, want %d", n, tc.want)
			}
		})
	}
}

// Options.Queues is copied: changing the map after New changes nothing.
func TestQueuesCopied(t *testing.T) {
	queues := map[string]prommetrics.TrackerSource{"segment": fakeQueue{Written: 1}}
	m := prommetrics.New(prommetrics.Options{Queues: queues})
	queues["kafka"] = fakeQueue{Written: 2}
	delete(queues, "segment")
	want := `
# HELP experiments_queue_written_total Events or records written to their destination (the database, Segment).
# TYPE experiments_queue_written_total counter
experiments_queue_written_total{queue="segment"} 1
`
	if err := testutil.CollectAndCompare(m, strings.NewReader(want), "experiments_queue_written_total"); err != nil {
		t.Error(err)
	}
}

func TestReloadAge(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	src := &fakeSources{loaded: at, now: at}
	m := prommetrics.New(prommetrics.Options{Store: src, Now: src.Now})
	for _, step := range []struct {
		advance time.Duration
		want    float64
	}{{0, 0}, {time.Second, 1}, {time.Minute, 61}} {
		src.advance(step.advance)
		if got := testutil.ToFloat64(m); got != step.want {
			t.Errorf("reload age = %v, want %v", got, step.want)
		}
	}
}

func TestNoSources(t *testing.T) {
	m := prommetrics.New(prommetrics.Options{Store: &fakeSources{}}) // never loaded: no age
	if n := testutil.CollectAndCount(m); n != 0 {
		t.Errorf("%d metrics without sources nor decisions, want 0", n)
	}
	m.SetExperiments(fakeExperiments{})
	m.SetExperiments(nil)
	if n := testutil.CollectAndCount(m); n != 0 {
		t.Errorf("%d metrics after SetExperiments(nil), want 0", n)
	}
}

// Scraping over HTTP, as Prometheus does.
func TestScrape(t *testing.T) {
	m := prommetrics.New(prommetrics.Options{})
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	x := newRuntime(t, m)
	m.SetExperiments(x)
	user := x.NewContext(context.Background(), experiments.User{ID: "7"})
	upgrade.Bucket(user, course)
	upgrade.Bucket(user, course)

	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	want := `
# HELP experiments_conversions_total Conversions recorded.
# TYPE experiments_conversions_total counter
experiments_conversions_total 0
# HELP experiments_decisions_total Decisions made with request state (calls of Bucket, IsEnabled, Decide, DecideUntracked), by flag, bucket and reason; cached ones have reason "cached".
# TYPE experiments_decisions_total counter
experiments_decisions_total{bucket="2",flag="course_experience.upgrade_button",reason="cached"} 1
experiments_decisions_total{bucket="2",flag="course_experience.upgrade_button",reason="forced"} 1
`
	if err := testutil.ScrapeAndCompare(srv.URL, strings.NewReader(want), "experiments_decisions_total", "experiments_conversions_total"); err != nil {
		t.Error(err)
	}
}

func TestObserveDecisionConcurrent(t *testing.T) {
	m := prommetrics.New(prommetrics.Options{})
	x := newRuntime(t, m)
	const goroutines, calls = 8, 100
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range calls {
				user := x.NewContext(context.Background(), experiments.User{ID: itoa(g*calls + i)})
				upgrade.Bucket(user, course)
				upgrade.Bucket(user, course)
			}
		})
	}
	wg.Wait()
	for reason, want := range map[string]float64{"forced": goroutines * calls, "cached": goroutines * calls} {
		if got := decisions(t, m, upgrade.Name(), "2", reason); got != want {
			t.Errorf("%s: %v decisions, want %v", reason, got, want)
		}
	}
}

func TestObserveDecisionAllocations(t *testing.T) {
	m := prommetrics.New(prommetrics.Options{})
	ctx := context.Background()
	d := experiments.Decision{Bucket: 1, Reason: experiments.ReasonCached}
	m.ObserveDecision(ctx, upgrade, course, d)
	if n := testing.AllocsPerRun(100, func() { m.ObserveDecision(ctx, upgrade, course, d) }); n != 0 {
		t.Errorf("allocs = %v after warm-up, want 0", n)
	}
}

// BenchmarkObserveDecision is the cost of the hook alone, warm.
func BenchmarkObserveDecision(b *testing.B) {
	m := prommetrics.New(prommetrics.Options{})
	ctx := context.Background()
	d := experiments.Decision{Bucket: 1, Reason: experiments.ReasonCached}
	m.ObserveDecision(ctx, upgrade, course, d)
	b.ReportAllocs()
	for b.Loop() {
		m.ObserveDecision(ctx, upgrade, course, d)
	}
}

// BenchmarkObserveDecisionParallel is the hook from every CPU at once,
// on one counter.
func BenchmarkObserveDecisionParallel(b *testing.B) {
	m := prommetrics.New(prommetrics.Options{})
	ctx := context.Background()
	d := experiments.Decision{Bucket: 1, Reason: experiments.ReasonCached}
	m.ObserveDecision(ctx, upgrade, course, d)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.ObserveDecision(ctx, upgrade, course, d)
		}
	})
}

// BenchmarkBucketCached is a cached decision counted by Metrics: compare
// with the root package's BenchmarkBucketCached.
func BenchmarkBucketCached(b *testing.B) {
	m := prommetrics.New(prommetrics.Options{})
	x := newRuntime(b, m)
	user := x.NewContext(context.Background(), experiments.User{ID: "42"})
	upgrade.Bucket(user, course)
	b.ReportAllocs()
	for b.Loop() {
		upgrade.Bucket(user, course)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
