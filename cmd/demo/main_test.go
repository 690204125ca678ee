package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/admin"
	"github.com/abkit/experiments/internal/pgtest"
	"github.com/abkit/experiments/results"
	"github.com/abkit/experiments/sqlstore"
)

var (
	demoX    = courses[0].Key
	advanced = courses[1].Key
	otherU   = courses[2].Key
)

func TestCourseTracksOncePerSession(t *testing.T) {
	t.Parallel()
	forEachStore(t, testCourseTracksOncePerSession)
}

func testCourseTracksOncePerSession(t *testing.T) {
	srv := newTestServer(t)
	c := newClient(t)
	login(t, c, srv, "alice")

	resp, body := get(t, c, srv.URL+"/courses/"+demoX)
	for _, f := range []*experiments.ExperimentFlag{upgradeButton, newOutline} {
		want := experiments.SHA256Bucket(f.Name()+"."+demoX, "1", f.Buckets())
		if got := decisionOf(t, body, f); got != (shown{want, experiments.ReasonHashed, true, true}) {
			t.Errorf("first visit, %s: got %+v, want bucket %d, hashed, on, tracked", f.Name(), got, want)
		}
	}
	if !hasCookie(resp, experimentsSession) {
		t.Errorf("first visit: no %q cookie set; Set-Cookie: %q", experimentsSession, resp.Header.Values("Set-Cookie"))
	}
	wantEvents := map[string]int{"1 " + upgradeButton.Name(): 1, "1 " + newOutline.Name(): 1}
	if got := eventCounts(t, c, srv); !maps.Equal(got, wantEvents) {
		t.Errorf("events after the first visit: got %v, want %v", got, wantEvents)
	}

	resp, body = get(t, c, srv.URL+"/courses/"+demoX)
	for _, f := range []*experiments.ExperimentFlag{upgradeButton, newOutline} {
		if got := decisionOf(t, body, f); got.Tracked {
			t.Errorf("reload, %s: tracked again: %+v", f.Name(), got)
		}
	}
	if hasCookie(resp, experimentsSession) {
		t.Errorf("reload: %q cookie set again though nothing new was tracked", experimentsSession)
	}
	if got := eventCounts(t, c, srv); !maps.Equal(got, wantEvents) {
		t.Errorf("events after the reload: got %v, want %v", got, wantEvents)
	}

	// Logging in as someone else starts a new experiments session.
	login(t, c, srv, "bob")
	_, body = get(t, c, srv.URL+"/courses/"+demoX)
	if got := decisionOf(t, body, upgradeButton); !got.Tracked {
		t.Errorf("bob after alice, same browser: not tracked: %+v", got)
	}
}

func TestAnonymousSeesControl(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t)
	c := newClient(t)

	resp, body := get(t, c, srv.URL+"/courses/"+demoX)
	if got, want := decisionOf(t, body, upgradeButton), (shown{0, experiments.ReasonAnonymous, true, false}); got != want {
		t.Errorf("upgrade_button: got %+v, want %+v", got, want)
	}
	if got, want := decisionOf(t, body, newOutline), (shown{0, experiments.ReasonAnonymous, false, false}); got != want {
		t.Errorf("new_outline: got %+v, want %+v", got, want)
	}
	for _, s := range []string{`<button class="btn" id="upgrade">Upgrade</button>`, "Control: the classic outline", "anonymous"} {
		if !strings.Contains(body, s) {
			t.Errorf("page lacks %q", s)
		}
	}
	if len(resp.Header.Values("Set-Cookie")) != 0 {
		t.Errorf("anonymous visit set cookies: %q", resp.Header.Values("Set-Cookie"))
	}
	if got := eventCounts(t, c, srv); len(got) != 0 {
		t.Errorf("anonymous visit sent events: %v", got)
	}
}

