package experiments_test

// End-to-end tests: every decision here is made inside a real HTTP handler
// served by httptest, behind echo's middleware or the net/http Handler,
// with real gorilla sessions in a cookie jar.

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/internal/syncbuf"
	"github.com/gorilla/sessions"
	"github.com/labstack/echo/v4"
)

// Fixed inputs of the end-to-end tests.
const (
	e2eSite       = "courses.example.org"
	e2eCourse     = "course-v1:edX+DemoX+2026"   // org edX
	e2eCourse2    = "course-v1:edX+Other+2026"   // org edX
	e2eOldCourse  = "edX/Old/2012"               // org edX, old-style key
	e2eMITCourse  = "course-v1:MITx+6.002x+2026" // org MITx
	e2eExperiment = 7                            // tableFlag's experiment ID
	e2eSession    = "experiments"                // the default Config.SessionName

	pathBody  = "/body"      // the handler decides, then writes "ok"
	pathEmpty = "/empty"     // the handler decides and writes nothing
	pathSkip  = "/skip/body" // echo's Skipper skips it
)

var (
	// e2eNow is Config.Now: event times and "enrolled now" for users who
	// are not enrolled.
	e2eNow        = time.Date(2020, 6, 1, 12, 0, 0, 0, time.UTC)
	e2eSessionKey = []byte("e2e-tests-fixed-session-hash-key")
)

var (
	tableFlag      = experiments.NewFlag("e2e", "table", experiments.WithExperimentID(e2eExperiment))
	precedenceFlag = experiments.NewFlag("e2e", "precedence")
	forcedFlag     = experiments.NewFlag("e2e", "forced", experiments.WithBuckets(3))
	awareFlag      = experiments.NewFlag("e2e", "aware", experiments.WithBuckets(5))
	unawareFlag    = experiments.NewFlag("e2e", "unaware", experiments.WithBuckets(5), experiments.WithCourseAwareBucketing(false))
)

// --- The server under test -------------------------------------------------

// serverKind is the way the Experiments runtime is installed.
type serverKind string

const (
	echoServer    serverKind = "echo"     // echo v4 with x.Middleware
	netHTTPServer serverKind = "net/http" // http.ServeMux wrapped by x.Handler
)

// forEachServer runs test once behind echo and once behind net/http.
func forEachServer(t *testing.T, test func(t *testing.T, kind serverKind)) {
	for _, kind := range []serverKind{echoServer, netHTTPServer} {
		t.Run(string(kind), func(t *testing.T) { test(t, kind) })
	}
}

// action is what the handler does with the request's context; it returns
// the decisions it made, which the test reads back.
type action func(ctx context.Context) []experiments.Decision

// e2eApp is a running server: an Experiments on a MemStore, with a
// recording tracker, a cookie session store and a logger into a buffer.
// Requests to it are made one at a time, through e2eBrowser.get.
type e2eApp struct {
	store  *experiments.MemStore
	events *eventLog
	logs   *logBuffer
	srv    *httptest.Server

	mu  sync.Mutex // guards act and got, and orders the handler's writes before the test's reads
	act action
	got []experiments.Decision
}

// newApp starts a server of kind. The defaults of its Config can be
// changed by opts (a nil Sessions, a broken Store, a failing Tracker).
func newApp(t *testing.T, kind serverKind, opts ...func(*experiments.Config)) *e2eApp {
	t.Helper()
	a := &e2eApp{store: experiments.NewMemStore(), events: &eventLog{}, logs: &logBuffer{}}
	cfg := experiments.Config{
		Store:    a.store,
		Tracker:  a.events.tracker(),
		Sessions: sessions.NewCookieStore(e2eSessionKey),
		Site:     e2eSite,
		Now:      func() time.Time { return e2eNow },
		Logger:   slog.New(slog.NewTextHandler(a.logs, nil)),
	}
	for _, o := range opts {
		o(&cfg)
	}
	x := experiments.New(cfg)
	var h http.Handler
	switch kind {
	case echoServer:
		h = a.echoHandler(x)
	case netHTTPServer:
		h = a.netHTTPHandler(x)
	default:
		t.Fatalf("unknown server kind %q", kind)
	}
	a.srv = httptest.NewServer(h)
	t.Cleanup(a.srv.Close)
	return a
}

func withoutSessions(c *experiments.Config) { c.Sessions = nil }

func (a *e2eApp) echoHandler(x *experiments.Experiments) http.Handler {
	e := echo.New()
	e.Use(x.Middleware(experiments.MiddlewareConfig{
		Skipper: func(c echo.Context) bool { return strings.HasPrefix(c.Request().URL.Path, "/skip/") },
		User:    func(c echo.Context) experiments.User { return userFromHeader(c.Request().Header) },
	}))
	e.GET("/*", func(c echo.Context) error {
		a.serve(c.Request().Context())
		if c.Request().URL.Path == pathEmpty {
			return nil
		}
		return c.String(http.StatusOK, "ok")
	})
	return e
}

func (a *e2eApp) netHTTPHandler(x *experiments.Experiments) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		a.serve(r.Context())
		if r.URL.Path != pathEmpty {
			_, _ = w.Write([]byte("ok"))
		}
	})
	return x.Handler(mux, func(r *http.Request) experiments.User { return userFromHeader(r.Header) })
}

// serve runs the pending action in the handler and keeps its decisions.
func (a *e2eApp) serve(ctx context.Context) {
	a.mu.Lock()
	act := a.act
	a.mu.Unlock()
	var got []experiments.Decision
	if act != nil {
		got = act(ctx)
	}
	a.mu.Lock()
	a.got = got
	a.mu.Unlock()
}

// wantEvents checks that n events were tracked in all and returns them.
func (a *e2eApp) wantEvents(t *testing.T, n int) []experiments.Event {
	t.Helper()
	events := a.events.all()
	if len(events) != n {
		t.Fatalf("%d events tracked, want %d: %+v", len(events), n, events)
	}
	return events
}

