package experiments_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/abkit/experiments"
)

type myString string // a named type: not a supported attribute type

func cond(attr string, op experiments.Op, values ...string) experiments.Condition {
	return experiments.Condition{Attribute: attr, Op: op, Values: values}
}

// audienceDecision decides flag for a user with attrs, with the main flag
// on for everyone in the audience cs.
func audienceDecision(t *testing.T, flag *experiments.ExperimentFlag, cs []experiments.Condition, attrs map[string]any) (experiments.Decision, bool) {
	t.Helper()
	store := experiments.NewMemStore()
	r := experiments.On()
	r.Conditions = cs
	if err := store.SetFlag(t.Context(), flag.Name(), r); err != nil {
		t.Fatal(err)
	}
	x := experiments.New(experiments.Config{Store: store})
	u := experiments.User{ID: "42", Attributes: attrs}
	on := flag.IsExperimentOn(x.NewContext(t.Context(), u), "")
	return flag.Decide(x.NewContext(t.Context(), u), ""), on
}

// Every operator, with the types an attribute can have and those it
// cannot.
func TestConditionOperators(t *testing.T) {
	flag := experiments.NewFlagSet().NewFlag("audience", "operators")
	many := []string{"AR", "BR", "CL", "CO", "MX", "PE", "UY", "VE", "US", "CA"} // more than 8: a set
	cases := []struct {
		name  string
		cond  experiments.Condition
		attrs map[string]any
		want  bool
	}{
		{"ok, eq matches the same string", cond("country", experiments.Equals, "US"), map[string]any{"country": "US"}, true},
		{"nok, eq is case-sensitive", cond("country", experiments.Equals, "US"), map[string]any{"country": "us"}, false},
		{"ok, eq matches an int with a decimal value", cond("age", experiments.Equals, "18"), map[string]any{"age": 18}, true},
		{"ok, eq matches an int with the same value written as a float", cond("age", experiments.Equals, "18.0"), map[string]any{"age": 18}, true},
		{"ok, eq matches a float64 with the same value", cond("age", experiments.Equals, "18"), map[string]any{"age": 18.0}, true},
		{"ok, eq matches an int8", cond("age", experiments.Equals, "18"), map[string]any{"age": int8(18)}, true},
		{"ok, eq matches a uint64", cond("age", experiments.Equals, "18"), map[string]any{"age": uint64(18)}, true},
		{"nok, eq compares a float32 after conversion to float64", cond("score", experiments.Equals, "0.1"), map[string]any{"score": float32(0.1)}, false},
		{"ok, eq matches a string number as text", cond("age", experiments.Equals, "18"), map[string]any{"age": "18"}, true},
		{"nok, eq does not read a string as a number", cond("age", experiments.Equals, "18"), map[string]any{"age": "18.0"}, false},
		{"nok, eq of a number with a value that is not a number", cond("age", experiments.Equals, "eighteen"), map[string]any{"age": 18}, false},
		{"ok, eq true matches bool true", cond("beta", experiments.Equals, "true"), map[string]any{"beta": true}, true},
		{"ok, eq false matches bool false", cond("beta", experiments.Equals, "false"), map[string]any{"beta": false}, true},
		{"nok, eq true does not match bool false", cond("beta", experiments.Equals, "true"), map[string]any{"beta": false}, false},
		{"nok, eq 1 does not match bool true", cond("beta", experiments.Equals, "1"), map[string]any{"beta": true}, false},
		{"ok, eq true matches the string true", cond("beta", experiments.Equals, "true"), map[string]any{"beta": "true"}, true},
		{"nok, eq with the attribute missing", cond("country", experiments.Equals, "US"), map[string]any{"age": 18}, false},
		{"nok, eq without attributes", cond("country", experiments.Equals, "US"), nil, false},
		{"nok, eq on a slice: unsupported, absent", cond("country", experiments.Equals, "US"), map[string]any{"country": []string{"US"}}, false},
		{"nok, eq on a named string type: unsupported, absent", cond("country", experiments.Equals, "US"), map[string]any{"country": myString("US")}, false},
		{"nok, eq on a nil value", cond("country", experiments.Equals, "US"), map[string]any{"country": nil}, false},
		{"nok, eq NaN never matches", cond("age", experiments.Equals, "0"), map[string]any{"age": math.NaN()}, false},

		{"ok, in matches one of the values", cond("country", experiments.In, "US", "CA"), map[string]any{"country": "CA"}, true},
		{"nok, in matches none of the values", cond("country", experiments.In, "US", "CA"), map[string]any{"country": "FR"}, false},
		{"ok, in with many values (a set) matches", cond("country", experiments.In, many...), map[string]any{"country": "CA"}, true},
		{"nok, in with many values (a set) does not match", cond("country", experiments.In, many...), map[string]any{"country": "FR"}, false},
		{"ok, in matches a number among the values", cond("grade", experiments.In, "A", "3", "4"), map[string]any{"grade": uint8(4)}, true},
		{"nok, in does not match an empty string that is not listed", cond("country", experiments.In, "US"), map[string]any{"country": ""}, false},
		{"nok, in with the attribute missing", cond("country", experiments.In, "US", "CA"), map[string]any{}, false},

		{"ok, not_in matches a value not listed", cond("country", experiments.NotIn, "US", "CA"), map[string]any{"country": "FR"}, true},
		{"nok, not_in does not match a value listed", cond("country", experiments.NotIn, "US", "CA"), map[string]any{"country": "US"}, false},
		{"nok, not_in does not match a missing attribute", cond("country", experiments.NotIn, "US"), map[string]any{}, false},
		{"nok, not_in does not match an unsupported type", cond("country", experiments.NotIn, "US"), map[string]any{"country": []any{"FR"}}, false},
		{"nok, not_in of a number listed", cond("age", experiments.NotIn, "5"), map[string]any{"age": 5}, false},
		{"ok, not_in of a number not listed", cond("age", experiments.NotIn, "5"), map[string]any{"age": int64(6)}, true},
		{"ok, not_in with many values (a set)", cond("country", experiments.NotIn, many...), map[string]any{"country": "FR"}, true},

		{"ok, gte of an equal int", cond("age", experiments.GreaterOrEqual, "18"), map[string]any{"age": 18}, true},
		{"nok, gte of a smaller int", cond("age", experiments.GreaterOrEqual, "18"), map[string]any{"age": 17}, false},
		{"nok, gte of a float just below", cond("age", experiments.GreaterOrEqual, "18"), map[string]any{"age": 17.999}, false},
		{"nok, gte of a string number: strings are not numbers", cond("age", experiments.GreaterOrEqual, "18"), map[string]any{"age": "20"}, false},
		{"nok, gte of a bool", cond("age", experiments.GreaterOrEqual, "0"), map[string]any{"age": true}, false},
		{"nok, gte of a missing attribute", cond("age", experiments.GreaterOrEqual, "0"), nil, false},
		{"ok, gte of the largest uint64", cond("n", experiments.GreaterOrEqual, "1e19"), map[string]any{"n": uint64(math.MaxUint64)}, true},
		{"nok, gte of NaN", cond("n", experiments.GreaterOrEqual, "0"), map[string]any{"n": math.NaN()}, false},
		{"nok, lt of NaN", cond("n", experiments.Less, "0"), map[string]any{"n": math.NaN()}, false},
		{"ok, gt of +Inf", cond("n", experiments.Greater, "1e308"), map[string]any{"n": math.Inf(1)}, true},
		{"ok, lt of a negative number", cond("n", experiments.Less, "-1e0"), map[string]any{"n": -5}, true},
		{"nok, lt of an equal number", cond("n", experiments.Less, "2.5"), map[string]any{"n": 2.5}, false},
		{"ok, lte of an equal number", cond("n", experiments.LessOrEqual, "2.5"), map[string]any{"n": float32(2.5)}, true},
		{"nok, gt of an equal number", cond("n", experiments.Greater, "3"), map[string]any{"n": uint16(3)}, false},
		{"ok, gt of a larger number", cond("n", experiments.Greater, "3"), map[string]any{"n": int32(4)}, true},

		{"ok, semver_gte of the same version", cond("v", experiments.SemverGreaterOrEqual, "2.3.0"), map[string]any{"v": "2.3.0"}, true},
		{"nok, semver_gte of a lower patch", cond("v", experiments.SemverGreaterOrEqual, "2.3.0"), map[string]any{"v": "2.2.9"}, false},
		{"ok, semver_gte compares numbers, not text", cond("v", experiments.SemverGreaterOrEqual, "2.9.0"), map[string]any{"v": "2.10.0"}, true},
		{"ok, semver_gte takes a leading v on the attribute", cond("v", experiments.SemverGreaterOrEqual, "2.3.0"), map[string]any{"v": "v2.3.0"}, true},
		{"ok, semver_gte takes a leading v on the value", cond("v", experiments.SemverGreaterOrEqual, "v2.3.0"), map[string]any{"v": "2.3.1"}, true},
		{"nok, semver: a capital V is not a version", cond("v", experiments.SemverGreaterOrEqual, "2.3.0"), map[string]any{"v": "V2.3.0"}, false},
		{"nok, semver_gte: a pre-release is below its release", cond("v", experiments.SemverGreaterOrEqual, "2.3.0"), map[string]any{"v": "2.3.0-rc.1"}, false},
		{"ok, semver_lt: a pre-release is below its release", cond("v", experiments.SemverLess, "2.3.0"), map[string]any{"v": "2.3.0-rc.1"}, true},
		{"ok, semver_gt: beta.11 is above beta.2", cond("v", experiments.SemverGreater, "1.0.0-beta.2"), map[string]any{"v": "1.0.0-beta.11"}, true},
		{"ok, semver_gt: an alphanumeric identifier is above a numeric one", cond("v", experiments.SemverGreater, "1.0.0-1"), map[string]any{"v": "1.0.0-alpha"}, true},
		{"ok, semver_gt: more identifiers is higher", cond("v", experiments.SemverGreater, "1.0.0-alpha"), map[string]any{"v": "1.0.0-alpha.1"}, true},
		{"ok, semver_eq ignores build metadata", cond("v", experiments.SemverEqual, "2.3.0+build.1"), map[string]any{"v": "2.3.0+build.2"}, true},
		{"ok, semver_lte of the same version", cond("v", experiments.SemverLessOrEqual, "2.3.0"), map[string]any{"v": "2.3.0"}, true},
		{"nok, semver_lt of an attribute that is not a version", cond("v", experiments.SemverLess, "2.3.0"), map[string]any{"v": "2.3"}, false},
		{"nok, semver_gte of a version with a leading zero", cond("v", experiments.SemverGreaterOrEqual, "1.0.0"), map[string]any{"v": "02.3.0"}, false},
		{"nok, semver_gte of a number attribute", cond("v", experiments.SemverGreaterOrEqual, "1.0.0"), map[string]any{"v": 2.3}, false},
		{"nok, semver_gte of a missing attribute", cond("v", experiments.SemverGreaterOrEqual, "1.0.0"), map[string]any{}, false},

		{"ok, exists of an empty string", cond("plan", experiments.Exists), map[string]any{"plan": ""}, true},
		{"ok, exists of false", cond("plan", experiments.Exists), map[string]any{"plan": false}, true},
		{"ok, exists of 0", cond("plan", experiments.Exists), map[string]any{"plan": 0}, true},
		{"nok, exists of a missing attribute", cond("plan", experiments.Exists), map[string]any{"other": 1}, false},
		{"nok, exists of an unsupported type", cond("plan", experiments.Exists), map[string]any{"plan": struct{}{}}, false},
		{"nok, exists of nil", cond("plan", experiments.Exists), map[string]any{"plan": nil}, false},
		{"ok, not_exists of a missing attribute", cond("plan", experiments.NotExists), map[string]any{}, true},
		{"ok, not_exists without attributes", cond("plan", experiments.NotExists), nil, true},
		{"ok, not_exists of an unsupported type", cond("plan", experiments.NotExists), map[string]any{"plan": map[string]any{}}, true},
		{"nok, not_exists of a present attribute", cond("plan", experiments.NotExists), map[string]any{"plan": "pro"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.cond.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			d, on := audienceDecision(t, flag, []experiments.Condition{c.cond}, c.attrs)
			want := experiments.Decision{Reason: experiments.ReasonNotInAudience}
			if c.want {
				want = experiments.Decision{Bucket: experiments.SHA256Bucket(flag.Name(), "42", 2), Reason: experiments.ReasonHashed}
			}
			if d.Bucket != want.Bucket || d.Reason != want.Reason || d.Err != nil {
				t.Errorf("%s with %v: Decide = %+v, want %+v", c.cond, c.attrs, d, want)
			}
			if on != c.want {
				t.Errorf("IsExperimentOn = %v, want %v", on, c.want)
			}
		})
	}
}