func TestWithoutMiddlewareEveryoneSeesControl(t *testing.T) {
	t.Parallel()
	app, err := newApp(t.Context(), experiments.NewMemStore(), false, slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(app)
	t.Cleanup(srv.Close)
	c := newClient(t)
	login(t, c, srv, "alice")

	resp, body := get(t, c, srv.URL+"/courses/"+demoX)
	for _, f := range []*experiments.ExperimentFlag{upgradeButton, newOutline} {
		if got := decisionOf(t, body, f); got.Bucket != 0 || got.Reason != experiments.ReasonNoRequest || got.Tracked {
			t.Errorf("%s: got %+v, want bucket 0, %s, not tracked", f.Name(), got, experiments.ReasonNoRequest)
		}
	}
	if hasCookie(resp, experimentsSession) {
		t.Errorf("%q cookie set without the middleware", experimentsSession)
	}
	if got := eventCounts(t, c, srv); len(got) != 0 {
		t.Errorf("events sent without the middleware: %v", got)
	}
}

func TestSeededFlags(t *testing.T) {
	t.Parallel()
	forEachStore(t, testSeededFlags)
}

func testSeededFlags(t *testing.T) {
	srv := newTestServer(t)
	tests := []struct {
		name, user, course string
		flag               *experiments.ExperimentFlag
		want               shown
		content            string // shown for the bucket, when not ""
	}{
		// Hashing is frozen by the package's golden vectors, so bob's bucket is too.
		{"ok, bob hashes into the upgrade_button variant in DemoX Advanced", "bob", advanced, upgradeButton,
			shown{1, experiments.ReasonHashed, true, true}, `<button class="btn cta" id="upgrade">Upgrade now</button>`},
		{"ok, bob hashes into new_outline's cards in DemoX Advanced", "bob", advanced, newOutline,
			shown{1, experiments.ReasonHashed, true, true}, "Variant 1: section cards."},
		{"ok, staff carol is forced into bucket 2 of new_outline", "carol", demoX, newOutline, shown{2, experiments.ReasonForced, true, true}, "Variant 2: collapsible outline."},
		{"ok, upgrade_button is off in org OtherU", "alice", otherU, upgradeButton, shown{0, experiments.ReasonFlagOff, false, false}, `<button class="btn" id="upgrade">Upgrade</button>`},
		{"ok, dave enrolled before the window stays in control", "dave", demoX, newOutline, shown{0, experiments.ReasonOutsideWindow, true, false}, "Control: the classic outline."},
		{"ok, dave is in the window of a course he is not enrolled in", "dave", otherU, newOutline,
			shown{experiments.SHA256Bucket(newOutline.Name()+"."+otherU, "4", 3), experiments.ReasonHashed, true, true}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t)
			login(t, c, srv, tt.user)
			_, body := get(t, c, srv.URL+"/courses/"+tt.course)
			if got := decisionOf(t, body, tt.flag); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if !strings.Contains(body, tt.content) {
				t.Errorf("page lacks %q", tt.content)
			}
		})
	}
}

func TestUnknownCourseIsNotFound(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t)
	resp, err := http.Get(srv.URL + "/courses/course-v1:NoSuch+Course+1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("status %d, want 404", resp.StatusCode)
	}
}

func TestRunServesUntilCanceled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, "127.0.0.1:0", "", true, pw)
		pw.Close()
	}()

	lines := bufio.NewScanner(pr)
	var base string
	for base == "" && lines.Scan() {
		if u, ok := strings.CutPrefix(lines.Text(), "demo: listening on "); ok {
			base = u
		}
	}
	if base == "" {
		t.Fatalf("no listening line: %v", <-done)
	}
	go io.Copy(io.Discard, pr) // drain the rest of the log

	resp, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /: status %d", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}

func TestDashboardAuthorization(t *testing.T) {
	t.Parallel()
	forEachStore(t, testDashboardAuthorization)
}

