package segment_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/internal/syncbuf"
	"github.com/abkit/experiments/segment"
)

const writeKey = "test-write-key"

// dropConnection is the status a fakeSegment's status function returns to
// have it drop the connection without an answer.
const dropConnection = -1

// received is one request the fake Segment got.
type received struct {
	method, path, contentType, auth, userAgent string
	user, pass                                 string
	basicOK                                    bool
	status                                     int               // what the fake answered
	batchID                                    string            // the batch's messageId
	msgs                                       []json.RawMessage // the batch, raw
	sentAt                                     string
}

// decoded returns the i-th message decoded.
func (r received) decoded(t *testing.T, i int) map[string]any {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(r.msgs[i]))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("message %d: %v: %s", i, err, r.msgs[i])
	}
	return m
}

// ids returns the messageIds of r's messages.
func (r received) ids(t *testing.T) []string {
	t.Helper()
	out := make([]string, len(r.msgs))
	for i := range r.msgs {
		out[i], _ = r.decoded(t, i)["messageId"].(string)
	}
	return out
}

// fakeSegment is an httptest server that records the batches it gets and
// answers with status(n) for the n-th request (0-based); nil: 200.
type fakeSegment struct {
	*httptest.Server
	status func(n int) int

	mu   sync.Mutex
	reqs []received
	got  chan received // every request, once answered; buffered
}

func newFakeSegment(t *testing.T, status func(n int) int) *fakeSegment {
	t.Helper()
	f := &fakeSegment{status: status, got: make(chan received, 10_000)}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeSegment) serve(w http.ResponseWriter, r *http.Request) {
	var body struct {
		MessageID string            `json:"messageId"`
		Batch     []json.RawMessage `json:"batch"`
		SentAt    string            `json:"sentAt"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, `{"error":"bad JSON"}`, http.StatusBadRequest)
		return
	}
	user, pass, ok := r.BasicAuth()
	rec := received{
		method: r.Method, path: r.URL.Path, contentType: r.Header.Get("Content-Type"),
		auth: r.Header.Get("Authorization"), userAgent: r.Header.Get("User-Agent"),
		user: user, pass: pass, basicOK: ok, batchID: body.MessageID, msgs: body.Batch, sentAt: body.SentAt,
	}
	f.mu.Lock()
	n := len(f.reqs)
	rec.status = http.StatusOK
	if f.status != nil {
		rec.status = f.status(n)
	}
	f.reqs = append(f.reqs, rec)
	f.mu.Unlock()
	switch rec.status {
	case dropConnection:
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
		}
	case http.StatusOK:
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"success":true}`)
	default:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rec.status)
		fmt.Fprintf(w, `{"error":"fake %d"}`, rec.status)
	}
	f.got <- rec
}

// requests returns the requests so far.
func (f *fakeSegment) requests() []received {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]received(nil), f.reqs...)
}

// accepted returns the batches answered 200: their sizes, sorted, and
// their messages.
func (f *fakeSegment) accepted() (sizes []int, msgs []json.RawMessage) {
	for _, r := range f.requests() {
		if r.status == http.StatusOK {
			sizes = append(sizes, len(r.msgs))
			msgs = append(msgs, r.msgs...)
		}
	}
	slices.Sort(sizes)
	return sizes, msgs
}

// wait returns the next request, failing the test after 10 s.
func (f *fakeSegment) wait(t *testing.T) received {
	t.Helper()
	select {
	case r := <-f.got:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no request within 10 s")
		return received{}
	}
}

// fastRetries makes analytics-go retry after 1 ms, so that its 10
// attempts take no time.
var fastRetries = segment.WithRetryAfter(func(int) time.Duration { return time.Millisecond })

// noRetryWhileOpen makes analytics-go wait an hour before a retry: in a
// test, a failed batch is retried never, and given up at Close.
var noRetryWhileOpen = segment.WithRetryAfter(func(int) time.Duration { return time.Hour })

// newTracker returns a tracker sending to f, closed at the end of the
// test, and its logs.
func newTracker(t *testing.T, f *fakeSegment, opts ...segment.Option) (*segment.Tracker, *syncbuf.Buffer) {
	t.Helper()
	logs := new(syncbuf.Buffer)
	opts = append([]segment.Option{
		segment.WithEndpoint(f.URL),
		segment.WithInterval(time.Hour), // batches go when full, on Flush or Close, unless a test says otherwise
		segment.WithLogger(slog.New(slog.NewTextHandler(logs, nil))),
		fastRetries,
	}, opts...)
	tr, err := segment.New(writeKey, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tr.Close(ctx)
	})
	return tr, logs
}