func TestConditionsAreANDed(t *testing.T) {
	flag := experiments.NewFlagSet().NewFlag("audience", "and")
	cs := []experiments.Condition{cond("country", experiments.In, "US", "CA"), cond("age", experiments.GreaterOrEqual, "18")}
	for _, c := range []struct {
		name  string
		attrs map[string]any
		want  experiments.Reason
	}{
		{"ok, both pass", map[string]any{"country": "US", "age": 18}, experiments.ReasonHashed},
		{"nok, the first fails", map[string]any{"country": "FR", "age": 18}, experiments.ReasonNotInAudience},
		{"nok, the second fails", map[string]any{"country": "US", "age": 17}, experiments.ReasonNotInAudience},
		{"nok, the second is missing", map[string]any{"country": "US"}, experiments.ReasonNotInAudience},
	} {
		t.Run(c.name, func(t *testing.T) {
			if d, _ := audienceDecision(t, flag, cs, c.attrs); d.Reason != c.want {
				t.Errorf("Decide = %+v, want reason %q", d, c.want)
			}
		})
	}
}

// Validate names the field and value of what it refuses.
func TestConditionValidate(t *testing.T) {
	cases := []struct {
		name string
		cond experiments.Condition
		want string // in the error
	}{
		{"nok, an unknown operator", cond("country", "like", "US"), `attribute "country": op "like": unknown`},
		{"nok, an operator in capitals", cond("country", "IN", "US"), `op "IN"`},
		{"nok, eq without a value", cond("country", experiments.Equals), `attribute "country" op eq: 0 values []: want 1`},
		{"nok, gte with two values", cond("age", experiments.GreaterOrEqual, "1", "2"), `2 values ["1" "2"]`},
		{"nok, not_in without values", cond("country", experiments.NotIn), "no values: want 1 or more"},
		{"nok, not_exists with a value", cond("plan", experiments.NotExists, "x"), "want 0"},
		{"nok, lt of a word", cond("age", experiments.Less, "ten"), `values[0] "ten": not a decimal number`},
		{"nok, gt of Inf", cond("age", experiments.Greater, "Inf"), `"Inf": not a decimal number`},
		{"nok, gt of NaN", cond("age", experiments.Greater, "NaN"), `"NaN"`},
		{"nok, gt of an overflowing number", cond("age", experiments.Greater, "1e400"), `"1e400"`},
		{"nok, gt of a number with underscores", cond("age", experiments.Greater, "1_000"), `"1_000"`},
		{"nok, gt of a number with spaces", cond("age", experiments.Greater, " 1"), `" 1"`},
		{"nok, semver of two parts", cond("v", experiments.SemverLess, "2.3"), `"2.3": not a semantic version`},
		{"nok, semver with a leading zero", cond("v", experiments.SemverLess, "2.03.0"), `"2.03.0"`},
		{"nok, semver with an empty pre-release", cond("v", experiments.SemverLess, "2.3.0-"), `"2.3.0-"`},
		{"nok, semver with a pre-release with a leading zero", cond("v", experiments.SemverLess, "2.3.0-rc.01"), `"2.3.0-rc.01"`},
		{"nok, semver with two v", cond("v", experiments.SemverLess, "vv2.3.0"), `"vv2.3.0"`},
		{"nok, an empty attribute", cond("", experiments.Exists), "attribute is empty"},
		{"nok, an empty value", cond("country", experiments.In, "US", ""), `values[1] is empty`},
		{"nok, a value that is not UTF-8", cond("country", experiments.In, "\xff"), "not valid UTF-8"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.cond.Validate()
			if !errors.Is(err, experiments.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Validate() = %v; want an error wrapping ErrInvalid with %q", err, c.want)
			}
			r := experiments.Rule{Percent: 10, Conditions: []experiments.Condition{cond("ok", experiments.Exists), c.cond}}
			if err := r.Validate(); !errors.Is(err, experiments.ErrInvalid) || !strings.Contains(err.Error(), "rule conditions[1]: ") {
				t.Errorf("Rule.Validate() = %v; want an error naming rule conditions[1]", err)
			}
		})
	}
	t.Run("ok, at most 1000 values", func(t *testing.T) {
		vs := make([]string, 1001)
		for i := range vs {
			vs[i] = "v"
		}
		if err := cond("a", experiments.In, vs[:1000]...).Validate(); err != nil {
			t.Errorf("1000 values: %v", err)
		}
		if err := cond("a", experiments.In, vs...).Validate(); !errors.Is(err, experiments.ErrInvalid) {
			t.Errorf("1001 values: %v, want ErrInvalid", err)
		}
	})
}

