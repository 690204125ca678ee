package admin

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/abkit/experiments"
)

// readmeDashboard returns the README's "Staff dashboard" section.
func readmeDashboard(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	start := strings.Index(s, "\n## Staff dashboard\n")
	if start < 0 {
		t.Fatal("README.md has no Staff dashboard section")
	}
	s = s[start+1:]
	if end := strings.Index(s, "\n## "); end >= 0 {
		s = s[:end]
	}
	return s
}

// readmeExample is the README's example experiment: what
// GET /api/experiments/course_experience.upgrade_button answers.
func readmeExample(t *testing.T) (*Admin, string) {
	t.Helper()
	ctx := t.Context()
	store := experiments.NewMemStore()
	flag := experiments.NewFlagSet().NewFlag("course_experience", "upgrade_button", experiments.WithExperimentID(7))
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	if err := errorsJoin(
		store.SetFlag(ctx, flag.Name(), experiments.Rule{Percent: 50, Staff: true}),
		store.SetOrgOverride(ctx, flag.Name(), "OtherU", experiments.ForceOff),
		store.SetExperimentValue(ctx, 7, experiments.EnrollmentStart, "2026-03-01"),
		store.SetExperimentMeta(ctx, flag.Name(), experiments.ExperimentMeta{Notes: "Does a bigger button sell more?"}),
		store.RecordExposure(ctx, experiments.Exposure{Flag: flag.Name(), CourseKey: "course-v1:DemoX+Intro+2026", UserID: "1", Bucket: 0, Time: at}),
		store.RecordExposure(ctx, experiments.Exposure{Flag: flag.Name(), CourseKey: "course-v1:DemoX+Intro+2026", UserID: "2", Bucket: 1, Time: at}),
		store.RecordExposure(ctx, experiments.Exposure{Flag: flag.Name(), CourseKey: "course-v1:DemoX+Intro+2026", UserID: "3", Bucket: 1, Time: at}),
	); err != nil {
		t.Fatal(err)
	}
	a, err := New("/admin", Config{Store: store, Flags: []*experiments.ExperimentFlag{flag}, Logger: slog.New(slog.DiscardHandler),
		Authorize: func(r *http.Request) (string, Permission) { return "carol", Change }})
	if err != nil {
		t.Fatal(err)
	}
	return a, flag.Name()
}

func errorsJoin(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// do serves a request to a as the example's staff user, with the CSRF
// token for a POST, and returns the status and body.
func do(t *testing.T, a *Admin, method, path, body string) (int, []byte) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if method == http.MethodPost {
		token := strings.Repeat("t", 43)
		req.AddCookie(&http.Cookie{Name: csrfCookie, Value: token})
		req.Header.Set(csrfHeader, token)
		req.Header.Set("Content-Type", "application/json")
	}
	w := httptest.NewRecorder()
	a.ServeHTTP(w, req)
	return w.Code, w.Body.Bytes()
}

// keys returns the keys of the JSON object v, sorted.
func keys(v any) []string {
	m, _ := v.(map[string]any)
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func decodeAny(t *testing.T, what string, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v:\n%s", what, err, b)
	}
	return v
}