func event(user string, i int) experiments.Event {
	return experiments.Event{
		Name: experiments.EventUserBucketed, Time: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
		UserID: user, Site: "learn.example.org", AppLabel: "course_experience",
		Experiment: "upgrade", CourseKey: "", Bucket: i % 2,
	}
}

// statsSettle returns the tracker's Stats once they are want, or after
// 10 s: analytics-go reports the outcome of a batch through its callback
// after the fake server has answered.
func statsSettle(t *testing.T, tr *segment.Tracker, want experiments.QueueStats) experiments.QueueStats {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := tr.Stats()
		if st == want || time.Now().After(deadline) {
			return st
		}
		time.Sleep(time.Millisecond)
	}
}

func mustTrack(t *testing.T, tr *segment.Tracker, e experiments.Event) {
	t.Helper()
	if err := tr.Track(context.Background(), e); err != nil {
		t.Fatalf("Track: %v", err)
	}
}

func closeTracker(t *testing.T, tr *segment.Tracker) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tr.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func flush(t *testing.T, tr *segment.Tracker) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return tr.Flush(ctx)
}

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestMessageIsEdXsEventInSegmentsBatchFormat(t *testing.T) {
	f := newFakeSegment(t, nil)
	tr, _ := newTracker(t, f)

	at := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.FixedZone("CET+2", 2*3600))
	noCourse := experiments.Event{
		Name: experiments.EventUserBucketed, Time: at, UserID: "42", Site: "learn.example.org",
		AppLabel: "course_experience", Experiment: "upgrade", Bucket: 1, IsStaff: false,
	}
	withCourse := noCourse
	withCourse.UserID, withCourse.CourseKey, withCourse.Bucket, withCourse.IsStaff = "7", "course-v1:edX+DemoX+2026", 0, true
	mustTrack(t, tr, noCourse)
	mustTrack(t, tr, withCourse)
	closeTracker(t, tr)

	reqs := f.requests()
	if len(reqs) != 1 || len(reqs[0].msgs) != 2 {
		t.Fatalf("want one batch of 2 messages, got %d requests: %+v", len(reqs), reqs)
	}
	r := reqs[0]
	t.Run("ok, POST /v1/batch as JSON with Basic auth: the write key and an empty password", func(t *testing.T) {
		if r.method != http.MethodPost || r.path != "/v1/batch" || r.contentType != "application/json" {
			t.Errorf("got %s %s (%s)", r.method, r.path, r.contentType)
		}
		if want := "Basic " + base64.StdEncoding.EncodeToString([]byte(writeKey+":")); r.auth != want {
			t.Errorf("Authorization %q, want %q", r.auth, want)
		}
		if !r.basicOK || r.user != writeKey || r.pass != "" {
			t.Errorf("BasicAuth() = %q, %q, %v", r.user, r.pass, r.basicOK)
		}
		if !strings.HasPrefix(r.userAgent, "analytics-go") {
			t.Errorf("User-Agent %q, want analytics-go's", r.userAgent)
		}
		if _, err := time.Parse(time.RFC3339, r.sentAt); err != nil {
			t.Errorf("sentAt %q: %v", r.sentAt, err)
		}
		if !uuidV4.MatchString(r.batchID) {
			t.Errorf("batch messageId %q", r.batchID)
		}
	})

	m0, m1 := r.decoded(t, 0), r.decoded(t, 1)
	id0, _ := m0["messageId"].(string)
	id1, _ := m1["messageId"].(string)

	t.Run("ok, a track call of the user: userId, no anonymousId, the event name, a UTC ms timestamp", func(t *testing.T) {
		if m0["type"] != "track" || m0["userId"] != "42" || m0["event"] != experiments.EventUserBucketed {
			t.Errorf("message %v", m0)
		}
		if _, ok := m0["anonymousId"]; ok {
			t.Errorf("message has an anonymousId: %v", m0)
		}
		if m0["timestamp"] != "2026-03-01T10:00:00.123Z" {
			t.Errorf("timestamp %v", m0["timestamp"])
		}
		if m1["userId"] != "7" {
			t.Errorf("userId %v", m1["userId"])
		}
	})
	t.Run("ok, edX's properties, course_id null without a course, nonInteraction 1", func(t *testing.T) {
		var p struct {
			Properties json.RawMessage `json:"properties"`
		}
		if err := json.Unmarshal(r.msgs[0], &p); err != nil {
			t.Fatal(err)
		}
		want := `{"app_label":"course_experience","bucket":1,"course_id":null,"experiment":"upgrade",` +
			`"is_staff":false,"nonInteraction":1,"site":"learn.example.org"}`
		if got := string(p.Properties); got != want {
			t.Errorf("properties\n got %s\nwant %s", got, want)
		}
	})
	t.Run("ok, with a course: course_id is the course key", func(t *testing.T) {
		props := m1["properties"].(map[string]any)
		want := map[string]any{
			"site": "learn.example.org", "app_label": "course_experience", "experiment": "upgrade",
			"course_id": "course-v1:edX+DemoX+2026", "bucket": json.Number("0"), "is_staff": true,
			"nonInteraction": json.Number("1"),
		}
		if fmt.Sprint(props) != fmt.Sprint(want) {
			t.Errorf("properties %v, want %v", props, want)
		}
	})
	t.Run("ok, messageIds are unique UUIDs", func(t *testing.T) {
		if !uuidV4.MatchString(id0) || !uuidV4.MatchString(id1) || id0 == id1 {
			t.Errorf("messageIds %q, %q", id0, id1)
		}
	})
	if st := tr.Stats(); st != (experiments.QueueStats{Written: 2, Batches: 1}) {
		t.Errorf("Stats %+v", st)
	}
}

