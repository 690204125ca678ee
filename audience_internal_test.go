package experiments

import (
	"encoding/json"
	"math/big"
	"reflect"
	"strings"
	"testing"

	xsemver "golang.org/x/mod/semver"
)

// SemVer 2.0.0's own examples of precedence (semver.org, item 11), and
// more, in increasing order.
var semverOrder = []string{
	"0.0.0", "0.0.1", "0.1.0", "1.0.0-0", "1.0.0-1", "1.0.0-10", "1.0.0-alpha", "1.0.0-alpha.1",
	"1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0",
	"1.9.0", "1.10.0", "1.11.0", "2.0.0", "2.1.0", "2.1.1", "18446744073709551615.0.0",
}

func TestSemverPrecedence(t *testing.T) {
	for i, a := range semverOrder {
		va, ok := parseSemver(a)
		if !ok {
			t.Fatalf("parseSemver(%q) failed", a)
		}
		for j, b := range semverOrder {
			vb, _ := parseSemver(b)
			want := cmpUint(uint64(i), uint64(j))
			if got := va.compare(&vb); got != want {
				t.Errorf("compare(%q, %q) = %d, want %d", a, b, got, want)
			}
		}
	}
	for _, eq := range [][2]string{{"1.0.0", "v1.0.0"}, {"1.0.0+a", "1.0.0+b.2"}, {"1.0.0-rc.1+x", "v1.0.0-rc.1"}} {
		a, _ := parseSemver(eq[0])
		b, okb := parseSemver(eq[1])
		if !okb || a.compare(&b) != 0 {
			t.Errorf("compare(%q, %q) != 0", eq[0], eq[1])
		}
	}
}

func TestParseSemverRefuses(t *testing.T) {
	for _, s := range []string{
		"", "v", "1", "1.0", "1.0.0.0", "01.0.0", "1.00.0", "1.0.00", "1.0.0-", "1.0.0+", "1.0.0-01",
		"1.0.0-a..b", "1.0.0+a..b", "1.0.0-a_b", "1.0.0+é", "V1.0.0", "vv1.0.0", " 1.0.0", "1.0.0 ",
		"=1.0.0", "1.0.0-rc.1+", "18446744073709551616.0.0", "1.-1.0", "1.0.0--", "a.b.c", "1.0.x",
	} {
		if v, ok := parseSemver(s); ok && s != "1.0.0--" {
			t.Errorf("parseSemver(%q) = %+v, want a refusal", s, v)
		}
	}
	// "1.0.0--" is valid: the pre-release "-" is an identifier of a hyphen.
	if _, ok := parseSemver("1.0.0--"); !ok {
		t.Error(`parseSemver("1.0.0--") refused; "-" is a valid pre-release identifier`)
	}
	if _, ok := parseSemver("1.0.0+001"); !ok {
		t.Error(`parseSemver("1.0.0+001") refused; build identifiers may have leading zeros`)
	}
}

// Parsing never panics; precedence is a total order: antisymmetric, and
// a version equals itself.
func FuzzParseSemver(f *testing.F) {
	for i := 1; i < len(semverOrder); i++ {
		f.Add(semverOrder[i-1], semverOrder[i])
	}
	f.Add("v1.0.0+build", "1.0.0-rc.1.2.3")
	f.Add("1.0.0-0.a.1--", "1.0.0-0.a.01")
	f.Fuzz(func(t *testing.T, a, b string) {
		va, oka := parseSemver(a)
		vb, okb := parseSemver(b)
		if oka {
			if va.compare(&va) != 0 {
				t.Fatalf("compare(%q, itself) != 0", a)
			}
		}
		if oka && okb {
			if ab, ba := va.compare(&vb), vb.compare(&va); ab != -ba {
				t.Fatalf("compare(%q, %q) = %d but compare(%q, %q) = %d", a, b, ab, b, a, ba)
			}
		}
	})
}

// parseSemver and compare agree with golang.org/x/mod/semver, SemVer
// 2.0.0 as the go command reads it, on any two strings: the same
// versions are valid (but for what x/mod allows and we do not: the
// shorthands "v1" and "v1.2", and numbers past a uint64), and they
// compare the same.
func FuzzParseSemverAgreesWithXMod(f *testing.F) {
	for _, s := range semverOrder {
		f.Add(s, "v"+s)
	}
	f.Add("1.0.0-0.a.1--", "1.0.0-01")
	f.Add("1.0.0+build.01", "v1.0.0-rc.1+x")
	f.Add("18446744073709551616.0.0", "01.0.0")
	f.Fuzz(func(t *testing.T, a, b string) {
		va, oka := parseSemver(a)
		vb, okb := parseSemver(b)
		if oka != xValid(a) || okb != xValid(b) {
			t.Fatalf("parseSemver(%q) %v, parseSemver(%q) %v; x/mod says %v, %v", a, oka, b, okb, xValid(a), xValid(b))
		}
		if oka && okb {
			if got, want := va.compare(&vb), xsemver.Compare(xForm(a), xForm(b)); got != want {
				t.Fatalf("compare(%q, %q) = %d, x/mod says %d", a, b, got, want)
			}
		}
	})
}

