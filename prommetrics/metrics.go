// Package prommetrics exports an experiments runtime to Prometheus:
// decisions by flag, bucket and reason, counted as they are made, and,
// read at scrape time, the queues of trackers and recorders (any source
// of experiments.QueueStats: a sqlstore Tracker, a sqlstore Store's
// recorder, a segment Tracker), the conversions of an Experiments, and
// how long ago a sqlstore Store last loaded its configuration.
//
//	m := prommetrics.New(prommetrics.Options{Tracker: tracker, Recorder: store, Store: store})
//	x := experiments.New(experiments.Config{Store: store, Tracker: tracker, Recorder: store,
//		OnDecision: m.ObserveDecision})
//	m.SetExperiments(x)
//	prometheus.MustRegister(m)
//
// The sources are small interfaces whose methods return types of package
// experiments (experiments.QueueStats): prommetrics does not import
// sqlstore nor segment, so it adds neither their dependencies (a
// PostgreSQL driver, migrations) to a program that does not use them.
// Other queues, such as a segment Tracker's, go in Options.Queues under a
// label of their own:
//
//	m := prommetrics.New(prommetrics.Options{
//		Queues: map[string]prommetrics.TrackerSource{"segment": segmentTracker},
//	})
//
// The metrics (see the README for the table):
//
//	experiments_decisions_total{flag,bucket,reason}  counter
//	experiments_queue_length{queue}                  gauge: events, exposures, conversions, Queues' labels
//	experiments_queue_written_total{queue}           counter
//	experiments_queue_dropped_total{queue}           counter
//	experiments_queue_batches_total{queue}           counter
//	experiments_queue_failed_batches_total{queue}    counter
//	experiments_queue_retries_total{queue}           counter
//	experiments_conversions_total                    counter
//	experiments_conversions_ignored_total            counter
//	experiments_store_reload_age_seconds             gauge
//
// Course keys are not a label: there may be thousands of them. To tell
// several runtimes of one process apart, register each Metrics with
// prometheus.WrapRegistererWith and a label of your own.
package prommetrics

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/abkit/experiments"
	"github.com/prometheus/client_golang/prometheus"
)

var _ prometheus.Collector = (*Metrics)(nil)

// TrackerSource is a queue's counters, what Options.Tracker and
// Options.Queues need; *sqlstore.Tracker and *segment.Tracker have it.
type TrackerSource interface {
	Stats() experiments.QueueStats
}

// RecorderSource is the counters of a recorder's two queues, what
// Options.Recorder needs; *sqlstore.Store has it.
type RecorderSource interface {
	ExposureStats() experiments.QueueStats
	ConversionStats() experiments.QueueStats
}

// StoreSource is what Options.Store needs; *sqlstore.Store has it.
type StoreSource interface {
	// LoadedAt returns when the configuration served was last found
	// current; the zero Time if never.
	LoadedAt() time.Time
}

// StatsSource is what SetExperiments needs; *experiments.Experiments has
// it.
type StatsSource interface {
	Stats() experiments.Stats
}

// Options says what New's Metrics read at scrape time. Every field is
// optional: the metrics of a source that is nil are not exported (a nil
// pointer in an interface is not nil: leave the field out instead).
type Options struct {
	// Tracker is the events' queue (a *sqlstore.Tracker), exported with
	// queue="events". Optional. Default: nil.
	Tracker TrackerSource
	// Recorder holds the exposures' and conversions' queues (a
	// *sqlstore.Store), exported with queue="exposures" and
	// queue="conversions". Optional. Default: nil.
	Recorder RecorderSource
	// Queues are other queues, each exported with its key as the queue
	// label: {"segment": segmentTracker} gives queue="segment". Nil
	// values are skipped; the map is copied. New panics on a key that is
	// empty, not UTF-8, or the label of another source that is set
	// ("events" with Tracker, "exposures" and "conversions" with
	// Recorder). Optional. Default: nil.
	Queues map[string]TrackerSource
	// Store gives experiments_store_reload_age_seconds.
	// Optional. Default: nil.
	Store StoreSource
	// Now is the clock of the reload age. Optional. Default: time.Now.
	Now func() time.Time
}

// Metrics is a prometheus.Collector of an experiments runtime. Make one
// with New, give its ObserveDecision to experiments.Config.OnDecision,
// and register it. It keeps the counters of each flag it has seen, so
// declare flags once, as package-level values, not per request. It is
// safe for concurrent use.
type Metrics struct {
	decisions *prometheus.CounterVec
	flags     sync.Map // *experiments.ExperimentFlag → *flagCounters

	reasonsMu sync.Mutex                           // held to add to reasons
	reasons   atomic.Pointer[[]experiments.Reason] // beyond the known ones, in order of first use

	queues   []labeledQueue // Tracker and Queues, by label
	recorder RecorderSource
	store    StoreSource
	now      func() time.Time
	stats    atomic.Pointer[StatsSource] // SetExperiments

	queueLength, queueWritten, queueDropped         *prometheus.Desc
	queueBatches, queueFailedBatches, queueRetries  *prometheus.Desc
	conversions, ignoredConversions, storeReloadAge *prometheus.Desc
}