// The README's JSON API section documents every endpoint, with bodies
// the endpoints take, and answers as the code gives them.
func TestREADMEDocumentsTheJSONAPI(t *testing.T) {
	section := readmeDashboard(t)
	rows := regexp.MustCompile("(?m)^\\| `(GET|POST) (/api/[^`]*)` \\| (?:`([^`]*)`)? *\\|").FindAllStringSubmatch(section, -1)
	var documented, want []string
	for _, r := range rows {
		documented = append(documented, r[1]+" "+r[2])
	}
	want = []string{"GET /api/experiments", "GET /api/experiments/{flag}", "GET /api/experiments/{flag}/results",
		"GET /api/experiments/{flag}/history", "GET /api/csrf"} // as routes registers them
	for action := range actions {
		want = append(want, "POST /api/experiments/{flag}/"+action)
	}
	slices.Sort(documented)
	slices.Sort(want)
	if !slices.Equal(documented, want) {
		t.Errorf("the README's table documents\n%q\nthe dashboard serves\n%q", documented, want)
	}

	// Every GET answers, every action takes its documented body.
	prepare := map[string][]string{ // the actions an action needs first
		"undo-winner": {"winner"},
		"archive":     {"off"},
		"resume":      {"off", "archive"},
		"delete":      {"off", "archive"},
	}
	for _, r := range rows {
		t.Run(r[1]+" "+r[2], func(t *testing.T) {
			a, flag := readmeExample(t)
			path := "/admin" + strings.ReplaceAll(r[2], "{flag}", flag)
			body := strings.ReplaceAll(r[3], "<flag>", flag)
			action := strings.TrimPrefix(r[2], "/api/experiments/{flag}/")
			for _, first := range prepare[action] {
				b := ""
				if first == "winner" {
					b = `{"bucket": 1}`
				}
				if code, resp := do(t, a, "POST", "/admin/api/experiments/"+flag+"/"+first, b); code != http.StatusOK {
					t.Fatalf("%s first: %d %s", first, code, resp)
				}
			}
			code, resp := do(t, a, r[1], path, body)
			if code != http.StatusOK {
				t.Fatalf("%s %s %s: %d %s", r[1], path, body, code, resp)
			}
			if r[1] == "POST" {
				dec := json.NewDecoder(bytes.NewReader(resp))
				dec.DisallowUnknownFields()
				var d Detail
				if err := dec.Decode(&d); err != nil || d.Flag != flag {
					t.Errorf("the answer is not the experiment: %v\n%s", err, resp)
				}
			}
		})
	}

	// The example experiment is what the code answers.
	a, flag := readmeExample(t)
	example := regexp.MustCompile("(?s)```json\n(.*?)```").FindStringSubmatch(section)
	if example == nil {
		t.Fatal("the README has no example experiment")
	}
	_, got := do(t, a, "GET", "/admin/api/experiments/"+flag, "")
	if g, w := decodeAny(t, "the answer", got), decodeAny(t, "the README's example", []byte(example[1])); !reflect.DeepEqual(g, w) {
		t.Errorf("GET /api/experiments/%s answers\n%s\nthe README shows\n%s", flag, got, example[1])
	}

	// The answers written inline have the keys of the code's answers.
	inline := make(map[string]any)
	for _, m := range regexp.MustCompile("`(\\{[^`]*\\})`").FindAllStringSubmatch(section, -1) {
		text := strings.NewReplacer("[...]", "[]", "{...}", "{}", "\n", " ").Replace(m[1])
		var v map[string]any
		if json.Unmarshal([]byte(text), &v) != nil {
			continue
		}
		for _, k := range []string{"token", "status", "all_courses", "id", "experiments"} {
			if _, ok := v[k]; ok {
				inline[k] = v
			}
		}
	}
	viewer, _ := readmeExample(t)
	viewer.authorize = func(*http.Request) (string, Permission) { return "victor", View }
	_, errBody := do(t, viewer, "POST", "/admin/api/experiments/"+flag+"/on", "")
	if code, resp := do(t, a, "POST", "/admin/api/experiments/"+flag+"/notes", `{"notes": "x"}`); code != http.StatusOK {
		t.Fatalf("notes: %d %s", code, resp)
	}
	_, history := do(t, a, "GET", "/admin/api/experiments/"+flag+"/history", "")
	var h struct{ Changes []json.RawMessage }
	json.Unmarshal(history, &h)
	if len(h.Changes) == 0 {
		t.Fatalf("no history: %s", history)
	}
	_, list := do(t, a, "GET", "/admin/api/experiments", "")
	_, csrf := do(t, a, "GET", "/admin/api/csrf", "")
	_, res := do(t, a, "GET", "/admin/api/experiments/"+flag+"/results", "")
	for _, tc := range []struct {
		key    string
		answer []byte
		exact  bool // the README shows the whole answer, not only its keys
	}{
		{"token", csrf, false},
		{"status", errBody, true},
		{"all_courses", res, false},
		{"id", h.Changes[0], false},
		{"experiments", list, false},
	} {
		doc, ok := inline[tc.key]
		if !ok {
			t.Errorf("the README shows no answer with %q", tc.key)
			continue
		}
		answer := decodeAny(t, tc.key, tc.answer)
		if tc.exact && !reflect.DeepEqual(doc, answer) {
			t.Errorf("the README shows %v, the code answers %s", doc, tc.answer)
		}
		if got, want := keys(doc), keys(answer); !slices.Equal(got, want) {
			t.Errorf("the README's answer with %q has the keys %q, the code's %q:\n%s", tc.key, got, want, tc.answer)
		}
	}
	// The list's experiments have the example's fields up to
	// total_participants.
	var l struct{ Experiments []map[string]any }
	json.Unmarshal(list, &l)
	head := example[1][:strings.Index(example[1], `"total_participants":`)+len(`"total_participants":`)]
	var fields []string
	for _, m := range regexp.MustCompile(`(?m)^  "(\w+)":`).FindAllStringSubmatch(head, -1) {
		fields = append(fields, m[1])
	}
	slices.Sort(fields)
	if len(l.Experiments) != 1 || !slices.Equal(keys(l.Experiments[0]), fields) {
		t.Errorf("the list's experiments have the keys %q, the README says %q:\n%s", keys(l.Experiments[0]), fields, list)
	}
	if tok, _ := inline["token"].(map[string]any); tok["header"] != csrfHeader {
		t.Errorf("the README names the CSRF header %v, the code %s", tok["header"], csrfHeader)
	}
}