// The request's user travels in headers, so that tests can switch users.
func setUserHeader(h http.Header, u experiments.User) {
	for name, value := range map[string]string{"X-User": u.ID, "X-Username": u.Username} {
		if value != "" {
			h.Set(name, value)
		}
	}
	if u.Staff {
		h.Set("X-Staff", "1")
	}
	if u.Masquerading {
		h.Set("X-Masquerading", "1")
	}
	if len(u.Attributes) > 0 { // string attributes only, as a query string
		q := url.Values{}
		for k, v := range u.Attributes {
			q.Set(k, v.(string))
		}
		h.Set("X-Attributes", q.Encode())
	}
}

func userFromHeader(h http.Header) experiments.User {
	u := experiments.User{
		ID:           h.Get("X-User"),
		Username:     h.Get("X-Username"),
		Staff:        h.Get("X-Staff") == "1",
		Masquerading: h.Get("X-Masquerading") == "1",
	}
	if q, err := url.ParseQuery(h.Get("X-Attributes")); err == nil && len(q) > 0 {
		u.Attributes = make(map[string]any, len(q))
		for k := range q {
			u.Attributes[k] = q.Get(k)
		}
	}
	return u
}

// --- The client --------------------------------------------------------------

// e2eBrowser is a client with its own cookie jar: one session.
type e2eBrowser struct {
	app    *e2eApp
	client *http.Client
}

func (a *e2eApp) newBrowser(t *testing.T) *e2eBrowser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &e2eBrowser{app: a, client: &http.Client{Transport: a.srv.Client().Transport, Jar: jar}}
}

// e2eReply is what a request gave: the handler's decisions and the response.
type e2eReply struct {
	decisions []experiments.Decision
	status    int
	body      string
	header    http.Header
	cookies   []*http.Cookie // from Set-Cookie
}

// get requests path as user u while the handler runs act.
func (b *e2eBrowser) get(t *testing.T, path string, u experiments.User, act action) e2eReply {
	t.Helper()
	a := b.app
	a.mu.Lock()
	a.act, a.got = act, nil
	a.mu.Unlock()

	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, a.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	setUserHeader(req.Header, u)
	resp, err := b.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}

	a.mu.Lock()
	got := a.got
	a.mu.Unlock()
	return e2eReply{decisions: got, status: resp.StatusCode, body: string(body), header: resp.Header, cookies: resp.Cookies()}
}

// one returns the only decision of the request.
func (r e2eReply) one(t *testing.T) experiments.Decision {
	t.Helper()
	if len(r.decisions) != 1 {
		t.Fatalf("handler made %d decisions, want 1: %+v", len(r.decisions), r.decisions)
	}
	return r.decisions[0]
}

// wantOK checks that the handler's response went through untouched.
func (r e2eReply) wantOK(t *testing.T, path string) {
	t.Helper()
	want := "ok"
	if path == pathEmpty {
		want = ""
	}
	if r.status != http.StatusOK || r.body != want {
		t.Errorf("response %d %q, want 200 %q", r.status, r.body, want)
	}
}

// wantSessionCookie checks that the response sets the session cookie with
// the package's options (HttpOnly, SameSite=Lax, Path=/, not Secure).
func (r e2eReply) wantSessionCookie(t *testing.T) {
	t.Helper()
	i := slices.IndexFunc(r.cookies, func(c *http.Cookie) bool { return c.Name == e2eSession })
	if i < 0 {
		t.Fatalf("no Set-Cookie for %q; Set-Cookie: %q", e2eSession, r.header.Values("Set-Cookie"))
	}
	c := r.cookies[i]
	if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Secure || c.Value == "" {
		t.Errorf("session cookie %q: want a value, HttpOnly, SameSite=Lax, Path=/ and not Secure", c.String())
	}
}

// wantNoSetCookie checks that the response sets no cookie at all.
func (r e2eReply) wantNoSetCookie(t *testing.T) {
	t.Helper()
	if got := r.header.Values("Set-Cookie"); len(got) != 0 {
		t.Errorf("Set-Cookie: %q, want none", got)
	}
}

// --- Actions -----------------------------------------------------------------

// decide asks f for the user's decision in course.
func decide(f *experiments.ExperimentFlag, course string) action {
	return func(ctx context.Context) []experiments.Decision {
		return []experiments.Decision{f.Decide(ctx, course)}
	}
}

// inOrder runs acts one after the other in the same request.
func inOrder(acts ...action) action {
	return func(ctx context.Context) []experiments.Decision {
		var out []experiments.Decision
		for _, act := range acts {
			out = append(out, act(ctx)...)
		}
		return out
	}
}

// twice runs act twice in the same request.
func twice(act action) action { return inOrder(act, act) }

// --- Store set-up ------------------------------------------------------------

// setupFunc configures the store before the requests of a test.
type setupFunc func(t *testing.T, s *experiments.MemStore)

func ruleFor(name string, r experiments.Rule) setupFunc {
	return func(t *testing.T, s *experiments.MemStore) { mustE2E(t, s.SetFlag(t.Context(), name, r)) }
}

func courseState(name, course string, st experiments.State) setupFunc {
	return func(t *testing.T, s *experiments.MemStore) {
		mustE2E(t, s.SetCourseOverride(t.Context(), name, course, st))
	}
}

func orgState(name, org string, st experiments.State) setupFunc {
	return func(t *testing.T, s *experiments.MemStore) { mustE2E(t, s.SetOrgOverride(t.Context(), name, org, st)) }
}

func experimentValue(id int, key, value string) setupFunc {
	return func(t *testing.T, s *experiments.MemStore) {
		mustE2E(t, s.SetExperimentValue(t.Context(), id, key, value))
	}
}

func enrolledOn(userID, course, date string) setupFunc {
	return func(t *testing.T, s *experiments.MemStore) {
		at, err := time.Parse(time.DateOnly, date)
		mustE2E(t, err)
		mustE2E(t, s.SetEnrollment(t.Context(), userID, course, at))
	}
}

func allOf(steps ...setupFunc) setupFunc {
	return func(t *testing.T, s *experiments.MemStore) {
		for _, step := range steps {
			step(t, s)
		}
	}
}

