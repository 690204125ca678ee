package experiments_test

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/abkit/experiments"
)

// unitLogger drops the decisions' failure logs that tests provoke.
func unitLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func unitBool(b bool) *bool { return &b }

// unitSetFlag sets a flag's rule or fails the test.
func unitSetFlag(t testing.TB, s *experiments.MemStore, name string, r experiments.Rule) {
	t.Helper()
	if err := s.SetFlag(context.Background(), name, r); err != nil {
		t.Fatalf("SetFlag(%q): %v", name, err)
	}
}

var ruleFlag = experiments.NewFlag("rule_test", "main")

func TestRuleSemantics(t *testing.T) {
	signedIn := experiments.User{ID: "42", Username: "alice"}
	staff := experiments.User{ID: "43", Username: "bob", Staff: true}
	super := experiments.User{ID: "44", Username: "carol", Superuser: true}
	grouped := experiments.User{ID: "45", Username: "dave", Groups: []string{"alpha", "beta"}}
	anon := experiments.User{Username: "alice", Staff: true, Superuser: true, Groups: []string{"beta"}}
	all := experiments.Rule{Percent: 100, Authenticated: true, Staff: true, Superusers: true, Users: []string{"alice"}, Groups: []string{"beta"}}
	withEveryone := func(r experiments.Rule, e bool) experiments.Rule { r.Everyone = unitBool(e); return r }

	cases := []struct {
		name string
		rule *experiments.Rule // nil: the flag is never set
		user experiments.User
		want bool
	}{
		{"nok, a flag never set is off", nil, staff, false},
		{"nok, an empty rule is off", &experiments.Rule{}, staff, false},
		{"ok, everyone true is on for a signed-in user", unitPtr(experiments.On()), signedIn, true},
		{"ok, everyone true is on for an anonymous user", unitPtr(experiments.On()), anon, true},
		{"ok, everyone true beats a rule that would not match", unitPtr(withEveryone(experiments.Rule{Users: []string{"nobody"}}, true)), signedIn, true},
		{"nok, everyone false beats every other field for staff", unitPtr(withEveryone(all, false)), staff, false},
		{"nok, everyone false beats every other field for a listed user", unitPtr(withEveryone(all, false)), signedIn, false},
		{"nok, everyone false is off for an anonymous user", unitPtr(experiments.Off()), anon, false},
		{"nok, an anonymous user is off whatever the other fields say", &all, anon, false},
		{"ok, authenticated is on for a signed-in user", &experiments.Rule{Authenticated: true}, signedIn, true},
		{"nok, authenticated is off for an anonymous user", &experiments.Rule{Authenticated: true}, anon, false},
		{"ok, staff is on for staff", &experiments.Rule{Staff: true}, staff, true},
		{"nok, staff is off for a learner", &experiments.Rule{Staff: true}, signedIn, false},
		{"nok, staff is off for a superuser who is not staff", &experiments.Rule{Staff: true}, super, false},
		{"ok, superusers is on for a superuser", &experiments.Rule{Superusers: true}, super, true},
		{"nok, superusers is off for staff", &experiments.Rule{Superusers: true}, staff, false},
		{"ok, users matches the username", &experiments.Rule{Users: []string{"zed", "alice"}}, signedIn, true},
		{"nok, users does not match the ID", &experiments.Rule{Users: []string{"42"}}, signedIn, false},
		{"nok, users does not list the user", &experiments.Rule{Users: []string{"zed"}}, signedIn, false},
		{"ok, groups matches one group of several", &experiments.Rule{Groups: []string{"gamma", "beta"}}, grouped, true},
		{"nok, groups without overlap", &experiments.Rule{Groups: []string{"gamma"}}, grouped, false},
		{"nok, groups for a user without groups", &experiments.Rule{Groups: []string{"alpha"}}, signedIn, false},
		{"ok, percent 100 is on for everybody", &experiments.Rule{Percent: 100}, signedIn, true},
		{"nok, percent 0 is off for everybody", &experiments.Rule{Percent: 0}, signedIn, false},
		{"ok, a later field matches when earlier ones do not", &experiments.Rule{Staff: true, Superusers: true, Groups: []string{"alpha"}}, grouped, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			store := experiments.NewMemStore()
			if c.rule != nil {
				unitSetFlag(t, store, ruleFlag.Name(), *c.rule)
			}
			x := experiments.New(experiments.Config{Store: store, Logger: unitLogger()})
			for _, course := range []string{"", "course-v1:edX+DemoX+2026"} {
				ctx := x.NewContext(context.Background(), c.user)
				if got := ruleFlag.IsExperimentOn(ctx, course); got != c.want {
					t.Errorf("IsExperimentOn(%q) = %v, want %v", course, got, c.want)
				}
				d := ruleFlag.Decide(ctx, course)
				switch {
				case c.user.ID == "":
					if d.Bucket != 0 || d.Reason != experiments.ReasonAnonymous {
						t.Errorf("Decide(%q) = %+v, want bucket 0, reason %q", course, d, experiments.ReasonAnonymous)
					}
				case c.want && d.Reason != experiments.ReasonHashed:
					t.Errorf("Decide(%q) = %+v, want reason %q", course, d, experiments.ReasonHashed)
				case !c.want && (d.Bucket != 0 || d.Reason != experiments.ReasonFlagOff):
					t.Errorf("Decide(%q) = %+v, want bucket 0, reason %q", course, d, experiments.ReasonFlagOff)
				}
			}
		})
	}

	// The same rules on a bucket flag: "name.1" forces bucket 1 exactly
	// when its rule is on for the user.
	for _, c := range cases {
		if c.user.ID == "" {
			continue
		}
		t.Run("bucket flag, "+c.name, func(t *testing.T) {
			store := experiments.NewMemStore()
			unitSetFlag(t, store, ruleFlag.Name(), experiments.On())
			if c.rule != nil {
				unitSetFlag(t, store, ruleFlag.BucketFlag(1), *c.rule)
			}
			x := experiments.New(experiments.Config{Store: store, Logger: unitLogger()})
			d := ruleFlag.Decide(x.NewContext(context.Background(), c.user), "")
			if forced := d.Reason == experiments.ReasonForced; forced != c.want || forced && d.Bucket != 1 {
				t.Errorf("Decide = %+v, want forced into bucket 1: %v", d, c.want)
			}
		})
	}
}

