package experiments_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/internal/syncbuf"
)

// trackersFlag is the flag of the tracker tests.
var trackersFlag = experiments.NewFlag("course_experience", "tracker_test")

var trackerTime = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// jsonLog is a JSON slog handler writing into a buffer, with its records
// decoded for assertions.
type jsonLog struct {
	syncbuf.Buffer
}

func (j *jsonLog) logger(level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(j, &slog.HandlerOptions{Level: level}))
}

// records decodes every line written so far.
func (j *jsonLog) records(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(j.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q does not decode: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func sampleEvent(course string) experiments.Event {
	return experiments.Event{
		Name: experiments.EventUserBucketed, Time: trackerTime, UserID: "42", Site: "learn.example.org",
		AppLabel: "course_experience", Experiment: "tracker_test", CourseKey: course, Bucket: 1, IsStaff: true,
	}
}

func TestSlogTracker(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		course string
		want   any // course_id
	}{
		{"ok, a course gives its key as course_id", "course-v1:edX+DemoX+2026", "course-v1:edX+DemoX+2026"},
		{"ok, no course gives a null course_id, as edX's None", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var j jsonLog
			tr := experiments.SlogTracker(j.logger(slog.LevelInfo), slog.LevelInfo)
			if err := tr.Track(context.Background(), sampleEvent(tt.course)); err != nil {
				t.Fatalf("Track = %v", err)
			}
			recs := j.records(t)
			if len(recs) != 1 {
				t.Fatalf("got %d records, want 1: %v", len(recs), recs)
			}
			want := map[string]any{
				"time": "2026-03-01T12:00:00Z", "level": "INFO", "msg": "edx.bi.experiment.user.bucketed",
				"user_id": "42", "site": "learn.example.org", "app_label": "course_experience",
				"experiment": "tracker_test", "course_id": tt.want, "bucket": float64(1),
				"is_staff": true, "nonInteraction": float64(1),
			}
			got := recs[0]
			if len(got) != len(want) {
				t.Errorf("record has keys %v, want exactly those of %v", got, want)
			}
			for k, w := range want {
				if g, ok := got[k]; !ok || g != w {
					t.Errorf("%s = %#v (present %v), want %#v", k, g, ok, w)
				}
			}
		})
	}
}

// An anonymous visitor's event logs an empty user_id and anonymous_id.
func TestSlogTrackerAnonymousVisitor(t *testing.T) {
	t.Parallel()
	var j jsonLog
	e := sampleEvent("")
	e.UserID, e.AnonymousID = "", "0123456789abcdef0123456789abcdef"
	if err := experiments.SlogTracker(j.logger(slog.LevelInfo), slog.LevelInfo).Track(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	recs := j.records(t)
	if len(recs) != 1 || recs[0]["user_id"] != "" || recs[0]["anonymous_id"] != e.AnonymousID {
		t.Errorf("records %v, want one with user_id \"\" and anonymous_id %s", recs, e.AnonymousID)
	}
}

func TestSlogTrackerLevelAndLoggerAttrs(t *testing.T) {
	t.Parallel()
	t.Run("ok, nothing is logged below the handler's level", func(t *testing.T) {
		var j jsonLog
		tr := experiments.SlogTracker(j.logger(slog.LevelWarn), slog.LevelInfo)
		if err := tr.Track(context.Background(), sampleEvent("")); err != nil {
			t.Fatalf("Track = %v", err)
		}
		if recs := j.records(t); len(recs) != 0 {
			t.Errorf("got %v, want no record", recs)
		}
	})
	t.Run("ok, the record has the tracker's level and the logger's attributes", func(t *testing.T) {
		var j jsonLog
		tr := experiments.SlogTracker(j.logger(slog.LevelDebug).With("component", "ab"), slog.LevelDebug)
		if err := tr.Track(context.Background(), sampleEvent("")); err != nil {
			t.Fatalf("Track = %v", err)
		}
		recs := j.records(t)
		if len(recs) != 1 || recs[0]["level"] != "DEBUG" || recs[0]["component"] != "ab" {
			t.Errorf("got %v, want one DEBUG record with component=ab", recs)
		}
	})
	t.Run("nok, the handler's error is returned", func(t *testing.T) {
		errWrite := errors.New("disk full")
		tr := experiments.SlogTracker(slog.New(failingHandler{errWrite}), slog.LevelInfo)
		if err := tr.Track(context.Background(), sampleEvent("")); !errors.Is(err, errWrite) {
			t.Errorf("Track = %v, want %v", err, errWrite)
		}
	})
}

// Not parallel: it swaps slog's default logger.
func TestSlogTrackerNilLoggerUsesDefault(t *testing.T) {
	var j jsonLog
	prev := slog.Default()
	slog.SetDefault(j.logger(slog.LevelInfo))
	t.Cleanup(func() { slog.SetDefault(prev) })

	if err := experiments.SlogTracker(nil, slog.LevelInfo).Track(context.Background(), sampleEvent("")); err != nil {
		t.Fatalf("Track = %v", err)
	}
	if recs := j.records(t); len(recs) != 1 || recs[0]["msg"] != experiments.EventUserBucketed {
		t.Errorf("got %v, want one record on the default logger", recs)
	}
}

// failingHandler is a slog.Handler whose Handle fails.
type failingHandler struct{ err error }

func (failingHandler) Enabled(context.Context, slog.Level) bool    { return true }
func (h failingHandler) Handle(context.Context, slog.Record) error { return h.err }
func (h failingHandler) WithAttrs([]slog.Attr) slog.Handler        { return h }
func (h failingHandler) WithGroup(string) slog.Handler             { return h }

func TestSlogTrackerThroughRuntime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := experiments.NewMemStore()
	if err := store.SetFlag(ctx, trackersFlag.Name(), experiments.On()); err != nil {
		t.Fatal(err)
	}
	var j jsonLog
	x := experiments.New(experiments.Config{
		Store: store, Tracker: experiments.SlogTracker(j.logger(slog.LevelInfo), slog.LevelInfo),
		Site: "learn.example.org", Now: func() time.Time { return trackerTime }, Logger: unitLogger(),
	})
	rctx := x.NewContext(ctx, experiments.User{ID: "42", Staff: true})
	course := "course-v1:edX+DemoX+2026"
	first := trackersFlag.Decide(rctx, course)
	if second := trackersFlag.Decide(rctx, course); second.Bucket != first.Bucket || second.Tracked {
		t.Errorf("second Decide = %+v, want bucket %d and no event", second, first.Bucket)
	}
	if !first.Tracked || first.Err != nil {
		t.Fatalf("first Decide = %+v, want tracked without error", first)
	}
	recs := j.records(t)
	if len(recs) != 1 {
		t.Fatalf("got %d records, want 1: %v", len(recs), recs)
	}
	r := recs[0]
	if r["msg"] != experiments.EventUserBucketed || r["time"] != "2026-03-01T12:00:00Z" || r["user_id"] != "42" ||
		r["site"] != "learn.example.org" || r["app_label"] != "course_experience" || r["experiment"] != "tracker_test" ||
		r["course_id"] != course || r["bucket"] != float64(first.Bucket) || r["is_staff"] != true || r["nonInteraction"] != float64(1) {
		t.Errorf("record = %v", r)
	}
}

