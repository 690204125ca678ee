package storetest

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/abkit/experiments"
)

// The users of the audience tests, with the app's attributes.
var (
	usAdult = experiments.User{ID: "11", Username: "uma", Attributes: map[string]any{"country": "US", "age": 30, "app_version": "2.4.0"}}
	caMinor = experiments.User{ID: "12", Username: "cal", Attributes: map[string]any{"country": "CA", "age": int8(15), "app_version": "v2.3.0"}}
	frOld   = experiments.User{ID: "13", Username: "fra", Attributes: map[string]any{"country": "FR", "age": 40.5, "app_version": "2.3.0-rc.1"}}
	noAttrs = experiments.User{ID: "14", Username: "nat"}
)

// northAmerica is the audience country in [US CA].
var northAmerica = []experiments.Condition{{Attribute: "country", Op: experiments.In, Values: []string{"US", "CA"}}}

var notInAudience = want{reason: experiments.ReasonNotInAudience}

func withAudience(r experiments.Rule, cs ...experiments.Condition) experiments.Rule {
	r.Conditions = cs
	return r
}

func testAudiences(t *testing.T, newStore func(*testing.T) Store) {
	adults := experiments.Condition{Attribute: "age", Op: experiments.GreaterOrEqual, Values: []string{"18"}}
	recent := experiments.Condition{Attribute: "app_version", Op: experiments.SemverGreaterOrEqual, Values: []string{"2.3.0"}}
	everyone := withAudience(experiments.On(), northAmerica...)
	cases := []struct {
		name   string
		writes []write
		user   experiments.User
		course string
		want   want
	}{
		{"ok, a user in the audience of an on rule is hashed", []write{setFlag(mainFlag.Name(), everyone)}, usAdult, "", hashed},
		{"nok, a user outside the audience gets control, not in audience", []write{setFlag(mainFlag.Name(), everyone)}, frOld, "", notInAudience},
		{"nok, a user without attributes is outside the audience", []write{setFlag(mainFlag.Name(), everyone)}, noAttrs, courseA, notInAudience},
		{"ok, conditions are AND-ed: all pass", []write{setFlag(mainFlag.Name(), withAudience(experiments.On(), northAmerica[0], adults, recent))}, usAdult, "", hashed},
		{"nok, conditions are AND-ed: one fails", []write{setFlag(mainFlag.Name(), withAudience(experiments.On(), northAmerica[0], adults, recent))}, caMinor, "", notInAudience},
		{"ok, semver takes a leading v", []write{setFlag(mainFlag.Name(), withAudience(experiments.On(), recent))}, caMinor, "", hashed},
		{"nok, a pre-release is below its release", []write{setFlag(mainFlag.Name(), withAudience(experiments.On(), recent))}, frOld, "", notInAudience},
		{"nok, in the audience but the rest of the rule is off: flag off", []write{setFlag(mainFlag.Name(), withAudience(experiments.Rule{Users: []string{"nobody"}}, northAmerica...))}, usAdult, "", flagOff},
		{"nok, an Everyone false rule with an audience: flag off for its audience", []write{setFlag(mainFlag.Name(), withAudience(experiments.Off(), northAmerica...))}, usAdult, "", flagOff},
		{"nok, an Everyone false rule with an audience: not in audience outside it", []write{setFlag(mainFlag.Name(), withAudience(experiments.Off(), northAmerica...))}, frOld, "", notInAudience},
		{"ok, a course override ForceOn ignores the audience", []write{setFlag(mainFlag.Name(), everyone), courseOverride(mainFlag.Name(), courseA, experiments.ForceOn)}, frOld, courseA, hashed},
		{"ok, an org override ForceOn ignores the audience", []write{setFlag(mainFlag.Name(), everyone), orgOverride(mainFlag.Name(), "edX", experiments.ForceOn)}, noAttrs, courseOld, hashed},
		{"nok, a course override ForceOff is flag off, in the audience or not", []write{setFlag(mainFlag.Name(), everyone), courseOverride(mainFlag.Name(), courseA, experiments.ForceOff)}, frOld, courseA, flagOff},
		{"nok, the audience still applies in a course without an override", []write{setFlag(mainFlag.Name(), everyone), courseOverride(mainFlag.Name(), courseA, experiments.ForceOn)}, frOld, courseB, notInAudience},
		{"ok, a flag never set is flag off, not out of an audience", nil, frOld, "", flagOff},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := setUp(t, newStore)
			f.apply(c.writes...)
			f.checkDecision(mainFlag, c.user, c.course, c.want)
			on := c.want.reason == experiments.ReasonHashed
			if got := f.on(mainFlag, c.user, c.course); got != on {
				t.Errorf("IsExperimentOn = %v, want %v (as Decide)", got, on)
			}
		})
	}

	b := bucketFlag.BucketFlag
	main := setFlag(bucketFlag.Name(), experiments.On())
	for _, c := range []struct {
		name string
		user experiments.User
		want want
	}{
		{"ok, a bucket flag's audience forces its users", usAdult, forced(2)},
		{"ok, a bucket flag's audience leaves the others to the hash", frOld, hashed},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := setUp(t, newStore)
			f.apply(main, setFlag(b(2), withAudience(experiments.On(), northAmerica...)))
			f.checkDecision(bucketFlag, c.user, courseA, c.want)
		})
	}

	t.Run("ok, a Percent within an audience is the same share as without one", func(t *testing.T) {
		f := setUp(t, newStore)
		f.apply(setFlag(percentFlag.Name(), withAudience(experiments.Rule{Percent: 30}, experiments.Condition{Attribute: "plan", Op: experiments.Exists})))
		in := make(map[int]bool)
		for _, i := range percent30 {
			in[i] = true
		}
		for i := 1; i <= 200; i++ {
			u := experiments.User{ID: strconv.Itoa(i), Attributes: map[string]any{"plan": "pro"}}
			w := flagOff
			if in[i] {
				w = hashed
			}
			f.checkDecision(percentFlag, u, "", w)
		}
	})

	t.Run("ok, conditions read back as written, every operator", func(t *testing.T) {
		f := setUp(t, newStore)
		r := withAudience(experiments.Rule{Percent: 12.5, Staff: true}, everyOperator()...)
		f.apply(setFlag(mainFlag.Name(), r))
		got := f.data().Flags[mainFlag.Name()]
		if !reflect.DeepEqual(normalizedRule(got), normalizedRule(r)) {
			t.Errorf("rule reads back as\n%+v\nwant\n%+v", got, r)
		}
	})

	t.Run("ok, the caller's conditions are copied", func(t *testing.T) {
		f := setUp(t, newStore)
		cs := []experiments.Condition{{Attribute: "country", Op: experiments.In, Values: []string{"US", "CA"}}}
		f.apply(setFlag(mainFlag.Name(), withAudience(experiments.On(), cs...)))
		cs[0].Values[0] = "FR"
		f.checkDecision(mainFlag, frOld, "", notInAudience)
		f.checkDecision(mainFlag, usAdult, "", hashed)
	})

	long := strings.Repeat("x", 256)
	refusals := []refusal{
		{"nok, a condition with an unknown operator", setFlag(mainFlag.Name(), withAudience(experiments.On(), experiments.Condition{Attribute: "country", Op: "like", Values: []string{"US"}})), `op "like"`},
		{"nok, a condition without an attribute", setFlag(mainFlag.Name(), withAudience(experiments.On(), experiments.Condition{Op: experiments.Exists})), "attribute is empty"},
		{"nok, a condition with an attribute of 256 bytes", setFlag(mainFlag.Name(), withAudience(experiments.On(), experiments.Condition{Attribute: long, Op: experiments.Exists})), "attribute"},
		{"nok, eq with two values", setFlag(mainFlag.Name(), withAudience(experiments.On(), experiments.Condition{Attribute: "country", Op: experiments.Equals, Values: []string{"US", "CA"}})), "2 values"},
		{"nok, in without values", setFlag(mainFlag.Name(), withAudience(experiments.On(), experiments.Condition{Attribute: "country", Op: experiments.In})), "no values"},
		{"nok, exists with a value", setFlag(mainFlag.Name(), withAudience(experiments.On(), experiments.Condition{Attribute: "plan", Op: experiments.Exists, Values: []string{"pro"}})), "want 0"},
		{"nok, gte with a value that is not a number", setFlag(mainFlag.Name(), withAudience(experiments.On(), experiments.Condition{Attribute: "age", Op: experiments.GreaterOrEqual, Values: []string{"eighteen"}})), `"eighteen": not a decimal number`},
		{"nok, lt with a hexadecimal number", setFlag(mainFlag.Name(), withAudience(experiments.On(), experiments.Condition{Attribute: "age", Op: experiments.Less, Values: []string{"0x10"}})), `"0x10"`},
		{"nok, semver_gte with a version of two parts", setFlag(mainFlag.Name(), withAudience(experiments.On(), experiments.Condition{Attribute: "app_version", Op: experiments.SemverGreaterOrEqual, Values: []string{"2.3"}})), `"2.3": not a semantic version`},
		{"nok, an empty value in a list", setFlag(mainFlag.Name(), withAudience(experiments.On(), experiments.Condition{Attribute: "country", Op: experiments.In, Values: []string{"US", ""}})), "values[1] is empty"},
		{"nok, a value with a control character", setFlag(mainFlag.Name(), withAudience(experiments.On(), experiments.Condition{Attribute: "country", Op: experiments.In, Values: []string{"U\nS"}})), "values[0]"},
		{"nok, a bad condition names its index", setFlag(mainFlag.Name(), withAudience(experiments.On(), northAmerica[0], experiments.Condition{Attribute: "age", Op: "gte"})), "conditions[1]"},
		{"nok, 33 conditions", setFlag(mainFlag.Name(), withAudience(experiments.On(), make33()...)), "at most 32"},
	}
	for _, c := range refusals {
		t.Run(c.name, func(t *testing.T) {
			f := setUp(t, newStore)
			f.apply(setFlag(mainFlag.Name(), withAudience(experiments.On(), northAmerica...)))
			f.refuse(t, c.field, func() error { return c.write(f.ctx, f.s) })
		})
	}

	t.Run("ok, the history shows the conditions before and after", func(t *testing.T) {
		f := setUpHistory(t, newStore)
		first := withAudience(experiments.Rule{Percent: 50}, northAmerica...)
		second := withAudience(experiments.Rule{Percent: 50}, northAmerica[0], recent)
		want := f.applySteps([]step{
			own(setFlag(histFlag, first), "flag", histFlag, nil, first),
			own(setFlag(histFlag, second), "flag", histFlag, first, second),
			own(setFlag(histFlag, experiments.On()), "flag", histFlag, second, experiments.On()),
		})
		h := f.history(experiments.HistoryQuery{Flag: histFlag})
		f.checkHistory(h, want)
		if len(h) == 3 {
			var o, n experiments.Rule
			if json.Unmarshal(h[1].Old, &o) != nil || json.Unmarshal(h[1].New, &n) != nil ||
				!reflect.DeepEqual(o.Conditions, first.Conditions) || !reflect.DeepEqual(n.Conditions, second.Conditions) {
				t.Errorf("history entry old %s new %s: want the conditions %+v and %+v", h[1].Old, h[1].New, first.Conditions, second.Conditions)
			}
		}
	})
}

