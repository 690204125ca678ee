package admin_test

import (
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/admin"
)

func TestWeightsAreShownEditedAndAudited(t *testing.T) {
	onEveryStore(t, admin.Config{}, testWeights)
}

func testWeights(t *testing.T, s *site) {
	flag := upgrade.Name()
	d := s.mustAct(flag, "notes", map[string]string{"notes": "kept"})
	if d.Weights != nil || d.FlagWeights != nil || d.StoredWeights != nil || d.WeightsError != "" {
		t.Errorf("before: weights %v, flag %v, stored %v, error %q; want none", d.Weights, d.FlagWeights, d.StoredWeights, d.WeightsError)
	}

	d = s.mustAct(flag, "weights", map[string]any{"weights": []float64{0, 1}})
	if !reflect.DeepEqual(d.Weights, []float64{0, 1}) || !reflect.DeepEqual(d.StoredWeights, []float64{0, 1}) || d.Notes != "kept" {
		t.Errorf("after weights: weights %v, stored %v, notes %q; want 0/1 stored, notes kept", d.Weights, d.StoredWeights, d.Notes)
	}
	for i := range 20 {
		if b := s.decide(upgrade, experiments.User{ID: strconv.Itoa(i)}); b != 1 {
			t.Fatalf("user %d: bucket %d under 0/1, want 1", i, b)
		}
	}

	// The list and the pages show them.
	_, list, _ := s.do("GET", "/admin/api/experiments", "", nil)
	var l struct{ Experiments []admin.Experiment }
	json.Unmarshal([]byte(list), &l)
	for _, x := range l.Experiments {
		if x.Flag == flag && !reflect.DeepEqual(x.Weights, []float64{0, 1}) {
			t.Errorf("the list's weights %v, want [0 1]", x.Weights)
		}
	}
	_, page, _ := s.do("GET", "/admin/experiments/"+flag, "", nil)
	if !strings.Contains(page, `<strong id="weights">0/1</strong>`) || !strings.Contains(page, `name="weights" value="0/1"`) {
		t.Errorf("the experiment's page does not show the weights 0/1")
	}
	_, index, _ := s.do("GET", "/admin/", "", nil)
	if !strings.Contains(index, "(0/1)") {
		t.Errorf("the list page does not show the weights 0/1")
	}

	// From the page's form, and removed with an empty field.
	form := url.Values{"csrf_token": {s.csrf()}, "weights": {"75/25"}}
	code, _, hdr := s.do("POST", "/admin/api/experiments/"+flag+"/weights", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if code != http.StatusSeeOther || !strings.HasSuffix(hdr.Get("Location"), "?done=weights") {
		t.Errorf("form: %d to %q, want 303 to ?done=weights", code, hdr.Get("Location"))
	}
	_, body, _ := s.do("GET", "/admin/api/experiments/"+flag, "", nil)
	var afterForm admin.Detail
	if json.Unmarshal([]byte(body), &afterForm); !reflect.DeepEqual(afterForm.StoredWeights, []float64{75, 25}) {
		t.Errorf("after the form: stored weights %v, want [75 25]", afterForm.StoredWeights)
	}
	d = s.mustAct(flag, "weights", map[string]any{"weights": nil})
	if d.Weights != nil || d.StoredWeights != nil || d.Notes != "kept" {
		t.Errorf("after removing: weights %v, stored %v, notes %q", d.Weights, d.StoredWeights, d.Notes)
	}

	// Each change is a meta row of the history, by carol.
	h, err := s.store.History(t.Context(), experiments.HistoryQuery{Flag: flag, Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range h {
		var old, new experiments.ExperimentMeta
		json.Unmarshal(c.Old, &old)
		json.Unmarshal(c.New, &new)
		got = append(got, c.Actor+" "+c.Entity+" "+experiments.FormatWeights(old.Weights)+" -> "+experiments.FormatWeights(new.Weights))
	}
	want := []string{"carol meta 75/25 -> ", "carol meta 0/1 -> 75/25", "carol meta  -> 0/1"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("history, newest first:\n got %q\nwant %q", got, want)
	}
}

func TestWeightsRefusals(t *testing.T) {
	onEveryStore(t, admin.Config{}, func(t *testing.T, s *site) {
		ctx := t.Context()
		if err := s.store.SetFlag(ctx, "course_experience.unlisted", experiments.On()); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name, flag string
			body       any
			status     int
			msg        string
		}{
			{"nok, one weight for two buckets", upgrade.Name(), map[string]any{"weights": []float64{1}}, 400, "1 weights for 2 buckets"},
			{"nok, three weights for two buckets", upgrade.Name(), map[string]any{"weights": []float64{1, 1, 1}}, 400, "3 weights for 2 buckets"},
			{"nok, a negative weight", upgrade.Name(), map[string]any{"weights": []float64{1, -1}}, 400, "weight 1 is -1"},
			{"nok, every weight 0", upgrade.Name(), map[string]any{"weights": []float64{0, 0}}, 400, "sum is 0"},
			{"nok, a string", upgrade.Name(), map[string]any{"weights": "90/10"}, 400, "body"},
			{"nok, an unknown field", upgrade.Name(), map[string]any{"weight": []float64{1, 1}}, 400, "unknown field"},
			{"nok, a flag not in Config.Flags", "course_experience.unlisted", map[string]any{"weights": []float64{1, 1}}, 409, "Config.Flags"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before, _ := s.store.Snapshot(ctx)
				code, body := s.action(tc.flag, "weights", tc.body)
				if status, msg := apiError(t, body); code != tc.status || status != tc.status || !strings.Contains(msg, tc.msg) {
					t.Errorf("%d %s, want %d with %q", code, body, tc.status, tc.msg)
				}
				if after, _ := s.store.Snapshot(ctx); !reflect.DeepEqual(before.Data(), after.Data()) {
					t.Errorf("a refused action changed the store")
				}
			})
		}
		t.Run("nok, under a winner", func(t *testing.T) {
			s.mustAct(upgrade.Name(), "winner", map[string]int{"bucket": 1})
			code, body := s.action(upgrade.Name(), "weights", map[string]any{"weights": []float64{1, 1}})
			if status, msg := apiError(t, body); code != 409 || status != 409 || !strings.Contains(msg, "winner") {
				t.Errorf("%d %s, want 409 about the winner", code, body)
			}
		})
		t.Run("ok, the page says when the store's weights do not fit", func(t *testing.T) {
			if err := s.store.SetExperimentMeta(ctx, outline.Name(), experiments.ExperimentMeta{Weights: []float64{1, 1}}); err != nil {
				t.Fatal(err)
			}
			_, body, _ := s.do("GET", "/admin/api/experiments/"+outline.Name(), "", nil)
			var d admin.Detail
			json.Unmarshal([]byte(body), &d)
			if d.Weights != nil || !strings.Contains(d.WeightsError, "2 weights for 3 buckets") {
				t.Errorf("weights %v, error %q; want none used and the mismatch", d.Weights, d.WeightsError)
			}
			_, page, _ := s.do("GET", "/admin/experiments/"+outline.Name(), "", nil)
			if !strings.Contains(html.UnescapeString(page), "are not used: ") {
				t.Errorf("the page does not say the store's weights are not used")
			}
		})
	})
}

// The sample-ratio check of the results expects the weights' split:
// 90 and 10 participants are a mismatch for 50/50 and none for 90/10.
func TestResultsCheckTheSplitAgainstTheWeights(t *testing.T) {
	onEveryStore(t, admin.Config{}, func(t *testing.T, s *site) {
		ctx := t.Context()
		at := time.Now().Add(-time.Hour).Truncate(time.Second)
		for i := range 100 {
			b := 0
			if i >= 90 {
				b = 1
			}
			if err := s.store.RecordExposure(ctx, experiments.Exposure{Flag: upgrade.Name(), CourseKey: course, UserID: "u" + strconv.Itoa(i), Bucket: b, Time: at}); err != nil {
				t.Fatal(err)
			}
		}
		flush(t, s.store)
		if res := s.results(upgrade.Name(), ""); len(res.Reports) != 1 || !res.Reports[0].SRM.Mismatch ||
			!reflect.DeepEqual(res.Reports[0].SRM.Weights, []float64{1, 1}) {
			t.Fatalf("equal shares: %+v, want a mismatch against 1/1", res)
		}
		s.mustAct(upgrade.Name(), "weights", map[string]any{"weights": []float64{90, 10}})
		res := s.results(upgrade.Name(), "")
		if len(res.Reports) != 1 {
			t.Fatalf("results %+v", res)
		}
		srm := res.Reports[0].SRM
		if srm.Mismatch || !reflect.DeepEqual(srm.Weights, []float64{9000, 1000}) || !reflect.DeepEqual(srm.Expected, []float64{90, 10}) || srm.ChiSquare != 0 {
			t.Errorf("90/10: SRM %+v, want no mismatch against 9000/1000 slots, expected 90 and 10", srm)
		}
	})
}