func TestBatchingBySize(t *testing.T) {
	f := newFakeSegment(t, nil)
	tr, _ := newTracker(t, f, segment.WithBatchSize(100))
	for i := range 250 {
		mustTrack(t, tr, event(fmt.Sprint(i), i))
	}
	// Two full batches go without Flush or Close.
	f.wait(t)
	f.wait(t)
	want := experiments.QueueStats{Queued: 50, Written: 200, Batches: 2}
	if st := statsSettle(t, tr, want); st != want {
		t.Errorf("before Close: Stats %+v, want %+v", st, want)
	}
	closeTracker(t, tr)
	sizes, msgs := f.accepted()
	if fmt.Sprint(sizes) != "[50 100 100]" {
		t.Errorf("batch sizes %v, want 100, 100 and 50", sizes)
	}
	// Every event once.
	seen := make(map[string]bool)
	for _, raw := range msgs {
		var m struct {
			UserID string `json:"userId"`
		}
		if err := json.Unmarshal(raw, &m); err != nil || seen[m.UserID] {
			t.Fatalf("userId %q twice (%v)", m.UserID, err)
		}
		seen[m.UserID] = true
	}
	if len(seen) != 250 {
		t.Errorf("%d events sent, want 250", len(seen))
	}
	if st := tr.Stats(); st != (experiments.QueueStats{Written: 250, Batches: 3}) {
		t.Errorf("Stats %+v", st)
	}
}

func TestBatchingByInterval(t *testing.T) {
	f := newFakeSegment(t, nil)
	tr, _ := newTracker(t, f, segment.WithBatchSize(100), segment.WithInterval(20*time.Millisecond))
	mustTrack(t, tr, event("0", 0))
	// Neither full nor flushed: the interval sends it.
	if r := f.wait(t); len(r.msgs) != 1 {
		t.Errorf("batch of %d, want 1", len(r.msgs))
	}
	mustTrack(t, tr, event("1", 1))
	if r := f.wait(t); len(r.msgs) != 1 {
		t.Errorf("second batch of %d, want 1", len(r.msgs))
	}
	want := experiments.QueueStats{Written: 2, Batches: 2}
	if st := statsSettle(t, tr, want); st != want {
		t.Errorf("Stats %+v, want %+v", st, want)
	}
}

func TestFlush(t *testing.T) {
	f := newFakeSegment(t, nil)
	tr, _ := newTracker(t, f)
	for i := range 5 {
		mustTrack(t, tr, event(fmt.Sprint(i), i))
	}
	if err := flush(t, tr); err != nil {
		t.Fatal(err)
	}
	if sizes, _ := f.accepted(); fmt.Sprint(sizes) != "[5]" {
		t.Errorf("after Flush: batches %v, want [5]", sizes)
	}
	if st := tr.Stats(); st != (experiments.QueueStats{Written: 5, Batches: 1}) {
		t.Errorf("after Flush: Stats %+v", st)
	}
	if err := flush(t, tr); err != nil { // nothing queued: no request
		t.Fatal(err)
	}
	mustTrack(t, tr, event("5", 5)) // the tracker goes on
	closeTracker(t, tr)
	if sizes, _ := f.accepted(); fmt.Sprint(sizes) != "[1 5]" {
		t.Errorf("batches %v, want 5 then 1", sizes)
	}
}