// callLog records which trackers were called, in order.
type callLog struct {
	mu    sync.Mutex
	calls []string
}

func (c *callLog) tracker(name string, err error) experiments.Tracker {
	return experiments.TrackerFunc(func(context.Context, experiments.Event) error {
		c.mu.Lock()
		c.calls = append(c.calls, name)
		c.mu.Unlock()
		return err
	})
}

func (c *callLog) panicking(name string) experiments.Tracker {
	return experiments.TrackerFunc(func(context.Context, experiments.Event) error {
		c.mu.Lock()
		c.calls = append(c.calls, name)
		c.mu.Unlock()
		panic("tracker " + name + " exploded")
	})
}

func (c *callLog) got() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.calls, ",")
}

func TestMultiTracker(t *testing.T) {
	t.Parallel()
	errA := errors.New("a down")
	errC := errors.New("c down")
	tests := []struct {
		name      string
		trackers  func(c *callLog) []experiments.Tracker
		wantCalls string
		wantIs    []error
		wantMsg   []string // substrings of the error; none when nil
	}{
		{"ok, every tracker is called in order",
			func(c *callLog) []experiments.Tracker {
				return []experiments.Tracker{c.tracker("a", nil), c.tracker("b", nil), c.tracker("c", nil)}
			}, "a,b,c", nil, nil},
		{"ok, nil trackers are skipped",
			func(c *callLog) []experiments.Tracker {
				return []experiments.Tracker{nil, c.tracker("a", nil), nil, c.tracker("b", nil)}
			}, "a,b", nil, nil},
		{"ok, no tracker at all does nothing",
			func(*callLog) []experiments.Tracker { return nil }, "", nil, nil},
		{"ok, only nil trackers does nothing",
			func(*callLog) []experiments.Tracker { return []experiments.Tracker{nil, nil} }, "", nil, nil},
		{"nok, failures are joined and the others still called",
			func(c *callLog) []experiments.Tracker {
				return []experiments.Tracker{c.tracker("a", errA), c.tracker("b", nil), c.tracker("c", errC)}
			}, "a,b,c", []error{errA, errC}, []string{"tracker 0: a down", "tracker 2: c down"}},
		{"nok, a panic is recovered and the later trackers still called",
			func(c *callLog) []experiments.Tracker {
				return []experiments.Tracker{c.tracker("a", nil), c.panicking("b"), c.tracker("c", nil)}
			}, "a,b,c", nil, []string{"tracker 1: panic: tracker b exploded"}},
		{"nok, the index in the error counts the nil trackers",
			func(c *callLog) []experiments.Tracker {
				return []experiments.Tracker{nil, c.tracker("a", errA)}
			}, "a", []error{errA}, []string{"tracker 1: a down"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var c callLog
			err := experiments.MultiTracker(tt.trackers(&c)...).Track(context.Background(), sampleEvent(""))
			if got := c.got(); got != tt.wantCalls {
				t.Errorf("calls = %q, want %q", got, tt.wantCalls)
			}
			if tt.wantMsg == nil {
				if err != nil {
					t.Errorf("Track = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Track = nil, want an error with %q", tt.wantMsg)
			}
			for _, w := range tt.wantIs {
				if !errors.Is(err, w) {
					t.Errorf("Track = %v, want it to wrap %v", err, w)
				}
			}
			for _, m := range tt.wantMsg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("Track = %q, want it to contain %q", err, m)
				}
			}
		})
	}
}