// labeledQueue is a queue and the value of its queue label.
type labeledQueue struct {
	label string
	src   TrackerSource
}

// New returns the Metrics of opts' sources. Register it with a
// prometheus.Registerer; it exports nothing about decisions until its
// ObserveDecision is an Experiments' Config.OnDecision. It panics when a
// key of opts.Queues is not a valid label (see Options.Queues).
func New(opts Options) *Metrics {
	queues, err := labelQueues(opts)
	if err != nil {
		panic("prommetrics: " + err.Error())
	}
	queue := []string{"queue"}
	m := &Metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "experiments_decisions_total",
			Help: "Decisions made with request state (calls of Bucket, IsEnabled, Decide, DecideUntracked), by flag, bucket and reason; cached ones have reason \"cached\".",
		}, []string{"flag", "bucket", "reason"}),
		queues: queues, recorder: opts.Recorder, store: opts.Store, now: opts.Now,
		queueLength: prometheus.NewDesc("experiments_queue_length",
			"Events or records accepted and not yet written nor given up: in the queue or in a batch.", queue, nil),
		queueWritten: prometheus.NewDesc("experiments_queue_written_total",
			"Events or records written to their destination (the database, Segment).", queue, nil),
		queueDropped: prometheus.NewDesc("experiments_queue_dropped_total",
			"Events or records not written: refused (queue full, closed, invalid) or given up after the last attempt.", queue, nil),
		queueBatches: prometheus.NewDesc("experiments_queue_batches_total",
			"Batches written to their destination.", queue, nil),
		queueFailedBatches: prometheus.NewDesc("experiments_queue_failed_batches_total",
			"Batches given up after their last attempt; their events or records count as dropped.", queue, nil),
		queueRetries: prometheus.NewDesc("experiments_queue_retries_total",
			"Failed attempts at writing a batch that were retried.", queue, nil),
		conversions: prometheus.NewDesc("experiments_conversions_total",
			"Conversions recorded.", nil, nil),
		ignoredConversions: prometheus.NewDesc("experiments_conversions_ignored_total",
			"Conversions of anonymous or masquerading users, ignored.", nil, nil),
		storeReloadAge: prometheus.NewDesc("experiments_store_reload_age_seconds",
			"Seconds since the store last found its configuration current (how stale decisions may be).", nil, nil),
	}
	if m.now == nil {
		m.now = time.Now
	}
	return m
}

// labelQueues returns opts.Tracker and opts.Queues' non-nil sources with
// their labels, sorted by label, or an error for a key that is not a
// valid label.
func labelQueues(opts Options) ([]labeledQueue, error) {
	taken := map[string]string{}
	var queues []labeledQueue
	if opts.Tracker != nil {
		taken["events"] = "Options.Tracker"
		queues = append(queues, labeledQueue{label: "events", src: opts.Tracker})
	}
	if opts.Recorder != nil {
		taken["exposures"], taken["conversions"] = "Options.Recorder", "Options.Recorder"
	}
	for label, src := range opts.Queues {
		if src == nil {
			continue
		}
		switch {
		case label == "":
			return nil, errors.New("Options.Queues: empty label")
		case !utf8.ValidString(label):
			return nil, fmt.Errorf("Options.Queues: label %q is not UTF-8", label)
		case taken[label] != "":
			return nil, fmt.Errorf("Options.Queues: label %q is that of %s", label, taken[label])
		}
		queues = append(queues, labeledQueue{label: label, src: src})
	}
	slices.SortFunc(queues, func(a, b labeledQueue) int { return strings.Compare(a.label, b.label) })
	return queues, nil
}

// SetExperiments makes m export x's Stats (the conversions) too. x is
// usually made after m, its Config taking m.ObserveDecision: call
// SetExperiments once it exists. It is safe to call at any time; a later
// call replaces x, nil stops exporting (a nil *experiments.Experiments
// is not nil: do not pass one).
func (m *Metrics) SetExperiments(x StatsSource) {
	if x == nil {
		m.stats.Store(nil)
		return
	}
	m.stats.Store(&x)
}

// ObserveDecision counts d in experiments_decisions_total. It is an
// experiments.DecisionFunc, for experiments.Config.OnDecision. Once a
// flag, bucket and reason have been seen, it takes no lock and does not
// allocate.
func (m *Metrics) ObserveDecision(_ context.Context, f *experiments.ExperimentFlag, _ string, d experiments.Decision) {
	m.counter(f, d.Bucket, d.Reason).Inc()
}

// knownReasons is the number of reasons of package experiments, the
// cases of reasonIndex's switch; other reasons get the next indexes, up
// to maxReasons.
const knownReasons = 10

// maxReasons bounds the reasons counted without a label lookup.
const maxReasons = 16

// flagCounters are a flag's counters, by bucket and reason index, made on
// first use.
type flagCounters struct {
	buckets []atomic.Pointer[bucketCounters]
}