func TestCloseSendsPendingEventsThenRefuses(t *testing.T) {
	f := newFakeSegment(t, nil)
	tr, _ := newTracker(t, f)
	for i := range 3 {
		mustTrack(t, tr, event(fmt.Sprint(i), i))
	}
	if n := len(f.requests()); n != 0 {
		t.Fatalf("%d requests before Close: the batch is neither full nor due", n)
	}
	closeTracker(t, tr)
	if sizes, _ := f.accepted(); fmt.Sprint(sizes) != "[3]" {
		t.Errorf("batches %v, want [3]", sizes)
	}
	if err := tr.Track(context.Background(), event("late", 0)); !errors.Is(err, segment.ErrTrackerClosed) {
		t.Errorf("Track after Close: %v, want ErrTrackerClosed", err)
	}
	closeTracker(t, tr) // again: same outcome
	if err := flush(t, tr); err != nil {
		t.Errorf("Flush after Close: %v", err)
	}
	if st := tr.Stats(); st != (experiments.QueueStats{Written: 3, Dropped: 1, Batches: 1}) {
		t.Errorf("Stats %+v", st)
	}
}

func TestRetriesFailedAttemptsWithTheSameMessages(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
	}{
		{"ok, retried after 500, then accepted once", http.StatusInternalServerError},
		{"ok, retried after 503, then accepted once", http.StatusServiceUnavailable},
		{"ok, retried after 429, then accepted once", http.StatusTooManyRequests},
		{"ok, retried after 400 too (analytics-go retries any failure), then accepted once", http.StatusBadRequest},
		{"ok, retried after the connection dropped, then accepted once", dropConnection},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeSegment(t, func(n int) int {
				if n == 0 {
					return tc.status
				}
				return http.StatusOK
			})
			tr, logs := newTracker(t, f, segment.WithBatchSize(5)) // sent when full: not closing, so retried
			for i := range 5 {
				mustTrack(t, tr, event(fmt.Sprint(i), i))
			}
			first, retry := f.wait(t), f.wait(t)
			want := experiments.QueueStats{Written: 5, Batches: 1, Retries: 1}
			if st := statsSettle(t, tr, want); st != want {
				t.Errorf("Stats %+v, want %+v", st, want)
			}
			if got, want := fmt.Sprint(retry.ids(t)), fmt.Sprint(first.ids(t)); got != want || len(retry.msgs) != 5 || retry.batchID != first.batchID {
				t.Errorf("retry carried batch %s %s, want the same batch and 5 messages: %s %s", retry.batchID, got, first.batchID, want)
			}
			closeTracker(t, tr)
			if n := len(f.requests()); n != 2 {
				t.Errorf("%d requests after Close, want 2: no extra batch", n)
			}
			if tc.status != dropConnection && !strings.Contains(logs.String(), fmt.Sprint(tc.status)) {
				t.Errorf("logs do not tell the failure:\n%s", logs)
			}
		})
	}
}

func TestGivesUpAfterTenAttemptsAndCountsTheDrop(t *testing.T) {
	f := newFakeSegment(t, func(int) int { return http.StatusInternalServerError })
	tr, logs := newTracker(t, f, segment.WithBatchSize(3))
	for i := range 3 {
		mustTrack(t, tr, event(fmt.Sprint(i), i))
	}
	want := experiments.QueueStats{Dropped: 3, FailedBatches: 1, Retries: 9}
	if st := statsSettle(t, tr, want); st != want {
		t.Errorf("Stats %+v, want %+v", st, want)
	}
	reqs := f.requests()
	if len(reqs) != 10 {
		t.Errorf("%d requests, want 10 attempts", len(reqs))
	}
	for i, r := range reqs {
		if r.batchID != reqs[0].batchID || fmt.Sprint(r.ids(t)) != fmt.Sprint(reqs[0].ids(t)) {
			t.Errorf("attempt %d carried another batch", i+1)
		}
	}
	l := logs.String()
	if !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "3 messages dropped") || !strings.Contains(l, "500") {
		t.Errorf("logs do not tell the batch given up with Segment's answer:\n%s", l)
	}
	if strings.Contains(l, writeKey) {
		t.Errorf("the logs show the write key:\n%s", l)
	}
	// Given up before Close: Close has nothing to report.
	closeTracker(t, tr)
	if st := tr.Stats(); st != want {
		t.Errorf("after Close: Stats %+v, want %+v", st, want)
	}
}