func TestRuleStringShowsTheAudience(t *testing.T) {
	r := experiments.Rule{Percent: 50, Conditions: []experiments.Condition{
		cond("country", experiments.In, "US", "CA"), cond("age", experiments.GreaterOrEqual, "18"),
		cond("app_version", experiments.SemverGreaterOrEqual, "2.3.0"), cond("plan", experiments.NotExists),
	}}
	want := "on for 50% of signed-in users, if country in [US CA] and age >= 18 and app_version >= 2.3.0 (semver) and plan does not exist"
	if got := r.String(); got != want {
		t.Errorf("String() = %q\nwant %q", got, want)
	}
	off := experiments.Off()
	off.Conditions = r.Conditions
	if got := off.String(); got != "off for everyone" {
		t.Errorf("Off with an audience: String() = %q, want %q", got, "off for everyone")
	}
}

// A user outside the audience gets control, cached for the request,
// with no event and no exposure; bucket flags' audiences filter who is
// forced.
func TestNotInAudienceIsCachedAndNotTracked(t *testing.T) {
	set := experiments.NewFlagSet()
	flag := set.NewFlag("audience", "tracked", experiments.WithBuckets(3))
	store := experiments.NewMemStore()
	ctx := context.Background()
	us := []experiments.Condition{cond("country", experiments.Equals, "US")}
	must(t, store.SetFlag(ctx, flag.Name(), experiments.Rule{Percent: 100, Conditions: us}))
	must(t, store.SetFlag(ctx, flag.BucketFlag(2), experiments.Rule{Authenticated: true, Conditions: []experiments.Condition{cond("beta", experiments.Equals, "true")}}))
	var events []experiments.Event
	x := experiments.New(experiments.Config{Store: store, Recorder: store,
		Tracker: experiments.TrackerFunc(func(_ context.Context, e experiments.Event) error { events = append(events, e); return nil })})

	out := x.NewContext(ctx, experiments.User{ID: "1", Attributes: map[string]any{"country": "FR", "beta": true}})
	if d := flag.Decide(out, ""); d.Bucket != 0 || d.Reason != experiments.ReasonNotInAudience || d.Tracked || d.Err != nil {
		t.Errorf("first Decide = %+v, want control, not in audience, untracked", d)
	}
	if d := flag.Decide(out, ""); d.Bucket != 0 || d.Reason != experiments.ReasonCached {
		t.Errorf("second Decide = %+v, want control, cached", d)
	}
	if flag.IsExperimentOn(out, "") {
		t.Error("IsExperimentOn = true for a user outside the audience")
	}
	if len(events) != 0 || len(store.Exposures()) != 0 {
		t.Errorf("events %+v, exposures %+v; want none", events, store.Exposures())
	}

	beta := x.NewContext(ctx, experiments.User{ID: "2", Attributes: map[string]any{"country": "US", "beta": true}})
	if d := flag.Decide(beta, ""); d.Bucket != 2 || d.Reason != experiments.ReasonForced || !d.Tracked {
		t.Errorf("a user in both audiences: Decide = %+v, want forced bucket 2, tracked", d)
	}
	plain := x.NewContext(ctx, experiments.User{ID: "3", Attributes: map[string]any{"country": "US", "beta": false}})
	if d := flag.Decide(plain, ""); d.Reason != experiments.ReasonHashed {
		t.Errorf("a user outside the bucket flag's audience: Decide = %+v, want hashed", d)
	}
	if len(events) != 2 || len(store.Exposures()) != 2 {
		t.Errorf("%d events, %d exposures; want 2 of each", len(events), len(store.Exposures()))
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
