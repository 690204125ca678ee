package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/admin"
	"github.com/abkit/experiments/internal/pgtest"
	"github.com/abkit/experiments/results"
	"github.com/abkit/experiments/sqlstore"
)

var (
	upgrade = experiments.NewFlag("course_experience", "upgrade_button")
	outline = experiments.NewFlag("course_experience", "new_outline", experiments.WithBuckets(3), experiments.WithExperimentID(1))
)

const course = "course-v1:DemoX+Intro+2026"

// people are the test's users, by the X-Test-User header.
var people = map[string]struct {
	actor string
	p     admin.Permission
}{
	"staff":   {"carol", admin.Change},
	"viewer":  {"victor", admin.View},
	"learner": {"alice", admin.Deny},
}

func authorize(r *http.Request) (string, admin.Permission) {
	p := people[r.Header.Get("X-Test-User")]
	return p.actor, p.p
}

// testStore is a store the tests seed and record into.
type testStore interface {
	admin.Store
	experiments.Recorder
	SetGoal(ctx context.Context, g experiments.Goal) error
}

// stores are the stores the dashboard is tested on.
var stores = []struct {
	name string
	open func(t *testing.T) testStore
}{
	{"MemStore", func(*testing.T) testStore { return experiments.NewMemStore() }},
	{"sqlstore", func(t *testing.T) testStore {
		s, err := sqlstore.OpenWith(t.Context(), pgtest.DSN(), sqlstore.WithSchema(pgtest.Schema(t, "exptest_admin_")),
			sqlstore.WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
}

// onEveryStore runs test on a site on each store.
func onEveryStore(t *testing.T, cfg admin.Config, test func(t *testing.T, s *site)) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			test(t, newSiteOn(t, st.open(t), cfg))
		})
	}
}

// site is a dashboard on a store behind an httptest server.
type site struct {
	t      *testing.T
	store  testStore
	srv    *httptest.Server
	client *http.Client
	user   string // the X-Test-User of requests
	token  string
}

// newSite returns a site on a MemStore.
func newSite(t *testing.T, cfg admin.Config) *site {
	return newSiteOn(t, experiments.NewMemStore(), cfg)
}