func TestCloseGivesUpWhatFailsWithoutRetry(t *testing.T) {
	f := newFakeSegment(t, func(int) int { return http.StatusServiceUnavailable })
	tr, _ := newTracker(t, f, noRetryWhileOpen)
	for i := range 3 {
		mustTrack(t, tr, event(fmt.Sprint(i), i))
	}
	err := tr.Close(context.Background())
	if err == nil || !strings.Contains(err.Error(), "closed with 3 events not sent") || !strings.Contains(err.Error(), "503") {
		t.Errorf("Close: %v, want 3 events not sent, with the status", err)
	}
	if n := len(f.requests()); n != 1 {
		t.Errorf("%d requests, want 1: no retry once closing", n)
	}
	if st := tr.Stats(); st != (experiments.QueueStats{Dropped: 3, FailedBatches: 1}) {
		t.Errorf("Stats %+v", st)
	}
}

// blockingSegment answers each request once release is closed, or when
// the client gives up; started tells of each request as it arrives.
func blockingSegment(t *testing.T) (srv *httptest.Server, started chan int, release func()) {
	t.Helper()
	started = make(chan int, 100)
	released := make(chan struct{})
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Batch []json.RawMessage }
		_ = json.NewDecoder(r.Body).Decode(&body)
		started <- len(body.Batch)
		select {
		case <-released:
		case <-r.Context().Done():
		}
	}))
	var once sync.Once
	release = func() { once.Do(func() { close(released) }) }
	t.Cleanup(srv.Close) // after the release below: cleanups run last first
	t.Cleanup(release)
	return srv, started, release
}

// waitStarted waits for blockingSegment to get a request.
func waitStarted(t *testing.T, started chan int) {
	t.Helper()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("no request within 10 s")
	}
}

func TestQueueFullDropsAndCountsWithoutBlocking(t *testing.T) {
	srv, started, release := blockingSegment(t)
	tr, err := segment.New(writeKey, segment.WithEndpoint(srv.URL), segment.WithBatchSize(1),
		segment.WithQueueSize(2), segment.WithInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	mustTrack(t, tr, event("0", 0))
	mustTrack(t, tr, event("1", 1))
	waitStarted(t, started) // analytics-go holds events 0 and 1, stuck on the server
	begin := time.Now()
	err = tr.Track(context.Background(), event("2", 2))
	if d := time.Since(begin); d > time.Second {
		t.Errorf("Track took %v with a full queue", d)
	}
	if !errors.Is(err, segment.ErrQueueFull) {
		t.Errorf("Track on a full queue: %v, want ErrQueueFull", err)
	}
	if st := tr.Stats(); st != (experiments.QueueStats{Queued: 2, Dropped: 1}) {
		t.Errorf("Stats with a full queue %+v", st)
	}
	release()
	closeTracker(t, tr)
	if st := tr.Stats(); st != (experiments.QueueStats{Written: 2, Dropped: 1, Batches: 2}) {
		t.Errorf("Stats after Close %+v", st)
	}
}

func TestCloseGivesUpOnAHangingServer(t *testing.T) {
	srv, started, _ := blockingSegment(t)
	tr, err := segment.New(writeKey, segment.WithEndpoint(srv.URL), segment.WithBatchSize(2),
		segment.WithInterval(time.Hour), noRetryWhileOpen, segment.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		mustTrack(t, tr, event(fmt.Sprint(i), i))
	}
	waitStarted(t, started)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	begin := time.Now()
	err = tr.Close(ctx)
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("Close took %v with a 100 ms deadline", d)
	}
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "5 events not sent") {
		t.Errorf("Close: %v, want 5 events not sent, wrapping context.DeadlineExceeded", err)
	}
	if st := tr.Stats(); st != (experiments.QueueStats{Dropped: 5, FailedBatches: 3}) {
		t.Errorf("Stats %+v", st)
	}
	if err := tr.Track(context.Background(), event("late", 0)); !errors.Is(err, segment.ErrTrackerClosed) {
		t.Errorf("Track after Close: %v", err)
	}
	// 3 batches: each got at most its one attempt.
	if n := 1 + len(started); n > 3 {
		t.Errorf("%d requests, want at most 3", n)
	}
}

