package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/internal/pgtest"
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
	for _, s := range []string{`<a class="btn" href="#upgrade">Upgrade</a>`, "Control: the classic outline", "anonymous"} {
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
			shown{1, experiments.ReasonHashed, true, true}, `<a class="btn cta" href="#upgrade">Upgrade now</a>`},
		{"ok, bob hashes into new_outline's cards in DemoX Advanced", "bob", advanced, newOutline,
			shown{1, experiments.ReasonHashed, true, true}, "Variant 1: section cards."},
		{"ok, staff carol is forced into bucket 2 of new_outline", "carol", demoX, newOutline, shown{2, experiments.ReasonForced, true, true}, "Variant 2: collapsible outline."},
		{"ok, upgrade_button is off in org OtherU", "alice", otherU, upgradeButton, shown{0, experiments.ReasonFlagOff, false, false}, `<a class="btn" href="#upgrade">Upgrade</a>`},
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
		done <- run(ctx, "127.0.0.1:0", "", pw)
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
	var store demoStore = experiments.NewMemStore()
	if strings.Contains(t.Name(), "postgres") {
		store = postgresStore(t)
	}
	app, err := newApp(t.Context(), store, slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(app)
	t.Cleanup(srv.Close)
	return srv
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