func testDashboardAuthorization(t *testing.T) {
	srv := newTestServer(t)
	_, home := get(t, newClient(t), srv.URL+"/")
	if link := `<a id="dashboard" href="/admin/">Experiments dashboard (staff)</a>`; !strings.Contains(home, link) {
		t.Errorf("home page lacks %s", link)
	}
	tests := []struct {
		name, user string
		status     int
		content    string
	}{
		{"nok, nobody signed in is asked to sign in", "", http.StatusUnauthorized, "sign in to use the experiments dashboard"},
		{"nok, learner alice is refused", "alice", http.StatusForbidden, "you may not use the experiments dashboard"},
		{"ok, staff carol sees the experiments", "carol", http.StatusOK, `<span class="who">carol</span>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t)
			if tt.user != "" {
				login(t, c, srv, tt.user)
			}
			for _, path := range []string{"/admin/", "/admin/experiments/" + newOutline.Name()} {
				resp, body := fetch(t, c, srv.URL+path)
				if resp.StatusCode != tt.status {
					t.Errorf("GET %s: status %d, want %d", path, resp.StatusCode, tt.status)
				}
				if !strings.Contains(body, tt.content) {
					t.Errorf("GET %s: page lacks %q:\n%s", path, tt.content, body)
				}
			}
		})
	}
}

func TestUpgradeRecordsConversion(t *testing.T) {
	t.Parallel()
	forEachStore(t, testUpgradeRecordsConversion)
}

func testUpgradeRecordsConversion(t *testing.T) {
	srv, store := newTestServerStore(t)
	staff := newClient(t)
	login(t, staff, srv, "carol")
	// alice's bucket of upgrade_button in DemoX, by hashing.
	bucket := experiments.SHA256Bucket(upgradeButton.Name()+"."+demoX, "1", upgradeButton.Buckets())
	before := upgradeReport(t, staff, srv).Buckets[bucket]

	anon := newClient(t)
	resp, body := postForm(t, anon, srv.URL+"/courses/"+demoX+"/upgrade", nil)
	if got, want := resp.Request.URL.RequestURI(), "/courses/"+demoX+"?upgrade=anonymous"; got != want {
		t.Errorf("anonymous upgrade: redirected to %s, want %s", got, want)
	}
	if !strings.Contains(body, upgradeMessages["anonymous"]) {
		t.Errorf("anonymous upgrade: page lacks %q", upgradeMessages["anonymous"])
	}

	c := newClient(t)
	login(t, c, srv, "alice")
	get(t, c, srv.URL+"/courses/"+demoX) // exposed
	resp, body = postForm(t, c, srv.URL+"/courses/"+demoX+"/upgrade", nil)
	if got, want := resp.Request.URL.RequestURI(), "/courses/"+demoX+"?upgrade=recorded"; got != want {
		t.Errorf("alice's upgrade: redirected to %s, want %s", got, want)
	}
	if !strings.Contains(body, upgradeMessages["recorded"]) {
		t.Errorf("alice's upgrade: page lacks %q", upgradeMessages["recorded"])
	}

	flush(t, store)
	var got []experiments.Conversion
	for _, cv := range store.(recording).Conversions() {
		if !strings.HasPrefix(cv.UserID, "sim-") {
			got = append(got, cv)
		}
	}
	if len(got) != 1 || got[0].Goal != upgradeGoal || got[0].UserID != "1" {
		t.Errorf("conversions of the demo's users: %+v, want alice's (ID 1) of goal %s", got, upgradeGoal)
	}
	after := upgradeReport(t, staff, srv).Buckets[bucket]
	if after.Participants != before.Participants+1 || after.Converted != before.Converted+1 {
		t.Errorf("dashboard, upgrade_button bucket %d: %d participants, %d converted; want %d and %d (alice added)",
			bucket, after.Participants, after.Converted, before.Participants+1, before.Converted+1)
	}
}

func TestSimulatedHistory(t *testing.T) {
	t.Parallel()
	forEachStore(t, testSimulatedHistory)
}

func testSimulatedHistory(t *testing.T) {
	srv, store := newTestServerStore(t)
	staff := newClient(t)
	login(t, staff, srv, "carol")

	var list admin.List
	getJSON(t, staff, srv.URL+"/admin/api/experiments", &list)
	if len(list.Experiments) != 2 {
		t.Fatalf("dashboard lists %d experiments, want 2: %+v", len(list.Experiments), list.Experiments)
	}
	for _, x := range list.Experiments {
		if x.Total != simUsers {
			t.Errorf("%s: %d participants, want %d", x.Flag, x.Total, simUsers)
		}
		for i, n := range x.Participants {
			if n < simUsers/int64(len(x.Participants))/2 {
				t.Errorf("%s: bucket %d has %d participants of %d", x.Flag, i, n, x.Total)
			}
		}
	}

	rep := upgradeReport(t, staff, srv)
	for _, b := range rep.Buckets {
		if b.Converted == 0 {
			t.Errorf("upgrade_button bucket %d: no conversions", b.Index)
		}
	}
	if rep.Buckets[1].Rate <= rep.Buckets[0].Rate {
		t.Errorf("upgrade_button: bucket 1 converts at %.3f, control at %.3f; want the variant higher", rep.Buckets[1].Rate, rep.Buckets[0].Rate)
	}
	if rep.SRM.Mismatch {
		t.Errorf("upgrade_button: sample ratio mismatch (p = %g)", rep.SRM.PValue)
	}
	if days := len(rep.Series); days < simDays-1 {
		t.Errorf("upgrade_button: %d days of results, want about %d", days, simDays)
	}

	// A store seeded already keeps its history.
	exposures := len(store.(recording).Exposures())
	if err := seed(t.Context(), store, time.Now()); err != nil {
		t.Fatal(err)
	}
	flush(t, store)
	if n := len(store.(recording).Exposures()); n != exposures {
		t.Errorf("seeding again: %d exposures, had %d", n, exposures)
	}
}

func TestSimulatedHistoryIsDeterministic(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var stores [2]*experiments.MemStore
	for i := range stores {
		stores[i] = experiments.NewMemStore()
		if err := seed(t.Context(), stores[i], now); err != nil {
			t.Fatal(err)
		}
	}
	if a, b := stores[0].Exposures(), stores[1].Exposures(); len(a) != 2*simUsers || !slices.Equal(a, b) {
		t.Errorf("exposures: %d and %d, equal: %v; want %d, equal", len(a), len(b), slices.Equal(a, b), 2*simUsers)
	}
	a, b := stores[0].Conversions(), stores[1].Conversions()
	if len(a) == 0 || !slices.Equal(a, b) {
		t.Errorf("conversions: %d and %d, equal: %v; want some, equal", len(a), len(b), slices.Equal(a, b))
	}
	for _, e := range stores[0].Exposures() {
		demoUser := slices.ContainsFunc(users, func(u experiments.User) bool { return u.ID == e.UserID })
		if demoUser || e.Time.After(now) || e.Time.Before(now.AddDate(0, 0, -simDays)) {
			t.Fatalf("simulated exposure %+v: a demo user's ID, or outside the %d days before %v", e, simDays, now)
		}
	}
	for _, c := range a {
		if c.Time.After(now) {
			t.Fatalf("simulated conversion %+v after now (%v)", c, now)
		}
	}
}

// recording is what both stores give of their records.
type recording interface {
	Exposures() []experiments.Exposure
	Conversions() []experiments.Conversion
}

// flush writes what a batching store (sqlstore) has queued.
func flush(t *testing.T, store demoStore) {
	t.Helper()
	if f, ok := store.(interface{ Flush(context.Context) error }); ok {
		if err := f.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
}

// upgradeReport reads the dashboard's report of goal upgrade for
// upgrade_button in DemoX.
func upgradeReport(t *testing.T, c *http.Client, srv *httptest.Server) results.Report {
	t.Helper()
	var res admin.Results
	getJSON(t, c, srv.URL+"/admin/api/experiments/"+upgradeButton.Name()+"/results?course="+url.QueryEscape(demoX), &res)
	if len(res.Reports) != 1 || res.Reports[0].Goal.Name != upgradeGoal || len(res.Reports[0].Buckets) != 2 {
		t.Fatalf("results of upgrade_button: %+v, want one report, of goal %s, with 2 buckets", res, upgradeGoal)
	}
	return res.Reports[0]
}

// shown is a flag's decision as the course page shows it.
type shown struct {
	Bucket  int
	Reason  experiments.Reason
	On      bool // IsExperimentOn
	Tracked bool
}

func decisionOf(t *testing.T, body string, f *experiments.ExperimentFlag) shown {
	t.Helper()
	re := regexp.MustCompile(`<section class="flag" data-flag="` + regexp.QuoteMeta(f.Name()) +
		`" data-bucket="(\d+)" data-reason="([a-z_]+)" data-active="(true|false)" data-tracked="(true|false)">`)
	m := re.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no section for %s in:\n%s", f.Name(), body)
	}
	b, _ := strconv.Atoi(m[1])
	return shown{b, experiments.Reason(m[2]), m[3] == "true", m[4] == "true"}
}