func TestFlushHonoursItsContext(t *testing.T) {
	srv, started, release := blockingSegment(t)
	tr, err := segment.New(writeKey, segment.WithEndpoint(srv.URL), segment.WithInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	mustTrack(t, tr, event("1", 1))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := tr.Flush(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Flush: %v, want context.DeadlineExceeded", err)
	}
	waitStarted(t, started)
	release()
	closeTracker(t, tr) // waits for the batch Flush left in flight
	if st := tr.Stats(); st != (experiments.QueueStats{Written: 1, Batches: 1}) {
		t.Errorf("Stats %+v", st)
	}
}

// A tracker failure never panics nor blocks the request: the bucket
// stands and the error shows in Decision.Err.
func TestTrackerErrorsNeitherPanicNorBlockTheRequest(t *testing.T) {
	srv, started, _ := blockingSegment(t)
	tr, err := segment.New(writeKey, segment.WithEndpoint(srv.URL), segment.WithBatchSize(1),
		segment.WithQueueSize(1), segment.WithInterval(time.Hour), segment.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	flag := experiments.NewFlagSet().NewFlag("course_experience", "segment_failures")
	store := experiments.NewMemStore()
	if err := store.SetFlag(ctx, flag.Name(), experiments.On()); err != nil {
		t.Fatal(err)
	}
	x := experiments.New(experiments.Config{
		Store: store, Tracker: tr, Site: "learn.example.org",
		Logger: slog.New(slog.DiscardHandler),
	})
	decide := func(user string) experiments.Decision {
		t.Helper()
		begin := time.Now()
		d := flag.Decide(x.NewContext(ctx, experiments.User{ID: user}), "")
		if took := time.Since(begin); took > time.Second {
			t.Errorf("user %s: Decide took %v", user, took)
		}
		if d.Bucket != 0 && d.Bucket != 1 {
			t.Errorf("user %s: bucket %d", user, d.Bucket)
		}
		return d
	}

	if d := decide("1"); !d.Tracked || d.Err != nil {
		t.Fatalf("user 1: %+v, want tracked", d)
	}
	waitStarted(t, started) // Segment hangs on the event of user 1, which fills the queue
	t.Run("nok, queue full: ErrTracker wrapping ErrQueueFull, bucket kept", func(t *testing.T) {
		d := decide("2")
		if d.Tracked || !errors.Is(d.Err, experiments.ErrTracker) || !errors.Is(d.Err, segment.ErrQueueFull) {
			t.Errorf("%+v", d)
		}
	})
	closeCtx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := tr.Close(closeCtx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close: %v", err)
	}
	t.Run("nok, closed: ErrTracker wrapping ErrTrackerClosed, bucket kept", func(t *testing.T) {
		d := decide("3")
		if d.Tracked || !errors.Is(d.Err, experiments.ErrTracker) || !errors.Is(d.Err, segment.ErrTrackerClosed) {
			t.Errorf("%+v", d)
		}
	})
	if st := tr.Stats(); st != (experiments.QueueStats{Dropped: 3, FailedBatches: 1}) {
		t.Errorf("Stats %+v", st)
	}
}

func TestTrackRefusesWhatSegmentWouldRefuse(t *testing.T) {
	f := newFakeSegment(t, nil)
	tr, logs := newTracker(t, f)
	badTime := event("1", 1)
	badTime.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		e    experiments.Event
	}{
		{"nok, no user ID", event("", 0)},
		{"nok, no event name", func() experiments.Event { e := event("1", 1); e.Name = ""; return e }()},
		{"nok, course key not UTF-8", func() experiments.Event { e := event("1", 1); e.CourseKey = "\xff"; return e }()},
		{"nok, year beyond 9999", badTime},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tr.Track(context.Background(), tc.e); !errors.Is(err, experiments.ErrInvalid) {
				t.Errorf("Track: %v, want ErrInvalid", err)
			}
		})
	}
	t.Run("ok, a zero time is the time of the call", func(t *testing.T) {
		e := event("1", 1)
		e.Time = time.Time{}
		mustTrack(t, tr, e)
		if err := flush(t, tr); err != nil {
			t.Fatal(err)
		}
		reqs := f.requests()
		ts, _ := reqs[len(reqs)-1].decoded(t, 0)["timestamp"].(string)
		at, err := time.Parse(time.RFC3339, ts)
		if err != nil || time.Since(at) > time.Minute {
			t.Errorf("timestamp %q (%v)", ts, err)
		}
	})
	t.Run("nok, a message over 32 KB is accepted, then given up by analytics-go and counted", func(t *testing.T) {
		big := event("1", 1)
		big.Site = strings.Repeat("x", 33_000)
		mustTrack(t, tr, big)
		// analytics-go gives it up as soon as its goroutine takes it:
		// before Flush begins, here, which Flush still reports.
		for deadline := time.Now().Add(5 * time.Second); tr.Stats().Dropped < 5; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the big message is not given up within 5 s: %+v", tr.Stats())
			}
		}
		err := flush(t, tr)
		if err == nil || !strings.Contains(err.Error(), "1 events not sent") || !strings.Contains(err.Error(), "exceeds the maximum allowed size") {
			t.Errorf("Flush: %v, want 1 event not sent as too big", err)
		}
		if n := len(f.requests()); n != 1 {
			t.Errorf("%d requests, want 1: the big message is not sent", n)
		}
		if !strings.Contains(logs.String(), "exceeds the maximum allowed size") {
			t.Errorf("logs do not tell the message given up:\n%s", logs)
		}
		if err := flush(t, tr); err != nil {
			t.Errorf("a second Flush: %v, want nil: the loss was reported once", err)
		}
	})
	if st := tr.Stats(); st != (experiments.QueueStats{Written: 1, Dropped: 5, Batches: 1}) {
		t.Errorf("Stats %+v", st)
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name, key, want string
		opts            []segment.Option
	}{
		{"nok, empty write key", "", "write key", nil},
		{"nok, endpoint without scheme", writeKey, "WithEndpoint", []segment.Option{segment.WithEndpoint("api.segment.io")}},
		{"nok, endpoint of another scheme", writeKey, "WithEndpoint", []segment.Option{segment.WithEndpoint("ftp://api.segment.io")}},
		{"nok, endpoint that does not parse", writeKey, "WithEndpoint", []segment.Option{segment.WithEndpoint("http://[::1")}},
		{"nok, endpoint with a query", writeKey, "WithEndpoint", []segment.Option{segment.WithEndpoint("https://api.segment.io?x=1")}},
		{"nok, endpoint with user info", writeKey, "WithEndpoint", []segment.Option{segment.WithEndpoint("https://u:p@api.segment.io")}},
		{"nok, batch size 0", writeKey, "WithBatchSize", []segment.Option{segment.WithBatchSize(0)}},
		{"nok, batch size over Segment's 2500", writeKey, "WithBatchSize", []segment.Option{segment.WithBatchSize(2501)}},
		{"nok, interval 0", writeKey, "WithInterval", []segment.Option{segment.WithInterval(0)}},
		{"nok, queue size 0", writeKey, "WithQueueSize", []segment.Option{segment.WithQueueSize(0)}},
		{"nok, nil transport", writeKey, "WithTransport", []segment.Option{segment.WithTransport(nil)}},
		{"nok, nil logger", writeKey, "WithLogger", []segment.Option{segment.WithLogger(nil)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := segment.New(tc.key, tc.opts...)
			if err == nil {
				tr.Close(context.Background())
				t.Fatal("New accepted it")
			}
			if !errors.Is(err, experiments.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v, want ErrInvalid naming %s", err, tc.want)
			}
		})
	}
	t.Run("ok, endpoint with a path prefix and a trailing slash", func(t *testing.T) {
		paths := make(chan string, 10)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { paths <- r.URL.Path }))
		defer srv.Close()
		tr, err := segment.New(writeKey, segment.WithEndpoint(srv.URL+"/segment/"))
		if err != nil {
			t.Fatal(err)
		}
		mustTrack(t, tr, event("1", 1))
		closeTracker(t, tr)
		if p := <-paths; p != "/segment/v1/batch" {
			t.Errorf("posted to %q", p)
		}
	})
	t.Run("ok, the transport given posts the batches", func(t *testing.T) {
		f := newFakeSegment(t, nil)
		var calls atomic.Int64
		rt := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
			calls.Add(1)
			return http.DefaultTransport.RoundTrip(r)
		})
		tr, err := segment.New(writeKey, segment.WithEndpoint(f.URL), segment.WithTransport(rt))
		if err != nil {
			t.Fatal(err)
		}
		mustTrack(t, tr, event("1", 1))
		closeTracker(t, tr)
		if n := calls.Load(); n != 1 || len(f.requests()) != 1 {
			t.Errorf("%d calls of the transport, %d requests; want 1, 1", n, len(f.requests()))
		}
	})
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (fn roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return fn(r) }