// xForm is s with the leading "v" x/mod requires.
func xForm(s string) string {
	if strings.HasPrefix(s, "v") {
		return s
	}
	return "v" + s
}

// xValid says whether x/mod takes s for a version we accept too: all
// three numbers written out, each at most the largest uint64.
func xValid(s string) bool {
	if s == "" || s[0] == 'V' || !xsemver.IsValid(xForm(s)) {
		return false
	}
	core := strings.TrimPrefix(s, "v")
	if i := strings.IndexAny(core, "-+"); i >= 0 {
		core = core[:i]
	}
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return false
	}
	maxUint := new(big.Int).SetUint64(^uint64(0))
	for _, p := range parts {
		n, ok := new(big.Int).SetString(p, 10)
		if !ok || n.Cmp(maxUint) > 0 {
			return false
		}
	}
	return true
}

// A condition from any JSON: Validate and compiling never panic, a valid
// one survives a JSON round trip, an invalid one matches nobody, and
// matching allocates nothing.
func FuzzConditionJSON(f *testing.F) {
	f.Add(`{"attribute":"country","op":"in","values":["US","CA"]}`, "US", 18.0)
	f.Add(`{"attribute":"age","op":"gte","values":["18"]}`, "x", 17.5)
	f.Add(`{"attribute":"v","op":"semver_gte","values":["v2.3.0-rc.1+b"]}`, "2.3.0", 0.0)
	f.Add(`{"attribute":"p","op":"not_exists"}`, "", 1.0)
	f.Add(`{"attribute":"p","op":"lt","values":["1e400"]}`, "", 1.0)
	f.Add(`{"attribute":"p","op":"eq","values":["true"]}`, "true", -0.0)
	f.Fuzz(func(t *testing.T, text, s string, n float64) {
		var c Condition
		if json.Unmarshal([]byte(text), &c) != nil {
			return
		}
		err := c.Validate()
		cs := compileConditions([]Condition{c})
		for _, v := range []any{s, n, int(n), uint8(n), n > 0, nil, []string{s}} {
			for _, attrs := range []map[string]any{{c.Attribute: v}, {s: v}, nil} {
				in := inAudience(cs, attrs)
				if err != nil && in {
					t.Fatalf("invalid %+v (%v) matched %v", c, err, attrs)
				}
			}
		}
		if err != nil {
			return
		}
		b, merr := json.Marshal(c)
		var back Condition
		if merr != nil || json.Unmarshal(b, &back) != nil || !reflect.DeepEqual(normalizedCondition(back), normalizedCondition(c)) {
			t.Fatalf("%+v reads back from %s as %+v", c, b, back)
		}
		attrs := map[string]any{c.Attribute: s}
		if a := testing.AllocsPerRun(10, func() { inAudience(cs, attrs) }); a != 0 {
			t.Fatalf("matching %+v allocates %v times", c, a)
		}
	})
}

func normalizedCondition(c Condition) Condition {
	if len(c.Values) == 0 {
		c.Values = nil
	}
	return c
}

// BenchmarkInAudience is the audience of BenchmarkBucketFirstAudience on
// its own: three lookups in the user's attributes, a five-value In, a
// semver and a number comparison; and, for comparison, the three map
// lookups alone.
func BenchmarkInAudience(b *testing.B) {
	conds := []Condition{
		{Attribute: "country", Op: In, Values: []string{"US", "CA", "GB", "DE", "FR"}},
		{Attribute: "app_version", Op: SemverGreaterOrEqual, Values: []string{"2.3.0"}},
		{Attribute: "age", Op: GreaterOrEqual, Values: []string{"18"}},
	}
	cs := compileConditions(conds)
	countries := []string{"US", "CA", "GB", "DE", "FR"}
	versions := []string{"2.3.0", "2.4.1", "3.0.0", "2.10.0-beta.2"}
	attrs := make([]map[string]any, 8)
	for i := range attrs {
		attrs[i] = map[string]any{"country": countries[i%len(countries)], "app_version": versions[i%len(versions)], "age": 18 + i, "plan": "free"}
	}
	b.Run("conditions", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if !inAudience(cs, attrs[i%len(attrs)]) {
				b.Fatal("not in the audience")
			}
			i++
		}
	})
	b.Run("lookups", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			m := attrs[i%len(attrs)]
			for k := range conds {
				if m[conds[k].Attribute] == nil {
					b.Fatal("an attribute is missing")
				}
			}
			i++
		}
	})
}

// BenchmarkParseSemver parses a release and a pre-release.
func BenchmarkParseSemver(b *testing.B) {
	for _, s := range []string{"2.4.1", "2.10.0-beta.2"} {
		b.Run(s, func(b *testing.B) {
			for b.Loop() {
				if _, ok := parseSemver(s); !ok {
					b.Fatal(s)
				}
			}
		})
	}
}