// everyOperator is a valid condition of each operator.
func everyOperator() []experiments.Condition {
	return []experiments.Condition{
		{Attribute: "country", Op: experiments.Equals, Values: []string{"US"}},
		{Attribute: "country", Op: experiments.In, Values: []string{"US", "CA", "Zoë 🙂"}},
		{Attribute: "country", Op: experiments.NotIn, Values: []string{"FR"}},
		{Attribute: "age", Op: experiments.Less, Values: []string{"65"}},
		{Attribute: "age", Op: experiments.LessOrEqual, Values: []string{"64.5"}},
		{Attribute: "age", Op: experiments.Greater, Values: []string{"-1e1"}},
		{Attribute: "age", Op: experiments.GreaterOrEqual, Values: []string{"18"}},
		{Attribute: "app_version", Op: experiments.SemverEqual, Values: []string{"v2.3.0+build.7"}},
		{Attribute: "app_version", Op: experiments.SemverLess, Values: []string{"3.0.0-alpha.1"}},
		{Attribute: "app_version", Op: experiments.SemverLessOrEqual, Values: []string{"3.0.0"}},
		{Attribute: "app_version", Op: experiments.SemverGreater, Values: []string{"1.0.0"}},
		{Attribute: "app_version", Op: experiments.SemverGreaterOrEqual, Values: []string{"2.3.0"}},
		{Attribute: "plan", Op: experiments.Exists},
		{Attribute: "banned", Op: experiments.NotExists},
	}
}

func make33() []experiments.Condition {
	cs := make([]experiments.Condition, 33)
	for i := range cs {
		cs[i] = experiments.Condition{Attribute: "a" + strconv.Itoa(i), Op: experiments.Exists}
	}
	return cs
}