var eventRow = regexp.MustCompile(`<tr class="event" data-user="([^"]*)" data-experiment="([^"]*)">`)

// eventCounts reads the /events page: "userID flag" → number of events.
func eventCounts(t *testing.T, c *http.Client, srv *httptest.Server) map[string]int {
	t.Helper()
	_, body := get(t, c, srv.URL+"/events")
	counts := map[string]int{}
	for _, m := range eventRow.FindAllStringSubmatch(body, -1) {
		counts[m[1]+" "+m[2]]++
	}
	return counts
}

func hasCookie(resp *http.Response, name string) bool {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return true
		}
	}
	return false
}

// newTestServer serves the demo on a MemStore, or on PostgreSQL (a fresh
// schema of EXPERIMENTS_TEST_DSN's database) when the test's name says so.
func newTestServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv, _ := newTestServerStore(t)
	return srv
}

// newTestServerStore is newTestServer, also returning the store.
func newTestServerStore(t *testing.T) (*httptest.Server, demoStore) {
	t.Helper()
	store := newTestStore(t)
	app, err := newApp(t.Context(), store, true, slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(app)
	t.Cleanup(srv.Close)
	return srv, store
}

// newTestStore returns a MemStore, or a sqlstore on a fresh schema when
// the test's name says "postgres".
func newTestStore(t *testing.T) demoStore {
	t.Helper()
	if strings.Contains(t.Name(), "postgres") {
		return postgresStore(t)
	}
	return experiments.NewMemStore()
}

func newClient(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar}
}

