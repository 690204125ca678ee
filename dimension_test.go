package experiments_test

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/abkit/experiments"
)

func TestNewDimensions(t *testing.T) {
	eight := map[string]string{}
	for _, n := range "abcdefgh" {
		eight[string(n)] = "v"
	}
	nine := maps.Clone(eight)
	nine["i"] = "v"
	cases := []struct {
		name    string
		in      map[string]string
		wantErr string // "" for ok
	}{
		{"ok, none", nil, ""},
		{"ok, two", map[string]string{"site": "learn.example", "browser": "Firefox"}, ""},
		{"ok, eight", eight, ""},
		{"ok, a value of 64 bytes", map[string]string{"a": strings.Repeat("é", 32)}, ""},
		{"nok, nine", nine, "9 dimensions"},
		{"nok, an empty name", map[string]string{"": "x"}, `dimension name ""`},
		{"nok, a name with a space", map[string]string{"a b": "x"}, `dimension name "a b"`},
		{"nok, a name of 65 bytes", map[string]string{strings.Repeat("n", 65): "x"}, "want 1 to 64 bytes"},
		{"nok, an empty value", map[string]string{"plan": ""}, `dimension plan value ""`},
		{"nok, a value of 65 bytes", map[string]string{"plan": strings.Repeat("v", 65)}, "dimension plan value"},
		{"nok, a value that is not UTF-8", map[string]string{"plan": "\xff"}, `dimension plan value "\xff"`},
		{"nok, a value with NUL", map[string]string{"plan": "a\x00b"}, "dimension plan value"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := experiments.NewDimensions(c.in)
			if c.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got := d.Map(); !maps.Equal(got, c.in) || d.Len() != len(c.in) {
					t.Errorf("Map = %v, Len = %d, want %v", got, d.Len(), c.in)
				}
				return
			}
			if !errors.Is(err, experiments.ErrInvalid) || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("err = %v, want ErrInvalid saying %q", err, c.wantErr)
			}
		})
	}
}

func TestDimensionsValueSemantics(t *testing.T) {
	a, _ := experiments.NewDimensions(map[string]string{"site": "s", "browser": "Firefox 1"})
	b, _ := experiments.NewDimensions(map[string]string{"browser": "Firefox 1", "site": "s"})
	if a != b {
		t.Error("the same pairs give Dimensions that are not ==")
	}
	if v, ok := a.Get("browser"); !ok || v != "Firefox 1" {
		t.Errorf("Get(browser) = %q, %v", v, ok)
	}
	if _, ok := a.Get("plan"); ok {
		t.Error("Get(plan) found a value")
	}
	if got, want := a.String(), `browser="Firefox 1" site=s`; got != want {
		t.Errorf("String = %s, want %s", got, want)
	}
	j, err := json.Marshal(a)
	if err != nil || string(j) != `{"browser":"Firefox 1","site":"s"}` {
		t.Fatalf("Marshal = %s, %v", j, err)
	}
	var back experiments.Dimensions
	if err := json.Unmarshal(j, &back); err != nil || back != a {
		t.Errorf("Unmarshal = %v, %v; want %v", back, err, a)
	}
	if j, _ := json.Marshal(experiments.Dimensions{}); string(j) != "{}" {
		t.Errorf("the zero Dimensions marshals to %s, want {}", j)
	}
	if err := json.Unmarshal([]byte(`{"a b":"x"}`), &back); !errors.Is(err, experiments.ErrInvalid) {
		t.Errorf("Unmarshal of a bad name: %v, want ErrInvalid", err)
	}
}

func TestConfigDimensionsAreValidated(t *testing.T) {
	cases := []struct {
		name string
		dims []string
		want string
	}{
		{"nok, a bad name", []string{"browser", "a b"}, `Config.Dimensions[1]: invalid: dimension name "a b"`},
		{"nok, a name twice", []string{"site", "browser", "site"}, `Config.Dimensions[2] "site": given twice`},
		{"nok, nine names", strings.Split("a b c d e f g h i", " "), "Config.Dimensions: 9 names"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := experiments.Config{Dimensions: c.dims}.Validate()
			if !errors.Is(err, experiments.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Validate = %v, want ErrInvalid saying %q", err, c.want)
			}
		})
	}
	if err := (experiments.Config{Dimensions: []string{"browser", experiments.DimensionSite}}).Validate(); err != nil {
		t.Errorf("Validate of good names: %v", err)
	}
}

// The exposure carries the attributes Config.Dimensions names, as
// strings, and the site; absent, empty, unsupported and too long values
// are left out, and later changes to the caller's slice change nothing.
func TestExposureDimensions(t *testing.T) {
	ctx := context.Background()
	s := experiments.NewMemStore()
	flag := experiments.NewFlagSet().NewFlag("dims", "main")
	if err := s.SetFlag(ctx, flag.Name(), experiments.On()); err != nil {
		t.Fatal(err)
	}
	names := []string{"site", "browser", "plan", "visits", "empty", "absent", "list", "long"}
	x := experiments.New(experiments.Config{Store: s, Recorder: s, Site: "learn.example", Dimensions: names})
	names[1] = "changed"
	attrs := map[string]any{"browser": "Firefox", "plan": true, "visits": 3, "empty": "",
		"list": []string{"x"}, "long": strings.Repeat("x", 65), "unnamed": "y"}
	flag.Bucket(x.NewContext(ctx, experiments.User{ID: "1", Attributes: attrs}), "")
	flag.Bucket(x.NewContext(ctx, experiments.User{ID: "2"}), "")
	es := s.Exposures()
	if len(es) != 2 {
		t.Fatalf("%d exposures, want 2", len(es))
	}
	want := map[string]string{"site": "learn.example", "browser": "Firefox", "plan": "true", "visits": "3"}
	if got := es[0].Dimensions.Map(); !maps.Equal(got, want) {
		t.Errorf("user 1's dimensions = %v, want %v", got, want)
	}
	if got := es[1].Dimensions.Map(); !maps.Equal(got, map[string]string{"site": "learn.example"}) {
		t.Errorf("user 2's dimensions = %v, want the site only", got)
	}
}

// Dimensions cost nothing to decisions that record nothing.
func TestDimensionsHotPathAllocations(t *testing.T) {
	x, users := benchRuntime(t, experiments.Config{Dimensions: []string{"browser", "site"}})
	bg := context.Background()
	u := users[0]
	u.Attributes = map[string]any{"browser": "Firefox"}
	if got := testing.AllocsPerRun(200, func() { benchFlag.Bucket(x.NewContext(bg, u), benchCourse) }); got > 1 {
		t.Errorf("first decision in a request: allocs = %v, want <= 1", got)
	}
	ctx := x.NewContext(bg, u)
	benchFlag.Bucket(ctx, benchCourse)
	if got := testing.AllocsPerRun(200, func() { benchFlag.Bucket(ctx, benchCourse) }); got > 0 {
		t.Errorf("cached decision: allocs = %v, want 0", got)
	}
}