func newSiteOn(t *testing.T, store testStore, cfg admin.Config) *site {
	t.Helper()
	ctx := t.Context()
	if err := errorsJoin(
		store.SetFlag(ctx, upgrade.Name(), experiments.On()),
		store.SetFlag(ctx, outline.Name(), experiments.Rule{Authenticated: true}),
		store.SetFlag(ctx, outline.BucketFlag(2), experiments.Rule{Staff: true}),
		store.SetOrgOverride(ctx, upgrade.Name(), "OtherU", experiments.ForceOff),
		store.SetGoal(ctx, experiments.Goal{Name: "upgrade", Once: true}),
	); err != nil {
		t.Fatal(err)
	}
	cfg.Store = store
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Flags == nil {
		cfg.Flags = []*experiments.ExperimentFlag{upgrade, outline}
	}
	if cfg.Authorize == nil {
		cfg.Authorize = authorize
	}
	dash, err := admin.New("/admin", cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/admin/", dash)
	mux.Handle("/admin", dash)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	return &site{t: t, store: store, srv: srv, user: "staff",
		client: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func errorsJoin(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// do sends a request as s.user and returns the status and body.
func (s *site) do(method, path, contentType string, body io.Reader, header ...string) (int, string, http.Header) {
	s.t.Helper()
	req, err := http.NewRequestWithContext(s.t.Context(), method, s.srv.URL+path, body)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("X-Test-User", s.user)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// csrf fetches the CSRF token (and its cookie).
func (s *site) csrf() string {
	s.t.Helper()
	if s.token == "" {
		code, body, _ := s.do("GET", "/admin/api/csrf", "", nil)
		if code != http.StatusOK {
			s.t.Fatalf("GET csrf: %d %s", code, body)
		}
		var v struct{ Token string }
		json.Unmarshal([]byte(body), &v)
		s.token = v.Token
	}
	return s.token
}

// action posts a JSON action with the CSRF token.
func (s *site) action(flag, name string, body any) (int, string) {
	s.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	code, resp, _ := s.do("POST", "/admin/api/experiments/"+flag+"/"+name, "application/json", r, "X-CSRF-Token", s.csrf())
	return code, resp
}

// mustAct posts an action that must succeed and returns the experiment.
func (s *site) mustAct(flag, name string, body any) admin.Detail {
	s.t.Helper()
	code, resp := s.action(flag, name, body)
	if code != http.StatusOK {
		s.t.Fatalf("%s %s: %d %s", flag, name, code, resp)
	}
	var d admin.Detail
	if err := json.Unmarshal([]byte(resp), &d); err != nil {
		s.t.Fatal(err)
	}
	return d
}

// decide returns the bucket a user gets in course from the store.
func (s *site) decide(f *experiments.ExperimentFlag, u experiments.User) int {
	x := experiments.New(experiments.Config{Store: s.store})
	return f.Bucket(x.NewContext(context.Background(), u), course)
}

// apiError decodes an API error body.
func apiError(t *testing.T, body string) (status int, msg string) {
	t.Helper()
	var e struct {
		Status int    `json:"status"`
		Error  string `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == "" {
		t.Fatalf("body %q is not a JSON error", body)
	}
	return e.Status, e.Error
}

// Every route, with a body for each action.
var routes = []struct{ method, path, body string }{
	{"GET", "/admin/", ""},
	{"GET", "/admin/experiments/course_experience.upgrade_button", ""},
	{"GET", "/admin/api/csrf", ""},
	{"GET", "/admin/api/experiments", ""},
	{"GET", "/admin/api/experiments/course_experience.upgrade_button", ""},
	{"GET", "/admin/api/experiments/course_experience.upgrade_button/results", ""},
	{"GET", "/admin/api/experiments/course_experience.upgrade_button/history", ""},
	{"POST", "/admin/api/experiments/course_experience.upgrade_button/on", ""},
	{"POST", "/admin/api/experiments/course_experience.upgrade_button/off", ""},
	{"POST", "/admin/api/experiments/course_experience.upgrade_button/rule", `{"percent": 10}`},
	{"POST", "/admin/api/experiments/course_experience.upgrade_button/course-override", `{"course_key": "course-v1:A+B+C", "state": "on"}`},
	{"POST", "/admin/api/experiments/course_experience.upgrade_button/org-override", `{"org": "A", "state": "off"}`},
	{"POST", "/admin/api/experiments/course_experience.new_outline/window", `{"start": "2026-01-01"}`},
	{"POST", "/admin/api/experiments/course_experience.upgrade_button/winner", `{"bucket": 1}`},
	{"POST", "/admin/api/experiments/course_experience.upgrade_button/undo-winner", ""},
	{"POST", "/admin/api/experiments/course_experience.upgrade_button/archive", ""},
	{"POST", "/admin/api/experiments/course_experience.upgrade_button/resume", ""},
	{"POST", "/admin/api/experiments/course_experience.upgrade_button/delete", `{"confirm": "course_experience.upgrade_button"}`},
	{"POST", "/admin/api/experiments/course_experience.upgrade_button/notes", `{"notes": "x"}`},
	{"POST", "/admin/api/experiments/course_experience.upgrade_button/weights", `{"weights": [90, 10]}`},
}

// Anonymous users, users without permission and viewers trying to
// change: nothing is shown or changed, whatever the route.
func TestOnlyAuthorizedUsersReadOrChange(t *testing.T) {
	for _, tc := range []struct {
		name, user   string
		readStatus   int
		changeStatus int
	}{
		{"nok, anonymous", "", http.StatusUnauthorized, http.StatusUnauthorized},
		{"nok, learner", "learner", http.StatusForbidden, http.StatusForbidden},
		{"ok, viewer reads but does not change", "viewer", http.StatusOK, http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			onEveryStore(t, admin.Config{}, func(t *testing.T, s *site) {
				staffToken := s.csrf() // a valid token: refusals are not about CSRF
				before := s.store.Snapshot
				snap0, _ := before(t.Context())
				s.user = tc.user
				for _, r := range routes {
					var body io.Reader
					if r.body != "" {
						body = strings.NewReader(r.body)
					}
					code, resp, _ := s.do(r.method, r.path, "application/json", body, "X-CSRF-Token", staffToken)
					want := tc.readStatus
					if r.method == "POST" {
						want = tc.changeStatus
					}
					if code != want {
						t.Errorf("%s %s: status %d, want %d (%s)", r.method, r.path, code, want, resp)
					}
					if want != http.StatusOK && strings.Contains(resp, "upgrade_button") && strings.Contains(r.path, "/api/") {
						t.Errorf("%s %s: refused, but the body names the experiment: %s", r.method, r.path, resp)
					}
					if want != http.StatusOK && strings.HasPrefix(r.path, "/admin/api/") {
						if status, _ := apiError(t, resp); status != want {
							t.Errorf("%s %s: error body status %d, want %d", r.method, r.path, status, want)
						}
					}
				}
				snap1, _ := s.store.Snapshot(t.Context())
				if !reflect.DeepEqual(snap0.Data(), snap1.Data()) {
					t.Errorf("the store changed")
				}
				if h, _ := s.store.History(t.Context(), experiments.HistoryQuery{Flag: upgrade.Name()}); len(h) != 2 {
					t.Errorf("history holds %d changes, want the 2 of the set-up", len(h))
				}
			})
		})
	}
}

func TestAnAuthorizeThatDeniesEveryoneGives401Everywhere(t *testing.T) {
	denyAll := func(*http.Request) (string, admin.Permission) { return "", admin.Deny }
	dash, err := admin.New("/admin", admin.Config{Store: experiments.NewMemStore(), Authorize: denyAll})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		req := httptest.NewRequest(r.method, r.path, strings.NewReader(r.body))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		dash.ServeHTTP(w, req)
		if w.Code != http.StatusUnauthorized {
			t.Errorf("%s %s with an Authorize that denies everyone: status %d, want 401", r.method, r.path, w.Code)
		}
	}
}

func TestStateChangesNeedTheCSRFTokenAndTheSameOrigin(t *testing.T) {
	s := newSite(t, admin.Config{})
	token := s.csrf()
	path := "/admin/api/experiments/course_experience.upgrade_button/off"
	for _, tc := range []struct {
		name   string
		header []string
		want   int
	}{
		{"nok, no token", nil, http.StatusForbidden},
		{"nok, wrong token", []string{"X-CSRF-Token", strings.Repeat("A", 43)}, http.StatusForbidden},
		{"nok, cross-site request with the token", []string{"X-CSRF-Token", token, "Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{"nok, other origin with the token", []string{"X-CSRF-Token", token, "Origin", "https://evil.example"}, http.StatusForbidden},
		{"ok, same-origin request with the token", []string{"X-CSRF-Token", token, "Sec-Fetch-Site", "same-origin"}, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body, _ := s.do("POST", path, "application/json", nil, tc.header...)
			if code != tc.want {
				t.Fatalf("status %d, want %d: %s", code, tc.want, body)
			}
		})
	}
	if got := s.decide(upgrade, experiments.User{ID: "1", Username: "u1"}); got != 0 {
		t.Errorf("bucket %d after the accepted off, want 0", got)
	}
	h, _ := s.store.History(t.Context(), experiments.HistoryQuery{Flag: upgrade.Name(), Limit: 10})
	if len(h) != 3 {
		t.Errorf("history holds %d changes, want 2 of the set-up and the one accepted off", len(h))
	}

	t.Run("nok, form without the token field", func(t *testing.T) {
		code, _, _ := s.do("POST", path, "application/x-www-form-urlencoded", strings.NewReader("go=off"))
		if code != http.StatusForbidden {
			t.Fatalf("status %d, want 403", code)
		}
	})
	t.Run("nok, token without its cookie", func(t *testing.T) {
		other := newSite(t, admin.Config{})
		code, _, _ := other.do("POST", path, "application/json", nil, "X-CSRF-Token", token)
		if code != http.StatusForbidden {
			t.Fatalf("status %d, want 403", code)
		}
	})
}

func TestCSRFCookieIsHttpOnlyAndStrict(t *testing.T) {
	s := newSite(t, admin.Config{SecureCookie: true})
	_, _, h := s.do("GET", "/admin/api/csrf", "", nil)
	c := h.Get("Set-Cookie")
	for _, want := range []string{"experiments_admin_csrf=", "Path=/admin/", "HttpOnly", "Secure", "SameSite=Strict"} {
		if !strings.Contains(c, want) {
			t.Errorf("Set-Cookie %q lacks %q", c, want)
		}
	}
}

func TestActionsChangeTheStoreAndTheAuditNamesTheActor(t *testing.T) {
	onEveryStore(t, admin.Config{}, testActions)
}

func testActions(t *testing.T, s *site) {
	flag := upgrade.Name()
	u := experiments.User{ID: "42", Username: "zoe"}

	d := s.mustAct(flag, "off", nil)
	if d.Status != admin.StatusOff || s.decide(upgrade, u) != 0 {
		t.Errorf("after off: status %s, bucket %d; want off, 0", d.Status, s.decide(upgrade, u))
	}
	d = s.mustAct(flag, "rule", map[string]any{"percent": 100, "staff": true, "users": []string{"zoe"}, "groups": []string{"beta"}})
	want := experiments.Rule{Percent: 100, Staff: true, Users: []string{"zoe"}, Groups: []string{"beta"}}
	if d.Status != admin.StatusTargeted || d.Rule == nil || !reflect.DeepEqual(*d.Rule, want) {
		t.Errorf("after rule: status %s, rule %+v; want targeted, %+v", d.Status, d.Rule, want)
	}
	d = s.mustAct(flag, "on", nil)
	if d.Status != admin.StatusOn {
		t.Errorf("after on: status %s", d.Status)
	}
	d = s.mustAct(flag, "course-override", map[string]string{"course_key": course, "state": "off"})
	if len(d.CourseOverrides) != 1 || d.CourseOverrides[0] != (admin.Override{Flag: flag, Key: course, State: "off"}) {
		t.Errorf("course overrides %+v", d.CourseOverrides)
	}
	if got := s.decide(upgrade, u); got != 0 {
		t.Errorf("course forced off: bucket %d, want 0", got)
	}
	d = s.mustAct(flag, "course-override", map[string]string{"course_key": course, "state": "unset"})
	if len(d.CourseOverrides) != 0 {
		t.Errorf("course overrides after unset: %+v", d.CourseOverrides)
	}
	d = s.mustAct(flag, "org-override", map[string]string{"org": "OtherU", "state": "unset"})
	d = s.mustAct(flag, "org-override", map[string]string{"org": "DemoX", "state": "on"})
	if len(d.OrgOverrides) != 1 || d.OrgOverrides[0].Key != "DemoX" || d.OrgOverrides[0].State != "on" {
		t.Errorf("org overrides %+v", d.OrgOverrides)
	}
	d = s.mustAct(flag, "notes", map[string]string{"notes": "Hypothesis: a bigger button sells.\nOwner: growth"})
	if d.Notes != "Hypothesis: a bigger button sells.\nOwner: growth" {
		t.Errorf("notes %q", d.Notes)
	}
	d = s.mustAct(outline.Name(), "window", map[string]string{"start": "2026-01-01", "end": "2026-12-31T00:00:00Z"})
	if d.Window == nil || d.Window.Start != "2026-01-01" || d.Window.End != "2026-12-31T00:00:00Z" || d.Window.Error != "" {
		t.Errorf("window %+v", d.Window)
	}

	h, err := s.store.History(t.Context(), experiments.HistoryQuery{Flag: flag, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var mine []string
	for _, c := range h {
		if c.Actor == "carol" {
			mine = append(mine, c.Entity+" "+c.Key)
		}
	}
	wantChanges := []string{
		"meta " + flag,
		"org_override " + flag + " DemoX",
		"org_override " + flag + " OtherU",
		"course_override " + flag + " " + course,
		"course_override " + flag + " " + course,
		"flag " + flag, "flag " + flag, "flag " + flag,
	}
	if !reflect.DeepEqual(mine, wantChanges) {
		t.Errorf("carol's changes, newest first:\n got %q\nwant %q", mine, wantChanges)
	}
	code, body, _ := s.do("GET", "/admin/api/experiments/"+flag+"/history?limit=2", "", nil)
	var hist admin.History
	if json.Unmarshal([]byte(body), &hist); code != 200 || len(hist.Changes) != 2 || hist.Changes[0].Actor != "carol" {
		t.Errorf("GET history: %d %s", code, body)
	}
}

func TestWinnerIsForcedOnEveryoneAndUndone(t *testing.T) {
	onEveryStore(t, admin.Config{}, testWinner)
}

func testWinner(t *testing.T, s *site) {
	flag := outline.Name()
	learner := experiments.User{ID: "7", Username: "learner7"}
	staff := experiments.User{ID: "8", Username: "staff8", Staff: true}
	anonymous := experiments.User{}
	before, _ := s.store.Snapshot(t.Context())

	d := s.mustAct(flag, "winner", map[string]int{"bucket": 1})
	if d.Status != admin.StatusWinner || d.Winner == nil || *d.Winner != 1 {
		t.Fatalf("after winner: status %s, winner %v", d.Status, d.Winner)
	}
	for _, u := range []experiments.User{learner, staff} {
		if got := s.decide(outline, u); got != 1 {
			t.Errorf("user %q: bucket %d under winner 1, want 1", u.Username, got)
		}
	}
	if got := s.decide(outline, anonymous); got != 0 {
		t.Errorf("anonymous: bucket %d under winner 1, want 0 (anonymous users are never bucketed)", got)
	}
	// Another winner keeps the rules from before the first.
	s.mustAct(flag, "winner", map[string]int{"bucket": 2})
	if got := s.decide(outline, learner); got != 2 {
		t.Errorf("bucket %d under winner 2, want 2", got)
	}
	code, body := s.action(flag, "on", nil)
	if code != http.StatusConflict {
		t.Errorf("turning on under a winner: %d %s, want 409", code, body)
	}
	d = s.mustAct(flag, "undo-winner", nil)
	if d.Winner != nil || d.Status != admin.StatusTargeted {
		t.Errorf("after undo: winner %v, status %s", d.Winner, d.Status)
	}
	after, _ := s.store.Snapshot(t.Context())
	if !reflect.DeepEqual(before.Data().Flags, after.Data().Flags) {
		t.Errorf("undo did not restore the flags:\n got %+v\nwant %+v", after.Data().Flags, before.Data().Flags)
	}
	if got := s.decide(outline, staff); got != 2 {
		t.Errorf("staff after undo: bucket %d, want 2 (bucket flag 2 is on for staff)", got)
	}
	if got := s.decide(outline, anonymous); got != 0 {
		t.Errorf("anonymous after undo: bucket %d, want 0", got)
	}
	code, body = s.action(flag, "undo-winner", nil)
	if code != http.StatusConflict {
		t.Errorf("undo without a winner: %d %s, want 409", code, body)
	}
	for _, b := range []string{`{"bucket": 3}`, `{"bucket": -1}`, `{}`, `{"bucket": "1"}`} {
		code, resp, _ := s.do("POST", "/admin/api/experiments/"+flag+"/winner", "application/json", strings.NewReader(b), "X-CSRF-Token", s.csrf())
		if code != http.StatusBadRequest {
			t.Errorf("winner %s: %d %s, want 400", b, code, resp)
		}
	}
}

func TestArchiveResumeAndDelete(t *testing.T) {
	onEveryStore(t, admin.Config{}, testArchive)
}

func testArchive(t *testing.T, s *site) {
	flag := upgrade.Name()
	code, body := s.action(flag, "archive", nil)
	if code != http.StatusConflict || !strings.Contains(body, "turn it off or force a winner") {
		t.Fatalf("archiving a running experiment: %d %s, want 409", code, body)
	}
	code, body = s.action(flag, "delete", map[string]string{"confirm": flag})
	if code != http.StatusConflict {
		t.Fatalf("deleting a live experiment: %d %s, want 409", code, body)
	}
	s.mustAct(flag, "off", nil)
	s.mustAct(flag, "notes", map[string]string{"notes": "done"})
	d := s.mustAct(flag, "archive", nil)
	if !d.Archived {
		t.Fatal("not archived")
	}
	code, body = s.action(flag, "on", nil)
	if code != http.StatusConflict {
		t.Errorf("turning on an archived experiment: %d %s, want 409", code, body)
	}
	var list admin.List
	_, lb, _ := s.do("GET", "/admin/api/experiments", "", nil)
	json.Unmarshal([]byte(lb), &list)
	for _, x := range list.Experiments {
		if x.Flag == flag && !x.Archived {
			t.Errorf("the list shows %s live", flag)
		}
	}
	d = s.mustAct(flag, "resume", nil)
	if d.Archived {
		t.Fatal("still archived after resume")
	}
	s.mustAct(flag, "archive", nil)
	code, body = s.action(flag, "delete", map[string]string{"confirm": "course_experience.other"})
	if code != http.StatusBadRequest || !strings.Contains(body, "type the experiment's name") {
		t.Fatalf("delete with a wrong confirmation: %d %s, want 400", code, body)
	}
	d = s.mustAct(flag, "delete", map[string]string{"confirm": flag})
	if d.Rule != nil || d.Archived || d.Notes != "" || len(d.OrgOverrides) != 0 {
		t.Errorf("after delete: %+v", d)
	}
	snap, _ := s.store.Snapshot(t.Context())
	data := snap.Data()
	if _, ok := data.Flags[flag]; ok || len(data.OrgOverrides[flag]) != 0 {
		t.Errorf("the store keeps %s's configuration: %+v %+v", flag, data.Flags[flag], data.OrgOverrides[flag])
	}
}

func TestBadInputIsRefusedWithAJSONError(t *testing.T) {
	onEveryStore(t, admin.Config{}, testBadInput)
}

func testBadInput(t *testing.T, s *site) {
	for _, tc := range []struct {
		name, flag, action, body string
		status                   int
		mention                  string
	}{
		{"nok, unknown experiment", "ns.nothing", "on", "", 404, `no experiment "ns.nothing"`},
		{"nok, unknown action", upgrade.Name(), "explode", "", 404, `no action "explode"`},
		{"nok, body is not JSON", upgrade.Name(), "rule", `{"percent": `, 400, "body"},
		{"nok, unknown field", upgrade.Name(), "rule", `{"percnt": 5}`, 400, "percnt"},
		{"nok, percent above 100", upgrade.Name(), "rule", `{"percent": 101}`, 400, "percent 101"},
		{"nok, user with a control character", upgrade.Name(), "rule", `{"users": ["a\u0007"]}`, 400, "rule users[0]"},
		{"nok, bad override state", upgrade.Name(), "course-override", `{"course_key": "c", "state": "maybe"}`, 400, `state "maybe"`},
		{"nok, empty course key", upgrade.Name(), "course-override", `{"state": "on"}`, 400, "course key"},
		{"nok, org in a course override", upgrade.Name(), "course-override", `{"org": "X", "state": "on"}`, 400, "org"},
		{"nok, start is not a date", outline.Name(), "window", `{"start": "next tuesday"}`, 400, `enrollment_start "next tuesday"`},
		{"nok, end is not a date", outline.Name(), "window", `{"end": "2026-13-01"}`, 400, `enrollment_end "2026-13-01"`},
		{"nok, start after end", outline.Name(), "window", `{"start": "2026-02-01", "end": "2026-01-01"}`, 400, "not before"},
		{"nok, window without an experiment ID", upgrade.Name(), "window", `{"start": "2026-01-01"}`, 409, "WithExperimentID"},
		{"nok, notes with a NUL", upgrade.Name(), "notes", `{"notes": "a\u0000b"}`, 400, "control character"},
		{"nok, notes too long", upgrade.Name(), "notes", `{"notes": "` + strings.Repeat("x", experiments.MaxNotesLen+1) + `"}`, 400, "notes"},
		{"nok, two JSON values", upgrade.Name(), "notes", `{"notes": "a"} {}`, 400, "more than one"},
		{"nok, body too large", upgrade.Name(), "notes", `{"notes": "` + strings.Repeat("x", 70<<10) + `"}`, 413, "body"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body, h := s.do("POST", "/admin/api/experiments/"+tc.flag+"/"+tc.action, "application/json",
				strings.NewReader(tc.body), "X-CSRF-Token", s.csrf())
			if code != tc.status {
				t.Fatalf("status %d, want %d: %s", code, tc.status, body)
			}
			if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
			if _, msg := apiError(t, body); !strings.Contains(msg, tc.mention) {
				t.Errorf("error %q does not mention %q", msg, tc.mention)
			}
		})
	}
	for _, path := range []string{"/admin/api/experiments/ns.nothing", "/admin/api/experiments/ns.nothing/results", "/admin/api/experiments/ns.nothing/history"} {
		if code, body, _ := s.do("GET", path, "", nil); code != 404 {
			t.Errorf("GET %s: %d %s, want 404", path, code, body)
		}
	}
	if code, body, _ := s.do("GET", "/admin/api/experiments/"+upgrade.Name()+"/history?limit=0", "", nil); code != 400 {
		t.Errorf("history limit 0: %d %s, want 400", code, body)
	}
	snap, _ := s.store.Snapshot(t.Context())
	if meta := snap.Data().Meta; len(meta) != 0 {
		t.Errorf("refused actions left meta %+v", meta)
	}
}

func TestOutputIsEscaped(t *testing.T) {
	s := newSite(t, admin.Config{})
	evil := `<script>alert("x")</script>`
	s.mustAct(upgrade.Name(), "notes", map[string]string{"notes": evil})
	s.mustAct(upgrade.Name(), "course-override", map[string]string{"course_key": `<img src=x onerror=alert(1)>`, "state": "on"})
	code, page, h := s.do("GET", "/admin/experiments/"+upgrade.Name(), "", nil)
	if code != 200 {
		t.Fatalf("page: %d", code)
	}
	if strings.Contains(page, "<script>") || strings.Contains(page, "<img src=x") {
		t.Errorf("the page holds unescaped input")
	}
	if !strings.Contains(page, "&lt;script&gt;") {
		t.Errorf("the page lacks the escaped notes")
	}
	_, page, _ = s.do("GET", "/admin/experiments/"+upgrade.Name()+"?done=Experiment+deleted.+Call+555", "", nil)
	if strings.Contains(page, "Call 555") || strings.Contains(page, "Done:") {
		t.Errorf("the page says what a link told it to")
	}
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	_, body, _ := s.do("GET", "/admin/api/experiments/"+upgrade.Name(), "", nil)
	if strings.Contains(body, "<script>") || !strings.Contains(body, `\u003cscript\u003e`) {
		t.Errorf("the JSON holds unescaped input: %s", body)
	}
}

func TestPagesListAndShowExperiments(t *testing.T) {
	s := newSite(t, admin.Config{})
	ctx := t.Context()
	start := time.Now().Add(-72 * time.Hour)
	for i := range 40 {
		id := string(rune('a'+i%26)) + string(rune('0'+i/26))
		b := i % 2
		s.store.RecordExposure(ctx, experiments.Exposure{Flag: upgrade.Name(), CourseKey: course, UserID: id, Bucket: b, Time: start.Add(time.Duration(i) * time.Hour)})
		if i%3 == 0 {
			s.store.RecordConversion(ctx, experiments.Conversion{Goal: "upgrade", UserID: id, Time: start.Add(time.Duration(i+1) * time.Hour)})
		}
	}
	code, page, _ := s.do("GET", "/admin/", "", nil)
	if code != 200 || !strings.Contains(page, "course_experience.upgrade_button") || !strings.Contains(page, "course_experience.new_outline") {
		t.Fatalf("list: %d\n%s", code, page)
	}
	if !strings.Contains(page, `<th class="num">Buckets</th>`) {
		t.Errorf("list: the Buckets header is not aligned like its numbers")
	}
	code, page, _ = s.do("GET", "/admin/experiments/"+upgrade.Name(), "", nil)
	for _, want := range []string{"Goal upgrade", "<svg", "polyline", "Participants per bucket", "Conversion rate per bucket: upgrade", `name="csrf_token"`, "History",
		"Main flag: <strong>on for everyone</strong>", // Rule.String, once
		`<td class="when">`, `<td class="json"><code>`, `class="course-key" size="30"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the experiment page lacks %q", want)
		}
	}
	if strings.Contains(page, "On for:") || strings.Count(page, "Main flag: ") != 1 {
		t.Errorf("the experiment page does not say the main flag's rule once")
	}
	if !regexp.MustCompile(`<p class="verdict [^"]+"><strong>[^<]+</strong>: <span class="detail">[^<]+</span></p>`).MatchString(page) {
		t.Errorf("the verdict's text and detail are not separated:\n%s", regexp.MustCompile(`<p class="verdict.*`).FindString(page))
	}
	if code != 200 {
		t.Fatalf("experiment page: %d", code)
	}
	_, css, _ := s.do("GET", "/admin/static/admin.css", "", nil)
	charts := chartsOf(t, page)
	if len(charts) != 2 {
		t.Fatalf("%d charts, want the participants' and the upgrade rate's", len(charts))
	}
	for _, c := range charts {
		c.checkInside(t, axisFontSize(t, css))
	}
	if got, want := charts[0].yLabels(), []string{"0", "5", "10", "15", "20"}; !reflect.DeepEqual(got, want) {
		t.Errorf("participants (20 a bucket at most): y labels %q, want %q", got, want)
	}
	var res admin.Results
	_, body, _ := s.do("GET", "/admin/api/experiments/"+upgrade.Name()+"/results", "", nil)
	if err := json.Unmarshal([]byte(body), &res); err != nil || res.CourseKey != course || len(res.Reports) != 1 || res.Reports[0].Buckets[0].Participants != 20 {
		t.Errorf("results: %v %s", err, body)
	}
	var d admin.Detail
	_, body, _ = s.do("GET", "/admin/api/experiments/"+upgrade.Name(), "", nil)
	json.Unmarshal([]byte(body), &d)
	if d.Total != 40 || !reflect.DeepEqual(d.Participants, []int64{20, 20}) {
		t.Errorf("participants %v (total %d), want [20 20]", d.Participants, d.Total)
	}

	if err := s.store.(*experiments.MemStore).DeleteGoal(ctx, "upgrade"); err != nil {
		t.Fatal(err)
	}
	_, page, _ = s.do("GET", "/admin/experiments/"+upgrade.Name(), "", nil)
	if !strings.Contains(page, "Participants per bucket") || !strings.Contains(page, "no goals") {
		t.Errorf("without goals, the page lacks the participants chart or says nothing of goals")
	}

	s.user = "viewer"
	_, page, _ = s.do("GET", "/admin/experiments/"+upgrade.Name(), "", nil)
	if strings.Contains(page, `<form method="post"`) {
		t.Errorf("a viewer's page holds action forms")
	}
	if !strings.Contains(page, `<form class="view" method="get">`) {
		t.Errorf("a viewer's page lacks the form that picks the breakdown and the zone")
	}
}

// svgChart is an SVG chart of a page, as far as its layout goes.
type svgChart struct {
	Label   string `xml:"aria-label,attr"`
	ViewBox string `xml:"viewBox,attr"`
	Texts   []struct {
		X      float64 `xml:"x,attr"`
		Y      float64 `xml:"y,attr"`
		DX     float64 `xml:"dx,attr"`
		DY     float64 `xml:"dy,attr"`
		Anchor string  `xml:"text-anchor,attr"`
		Text   string  `xml:",chardata"`
	} `xml:"text"`
	Circles []struct {
		X float64 `xml:"cx,attr"`
		Y float64 `xml:"cy,attr"`
	} `xml:"circle"`
}

// chartsOf returns the SVG charts of page.
func chartsOf(t *testing.T, page string) []svgChart {
	t.Helper()
	var charts []svgChart
	for _, svg := range regexp.MustCompile(`(?s)<svg .*?</svg>`).FindAllString(page, -1) {
		var c svgChart
		if err := xml.Unmarshal([]byte(svg), &c); err != nil {
			t.Fatalf("chart: %v\n%s", err, svg)
		}
		charts = append(charts, c)
	}
	return charts
}

// axisFontSize returns the font size of the charts' axis labels in css.
func axisFontSize(t *testing.T, css string) float64 {
	t.Helper()
	m := regexp.MustCompile(`svg \.axis \{[^}]*font-size: (\d+)px`).FindStringSubmatch(css)
	if m == nil {
		t.Fatalf("the stylesheet sets no font size for the charts' axes")
	}
	size, _ := strconv.ParseFloat(m[1], 64)
	return size
}

// checkInside checks that every label and dot of c lies inside its
// viewBox, estimating a label's width at 0.62em a character.
func (c svgChart) checkInside(t *testing.T, fontSize float64) {
	t.Helper()
	var w, h float64
	if _, err := fmt.Sscanf(c.ViewBox, "0 0 %g %g", &w, &h); err != nil {
		t.Fatalf("%s: viewBox %q: %v", c.Label, c.ViewBox, err)
	}
	if len(c.Texts) == 0 || len(c.Circles) == 0 {
		t.Errorf("%s: no labels or no dots", c.Label)
	}
	for _, l := range c.Texts {
		width := 0.62 * fontSize * float64(len([]rune(l.Text)))
		x := l.X + l.DX
		start := map[string]float64{"": x, "start": x, "middle": x - width/2, "end": x - width}[l.Anchor]
		if start < 0 || start+width > w {
			t.Errorf("%s: label %q spans x %.1f to %.1f, outside the viewBox's 0 to %g", c.Label, l.Text, start, start+width, w)
		}
		if base := l.Y + l.DY; base-0.8*fontSize < 0 || base+0.25*fontSize > h {
			t.Errorf("%s: label %q at y %.1f, outside the viewBox's 0 to %g", c.Label, l.Text, base, h)
		}
	}
	for _, d := range c.Circles {
		if d.X < 0 || d.X > w || d.Y < 0 || d.Y > h {
			t.Errorf("%s: dot at %g,%g outside the viewBox", c.Label, d.X, d.Y)
		}
	}
}

// yLabels returns the labels of the y axis, right-aligned, bottom up.
func (c svgChart) yLabels() []string {
	var labels []string
	for _, l := range c.Texts {
		if l.Anchor == "end" {
			labels = append(labels, l.Text)
		}
	}
	return labels
}

// The pages that refuse a user link where the user may go: the site's
// root for a user who may not view the dashboard, the dashboard else.
func TestRefusalPagesLinkWhereTheUserMayGo(t *testing.T) {
	s := newSite(t, admin.Config{})
	token := s.csrf()
	for _, tc := range []struct {
		name, user, method string
		status             int
		link               string
	}{
		{"anonymous, 401: the site", "", "GET", http.StatusUnauthorized, `<a href="/">`},
		{"learner, 403: the site", "learner", "GET", http.StatusForbidden, `<a href="/">`},
		{"viewer posting a form, 403: the dashboard", "viewer", "POST", http.StatusForbidden, `<a href="/admin/">`},
		{"no such page, 404: the dashboard", "staff", "GET", http.StatusNotFound, `<a href="/admin/">`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.user = tc.user
			path := "/admin/"
			var body io.Reader
			if tc.method == "POST" {
				path = "/admin/api/experiments/" + upgrade.Name() + "/off"
				body = strings.NewReader(url.Values{"csrf_token": {token}}.Encode())
			} else if tc.status == http.StatusNotFound {
				path = "/admin/nowhere"
			}
			code, page, _ := s.do(tc.method, path, "application/x-www-form-urlencoded", body)
			if code != tc.status {
				t.Fatalf("status %d, want %d", code, tc.status)
			}
			links := regexp.MustCompile(`<a href="[^"]*">`).FindAllString(page, -1)
			if len(links) == 0 {
				t.Errorf("the page links nowhere")
			}
			for _, l := range links {
				if l != tc.link {
					t.Errorf("links %q, want every one %s", links, tc.link)
					break
				}
			}
		})
	}
}

func TestFormsActAndRedirectToThePage(t *testing.T) {
	s := newSite(t, admin.Config{})
	s.do("GET", "/admin/", "", nil) // sets the cookie
	token := s.csrf()
	form := url.Values{"csrf_token": {token}, "bucket": {"1"}}
	code, _, h := s.do("POST", "/admin/api/experiments/"+upgrade.Name()+"/winner", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/admin/experiments/course_experience.upgrade_button?done=") {
		t.Fatalf("form winner: %d, Location %q", code, h.Get("Location"))
	}
	if got := s.decide(upgrade, experiments.User{ID: "9", Username: "n"}); got != 1 {
		t.Errorf("bucket %d after the form's winner, want 1", got)
	}
	_, page, _ := s.do("GET", h.Get("Location"), "", nil)
	if !strings.Contains(page, "Done: winner forced on everyone.") {
		t.Errorf("the page after the redirect does not say what was done")
	}
	form = url.Values{"csrf_token": {token}, "percent": {"abc"}}
	code, page, _ = s.do("POST", "/admin/api/experiments/"+outline.Name()+"/rule", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if code != http.StatusBadRequest || !strings.Contains(page, "percent &#34;abc&#34;: not a number") {
		t.Errorf("form with a bad percent: %d\n%s", code, page)
	}
}

func TestRegisterOnAnEchoGroup(t *testing.T) {
	store := experiments.NewMemStore()
	dash, err := admin.New("/admin", admin.Config{Store: store, Flags: []*experiments.ExperimentFlag{upgrade}, Authorize: authorize})
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	dash.Register(e.Group("/admin"))
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/admin/api/experiments", 200},
		{"/admin/", 200},
		{"/admin", 301},
		{"/admin/static/admin.css", 200},
		{"/admin/nothing", 404},
	} {
		req := httptest.NewRequest("GET", tc.path, nil)
		req.Header.Set("X-Test-User", "staff")
		w := httptest.NewRecorder()
		e.ServeHTTP(w, req)
		if w.Code != tc.want {
			t.Errorf("GET %s: %d, want %d", tc.path, w.Code, tc.want)
		}
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	store := experiments.NewMemStore()
	for _, tc := range []struct {
		name   string
		prefix string
		cfg    admin.Config
		want   string // in the error
	}{
		{"nok, no store", "/admin", admin.Config{Authorize: authorize}, "Config.Store is nil"},
		{"nok, no Authorize", "/admin", admin.Config{Store: store}, "Config.Authorize is nil"},
		{"nok, prefix without a slash", "admin", admin.Config{Store: store, Authorize: authorize}, `prefix "admin"`},
		{"nok, prefix with a trailing slash", "/admin/", admin.Config{Store: store, Authorize: authorize}, `prefix "/admin/"`},
		{"nok, a flag twice", "/admin", admin.Config{Store: store, Authorize: authorize, Flags: []*experiments.ExperimentFlag{upgrade, upgrade}},
			"Config.Flags holds " + upgrade.Name() + " twice"},
		{"nok, bad trusted origin", "/admin", admin.Config{Store: store, Authorize: authorize, TrustedOrigins: []string{"not an origin"}},
			"trusted origin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dash, err := admin.New(tc.prefix, tc.cfg)
			if err == nil {
				t.Fatal("New succeeded")
			}
			if dash != nil {
				t.Errorf("New returned a dashboard with its error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %q", err, tc.want)
			}
		})
	}
}

// brokenStore fails its snapshots, or its writes of flags.
type brokenStore struct {
	testStore
	snapshots, writes bool
}

var errBroken = errors.New("connection refused")

func (b brokenStore) Snapshot(ctx context.Context) (*experiments.Snapshot, error) {
	if b.snapshots {
		return nil, errBroken
	}
	return b.testStore.Snapshot(ctx)
}

func (b brokenStore) SetFlag(ctx context.Context, name string, r experiments.Rule) error {
	if b.writes {
		return errBroken
	}
	return b.testStore.SetFlag(ctx, name, r)
}

func TestStoreFailuresGive500WithoutDetails(t *testing.T) {
	for _, tc := range []struct {
		name              string
		snapshots, writes bool
		method, path      string
	}{
		{"nok, snapshot fails on the list", true, false, "GET", "/admin/api/experiments"},
		{"nok, snapshot fails on a page", true, false, "GET", "/admin/"},
		{"nok, a write fails", false, true, "POST", "/admin/api/experiments/course_experience.upgrade_button/off"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := experiments.NewMemStore()
			s := newSiteOn(t, brokenStore{testStore: store}, admin.Config{})
			token := s.csrf()
			var logs bytes.Buffer
			broken := brokenStore{testStore: store, snapshots: tc.snapshots, writes: tc.writes}
			dash, err := admin.New("/admin", admin.Config{Store: broken, Authorize: authorize, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest(tc.method, tc.path, nil)
			req.Header.Set("X-Test-User", "staff")
			req.Header.Set("X-CSRF-Token", token)
			req.AddCookie(&http.Cookie{Name: "experiments_admin_csrf", Value: token})
			w := httptest.NewRecorder()
			dash.ServeHTTP(w, req)
			if w.Code != http.StatusInternalServerError {
				t.Fatalf("status %d, want 500: %s", w.Code, w.Body)
			}
			if strings.Contains(w.Body.String(), errBroken.Error()) {
				t.Errorf("the response shows the store's error: %s", w.Body)
			}
			if !strings.Contains(logs.String(), errBroken.Error()) {
				t.Errorf("the log lacks the store's error: %s", logs.String())
			}
		})
	}
}

// courseLinks returns the course links of an experiment page, their
// href by link text.
func courseLinks(t *testing.T, page string) map[string]string {
	t.Helper()
	links := make(map[string]string)
	for _, m := range regexp.MustCompile(`<a class="course[^"]*" href="([^"]*)"[^>]*>([^<]*)</a>`).FindAllStringSubmatch(page, -1) {
		links[html.UnescapeString(m[2])] = html.UnescapeString(m[1])
	}
	return links
}

func TestCourseLinksNameTheCourseOnce(t *testing.T) {
	s := newSite(t, admin.Config{})
	ctx := t.Context()
	other := "course-v1:DemoX+Advanced+2026" // ':' and '+' must be encoded once
	at := time.Now().Add(-time.Hour)
	for i, c := range []string{course, course, course, other} {
		s.store.RecordExposure(ctx, experiments.Exposure{Flag: upgrade.Name(), CourseKey: c, UserID: strconv.Itoa(i), Bucket: i % 2, Time: at})
	}
	page := "/admin/experiments/" + upgrade.Name()
	_, body, _ := s.do("GET", page, "", nil)
	links := courseLinks(t, body)
	for _, c := range []string{course, other} {
		u, err := url.Parse(links[c])
		if err != nil {
			t.Fatalf("the link of %s, %q: %v", c, links[c], err)
		}
		if got := u.Query().Get("course"); got != c {
			t.Errorf("the link of %s, %q, names course %q", c, links[c], got)
		}
	}
	// Following the link shows that course's participants.
	_, body, _ = s.do("GET", page+links[other], "", nil)
	if strings.Contains(body, "no participants yet") || !strings.Contains(body, `<td class="num">1</td>`) {
		t.Errorf("the page the link of %s leads to shows no participants:\n%s", other, body)
	}
}

// flush writes what a batching store (sqlstore) queued.
func flush(t *testing.T, s testStore) {
	t.Helper()
	if f, ok := s.(interface{ Flush(context.Context) error }); ok {
		if err := f.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
}

// results fetches the results of flag with query (for example
// "?all_courses=true").
func (s *site) results(flag, query string) admin.Results {
	s.t.Helper()
	code, body, _ := s.do("GET", "/admin/api/experiments/"+flag+"/results"+query, "", nil)
	if code != http.StatusOK {
		s.t.Fatalf("GET results%s: %d %s", query, code, body)
	}
	var res admin.Results
	if err := json.Unmarshal([]byte(body), &res); err != nil {
		s.t.Fatal(err)
	}
	return res
}

// Two courses: "course-v1:A+…", first in order, with 1 participant; the
// test's course with 40. Users 0 to 9 are in both, in either bucket, and
// users 0 to 19 convert.
func recordTwoCourses(t *testing.T, s testStore) ([]experiments.Exposure, []experiments.Conversion) {
	t.Helper()
	at := time.Now().Add(-48 * time.Hour).Truncate(time.Second)
	exps := []experiments.Exposure{{Flag: upgrade.Name(), CourseKey: "course-v1:A+First+2026", UserID: "alone", Bucket: 1, Time: at}}
	var convs []experiments.Conversion
	for i := range 40 {
		id := strconv.Itoa(i)
		exps = append(exps, experiments.Exposure{Flag: upgrade.Name(), CourseKey: course, UserID: id, Bucket: i % 2, Time: at.Add(time.Duration(i) * time.Minute)})
		if i < 10 {
			exps = append(exps, experiments.Exposure{Flag: upgrade.Name(), CourseKey: "course-v1:A+First+2026", UserID: id, Bucket: (i / 2) % 2, Time: at.Add(time.Duration(i-5) * time.Minute)})
		}
		if i < 20 {
			convs = append(convs, experiments.Conversion{Goal: "upgrade", UserID: id, Time: at.Add(time.Hour)})
		}
	}
	ctx := t.Context()
	for _, e := range exps {
		if err := s.RecordExposure(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range convs {
		if err := s.RecordConversion(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, s)
	return exps, convs
}

func TestResultsOpenOnTheCourseWithTheMostParticipants(t *testing.T) {
	onEveryStore(t, admin.Config{}, func(t *testing.T, s *site) {
		recordTwoCourses(t, s.store)
		if res := s.results(upgrade.Name(), ""); res.CourseKey != course || res.AllCourses || len(res.Reports) != 1 {
			t.Fatalf("results open on course %q (all courses: %v, %d reports), want %s", res.CourseKey, res.AllCourses, len(res.Reports), course)
		}
		_, page, _ := s.do("GET", "/admin/experiments/"+upgrade.Name(), "", nil)
		if !strings.Contains(html.UnescapeString(page), `class="course current" href="?course=course-v1%3aDemoX%2bIntro%2b2026" data-course="`+course+`"`) {
			t.Errorf("the page does not mark %s as the current course", course)
		}
		if res := s.results(upgrade.Name(), "?course="+url.QueryEscape("course-v1:A+First+2026")); res.CourseKey != "course-v1:A+First+2026" || res.Reports[0].Buckets[1].Participants+res.Reports[0].Buckets[0].Participants != 11 {
			t.Errorf("the first course asked for: %+v", res)
		}
		// The links to the other courses keep the breakdown and the zone.
		_, page, _ = s.do("GET", "/admin/experiments/"+upgrade.Name()+"?by=browser&zone=America/Los_Angeles", "", nil)
		page = html.UnescapeString(page)
		for _, want := range []string{
			`href="?all_courses=true&by=browser&zone=America%2fLos_Angeles">All courses`,
			`href="?course=course-v1%3aA%2bFirst%2b2026&by=browser&zone=America%2fLos_Angeles" data-course="course-v1:A+First+2026"`,
		} {
			if !strings.Contains(page, want) {
				t.Errorf("the page lacks the link %s", want)
			}
		}
	})
}

func TestAllCoursesCountEachParticipantOnce(t *testing.T) {
	onEveryStore(t, admin.Config{}, func(t *testing.T, s *site) {
		exps, convs := recordTwoCourses(t, s.store)
		res := s.results(upgrade.Name(), "?all_courses=true")
		if !res.AllCourses || res.CourseKey != "" || len(res.Reports) != 1 {
			t.Fatalf("all courses: %+v", res)
		}
		got := res.Reports[0]
		if !got.Experiment.AllCourses || got.Experiment.Flag != upgrade.Name() {
			t.Errorf("the report's experiment is %+v", got.Experiment)
		}
		var participants int64
		for _, b := range got.Buckets {
			participants += b.Participants
		}
		if participants != 41 { // 40 users and "alone", users 0 to 9 once
			t.Errorf("all courses: %d participants, want 41", participants)
		}
		// The same report as package results builds from the records.
		want, err := results.Build(t.Context(), results.NewMemory(exps, convs), results.Query{
			Experiment: results.Experiment{Flag: upgrade.Name(), AllCourses: true}, Goal: experiments.Goal{Name: "upgrade", Once: true}, Buckets: 2})
		if err != nil {
			t.Fatal(err)
		}
		wantJSON, _ := json.Marshal(want)
		gotJSON, _ := json.Marshal(got)
		if !bytes.Equal(gotJSON, wantJSON) {
			t.Errorf("all courses report:\n%s\nwant\n%s", gotJSON, wantJSON)
		}

		_, page, _ := s.do("GET", "/admin/experiments/"+upgrade.Name()+"?all_courses=true", "", nil)
		page = html.UnescapeString(page)
		for _, want := range []string{`class="all-courses current"`, "each learner counts once", "Split check (sample ratio mismatch): " + want.SRM.String()} {
			if !strings.Contains(page, want) {
				t.Errorf("the all-courses page lacks %q", want)
			}
		}
	})
}

func TestResultsShowTheSplitCheckAndTheDifferenceAboveTheControls(t *testing.T) {
	s := newSite(t, admin.Config{})
	recordTwoCourses(t, s.store)
	rep := s.results(upgrade.Name(), "").Reports[0]
	_, page, _ := s.do("GET", "/admin/experiments/"+upgrade.Name(), "", nil)
	page = html.UnescapeString(page)
	d := rep.Rates[0].Difference
	for _, want := range []string{
		"Split check (sample ratio mismatch): " + rep.SRM.String(),
		"Difference vs control (95% CI)",
		fmt.Sprintf("%+.1f pts (%+.1f pts to %+.1f pts)", 100*d.Estimate, 100*d.Low, 100*d.High),
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the experiment page lacks %q", want)
		}
	}
	results, controls := strings.Index(page, "<h2>Results</h2>"), strings.Index(page, "<h2>Main flag</h2>")
	if results < 0 || controls < 0 || results > controls {
		t.Errorf("results at %d, the main flag's controls at %d: want the results first", results, controls)
	}
}

func TestResultsRefuseABadView(t *testing.T) {
	s := newSite(t, admin.Config{})
	for _, tc := range []struct{ query, mention string }{
		{"?all_courses=maybe", `all_courses "maybe"`},
		{"?all_courses=true&course=" + url.QueryEscape(course), `course "` + course + `" with all_courses`},
	} {
		code, body, _ := s.do("GET", "/admin/api/experiments/"+upgrade.Name()+"/results"+tc.query, "", nil)
		if status, msg := apiError(t, body); code != http.StatusBadRequest || status != code || !strings.Contains(msg, tc.mention) {
			t.Errorf("results%s: %d %s, want 400 naming %s", tc.query, code, body, tc.mention)
		}
		if code, _, _ := s.do("GET", "/admin/experiments/"+upgrade.Name()+tc.query, "", nil); code != http.StatusBadRequest {
			t.Errorf("page%s: %d, want 400", tc.query, code)
		}
	}
}

// ?by= adds a breakdown per goal, ?zone= sets the weekly series' zone,
// on both stores; values recorded with the exposures are escaped.
func TestResultsBreakdownAndWeeks(t *testing.T) {
	onEveryStore(t, admin.Config{}, func(t *testing.T, s *site) {
		ctx := t.Context()
		evil := `<script>alert(1)</script>`
		start := time.Date(2026, 3, 9, 6, 0, 0, 0, time.UTC) // Sunday 23:00 in Los Angeles
		for i := range 30 {
			var dims experiments.Dimensions
			switch i % 3 {
			case 1:
				dims, _ = experiments.NewDimensions(map[string]string{"browser": "Firefox"})
			case 2:
				dims, _ = experiments.NewDimensions(map[string]string{"browser": evil})
			}
			id := fmt.Sprint("u", i)
			if err := s.store.RecordExposure(ctx, experiments.Exposure{Flag: upgrade.Name(), CourseKey: course, UserID: id,
				Bucket: i % 2, Time: start.Add(time.Duration(i) * time.Minute), Dimensions: dims}); err != nil {
				t.Fatal(err)
			}
		}
		if f, ok := s.store.(interface{ Flush(context.Context) error }); ok {
			if err := f.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
		var res admin.Results
		_, body, _ := s.do("GET", "/admin/api/experiments/"+upgrade.Name()+"/results?by=browser&zone=America/Los_Angeles", "", nil)
		if err := json.Unmarshal([]byte(body), &res); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		if res.By != "browser" || res.Zone != "America/Los_Angeles" || len(res.Breakdowns) != 1 || len(res.Errors) != 0 {
			t.Fatalf("results: by %q, zone %q, %d breakdowns, errors %v", res.By, res.Zone, len(res.Breakdowns), res.Errors)
		}
		var values []string
		for _, row := range res.Breakdowns[0].Rows {
			values = append(values, row.Value)
		}
		if want := []string{"", evil, "Firefox"}; !reflect.DeepEqual(values, want) {
			t.Errorf("values %q, want %q", values, want)
		}
		// Minutes 0 to 29 from 06:00 UTC: Sunday 8 March in Los Angeles (PDT, UTC-7), Monday 9 March in UTC.
		if w := res.Reports[0].Weekly; len(w) != 1 || !w[0].Week.Equal(time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("weekly %+v, want the week of 2026-03-02", w)
		}
		_, body, _ = s.do("GET", "/admin/api/experiments/"+upgrade.Name()+"/results", "", nil)
		res = admin.Results{}
		json.Unmarshal([]byte(body), &res)
		if res.Zone != "UTC" || res.Breakdowns != nil || len(res.Reports) != 1 || !res.Reports[0].Weekly[0].Week.Equal(time.Date(2026, 3, 9, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("without by and zone: zone %q, breakdowns %v, weekly %+v", res.Zone, res.Breakdowns, res.Reports[0].Weekly)
		}

		code, page, _ := s.do("GET", "/admin/experiments/"+upgrade.Name()+"?course="+url.QueryEscape(course)+"&by=browser&zone=America/Los_Angeles", "", nil)
		if code != 200 {
			t.Fatalf("page: %d", code)
		}
		for _, want := range []string{"Goal upgrade by browser", "<td>Firefox</td>", "<td>(none)</td>", "&lt;script&gt;",
			"Cumulative by week, from Monday in America/Los_Angeles", "<td>2026-03-02</td>", "not adjusted across values"} {
			if !strings.Contains(page, want) {
				t.Errorf("the page lacks %q", want)
			}
		}
		if strings.Contains(page, evil) {
			t.Error("the page holds an unescaped dimension value")
		}
		for _, bad := range []string{"?by=a+b", "?zone=Mars/Olympus", "?zone=Local"} {
			if code, _, _ := s.do("GET", "/admin/api/experiments/"+upgrade.Name()+"/results"+bad, "", nil); code != http.StatusBadRequest {
				t.Errorf("%s: %d, want 400", bad, code)
			}
		}
	})
}