func unitPtr[T any](v T) *T { return &v }

// percentUsers are the 10,000 users of the percent tests.
func percentUsers() []experiments.User {
	users := make([]experiments.User, 10000)
	for i := range users {
		users[i] = experiments.User{ID: strconv.Itoa(i + 1), Username: "user" + strconv.Itoa(i+1)}
	}
	return users
}

// onFor returns which users the flag is on for.
func onFor(x *experiments.Experiments, f *experiments.ExperimentFlag, users []experiments.User) []bool {
	on := make([]bool, len(users))
	for i, u := range users {
		on[i] = f.IsExperimentOn(x.NewContext(context.Background(), u), "")
	}
	return on
}

func countTrue(on []bool) int {
	n := 0
	for _, b := range on {
		if b {
			n++
		}
	}
	return n
}

func TestRulePercent(t *testing.T) {
	users := percentUsers()
	cases := []struct {
		name     string
		percent  float64
		min, max int
	}{
		{"ok, 0 percent is nobody", 0, 0, 0},
		{"ok, 100 percent is everybody", 100, 10000, 10000},
		{"ok, 30 percent is about 3,000 of 10,000", 30, 2500, 3500},
		{"ok, 60 percent is about 6,000 of 10,000", 60, 5500, 6500},
		{"ok, 0.5 percent is a few", 0.5, 1, 150},
	}
	hashers := []struct {
		name string
		h    experiments.Hasher
	}{{"SHA256Hasher", experiments.SHA256Hasher}, {"EdXHasher", experiments.EdXHasher}}
	for _, h := range hashers {
		for _, c := range cases {
			t.Run(c.name+" with "+h.name, func(t *testing.T) {
				store := experiments.NewMemStore()
				unitSetFlag(t, store, ruleFlag.Name(), experiments.Rule{Percent: c.percent})
				x := experiments.New(experiments.Config{Store: store, Hasher: h.h, Logger: unitLogger()})
				if n := countTrue(onFor(x, ruleFlag, users)); n < c.min || n > c.max {
					t.Errorf("on for %d users, want %d to %d", n, c.min, c.max)
				}
			})
		}
	}

	t.Run("ok, percent is stable across requests and servers", func(t *testing.T) {
		store := experiments.NewMemStore()
		unitSetFlag(t, store, ruleFlag.Name(), experiments.Rule{Percent: 30})
		x1 := experiments.New(experiments.Config{Store: store, Logger: unitLogger()})
		first := onFor(x1, ruleFlag, users)
		again := onFor(x1, ruleFlag, users)
		// Another server: another Experiments and another store, same rule.
		store2 := experiments.NewMemStore()
		unitSetFlag(t, store2, ruleFlag.Name(), experiments.Rule{Percent: 30})
		other := onFor(experiments.New(experiments.Config{Store: store2, Logger: unitLogger()}), ruleFlag, users)
		for i := range users {
			if first[i] != again[i] || first[i] != other[i] {
				t.Fatalf("user %s: on %v, then %v, on another server %v", users[i].ID, first[i], again[i], other[i])
			}
		}
	})

	t.Run("ok, raising the percent keeps everyone already in", func(t *testing.T) {
		store := experiments.NewMemStore()
		x := experiments.New(experiments.Config{Store: store, Logger: unitLogger()})
		var prev []bool
		for _, p := range []float64{10, 30, 30.5, 60, 99.99, 100} {
			unitSetFlag(t, store, ruleFlag.Name(), experiments.Rule{Percent: p})
			now := onFor(x, ruleFlag, users)
			for i := range prev {
				if prev[i] && !now[i] {
					t.Fatalf("user %s is on at a lower percent but off at %v", users[i].ID, p)
				}
			}
			prev = now
		}
	})

	t.Run("ok, percent is not correlated with the bucket hash", func(t *testing.T) {
		store := experiments.NewMemStore()
		unitSetFlag(t, store, ruleFlag.Name(), experiments.Rule{Percent: 50})
		x := experiments.New(experiments.Config{Store: store, Logger: unitLogger()})
		var in, inBucket [2]int
		for _, u := range users {
			d := ruleFlag.Decide(x.NewContext(context.Background(), u), "")
			switch d.Reason {
			case experiments.ReasonHashed:
				in[0]++
				inBucket[d.Bucket]++
			case experiments.ReasonFlagOff:
				in[1]++
			default:
				t.Fatalf("user %s: unexpected decision %+v", u.ID, d)
			}
		}
		if in[0] < 4000 || in[0] > 6000 {
			t.Fatalf("%d users in at 50%%, want 4000 to 6000", in[0])
		}
		for b, n := range inBucket {
			if n*100 < in[0]*40 || n*100 > in[0]*60 {
				t.Errorf("bucket %d has %d of the %d users in, want 40%% to 60%%", b, n, in[0])
			}
		}
	})
}