func login(t *testing.T, c *http.Client, srv *httptest.Server, username string) {
	t.Helper()
	resp, err := c.PostForm(srv.URL+"/login", url.Values{"username": {username}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "signed in as <b>"+username+"</b>") {
		t.Fatalf("login as %s: status %d, body:\n%s", username, resp.StatusCode, body)
	}
}

func get(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d:\n%s", u, resp.StatusCode, body)
	}
	return resp, string(body)
}

// fetch GETs u and returns the response, whatever its status, with its body.
func fetch(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// postForm POSTs form to u, follows the redirect and returns the page it
// leads to, which must be 200.
func postForm(t *testing.T, c *http.Client, u string, form url.Values) (*http.Response, string) {
	t.Helper()
	resp, err := c.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: status %d:\n%s", u, resp.StatusCode, body)
	}
	return resp, string(body)
}

// getJSON GETs u, which must answer 200, into v.
func getJSON(t *testing.T, c *http.Client, u string, v any) {
	t.Helper()
	_, body := get(t, c, u)
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("GET %s: %v:\n%s", u, err, body)
	}
}

// forEachStore runs test on the demo with a MemStore and with PostgreSQL.
func forEachStore(t *testing.T, test func(t *testing.T)) {
	for _, name := range []string{"memory", "postgres"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			test(t)
		})
	}
}

// postgresStore opens a sqlstore on a fresh schema, dropped at the end.
func postgresStore(t *testing.T) *sqlstore.Store {
	schema := pgtest.Schema(t, "demotest_")
	s, err := sqlstore.OpenWith(t.Context(), pgtest.DSN(), sqlstore.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() }) // before the schema is dropped
	return s
}
