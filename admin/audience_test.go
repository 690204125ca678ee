package admin_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/admin"
)

func TestRuleAudienceIsEditedThroughTheAPIAndTheFormAndAudited(t *testing.T) {
	onEveryStore(t, admin.Config{}, testAudience)
}

func testAudience(t *testing.T, s *site) {
	flag := upgrade.Name()
	us := experiments.User{ID: "42", Username: "zoe", Attributes: map[string]any{"country": "US", "app_version": "2.4.0"}}
	fr := experiments.User{ID: "42", Username: "zoe", Attributes: map[string]any{"country": "FR", "app_version": "2.4.0"}}

	// The JSON API takes the rule's conditions as the rule's JSON.
	na := []experiments.Condition{{Attribute: "country", Op: experiments.In, Values: []string{"US", "CA"}}}
	d := s.mustAct(flag, "rule", map[string]any{"percent": 100, "conditions": na})
	if d.Rule == nil || !reflect.DeepEqual(d.Rule.Conditions, na) || d.Status != admin.StatusTargeted {
		t.Fatalf("after rule: status %s, rule %+v; want targeted with %+v", d.Status, d.Rule, na)
	}
	if s.decide(upgrade, fr) != 0 {
		t.Error("a user outside the audience is not in control")
	}
	code, body := s.action(flag, "rule", map[string]any{"percent": 100, "conditions": []map[string]any{{"attribute": "app_version", "op": "semver_gte", "values": []string{"2.3"}}}})
	if code != http.StatusBadRequest || !strings.Contains(body, `rule conditions[0]: invalid: attribute \"app_version\" op semver_gte values[0] \"2.3\": not a semantic version`) {
		t.Errorf("a bad semver: %d %s; want 400 naming the field and value", code, body)
	}
	code, body = s.action(flag, "rule", map[string]any{"conditions": []map[string]any{{"attribute": "country", "op": "in", "values": []string{"US"}, "negate": true}}})
	if code != http.StatusBadRequest || !strings.Contains(body, "negate") {
		t.Errorf("an unknown field of a condition: %d %s; want 400", code, body)
	}

	// The page shows the conditions, in words and as rows to edit, with
	// a blank row to add one; no script.
	_, page, _ := s.do("GET", "/admin/experiments/"+flag, "", nil)
	for _, want := range []string{
		"on for 100% of signed-in users, if country in [US CA]",
		`name="cond_attribute_0" value="country"`, `<option value="in" selected>in</option>`,
		`name="cond_values_0" value="US, CA"`, `name="cond_remove_0"`,
		`name="cond_attribute_1" value=""`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page does not show %s", want)
		}
	}
	if strings.Contains(page, "<script") {
		t.Error("the page has a script")
	}

	// The form keeps row 0, adds row 1, then removes row 0.
	s.do("GET", "/admin/", "", nil)
	post := func(form url.Values) admin.Detail {
		t.Helper()
		form.Set("csrf_token", s.csrf())
		form.Set("percent", "100")
		code, page, h := s.do("POST", "/admin/api/experiments/"+flag+"/rule", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
		if code != http.StatusSeeOther {
			t.Fatalf("form: %d %s", code, page)
		}
		_, _, _ = s.do("GET", h.Get("Location"), "", nil)
		_, b, _ := s.do("GET", "/admin/api/experiments/"+flag, "", nil)
		var d admin.Detail
		if err := json.Unmarshal([]byte(b), &d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	d = post(url.Values{
		"cond_attribute_0": {"country"}, "cond_op_0": {"in"}, "cond_values_0": {"US, CA"},
		"cond_attribute_1": {"app_version"}, "cond_op_1": {"semver_gte"}, "cond_values_1": {" 2.3.0 "},
	})
	both := append(na, experiments.Condition{Attribute: "app_version", Op: experiments.SemverGreaterOrEqual, Values: []string{"2.3.0"}})
	if d.Rule == nil || !reflect.DeepEqual(d.Rule.Conditions, both) {
		t.Errorf("after adding a row: %+v, want %+v", d.Rule, both)
	}
	if s.decide(upgrade, fr) != 0 {
		t.Error("a user outside the audience is not in control")
	}
	x := experiments.New(experiments.Config{Store: s.store})
	if !upgrade.IsExperimentOn(x.NewContext(t.Context(), us), "") {
		t.Error("the experiment is off for a user of the audience")
	}
	d = post(url.Values{
		"cond_attribute_0": {"country"}, "cond_op_0": {"in"}, "cond_values_0": {"US, CA"}, "cond_remove_0": {"on"},
		"cond_attribute_1": {"app_version"}, "cond_op_1": {"semver_gte"}, "cond_values_1": {"2.3.0"},
		"cond_attribute_2": {""}, "cond_op_2": {"eq"}, "cond_values_2": {""},
	})
	if d.Rule == nil || !reflect.DeepEqual(d.Rule.Conditions, both[1:]) {
		t.Errorf("after removing row 0: %+v, want %+v", d.Rule, both[1:])
	}
	form := url.Values{"csrf_token": {s.csrf()}, "cond_attribute_0": {"age"}, "cond_op_0": {"gte"}, "cond_values_0": {"adult"}}
	code, page, _ = s.do("POST", "/admin/api/experiments/"+flag+"/rule", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if code != http.StatusBadRequest || !strings.Contains(page, "values[0] &#34;adult&#34;: not a decimal number") {
		t.Errorf("form with a bad number: %d\n%s", code, page)
	}

	// Every change is audited with the conditions before and after.
	h, err := s.store.History(t.Context(), experiments.HistoryQuery{Flag: flag, Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 3 {
		t.Fatalf("history %+v, want 3 changes", h)
	}
	var old, new experiments.Rule
	if h[0].Actor != "carol" || h[0].Entity != "flag" || json.Unmarshal(h[0].Old, &old) != nil || json.Unmarshal(h[0].New, &new) != nil ||
		!reflect.DeepEqual(old.Conditions, both) || !reflect.DeepEqual(new.Conditions, both[1:]) {
		t.Errorf("the last change %+v: want carol's, from %+v to %+v", h[0], both, both[1:])
	}
}