func TestOverridePrecedence(t *testing.T) {
	const (
		course    = "course-v1:ORG+C+R"
		oldCourse = "ORG/C/R"
		ccx       = "ccx-v1:ORG+C+R+ccx@3"
		otherOrg  = "course-v1:OTHER+C+R"
		sibling   = "course-v1:ORG+C+R2"
	)
	ctx := context.Background()
	type setup func(t *testing.T, s *experiments.MemStore)
	rule := func(r experiments.Rule) setup {
		return func(t *testing.T, s *experiments.MemStore) { unitSetFlag(t, s, ruleFlag.Name(), r) }
	}
	courseOv := func(key string, st experiments.State) setup {
		return func(t *testing.T, s *experiments.MemStore) {
			if err := s.SetCourseOverride(ctx, ruleFlag.Name(), key, st); err != nil {
				t.Fatal(err)
			}
		}
	}
	orgOv := func(org string, st experiments.State) setup {
		return func(t *testing.T, s *experiments.MemStore) {
			if err := s.SetOrgOverride(ctx, ruleFlag.Name(), org, st); err != nil {
				t.Fatal(err)
			}
		}
	}
	cases := []struct {
		name  string
		setup []setup
		want  map[string]bool // course key → on
	}{
		{"ok, the rule decides without overrides",
			[]setup{rule(experiments.On())},
			map[string]bool{"": true, course: true, otherOrg: true}},
		{"ok, an org override beats the rule in the org's courses only",
			[]setup{rule(experiments.On()), orgOv("ORG", experiments.ForceOff)},
			map[string]bool{"": true, course: false, oldCourse: false, ccx: false, sibling: false, otherOrg: true}},
		{"ok, an org override turns on a flag whose rule is off",
			[]setup{rule(experiments.Off()), orgOv("ORG", experiments.ForceOn)},
			map[string]bool{"": false, course: true, oldCourse: true, ccx: true, otherOrg: false}},
		{"ok, a course override beats the org override (on over off)",
			[]setup{rule(experiments.Off()), orgOv("ORG", experiments.ForceOff), courseOv(course, experiments.ForceOn)},
			map[string]bool{"": false, course: true, sibling: false, otherOrg: false}},
		{"ok, a course override beats the org override (off over on)",
			[]setup{rule(experiments.On()), orgOv("ORG", experiments.ForceOn), courseOv(course, experiments.ForceOff)},
			map[string]bool{"": true, course: false, sibling: true, oldCourse: true}},
		{"ok, a course override applies to its exact key only",
			[]setup{rule(experiments.Off()), courseOv(oldCourse, experiments.ForceOn)},
			map[string]bool{"": false, oldCourse: true, course: false}},
		{"ok, overrides work on a flag that was never set",
			[]setup{courseOv(course, experiments.ForceOn)},
			map[string]bool{"": false, course: true, sibling: false}},
		{"ok, Unset removes a course override",
			[]setup{rule(experiments.On()), courseOv(course, experiments.ForceOff), courseOv(course, experiments.Unset)},
			map[string]bool{course: true}},
		{"ok, Unset removes an org override",
			[]setup{rule(experiments.Off()), orgOv("ORG", experiments.ForceOn), orgOv("ORG", experiments.Unset)},
			map[string]bool{course: false, oldCourse: false}},
		{"ok, Unset of one course keeps the org override",
			[]setup{rule(experiments.Off()), orgOv("ORG", experiments.ForceOn), courseOv(course, experiments.ForceOff), courseOv(course, experiments.Unset)},
			map[string]bool{course: true}},
		{"ok, Unset of an override never set changes nothing",
			[]setup{rule(experiments.On()), courseOv(course, experiments.Unset), orgOv("ORG", experiments.Unset)},
			map[string]bool{course: true, "": true}},
		{"ok, deleting the rule keeps the overrides",
			[]setup{rule(experiments.On()), orgOv("ORG", experiments.ForceOn), func(t *testing.T, s *experiments.MemStore) {
				if err := s.DeleteFlag(ctx, ruleFlag.Name()); err != nil {
					t.Fatal(err)
				}
			}},
			map[string]bool{"": false, course: true, otherOrg: false}},
	}
	u := experiments.User{ID: "7", Username: "learner"}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			store := experiments.NewMemStore()
			for _, s := range c.setup {
				s(t, store)
			}
			x := experiments.New(experiments.Config{Store: store, Logger: unitLogger()})
			for key, want := range c.want {
				if got := ruleFlag.IsExperimentOn(x.NewContext(ctx, u), key); got != want {
					t.Errorf("IsExperimentOn(%q) = %v, want %v", key, got, want)
				}
				d := ruleFlag.Decide(x.NewContext(ctx, u), key)
				if off := d.Reason == experiments.ReasonFlagOff; off == want {
					t.Errorf("Decide(%q) = %+v, want on: %v", key, d, want)
				}
			}
		})
	}
}