func TestConcurrentTracking(t *testing.T) {
	f := newFakeSegment(t, nil)
	tr, _ := newTracker(t, f, segment.WithBatchSize(50), segment.WithInterval(5*time.Millisecond))
	const goroutines, each = 8, 200
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				mustTrack(t, tr, event(fmt.Sprintf("%d-%d", g, i), i))
				if i%50 == 0 {
					_ = tr.Stats()
					_ = flush(t, tr)
				}
			}
		})
	}
	wg.Wait()
	closeTracker(t, tr)
	_, msgs := f.accepted()
	seen := make(map[string]bool)
	for _, raw := range msgs {
		var m struct {
			MessageID string `json:"messageId"`
		}
		_ = json.Unmarshal(raw, &m)
		if seen[m.MessageID] {
			t.Fatalf("messageId %s twice", m.MessageID)
		}
		seen[m.MessageID] = true
	}
	if st := tr.Stats(); len(seen) != goroutines*each || st.Written != goroutines*each || st.Dropped != 0 || st.Queued != 0 {
		t.Errorf("%d distinct messages; Stats %+v", len(seen), st)
	}
}

// Through the runtime: a user bucketed into an experiment that is on, in
// a request without a session, gives exactly one message, however many
// times the request asks.
func TestThroughTheRuntime(t *testing.T) {
	f := newFakeSegment(t, nil)
	tr, _ := newTracker(t, f)
	ctx := context.Background()
	flag := experiments.NewFlagSet().NewFlag("course_experience", "segment_runtime")
	store := experiments.NewMemStore()
	if err := store.SetFlag(ctx, flag.Name(), experiments.On()); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	x := experiments.New(experiments.Config{
		Store: store, Tracker: tr, Site: "learn.example.org", Now: func() time.Time { return at },
	})
	rctx := x.NewContext(ctx, experiments.User{ID: "42", Username: "alice", Staff: true})
	d := flag.Decide(rctx, "")
	if d.Err != nil || !d.Tracked {
		t.Fatalf("Decide: %+v", d)
	}
	for range 3 {
		flag.Bucket(rctx, "")
	}
	// Anonymous users are never tracked.
	flag.Bucket(x.NewContext(ctx, experiments.User{}), "")
	closeTracker(t, tr)

	reqs := f.requests()
	if len(reqs) != 1 || len(reqs[0].msgs) != 1 {
		t.Fatalf("want exactly one message, got %d requests", len(reqs))
	}
	m := reqs[0].decoded(t, 0)
	props := m["properties"].(map[string]any)
	want := fmt.Sprint(map[string]any{
		"site": "learn.example.org", "app_label": "course_experience", "experiment": "segment_runtime",
		"course_id": nil, "bucket": json.Number(fmt.Sprint(d.Bucket)), "is_staff": true, "nonInteraction": json.Number("1"),
	})
	if fmt.Sprint(props) != want || m["userId"] != "42" || m["event"] != experiments.EventUserBucketed ||
		m["timestamp"] != "2026-03-01T12:00:00Z" {
		t.Errorf("message %v", m)
	}
}

// An anonymous visitor's event (experiments.WithAnonymous) goes to
// Segment with anonymousId and no userId, as Segment wants one or the
// other.
func TestAnonymousVisitorsEventHasAnonymousID(t *testing.T) {
	f := newFakeSegment(t, nil)
	tr, _ := newTracker(t, f)
	mustTrack(t, tr, experiments.Event{
		Name: experiments.EventUserBucketed, Time: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
		AppLabel: "course_experience", Experiment: "landing", Bucket: 1,
		AnonymousID: "0123456789abcdef0123456789abcdef",
	})
	closeTracker(t, tr)
	reqs := f.requests()
	if len(reqs) != 1 || len(reqs[0].msgs) != 1 {
		t.Fatalf("want one batch of 1 message, got %+v", reqs)
	}
	m := reqs[0].decoded(t, 0)
	if m["anonymousId"] != "0123456789abcdef0123456789abcdef" {
		t.Errorf("anonymousId %v, want the visitor's", m["anonymousId"])
	}
	if _, ok := m["userId"]; ok {
		t.Errorf("message has a userId: %v", m)
	}
}