type bucketCounters [maxReasons]atomic.Pointer[prometheus.Counter]

// counter returns the counter of flag f, bucket b and reason r.
func (m *Metrics) counter(f *experiments.ExperimentFlag, b int, r experiments.Reason) prometheus.Counter {
	ri := m.reasonIndex(r)
	v, ok := m.flags.Load(f)
	if !ok {
		v, _ = m.flags.LoadOrStore(f, &flagCounters{buckets: make([]atomic.Pointer[bucketCounters], f.Buckets())})
	}
	fc := v.(*flagCounters)
	if ri < 0 || b < 0 || b >= len(fc.buckets) {
		return m.decisions.WithLabelValues(f.Name(), strconv.Itoa(b), string(r))
	}
	bc := fc.buckets[b].Load()
	if bc == nil {
		fc.buckets[b].CompareAndSwap(nil, new(bucketCounters))
		bc = fc.buckets[b].Load()
	}
	if c := bc[ri].Load(); c != nil {
		return *c
	}
	// Racing callers get the same counter from the vector.
	c := m.decisions.WithLabelValues(f.Name(), strconv.Itoa(b), string(r))
	bc[ri].Store(&c)
	return c
}

// reasonIndex returns r's index in bucketCounters, or -1 when there are
// too many reasons.
func (m *Metrics) reasonIndex(r experiments.Reason) int {
	switch r {
	case experiments.ReasonCached:
		return 0
	case experiments.ReasonHashed:
		return 1
	case experiments.ReasonAnonymous:
		return 2
	case experiments.ReasonFlagOff:
		return 3
	case experiments.ReasonForced:
		return 4
	case experiments.ReasonOverride:
		return 5
	case experiments.ReasonOutsideWindow:
		return 6
	case experiments.ReasonBadWindow:
		return 7
	case experiments.ReasonError:
		return 8
	case experiments.ReasonNoRequest:
		return 9
	}
	if p := m.reasons.Load(); p != nil {
		for i, known := range *p {
			if known == r {
				return knownReasons + i
			}
		}
	}
	return m.addReason(r)
}

// addReason gives r the next index, if there is one left.
func (m *Metrics) addReason(r experiments.Reason) int {
	m.reasonsMu.Lock()
	defer m.reasonsMu.Unlock()
	var reasons []experiments.Reason
	if p := m.reasons.Load(); p != nil {
		reasons = *p
	}
	for i, known := range reasons {
		if known == r {
			return knownReasons + i
		}
	}
	if knownReasons+len(reasons) >= maxReasons {
		return -1
	}
	reasons = append(reasons[:len(reasons):len(reasons)], r)
	m.reasons.Store(&reasons)
	return knownReasons + len(reasons) - 1
}

// Describe sends the descriptors of every metric m may export.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.decisions.Describe(ch)
	for _, d := range []*prometheus.Desc{
		m.queueLength, m.queueWritten, m.queueDropped, m.queueBatches, m.queueFailedBatches, m.queueRetries,
		m.conversions, m.ignoredConversions, m.storeReloadAge,
	} {
		ch <- d
	}
}

// Collect sends the decision counters, and reads the sources' counters.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.decisions.Collect(ch)
	for _, q := range m.queues {
		m.collectQueue(ch, q.label, q.src.Stats())
	}
	if m.recorder != nil {
		m.collectQueue(ch, "exposures", m.recorder.ExposureStats())
		m.collectQueue(ch, "conversions", m.recorder.ConversionStats())
	}
	if p := m.stats.Load(); p != nil {
		st := (*p).Stats()
		ch <- prometheus.MustNewConstMetric(m.conversions, prometheus.CounterValue, float64(st.Conversions))
		ch <- prometheus.MustNewConstMetric(m.ignoredConversions, prometheus.CounterValue, float64(st.IgnoredConversions))
	}
	if m.store != nil {
		if at := m.store.LoadedAt(); !at.IsZero() {
			age := max(m.now().Sub(at).Seconds(), 0)
			ch <- prometheus.MustNewConstMetric(m.storeReloadAge, prometheus.GaugeValue, age)
		}
	}
}

// collectQueue sends the metrics of one queue.
func (m *Metrics) collectQueue(ch chan<- prometheus.Metric, queue string, s experiments.QueueStats) {
	ch <- prometheus.MustNewConstMetric(m.queueLength, prometheus.GaugeValue, float64(s.Queued), queue)
	ch <- prometheus.MustNewConstMetric(m.queueWritten, prometheus.CounterValue, float64(s.Written), queue)
	ch <- prometheus.MustNewConstMetric(m.queueDropped, prometheus.CounterValue, float64(s.Dropped), queue)
	ch <- prometheus.MustNewConstMetric(m.queueBatches, prometheus.CounterValue, float64(s.Batches), queue)
	ch <- prometheus.MustNewConstMetric(m.queueFailedBatches, prometheus.CounterValue, float64(s.FailedBatches), queue)
	ch <- prometheus.MustNewConstMetric(m.queueRetries, prometheus.CounterValue, float64(s.Retries), queue)
}