func TestCourseOrg(t *testing.T) {
	cases := []struct {
		name, key, want string
	}{
		{"ok, course-v1 key", "course-v1:ORG+C+R", "ORG"},
		{"ok, old slash key", "ORG/C/R", "ORG"},
		{"ok, ccx-v1 key", "ccx-v1:ORG+C+R+ccx@3", "ORG"},
		{"ok, real edX key", "course-v1:edX+DemoX+Demo_Course", "edX"},
		{"ok, org with dots and dashes", "course-v1:Org.X-1+C+R", "Org.X-1"},
		{"ok, colon in the org, as edX's opaque keys allow", "course-v1:A:B+C+R", "A:B"},
		{"ok, tilde in the parts", "org~1/c~2/r~3", "org~1"},
		{"nok, empty", "", ""},
		{"nok, slash in a course-v1 org", "course-v1:A/B+C+R", ""},
		{"nok, plus in an old slash key's org", "A+B/C/R", ""},
		{"nok, course-v1 with four parts", "course-v1:ORG+C+R+X", ""},
		{"nok, ccx-v1 without its ccx@N part", "ccx-v1:ORG+C+R", ""},
		{"nok, ccx-v1 with a bad ccx id", "ccx-v1:ORG+C+R+ccx@x", ""},
		{"nok, space in the org", "course-v1:O RG+C+R", ""},
		{"nok, no separator", "foo", ""},
		{"nok, course-v1 without course and run", "course-v1:ORG", ""},
		{"nok, course-v1 without run", "course-v1:ORG+C", ""},
		{"nok, course-v1 with empty org", "course-v1:+C+R", ""},
		{"nok, two slash parts", "a/b", ""},
		{"nok, four slash parts", "a/b/c/d", ""},
		{"nok, slash key with empty org", "/b/c", ""},
		{"nok, slash key with empty course", "a//c", ""},
		{"nok, slash key with empty run", "a/b/", ""},
		{"nok, library key", "library-v1:ORG+LIB", ""},
		{"nok, block usage key", "block-v1:ORG+C+R+type@html+block@x", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := experiments.CourseOrg(c.key); got != c.want {
				t.Errorf("CourseOrg(%q) = %q, want %q", c.key, got, c.want)
			}
		})
	}
}