func TestMultiTrackerPassesTheEventAndContext(t *testing.T) {
	t.Parallel()
	type key struct{}
	ctx := context.WithValue(context.Background(), key{}, "v")
	want := sampleEvent("course-v1:edX+DemoX+2026")
	var got []experiments.Event
	rec := experiments.TrackerFunc(func(ctx context.Context, e experiments.Event) error {
		if ctx.Value(key{}) != "v" {
			t.Error("the tracker did not get the caller's context")
		}
		got = append(got, e)
		return nil
	})
	if err := experiments.MultiTracker(rec, rec).Track(ctx, want); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != want || got[1] != want {
		t.Errorf("events = %+v, want %+v twice", got, want)
	}
}

func TestMultiTrackerCopiesItsArguments(t *testing.T) {
	t.Parallel()
	var c callLog
	ts := []experiments.Tracker{c.tracker("a", nil), c.tracker("b", nil)}
	m := experiments.MultiTracker(ts...)
	ts[0] = c.tracker("x", nil)
	if err := m.Track(context.Background(), sampleEvent("")); err != nil {
		t.Fatal(err)
	}
	if got := c.got(); got != "a,b" {
		t.Errorf("calls = %q, want %q: MultiTracker must copy its slice", got, "a,b")
	}
}

// Run with -race: one MultiTracker used by many goroutines.
func TestMultiTrackerConcurrent(t *testing.T) {
	t.Parallel()
	var j jsonLog
	var c callLog
	m := experiments.MultiTracker(experiments.SlogTracker(j.logger(slog.LevelInfo), slog.LevelInfo), c.tracker("a", nil))
	const n = 50
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			e := sampleEvent("")
			e.UserID = fmt.Sprint(i)
			if err := m.Track(context.Background(), e); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if recs := j.records(t); len(recs) != n {
		t.Errorf("got %d records, want %d", len(recs), n)
	}
	if calls := strings.Count(c.got(), "a"); calls != n {
		t.Errorf("got %d calls, want %d", calls, n)
	}
}

// Through the runtime: a panicking tracker does not stop the others, and
// the bucket stands with ErrTracker in Decision.Err.
func TestMultiTrackerThroughRuntime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := experiments.NewMemStore()
	if err := store.SetFlag(ctx, trackersFlag.Name(), experiments.On()); err != nil {
		t.Fatal(err)
	}
	var c callLog
	var j jsonLog
	x := experiments.New(experiments.Config{
		Store: store, Logger: unitLogger(), Now: func() time.Time { return trackerTime },
		Tracker: experiments.MultiTracker(
			c.tracker("first", nil), c.panicking("second"),
			experiments.SlogTracker(j.logger(slog.LevelInfo), slog.LevelInfo), c.tracker("last", nil)),
	})
	rctx := x.NewContext(ctx, experiments.User{ID: "42"})
	d := trackersFlag.Decide(rctx, "")
	if want := experiments.SHA256Bucket(trackersFlag.Name(), "42", 2); d.Bucket != want {
		t.Errorf("bucket = %d, want %d", d.Bucket, want)
	}
	if d.Tracked || !errors.Is(d.Err, experiments.ErrTracker) || !strings.Contains(d.Err.Error(), "tracker 1: panic") {
		t.Errorf("Decide = %+v, want not tracked, with ErrTracker and the panic of tracker 1", d)
	}
	if got := c.got(); got != "first,second,last" {
		t.Errorf("calls = %q, want %q", got, "first,second,last")
	}
	if recs := j.records(t); len(recs) != 1 || recs[0]["course_id"] != nil {
		t.Errorf("records = %v, want one with a null course_id", recs)
	}
}