func mustE2E(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// --- Users, events, logs -----------------------------------------------------

// findUser returns the first user "learner-<i>" whose ID satisfies ok, so
// that a test can rely on a hashed bucket without faking the hash.
func findUser(t *testing.T, ok func(id string) bool) experiments.User {
	t.Helper()
	for i := range 10000 {
		if id := "learner-" + strconv.Itoa(i); ok(id) {
			return experiments.User{ID: id, Username: "user-" + id}
		}
	}
	t.Fatal("no user ID satisfies the condition")
	return experiments.User{}
}

// userInBucket returns a user that SHA256Bucket puts in bucket of group.
func userInBucket(t *testing.T, group string, buckets, bucket int) experiments.User {
	t.Helper()
	u := findUser(t, func(id string) bool { return experiments.SHA256Bucket(group, id, buckets) == bucket })
	if got := experiments.SHA256Bucket(group, u.ID, buckets); got != bucket {
		t.Fatalf("SHA256Bucket(%q, %q, %d) = %d, want %d", group, u.ID, buckets, got, bucket)
	}
	return u
}

// tableUser is the user whose default bucket in tableFlag's e2eCourse is 1,
// as in the reference's behaviour table.
func tableUser(t *testing.T) experiments.User {
	t.Helper()
	return userInBucket(t, tableFlag.Name()+"."+e2eCourse, 2, 1)
}

// eventLog is a Tracker that records events.
type eventLog struct {
	mu     sync.Mutex
	events []experiments.Event
}

func (l *eventLog) tracker() experiments.Tracker {
	return experiments.TrackerFunc(func(_ context.Context, e experiments.Event) error {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.events = append(l.events, e)
		return nil
	})
}

func (l *eventLog) all() []experiments.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

// logBuffer is the Logger's output.
type logBuffer struct {
	syncbuf.Buffer
}

// errors returns how many records were logged at level ERROR.
func (b *logBuffer) errors() int {
	return strings.Count(b.String(), "level=ERROR")
}

func wantDecision(t *testing.T, got experiments.Decision, bucket int, reason experiments.Reason) {
	t.Helper()
	if got.Bucket != bucket || got.Reason != reason {
		t.Errorf("decision %+v, want bucket %d (%s)", got, bucket, reason)
	}
}

// --- 1. The reference's behaviour table --------------------------------------

func TestE2EBehaviourTable(t *testing.T) {
	u := tableUser(t)
	on := ruleFor(tableFlag.Name(), experiments.On())
	window := func(key, value string) setupFunc {
		return allOf(on, experimentValue(e2eExperiment, key, value))
	}
	enrolled := func(date string) setupFunc { return enrolledOn(u.ID, e2eCourse, date) }

	rows := []struct {
		name    string
		setup   setupFunc
		bucket  int
		reason  experiments.Reason
		errIs   error // nil: Decision.Err must be nil
		tracked bool
	}{
		{"ok, main flag on", on, 1, experiments.ReasonHashed, nil, true},
		{"nok, main flag off", ruleFor(tableFlag.Name(), experiments.Off()), 0, experiments.ReasonFlagOff, nil, false},
		{"nok, main flag never set", allOf(), 0, experiments.ReasonFlagOff, nil, false},
		{"ok, not enrolled after enrollment start", window("enrollment_start", "2012-01-06"), 1, experiments.ReasonHashed, nil, true},
		{"nok, not enrolled before enrollment start", window("enrollment_start", "9999-01-06"), 0, experiments.ReasonOutsideWindow, nil, false},
		{"nok, enrolled before start", allOf(window("enrollment_start", "2012-01-06"), enrolled("2012-01-05")), 0, experiments.ReasonOutsideWindow, nil, false},
		{"ok, enrolled after start", allOf(window("enrollment_start", "2012-01-06"), enrolled("2012-01-07")), 1, experiments.ReasonHashed, nil, true},
		{"nok, start date does not parse", window("enrollment_start", "not-a-date"), 0, experiments.ReasonBadWindow, experiments.ErrBadWindow, false},
		{"nok, not enrolled after enrollment end", window("enrollment_end", "2012-01-06"), 0, experiments.ReasonOutsideWindow, nil, false},
		{"ok, not enrolled before enrollment end", window("enrollment_end", "9999-01-06"), 1, experiments.ReasonHashed, nil, true},
		{"ok, enrolled before end", allOf(window("enrollment_end", "2012-01-06"), enrolled("2012-01-05")), 1, experiments.ReasonHashed, nil, true},
		{"nok, enrolled after end", allOf(window("enrollment_end", "2012-01-06"), enrolled("2012-01-07")), 0, experiments.ReasonOutsideWindow, nil, false},
		{"nok, bucket flag .0 on", allOf(on, ruleFor(tableFlag.Name()+".0", experiments.On())), 0, experiments.ReasonForced, nil, true},
	}
	forEachServer(t, func(t *testing.T, kind serverKind) {
		for _, row := range rows {
			t.Run(row.name, func(t *testing.T) {
				a := newApp(t, kind)
				row.setup(t, a.store)
				r := a.newBrowser(t).get(t, pathBody, u, decide(tableFlag, e2eCourse))
				r.wantOK(t, pathBody)
				d := r.one(t)
				wantDecision(t, d, row.bucket, row.reason)
				switch {
				case row.errIs == nil && d.Err != nil:
					t.Errorf("Decision.Err = %v, want nil", d.Err)
				case row.errIs != nil && !errors.Is(d.Err, row.errIs):
					t.Errorf("Decision.Err = %v, want it to wrap %v", d.Err, row.errIs)
				}
				if d.Tracked != row.tracked {
					t.Errorf("Tracked = %v, want %v", d.Tracked, row.tracked)
				}
				if !row.tracked {
					a.wantEvents(t, 0)
					r.wantNoSetCookie(t)
					return
				}
				if e := a.wantEvents(t, 1)[0]; e.Bucket != row.bucket {
					t.Errorf("event bucket %d, want %d", e.Bucket, row.bucket)
				}
				r.wantSessionCookie(t)
			})
		}
	})
}

func TestE2ENoRequestState(t *testing.T) {
	u := tableUser(t)
	forEachServer(t, func(t *testing.T, kind serverKind) {
		a := newApp(t, kind)
		ruleFor(tableFlag.Name(), experiments.On())(t, a.store)
		bucket := -1
		r := a.newBrowser(t).get(t, pathBody, u, func(context.Context) []experiments.Decision {
			bucket = tableFlag.Bucket(context.Background(), e2eCourse)
			return decide(tableFlag, e2eCourse)(context.Background())
		})
		wantDecision(t, r.one(t), 0, experiments.ReasonNoRequest)
		if bucket != 0 {
			t.Errorf("Bucket(context.Background()) = %d, want 0", bucket)
		}
		a.wantEvents(t, 0)
		r.wantNoSetCookie(t)
	})
}

func TestE2EDecisionIsCachedForTheRequest(t *testing.T) {
	u := tableUser(t)
	forEachServer(t, func(t *testing.T, kind serverKind) {
		a := newApp(t, kind)
		ruleFor(tableFlag.Name(), experiments.On())(t, a.store)
		b := a.newBrowser(t)
		turnOff := func(ctx context.Context) []experiments.Decision {
			if err := a.store.SetFlag(ctx, tableFlag.Name(), experiments.Off()); err != nil {
				t.Errorf("SetFlag: %v", err) // not Fatal: this runs in the handler's goroutine
			}
			return nil
		}

		r := b.get(t, pathBody, u, inOrder(decide(tableFlag, e2eCourse), turnOff, decide(tableFlag, e2eCourse)))
		if len(r.decisions) != 2 {
			t.Fatalf("decisions %+v, want 2", r.decisions)
		}
		wantDecision(t, r.decisions[0], 1, experiments.ReasonHashed)
		wantDecision(t, r.decisions[1], 1, experiments.ReasonCached)

		// The next request sees the flag off.
		wantDecision(t, b.get(t, pathBody, u, decide(tableFlag, e2eCourse)).one(t), 0, experiments.ReasonFlagOff)
		a.wantEvents(t, 1)
	})
}

func TestE2EOverride(t *testing.T) {
	u := tableUser(t)
	rows := []struct {
		name         string
		active       bool
		bucket       int
		wantBucket   int
		experimentOn bool
	}{
		{"ok, Override(true, 1) gives bucket 1", true, 1, 1, true},
		{"ok, Override(true, 0) gives control with the experiment on", true, 0, 0, true},
		{"nok, Override(false, 1) turns the experiment off", false, 1, 0, false},
	}
	forEachServer(t, func(t *testing.T, kind serverKind) {
		for _, row := range rows {
			t.Run(row.name, func(t *testing.T) {
				a := newApp(t, kind)
				// The store says the opposite: the override must win without reading it.
				rule := experiments.On()
				if row.active {
					rule = experiments.Off()
				}
				ruleFor(tableFlag.Name(), rule)(t, a.store)
				restore := tableFlag.Override(row.active, row.bucket)
				defer restore()

				var on bool
				r := a.newBrowser(t).get(t, pathBody, u, func(ctx context.Context) []experiments.Decision {
					on = tableFlag.IsExperimentOn(ctx, e2eCourse)
					return twice(decide(tableFlag, e2eCourse))(ctx)
				})
				for _, d := range r.decisions {
					wantDecision(t, d, row.wantBucket, experiments.ReasonOverride)
				}
				if on != row.experimentOn {
					t.Errorf("IsExperimentOn = %v, want %v", on, row.experimentOn)
				}
				a.wantEvents(t, 0)
				r.wantNoSetCookie(t)
			})
		}
	})
}

// --- 2. Anonymous and masquerading users --------------------------------------

func TestE2EAnonymousUser(t *testing.T) {
	forEachServer(t, func(t *testing.T, kind serverKind) {
		a := newApp(t, kind)
		ruleFor(tableFlag.Name(), experiments.On())(t, a.store)
		r := a.newBrowser(t).get(t, pathBody, experiments.User{}, twice(decide(tableFlag, e2eCourse)))
		for _, d := range r.decisions {
			wantDecision(t, d, 0, experiments.ReasonAnonymous)
		}
		a.wantEvents(t, 0)
		r.wantNoSetCookie(t)
	})
}

func TestE2EMasqueradingUser(t *testing.T) {
	group := tableFlag.Name() + "." + e2eCourse
	users := []experiments.User{userInBucket(t, group, 2, 0), userInBucket(t, group, 2, 1)}
	forEachServer(t, func(t *testing.T, kind serverKind) {
		for _, u := range users {
			t.Run("ok, staff viewing as "+u.ID+" gets their bucket untracked", func(t *testing.T) {
				a := newApp(t, kind)
				ruleFor(tableFlag.Name(), experiments.On())(t, a.store)
				want := experiments.SHA256Bucket(group, u.ID, 2)

				masked := u
				masked.Masquerading = true
				r := a.newBrowser(t).get(t, pathBody, masked, decide(tableFlag, e2eCourse))
				d := r.one(t)
				wantDecision(t, d, want, experiments.ReasonHashed)
				if d.Tracked {
					t.Error("masquerading decision was tracked")
				}
				a.wantEvents(t, 0)
				r.wantNoSetCookie(t)

				// The user themselves, in their own session: same bucket, tracked.
				d = a.newBrowser(t).get(t, pathBody, u, decide(tableFlag, e2eCourse)).one(t)
				wantDecision(t, d, want, experiments.ReasonHashed)
				a.wantEvents(t, 1)
			})
		}
	})
}

// An out-of-audience user gets control with ReasonNotInAudience, over
// real HTTP: no event, no exposure, no Set-Cookie, on every request; a
// user of the audience in the same app is tracked once.
func TestE2EOutOfAudienceUserIsNotTracked(t *testing.T) {
	forEachServer(t, func(t *testing.T, kind serverKind) {
		a := newApp(t, kind, func(c *experiments.Config) { c.Recorder = c.Store.(experiments.Recorder) })
		r := experiments.On()
		r.Conditions = []experiments.Condition{
			{Attribute: "country", Op: experiments.In, Values: []string{"US", "CA"}},
			{Attribute: "app_version", Op: experiments.SemverGreaterOrEqual, Values: []string{"2.3.0"}},
		}
		ruleFor(tableFlag.Name(), r)(t, a.store)
		b := a.newBrowser(t)
		for _, u := range []experiments.User{
			{ID: "learner-fr", Attributes: map[string]any{"country": "FR", "app_version": "3.0.0"}},
			{ID: "learner-old", Attributes: map[string]any{"country": "US", "app_version": "2.3.0-rc.1"}},
			{ID: "learner-none"},
		} {
			for range 2 {
				reply := b.get(t, pathBody, u, twice(decide(tableFlag, e2eCourse)))
				reply.wantOK(t, pathBody)
				wantDecision(t, reply.decisions[0], 0, experiments.ReasonNotInAudience)
				wantDecision(t, reply.decisions[1], 0, experiments.ReasonCached)
				if reply.decisions[0].Tracked {
					t.Errorf("user %s outside the audience was tracked", u.ID)
				}
				reply.wantNoSetCookie(t)
			}
		}
		a.wantEvents(t, 0)
		if e := a.store.Exposures(); len(e) != 0 {
			t.Errorf("exposures %+v, want none", e)
		}

		in := experiments.User{ID: "learner-us", Attributes: map[string]any{"country": "US", "app_version": "v2.3.0"}}
		reply := b.get(t, pathBody, in, decide(tableFlag, e2eCourse))
		wantDecision(t, reply.one(t), experiments.SHA256Bucket(tableFlag.Name()+"."+e2eCourse, in.ID, 2), experiments.ReasonHashed)
		reply.wantSessionCookie(t)
		a.wantEvents(t, 1)
		if e := a.store.Exposures(); len(e) != 1 || e[0].UserID != in.ID {
			t.Errorf("exposures %+v, want one of %s", e, in.ID)
		}
	})
}

// --- 3. Session dedupe -------------------------------------------------------

func TestE2EOneEventPerSession(t *testing.T) {
	u := tableUser(t)
	other := experiments.User{ID: "learner-other", Username: "other"}
	forEachServer(t, func(t *testing.T, kind serverKind) {
		a := newApp(t, kind)
		ruleFor(tableFlag.Name(), experiments.On())(t, a.store)
		first, second := a.newBrowser(t), a.newBrowser(t)
		steps := []struct {
			name    string
			browser *e2eBrowser
			user    experiments.User
			course  string
			tracked bool
			events  int // in all, after the step
		}{
			{"ok, first request of a session is tracked", first, u, e2eCourse, true, 1},
			{"ok, same session and course again is not tracked", first, u, e2eCourse, false, 1},
			{"ok, a new session is tracked again", second, u, e2eCourse, true, 2},
			{"ok, another course in the first session is tracked", first, u, e2eMITCourse, true, 3},
			{"ok, the other course again is not tracked", first, u, e2eMITCourse, false, 3},
			{"ok, the first course in the second session is still not tracked", second, u, e2eCourse, false, 3},
			{"ok, another user signing in on the second browser is tracked", second, other, e2eCourse, true, 4},
			{"ok, that user again is not tracked", second, other, e2eCourse, false, 4},
		}
		for _, step := range steps {
			t.Run(step.name, func(t *testing.T) {
				r := step.browser.get(t, pathBody, step.user, twice(decide(tableFlag, step.course)))
				if len(r.decisions) != 2 {
					t.Fatalf("decisions %+v, want 2", r.decisions)
				}
				bucket := experiments.SHA256Bucket(tableFlag.Name()+"."+step.course, step.user.ID, 2)
				wantDecision(t, r.decisions[0], bucket, experiments.ReasonHashed)
				wantDecision(t, r.decisions[1], bucket, experiments.ReasonCached)
				if r.decisions[0].Tracked != step.tracked || r.decisions[1].Tracked {
					t.Errorf("Tracked = %v, %v; want %v, false", r.decisions[0].Tracked, r.decisions[1].Tracked, step.tracked)
				}
				a.wantEvents(t, step.events)
				if step.tracked {
					r.wantSessionCookie(t)
				} else {
					r.wantNoSetCookie(t)
				}
			})
		}
	})
}

// --- 4. The cookie is sent whatever the handler writes ------------------------

func TestE2ESessionCookieWhateverTheHandlerWrites(t *testing.T) {
	u := tableUser(t)
	rows := []struct{ name, path string }{
		{"ok, handler writes its body after deciding", pathBody},
		{"ok, handler writes nothing after deciding", pathEmpty},
	}
	forEachServer(t, func(t *testing.T, kind serverKind) {
		for _, row := range rows {
			t.Run(row.name, func(t *testing.T) {
				a := newApp(t, kind)
				ruleFor(tableFlag.Name(), experiments.On())(t, a.store)
				b := a.newBrowser(t)

				r := b.get(t, row.path, u, decide(tableFlag, e2eCourse))
				r.wantOK(t, row.path)
				r.wantSessionCookie(t)
				if !r.one(t).Tracked {
					t.Error("first decision not tracked")
				}

				// The cookie holds the mark: the next request tracks nothing.
				r = b.get(t, row.path, u, decide(tableFlag, e2eCourse))
				if r.one(t).Tracked {
					t.Error("second request tracked again")
				}
				r.wantNoSetCookie(t)
				a.wantEvents(t, 1)
			})
		}
	})
}

// --- 5. Without sessions -----------------------------------------------------

func TestE2EWithoutSessionsOneEventPerRequest(t *testing.T) {
	u := tableUser(t)
	forEachServer(t, func(t *testing.T, kind serverKind) {
		a := newApp(t, kind, withoutSessions)
		ruleFor(tableFlag.Name(), experiments.On())(t, a.store)
		b := a.newBrowser(t)
		for i := 1; i <= 2; i++ {
			r := b.get(t, pathBody, u, twice(decide(tableFlag, e2eCourse)))
			if len(r.decisions) != 2 || !r.decisions[0].Tracked || r.decisions[1].Tracked {
				t.Fatalf("request %d: decisions %+v, want the first one tracked only", i, r.decisions)
			}
			r.wantNoSetCookie(t)
			a.wantEvents(t, i)
		}
	})
}

// --- 6. Concurrent decisions in one request ----------------------------------

func TestE2EConcurrentDecisionsInOneRequest(t *testing.T) {
	const goroutines = 32
	exps := []struct {
		flag          *experiments.ExperimentFlag
		course, group string
		buckets       int
	}{
		{tableFlag, e2eCourse, "e2e.table." + e2eCourse, 2},
		{tableFlag, e2eMITCourse, "e2e.table." + e2eMITCourse, 2},
		{awareFlag, "", "e2e.aware", 5},
		{awareFlag, e2eCourse, "e2e.aware." + e2eCourse, 5},
		{unawareFlag, e2eCourse, "e2e.unaware", 5},
	}
	u := tableUser(t)
	forEachServer(t, func(t *testing.T, kind serverKind) {
		a := newApp(t, kind)
		for _, f := range []*experiments.ExperimentFlag{tableFlag, awareFlag, unawareFlag} {
			ruleFor(f.Name(), experiments.On())(t, a.store)
		}
		// Goroutine g asks experiment (g+k) mod n at its k-th call, so that
		// every experiment is asked first by several goroutines at once.
		r := a.newBrowser(t).get(t, pathBody, u, func(ctx context.Context) []experiments.Decision {
			out := make([]experiments.Decision, goroutines*len(exps))
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Go(func() {
					for k := range exps {
						i := (g + k) % len(exps)
						out[g*len(exps)+i] = exps[i].flag.Decide(ctx, exps[i].course)
					}
				})
			}
			wg.Wait()
			return out
		})

		for i, e := range exps {
			want := experiments.SHA256Bucket(e.group, u.ID, e.buckets)
			tracked := 0
			for g := range goroutines {
				d := r.decisions[g*len(exps)+i]
				if d.Bucket != want || d.Err != nil {
					t.Errorf("%s %q, goroutine %d: decision %+v, want bucket %d", e.flag.Name(), e.course, g, d, want)
				}
				if d.Tracked {
					tracked++
				}
			}
			if tracked != 1 {
				t.Errorf("%s %q: %d decisions tracked, want 1", e.flag.Name(), e.course, tracked)
			}
		}
		events := a.wantEvents(t, len(exps))
		for _, e := range exps {
			n := 0
			for _, ev := range events {
				if ev.AppLabel+"."+ev.Experiment == e.flag.Name() && ev.CourseKey == e.course {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%s %q: %d events, want 1", e.flag.Name(), e.course, n)
			}
		}
		r.wantSessionCookie(t)
	})
}

// --- 7. Hashing groups and event fields --------------------------------------

func TestE2EHashingGroups(t *testing.T) {
	rows := []struct {
		name  string
		flag  *experiments.ExperimentFlag
		group func(course string) string
	}{
		{"ok, course-unaware flag hashes its name in every course", unawareFlag,
			func(string) string { return "e2e.unaware" }},
		{"ok, course-aware flag hashes its name and the course", awareFlag,
			func(course string) string {
				if course == "" {
					return "e2e.aware"
				}
				return "e2e.aware." + course
			}},
	}
	courses := []string{"", e2eCourse, e2eMITCourse}
	forEachServer(t, func(t *testing.T, kind serverKind) {
		for _, row := range rows {
			t.Run(row.name, func(t *testing.T) {
				a := newApp(t, kind)
				ruleFor(row.flag.Name(), experiments.On())(t, a.store)
				for i := range 12 {
					u := experiments.User{ID: "learner-" + strconv.Itoa(i)}
					var acts []action
					for _, c := range courses {
						acts = append(acts, decide(row.flag, c))
					}
					r := a.newBrowser(t).get(t, pathBody, u, inOrder(acts...))
					for j, c := range courses {
						want := experiments.SHA256Bucket(row.group(c), u.ID, 5)
						wantDecision(t, r.decisions[j], want, experiments.ReasonHashed)
					}
				}
			})
		}
	})
}

func TestE2EEventFields(t *testing.T) {
	users := []experiments.User{
		{ID: "learner-1", Username: "learner"},
		{ID: "staff-1", Username: "staff", Staff: true},
	}
	forEachServer(t, func(t *testing.T, kind serverKind) {
		a := newApp(t, kind)
		ruleFor(awareFlag.Name(), experiments.On())(t, a.store)
		var want []experiments.Event
		for _, u := range users {
			r := a.newBrowser(t).get(t, pathBody, u, inOrder(decide(awareFlag, e2eCourse), decide(awareFlag, "")))
			for i, course := range []string{e2eCourse, ""} {
				want = append(want, experiments.Event{
					Name: experiments.EventUserBucketed, Time: e2eNow, UserID: u.ID, Site: e2eSite,
					AppLabel: "e2e", Experiment: "aware", CourseKey: course,
					Bucket: r.decisions[i].Bucket, IsStaff: u.Staff,
				})
			}
		}
		got := a.wantEvents(t, len(want))
		for i := range want {
			if !got[i].Time.Equal(want[i].Time) {
				t.Errorf("event %d: Time %v, want %v", i, got[i].Time, want[i].Time)
			}
			got[i].Time, want[i].Time = time.Time{}, time.Time{}
			if got[i] != want[i] {
				t.Errorf("event %d:\n got %+v\nwant %+v", i, got[i], want[i])
			}
		}
	})
}

// --- 8. Overrides of flags and bucket flags -----------------------------------

func TestE2EOverridePrecedence(t *testing.T) {
	name := precedenceFlag.Name()
	on, off := ruleFor(name, experiments.On()), ruleFor(name, experiments.Off())
	orgOff, orgOn := orgState(name, "edX", experiments.ForceOff), orgState(name, "edX", experiments.ForceOn)
	rows := []struct {
		name   string
		setup  setupFunc
		course string
		on     bool
	}{
		{"ok, rule on", on, e2eMITCourse, true},
		{"nok, rule off", off, e2eMITCourse, false},
		{"nok, no rule and no override", allOf(), e2eCourse, false},
		{"nok, org override off beats rule on", allOf(on, orgOff), e2eCourse, false},
		{"nok, org override reaches old-style course keys", allOf(on, orgOff), e2eOldCourse, false},
		{"ok, org override leaves other orgs to the rule", allOf(on, orgOff), e2eMITCourse, true},
		{"ok, org override on beats rule off", allOf(off, orgOn), e2eCourse, true},
		{"ok, course override on beats org override off", allOf(on, orgOff, courseState(name, e2eCourse, experiments.ForceOn)), e2eCourse, true},
		{"nok, course override leaves the org's other courses to the org override", allOf(on, orgOff, courseState(name, e2eCourse, experiments.ForceOn)), e2eCourse2, false},
		{"nok, course override off beats org override on", allOf(on, orgOn, courseState(name, e2eCourse, experiments.ForceOff)), e2eCourse, false},
		{"ok, course override on without any rule", courseState(name, e2eCourse, experiments.ForceOn), e2eCourse, true},
	}
	u := experiments.User{ID: "learner-1"}
	forEachServer(t, func(t *testing.T, kind serverKind) {
		for _, row := range rows {
			t.Run(row.name, func(t *testing.T) {
				a := newApp(t, kind)
				row.setup(t, a.store)
				var experimentOn bool
				d := a.newBrowser(t).get(t, pathBody, u, func(ctx context.Context) []experiments.Decision {
					experimentOn = precedenceFlag.IsExperimentOn(ctx, row.course)
					return decide(precedenceFlag, row.course)(ctx)
				}).one(t)
				if experimentOn != row.on {
					t.Errorf("IsExperimentOn = %v, want %v", experimentOn, row.on)
				}
				if row.on {
					wantDecision(t, d, experiments.SHA256Bucket(name+"."+row.course, u.ID, 2), experiments.ReasonHashed)
				} else {
					wantDecision(t, d, 0, experiments.ReasonFlagOff)
				}
			})
		}
	})
}

func TestE2EBucketFlags(t *testing.T) {
	main := forcedFlag.Name()
	bucket := func(i int) string { return main + "." + strconv.Itoa(i) }
	on := ruleFor(main, experiments.On())
	forceInCourse := func(i int, course string) setupFunc { return courseState(bucket(i), course, experiments.ForceOn) }
	// A user hashed to control in every course used, so that a non-zero
	// bucket can only come from a bucket flag.
	u := findUser(t, func(id string) bool {
		for _, c := range []string{e2eCourse, e2eCourse2, e2eMITCourse} {
			if experiments.SHA256Bucket(main+"."+c, id, 3) != 0 {
				return false
			}
		}
		return true
	})
	rows := []struct {
		name   string
		setup  setupFunc
		course string
		bucket int
		reason experiments.Reason
	}{
		{"ok, no bucket flag hashes", on, e2eCourse, 0, experiments.ReasonHashed},
		{"ok, bucket flag forced on in a course forces its bucket there", allOf(on, forceInCourse(1, e2eCourse)), e2eCourse, 1, experiments.ReasonForced},
		{"ok, bucket flag forced on in a course hashes elsewhere", allOf(on, forceInCourse(1, e2eCourse)), e2eMITCourse, 0, experiments.ReasonHashed},
		{"ok, bucket flag forced on in an org", allOf(on, orgState(bucket(2), "edX", experiments.ForceOn)), e2eCourse2, 2, experiments.ReasonForced},
		{"ok, bucket flag's course override off beats its org override on", allOf(on, orgState(bucket(2), "edX", experiments.ForceOn), courseState(bucket(2), e2eCourse, experiments.ForceOff)), e2eCourse, 0, experiments.ReasonHashed},
		{"ok, bucket flag's course override on beats its rule off", allOf(on, ruleFor(bucket(1), experiments.Off()), forceInCourse(1, e2eCourse)), e2eCourse, 1, experiments.ReasonForced},
		{"ok, a single bucket flag on forces its bucket", allOf(on, ruleFor(bucket(2), experiments.On())), e2eCourse, 2, experiments.ReasonForced},
		{"ok, lowest enabled bucket flag wins", allOf(on, ruleFor(bucket(2), experiments.On()), ruleFor(bucket(1), experiments.On())), e2eCourse, 1, experiments.ReasonForced},
		{"ok, bucket flag beyond the bucket count is ignored", allOf(on, ruleFor(bucket(3), experiments.On())), e2eCourse, 0, experiments.ReasonHashed},
		{"nok, bucket flag on but main flag off", allOf(ruleFor(main, experiments.Off()), ruleFor(bucket(1), experiments.On())), e2eCourse, 0, experiments.ReasonFlagOff},
	}
	forEachServer(t, func(t *testing.T, kind serverKind) {
		for _, row := range rows {
			t.Run(row.name, func(t *testing.T) {
				a := newApp(t, kind)
				row.setup(t, a.store)
				d := a.newBrowser(t).get(t, pathBody, u, decide(forcedFlag, row.course)).one(t)
				wantDecision(t, d, row.bucket, row.reason)
				if tracked := row.reason != experiments.ReasonFlagOff; d.Tracked != tracked {
					t.Errorf("Tracked = %v, want %v", d.Tracked, tracked)
				}
			})
		}
	})
}

// --- 9. Failures fall back to control -----------------------------------------

var (
	errStoreDown       = errors.New("store down")
	errEnrollmentsDown = errors.New("enrollments down")
	errTrackerDown     = errors.New("tracker down")
)

// brokenStore is a Store whose every Snapshot fails.
type brokenStore struct{}

func (brokenStore) Snapshot(context.Context) (*experiments.Snapshot, error) { return nil, errStoreDown }

// brokenEnrollments is an Enrollments whose every lookup fails.
type brokenEnrollments struct{}

func (brokenEnrollments) Enrollment(context.Context, string, string) (time.Time, bool, error) {
	return time.Time{}, false, errEnrollmentsDown
}

func TestE2EFailSafe(t *testing.T) {
	u := tableUser(t)
	rows := []struct {
		name   string
		config func(*experiments.Config)
		bucket int
		reason experiments.Reason
		errIs  []error
	}{
		{"nok, store snapshot fails",
			func(c *experiments.Config) { c.Store = brokenStore{} },
			0, experiments.ReasonError, []error{errStoreDown}},
		{"nok, enrollment lookup fails",
			func(c *experiments.Config) { c.Enrollments = brokenEnrollments{} },
			0, experiments.ReasonError, []error{errEnrollmentsDown}},
		{"nok, tracker fails but the bucket stands",
			func(c *experiments.Config) {
				c.Tracker = experiments.TrackerFunc(func(context.Context, experiments.Event) error { return errTrackerDown })
			},
			1, experiments.ReasonHashed, []error{experiments.ErrTracker, errTrackerDown}},
		{"nok, tracker panics but the bucket stands",
			func(c *experiments.Config) {
				c.Tracker = experiments.TrackerFunc(func(context.Context, experiments.Event) error { panic("tracker exploded") })
			},
			1, experiments.ReasonHashed, []error{experiments.ErrTracker}},
	}
	forEachServer(t, func(t *testing.T, kind serverKind) {
		for _, row := range rows {
			t.Run(row.name, func(t *testing.T) {
				a := newApp(t, kind, row.config)
				// The window makes the decision look the enrollment up.
				allOf(ruleFor(tableFlag.Name(), experiments.On()), experimentValue(e2eExperiment, "enrollment_start", "2012-01-06"))(t, a.store)
				b := a.newBrowser(t)
				for req := 1; req <= 2; req++ {
					r := b.get(t, pathBody, u, twice(decide(tableFlag, e2eCourse)))
					r.wantOK(t, pathBody)
					if len(r.decisions) != 2 {
						t.Fatalf("request %d: decisions %+v, want 2", req, r.decisions)
					}
					d := r.decisions[0]
					wantDecision(t, d, row.bucket, row.reason)
					for _, target := range row.errIs {
						if !errors.Is(d.Err, target) {
							t.Errorf("request %d: Decision.Err = %v, want it to wrap %v", req, d.Err, target)
						}
					}
					if d.Tracked {
						t.Errorf("request %d: failed decision reported Tracked", req)
					}
					wantDecision(t, r.decisions[1], row.bucket, experiments.ReasonCached)
					// Nothing was tracked, so nothing is marked: the event
					// is tried again (and fails again) next request.
					r.wantNoSetCookie(t)
					if got := a.logs.errors(); got != req {
						t.Errorf("after request %d: %d errors logged, want %d:\n%s", req, got, req, a.logs)
					}
				}
				if !strings.Contains(a.logs.String(), tableFlag.Name()) {
					t.Errorf("log does not name the flag %s:\n%s", tableFlag.Name(), a.logs)
				}
				a.wantEvents(t, 0)
			})
		}
	})
}

// Config.Logger promises at most one failure record per request and
// experiment, whichever methods of the flag ask.
func TestE2EFailSafeLogsOncePerRequestAndExperiment(t *testing.T) {
	u := tableUser(t)
	forEachServer(t, func(t *testing.T, kind serverKind) {
		a := newApp(t, kind, func(c *experiments.Config) { c.Store = brokenStore{} })
		var on bool
		r := a.newBrowser(t).get(t, pathBody, u, func(ctx context.Context) []experiments.Decision {
			d := tableFlag.Decide(ctx, e2eCourse)
			on = tableFlag.IsExperimentOn(ctx, e2eCourse)
			return []experiments.Decision{d, tableFlag.Decide(ctx, e2eCourse)}
		})
		r.wantOK(t, pathBody)
		wantDecision(t, r.decisions[0], 0, experiments.ReasonError)
		if on {
			t.Error("IsExperimentOn = true with a failing store, want false")
		}
		if got := a.logs.errors(); got != 1 {
			t.Errorf("%d errors logged for one request and experiment, want 1:\n%s", got, a.logs)
		}
	})
}

// --- 10. DecideUntracked -----------------------------------------------------

func TestE2EDecideUntracked(t *testing.T) {
	u := tableUser(t)
	untracked := func(ctx context.Context) []experiments.Decision {
		return []experiments.Decision{tableFlag.DecideUntracked(ctx, e2eCourse)}
	}
	forEachServer(t, func(t *testing.T, kind serverKind) {
		a := newApp(t, kind)
		ruleFor(tableFlag.Name(), experiments.On())(t, a.store)
		b := a.newBrowser(t)

		r := b.get(t, pathBody, u, inOrder(untracked, decide(tableFlag, e2eCourse)))
		if len(r.decisions) != 2 {
			t.Fatalf("decisions %+v, want 2", r.decisions)
		}
		wantDecision(t, r.decisions[0], 1, experiments.ReasonHashed)
		wantDecision(t, r.decisions[1], 1, experiments.ReasonCached)
		if r.decisions[0].Tracked || r.decisions[1].Tracked {
			t.Errorf("decisions %+v, want none tracked", r.decisions)
		}
		a.wantEvents(t, 0)
		r.wantNoSetCookie(t)

		// Untracked left no mark: the next request's Bucket tracks.
		r = b.get(t, pathBody, u, decide(tableFlag, e2eCourse))
		if d := r.one(t); !d.Tracked || d.Bucket != 1 {
			t.Errorf("decision %+v, want bucket 1 tracked", d)
		}
		a.wantEvents(t, 1)
		r.wantSessionCookie(t)
	})
}

// --- 11. echo's Skipper ------------------------------------------------------

func TestE2EEchoSkipper(t *testing.T) {
	u := tableUser(t)
	a := newApp(t, echoServer)
	ruleFor(tableFlag.Name(), experiments.On())(t, a.store)
	b := a.newBrowser(t)
	rows := []struct {
		name   string
		path   string
		bucket int
		reason experiments.Reason
	}{
		{"nok, skipped request has no request state", pathSkip, 0, experiments.ReasonNoRequest},
		{"ok, request not skipped is decided", pathBody, 1, experiments.ReasonHashed},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			r := b.get(t, row.path, u, decide(tableFlag, e2eCourse))
			r.wantOK(t, row.path)
			wantDecision(t, r.one(t), row.bucket, row.reason)
		})
	}
	a.wantEvents(t, 1)
}