func TestRuleValidate(t *testing.T) {
	cases := []struct {
		name  string
		rule  experiments.Rule
		field string // "" when valid
	}{
		{"ok, the zero rule", experiments.Rule{}, ""},
		{"ok, On", experiments.On(), ""},
		{"ok, Off", experiments.Off(), ""},
		{"ok, percent 0", experiments.Rule{Percent: 0}, ""},
		{"ok, percent 100", experiments.Rule{Percent: 100}, ""},
		{"ok, fractional percent", experiments.Rule{Percent: 33.33}, ""},
		{"ok, users and groups", experiments.Rule{Users: []string{"alice", "José"}, Groups: []string{"beta testers", "β"}}, ""},
		{"nok, percent -1", experiments.Rule{Percent: -1}, "percent"},
		{"nok, percent 101", experiments.Rule{Percent: 101}, "percent"},
		{"nok, percent just above 100", experiments.Rule{Percent: math.Nextafter(100, 200)}, "percent"},
		{"nok, percent NaN", experiments.Rule{Percent: math.NaN()}, "percent"},
		{"nok, percent +Inf", experiments.Rule{Percent: math.Inf(1)}, "percent"},
		{"nok, percent -Inf", experiments.Rule{Percent: math.Inf(-1)}, "percent"},
		{"nok, empty user", experiments.Rule{Users: []string{"alice", ""}}, "users"},
		{"nok, user with a newline", experiments.Rule{Users: []string{"ali\nce"}}, "users"},
		{"nok, user with a NUL", experiments.Rule{Users: []string{"alice\x00"}}, "users"},
		{"nok, user with DEL", experiments.Rule{Users: []string{"alice\x7f"}}, "users"},
		{"nok, user with a C1 control", experiments.Rule{Users: []string{"alice\u0085"}}, "users"},
		{"nok, user of invalid UTF-8", experiments.Rule{Users: []string{"\xff"}}, "users"},
		{"nok, user longer than 255 bytes", experiments.Rule{Users: []string{strings.Repeat("u", 256)}}, "users"},
		{"nok, empty group", experiments.Rule{Groups: []string{""}}, "groups"},
		{"nok, group with a tab", experiments.Rule{Groups: []string{"beta\ttesters"}}, "groups"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.rule.Validate()
			if c.field == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, experiments.ErrInvalid) {
				t.Fatalf("Validate() = %v, want an error wrapping ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), c.field) {
				t.Errorf("Validate() = %q, want it to name %q", err, c.field)
			}
		})
	}
}

func TestRuleStringSaysWhoItIsOnFor(t *testing.T) {
	for _, tc := range []struct {
		rule experiments.Rule
		want string
	}{
		{experiments.On(), "on for everyone"},
		{experiments.Off(), "off for everyone"},
		{experiments.Rule{}, "off (empty rule)"},
		{experiments.Rule{Staff: true, Percent: 20}, "on for staff, 20% of signed-in users"},
		{experiments.Rule{Authenticated: true, Superusers: true, Users: []string{"ann", "bob"}, Groups: []string{"beta"}, Percent: 0.5},
			"on for signed-in users, superusers, users [ann bob], groups [beta], 0.5% of signed-in users"},
	} {
		if got := tc.rule.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.rule, got, tc.want)
		}
	}
}
