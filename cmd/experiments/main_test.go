package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/internal/pgtest"
	"github.com/abkit/experiments/results"
	"github.com/abkit/experiments/sqlstore"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// The seeded store: one flag with exposures in a course and without one,
// flags without exposures, two goals.
const (
	checkoutFlag = "shop.checkout"
	course       = "course-v1:ShopX+Pay+2026"
	courseUsers  = 400 // exposed to checkout in course
	plainUsers   = 30  // exposed to checkout without a course
)

// seed is what seedStore recorded, per bucket, for checkout in course.
type seed struct {
	schema      string
	dsn         string
	course      [2]int64 // participants
	converted   [2]int64 // enrolled, and bought once each
	plain       [2]int64 // participants without a course
	purchaseSum [2]float64
	browsers    map[string]int64 // participants in course per browser ("" for none)
}

func testDSN() string               { return pgtest.DSN() }
func testDB(t testing.TB) *sqlx.DB  { return pgtest.DB(t) }
func newSchema(t testing.TB) string { return pgtest.Schema(t, "exptest_cli_") }

// openTestStore opens a store in schema, closed when the test ends.
func openTestStore(t testing.TB, schema string) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.OpenWith(context.Background(), testDSN(), sqlstore.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// seedStore records, through the public API, exposures to shop.checkout
// and conversions in a fresh schema. In course, a user of bucket 1
// converts every other time, one of control one time in ten: bucket 1
// wins.
func seedStore(t *testing.T) seed {
	t.Helper()
	ctx := context.Background()
	sd := seed{schema: newSchema(t), dsn: testDSN(), browsers: map[string]int64{}}
	s := openTestStore(t, sd.schema)
	for name, r := range map[string]experiments.Rule{
		checkoutFlag:        experiments.On(),
		checkoutFlag + ".1": experiments.Off(), // a bucket flag: not listed as a flag
		"shop.banner":       experiments.Off(),
		"shop.survey":       {Percent: 20, Staff: true},
	} {
		if err := s.SetFlag(ctx, name, r); err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range []experiments.Goal{{Name: "enrolled", Once: true}, {Name: "purchase", Value: experiments.ValueSum}} {
		if err := s.SetGoal(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Reload(ctx); err != nil {
		t.Fatal(err)
	}

	// A clock a minute ahead at each call: conversions follow exposures,
	// and the series spans two days.
	var mu sync.Mutex
	now := time.Date(2026, 3, 2, 18, 0, 0, 0, time.UTC)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(time.Minute)
		return now
	}
	x := experiments.New(experiments.Config{Store: s, Recorder: s, Now: clock, Site: "shop.example",
		Dimensions: []string{"browser", experiments.DimensionSite}})
	checkout := experiments.NewFlagSet().NewFlag("shop", "checkout")
	for i := range courseUsers {
		browser := []string{"", "Chrome", "Firefox"}[i%3]
		u := experiments.User{ID: fmt.Sprintf("u%03d", i)}
		if browser != "" {
			u.Attributes = map[string]any{"browser": browser}
		}
		sd.browsers[browser]++
		rctx := x.NewContext(ctx, u)
		d := checkout.Decide(rctx, course)
		if d.Err != nil || d.Reason != experiments.ReasonHashed {
			t.Fatalf("user %d: decision %+v", i, d)
		}
		b := d.Bucket
		sd.course[b]++
		if b == 1 && i%2 == 0 || b == 0 && i%10 == 0 {
			sd.converted[b]++
			v := float64(10 + i%7)
			sd.purchaseSum[b] += v
			if err := experiments.Convert(rctx, "enrolled"); err != nil {
				t.Fatal(err)
			}
			if err := experiments.ConvertValue(rctx, "purchase", v); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range plainUsers {
		rctx := x.NewContext(ctx, experiments.User{ID: fmt.Sprintf("p%03d", i)})
		sd.plain[checkout.Bucket(rctx, "")]++
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := s.RecorderStats(); st.Exposures.Dropped != 0 || st.Conversions.Dropped != 0 {
		t.Fatalf("recorder dropped records: %+v", st)
	}
	return sd
}

// runCLI runs the command line args and returns its exit status and
// outputs.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// runOK runs the command line args, fails unless it exits 0 with nothing
// on stderr, and returns its stdout.
func runOK(t *testing.T, args ...string) string {
	t.Helper()
	code, stdout, stderr := runCLI(t, args...)
	if code != exitOK || stderr != "" {
		t.Fatalf("%q: exit status %d, stderr:\n%s", args, code, stderr)
	}
	return stdout
}

func TestCommands(t *testing.T) {
	sd := seedStore(t)
	db := []string{"-dsn", sd.dsn, "-schema", sd.schema}
	args := func(cmd string, more ...string) []string {
		return append(append([]string{cmd}, db...), more...)
	}

	t.Run("list prints the experiments with participants per bucket, unexposed flags and goals", func(t *testing.T) {
		out := runOK(t, args("list")...)
		t.Logf("list:\n%s", out)
		for _, want := range []string{
			fmt.Sprintf(`(?m)^shop\.checkout\s+-\s+%d\s+0: %d, 1: %d\s+on for everyone$`, plainUsers, sd.plain[0], sd.plain[1]),
			fmt.Sprintf(`(?m)^shop\.checkout\s+%s\s+%d\s+0: %d, 1: %d\s+on for everyone$`,
				regexp.QuoteMeta(course), courseUsers, sd.course[0], sd.course[1]),
			`(?m)^shop\.banner\s+off for everyone$`,
			`(?m)^shop\.survey\s+on for staff, 20% of signed-in users$`,
			`(?m)^enrolled\s+once per participant$`,
			`(?m)^purchase\s+every conversion, value: sum$`,
		} {
			if !regexp.MustCompile(want).MatchString(out) {
				t.Errorf("list: no line matching %s", want)
			}
		}
		if strings.Contains(out, "shop.checkout.1") {
			t.Errorf("list shows the bucket flag shop.checkout.1:\n%s", out)
		}
	})

	t.Run("list is the default command", func(t *testing.T) {
		if got, want := runOK(t, db...), runOK(t, args("list")...); got != want {
			t.Errorf("without a command:\n%s\nwant list's:\n%s", got, want)
		}
	})

	t.Run("list -json gives the same as one JSON object", func(t *testing.T) {
		var got struct {
			Experiments []struct {
				Flag         string `json:"flag"`
				CourseKey    string `json:"course_key"`
				Participants int64  `json:"participants"`
				Buckets      []struct {
					Index        int   `json:"index"`
					Participants int64 `json:"participants"`
				} `json:"buckets"`
				Rule *experiments.Rule `json:"rule"`
			} `json:"experiments"`
			Unexposed []struct {
				Flag string           `json:"flag"`
				Rule experiments.Rule `json:"rule"`
			} `json:"flags_without_exposures"`
			Goals []struct {
				Name  string `json:"name"`
				Once  bool   `json:"once"`
				Value string `json:"value"`
			} `json:"goals"`
		}
		decodeStrict(t, runOK(t, args("list", "-json")...), &got)
		if len(got.Experiments) != 2 {
			t.Fatalf("experiments: %+v, want 2", got.Experiments)
		}
		for i, want := range []struct {
			course string
			counts [2]int64
		}{{"", sd.plain}, {course, sd.course}} {
			e := got.Experiments[i]
			if e.Flag != checkoutFlag || e.CourseKey != want.course || e.Participants != want.counts[0]+want.counts[1] ||
				len(e.Buckets) != 2 || e.Buckets[0].Participants != want.counts[0] || e.Buckets[1].Participants != want.counts[1] ||
				e.Rule == nil || e.Rule.Everyone == nil || !*e.Rule.Everyone {
				t.Errorf("experiment %d: %+v, want %s in %q with participants %v, rule on", i, e, checkoutFlag, want.course, want.counts)
			}
		}
		if len(got.Unexposed) != 2 || got.Unexposed[0].Flag != "shop.banner" || got.Unexposed[1].Flag != "shop.survey" ||
			got.Unexposed[1].Rule.Percent != 20 {
			t.Errorf("flags without exposures: %+v, want shop.banner and shop.survey (20%%)", got.Unexposed)
		}
		if len(got.Goals) != 2 || got.Goals[0].Name != "enrolled" || !got.Goals[0].Once ||
			got.Goals[1].Name != "purchase" || got.Goals[1].Value != "sum" {
			t.Errorf("goals: %+v", got.Goals)
		}
	})

	t.Run("report -json for one flag, course and goal matches the seeded counts", func(t *testing.T) {
		var reports []results.Report
		decodeStrict(t, runOK(t, args("report", "-flag", checkoutFlag, "-course", course, "-goal", "purchase", "-json")...), &reports)
		if len(reports) != 1 {
			t.Fatalf("%d reports, want 1", len(reports))
		}
		r := reports[0]
		if r.Experiment != (results.Experiment{Flag: checkoutFlag, CourseKey: course}) || r.Goal.Name != "purchase" {
			t.Errorf("report of %s, goal %s", r.Experiment, r.Goal.Name)
		}
		if len(r.Buckets) != 2 {
			t.Fatalf("buckets: %+v", r.Buckets)
		}
		for i, b := range r.Buckets {
			if b.Participants != sd.course[i] || b.Converted != sd.converted[i] || b.Conversions != sd.converted[i] ||
				b.Value == nil || *b.Value != sd.purchaseSum[i] {
				t.Errorf("bucket %d: %+v, want %d participants, %d converted, value sum %v",
					i, b, sd.course[i], sd.converted[i], sd.purchaseSum[i])
			}
		}
		if r.Verdict.Outcome != "significant" || r.Verdict.Text != "bucket 1 beats control with 99% confidence" {
			t.Errorf("verdict: %+v", r.Verdict)
		}
		if r.MeansVerdict == nil || len(r.Series) != 2 {
			t.Errorf("value verdict %v, %d days in the series; want a value verdict and 2 days", r.MeansVerdict, len(r.Series))
		}
	})

	t.Run("report prints the verdict and the participants per bucket", func(t *testing.T) {
		out := runOK(t, args("report", "-flag", checkoutFlag, "-course", course, "-goal", "enrolled")...)
		t.Logf("report:\n%s", out)
		for _, want := range []string{
			`(?m)\A=== \[1/1\] shop\.checkout in ` + regexp.QuoteMeta(course) + `, goal enrolled ===$`,
			`(?m)^verdict\s+bucket 1 beats control with 99% confidence$`,
			fmt.Sprintf(`(?m)^participants\s+%d$`, courseUsers),
			fmt.Sprintf(`(?m)^control\s+%d\s+%d\s`, sd.course[0], sd.converted[0]),
			fmt.Sprintf(`(?m)^bucket 1\s+%d\s+%d\s`, sd.course[1], sd.converted[1]),
		} {
			if !regexp.MustCompile(want).MatchString(out) {
				t.Errorf("report: no line matching %s", want)
			}
		}
		if n := strings.Count(out, "==="); n != 2 {
			t.Errorf("%d header marks, want one header", n)
		}
	})

	t.Run("report without filters covers every experiment and goal, in order", func(t *testing.T) {
		var reports []results.Report
		decodeStrict(t, runOK(t, args("report", "-json")...), &reports)
		var got []string
		for _, r := range reports {
			got = append(got, r.Experiment.String()+", "+r.Goal.Name)
		}
		want := []string{
			"shop.checkout, enrolled", "shop.checkout, purchase",
			"shop.checkout in " + course + ", enrolled", "shop.checkout in " + course + ", purchase",
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("reports:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		text := runOK(t, args("report")...)
		if n := strings.Count(text, "\n=== ["); n != 3 || !strings.HasPrefix(text, "=== [1/4] shop.checkout, goal enrolled ===\n") {
			t.Errorf("text: %d later headers, want 3, and the first on top:\n%s", n, text)
		}
	})

	t.Run("report -course '' keeps the experiment without a course", func(t *testing.T) {
		var reports []results.Report
		decodeStrict(t, runOK(t, args("report", "-course", "", "-goal", "enrolled", "-json")...), &reports)
		if len(reports) != 1 || reports[0].Experiment != (results.Experiment{Flag: checkoutFlag}) {
			t.Fatalf("reports: %+v, want shop.checkout without a course", reports)
		}
		if b := reports[0].Buckets; b[0].Participants != sd.plain[0] || b[1].Participants != sd.plain[1] {
			t.Errorf("participants %d and %d, want %v", b[0].Participants, b[1].Participants, sd.plain)
		}
	})

	t.Run("report -buckets sets the number of buckets", func(t *testing.T) {
		var reports []results.Report
		decodeStrict(t, runOK(t, args("report", "-flag", checkoutFlag, "-course", course, "-goal", "enrolled", "-buckets", "3", "-json")...), &reports)
		if len(reports) != 1 || len(reports[0].Buckets) != 3 || reports[0].Buckets[2].Participants != 0 {
			t.Errorf("reports: %+v, want 3 buckets, the last empty", reports)
		}
	})

	t.Run("report -weights sets the split the check expects", func(t *testing.T) {
		total := float64(sd.course[0] + sd.course[1])
		for _, tc := range []struct {
			weights string
			slots   []float64
		}{{"", []float64{1, 1}}, {"50/50", []float64{5000, 5000}}, {"90/10", []float64{9000, 1000}}, {"1,3", []float64{2500, 7500}}} {
			more := []string{"-flag", checkoutFlag, "-course", course, "-goal", "enrolled", "-json"}
			if tc.weights != "" {
				more = append(more, "-weights", tc.weights)
			}
			var reports []results.Report
			decodeStrict(t, runOK(t, args("report", more...)...), &reports)
			if len(reports) != 1 {
				t.Fatalf("-weights %q: %d reports", tc.weights, len(reports))
			}
			srm := reports[0].SRM
			share := tc.slots[0] / (tc.slots[0] + tc.slots[1])
			if !reflect.DeepEqual(srm.Weights, tc.slots) || math.Abs(srm.Expected[0]-total*share) > 1e-9 {
				t.Errorf("-weights %q: SRM weights %v, expected %v; want %v and %v in control", tc.weights, srm.Weights, srm.Expected, tc.slots, total*share)
			}
		}
	})

	t.Run("report -by breaks the report down by a dimension of the exposures", func(t *testing.T) {
		var bs []results.Breakdown
		decodeStrict(t, runOK(t, args("report", "-flag", checkoutFlag, "-course", course, "-goal", "enrolled", "-by", "browser", "-json")...), &bs)
		if len(bs) != 1 || bs[0].Dimension != "browser" || bs[0].Goal != "enrolled" || len(bs[0].Rows) != 3 {
			t.Fatalf("breakdowns: %+v, want one by browser with 3 rows", bs)
		}
		for i, want := range []string{"", "Chrome", "Firefox"} {
			row := bs[0].Rows[i]
			n := row.Report.Buckets[0].Participants + row.Report.Buckets[1].Participants
			if row.Value != want || n != sd.browsers[want] {
				t.Errorf("row %d: %q with %d participants, want %q with %d", i, row.Value, n, want, sd.browsers[want])
			}
		}
		var site []results.Breakdown
		decodeStrict(t, runOK(t, args("report", "-flag", checkoutFlag, "-course", course, "-goal", "enrolled", "-by", "site", "-json")...), &site)
		if len(site) != 1 || len(site[0].Rows) != 1 || site[0].Rows[0].Value != "shop.example" {
			t.Errorf("by site: %+v, want one row, shop.example", site)
		}
		text := runOK(t, args("report", "-flag", checkoutFlag, "-course", course, "-goal", "enrolled", "-by", "browser")...)
		for _, want := range []string{
			`(?m)\A=== \[1/1\] shop\.checkout in ` + regexp.QuoteMeta(course) + `, goal enrolled, by browser ===$`,
			fmt.Sprintf(`(?m)^\(none\)\s+%d\s`, sd.browsers[""]),
			fmt.Sprintf(`(?m)^Chrome\s+%d\s`, sd.browsers["Chrome"]),
			fmt.Sprintf(`(?m)^Firefox\s+%d\s`, sd.browsers["Firefox"]),
			`(?m)^3 values: p-values are not adjusted across values`,
		} {
			if !regexp.MustCompile(want).MatchString(text) {
				t.Errorf("report -by: no line matching %s in\n%s", want, text)
			}
		}
	})

	t.Run("report uses the flag's stored weights without -weights", func(t *testing.T) {
		s := openTestStore(t, sd.schema)
		ctx := context.Background()
		if err := s.SetExperimentMeta(ctx, checkoutFlag, experiments.ExperimentMeta{Weights: []float64{70, 30}}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.SetExperimentMeta(ctx, checkoutFlag, experiments.ExperimentMeta{}) })
		var reports []results.Report
		decodeStrict(t, runOK(t, args("report", "-flag", checkoutFlag, "-course", course, "-goal", "enrolled", "-json")...), &reports)
		if len(reports) != 1 || !reflect.DeepEqual(reports[0].SRM.Weights, []float64{7000, 3000}) {
			t.Errorf("reports %+v, want the SRM against 7000/3000", reports)
		}
		decodeStrict(t, runOK(t, args("report", "-flag", checkoutFlag, "-course", course, "-goal", "enrolled", "-weights", "1/1", "-json")...), &reports)
		if len(reports) != 1 || !reflect.DeepEqual(reports[0].SRM.Weights, []float64{5000, 5000}) {
			t.Errorf("reports %+v, want -weights to beat the stored ones", reports)
		}
	})

	t.Run("report -zone gives the weekly rows in that zone, the days staying UTC", func(t *testing.T) {
		var reports []results.Report
		decodeStrict(t, runOK(t, args("report", "-flag", checkoutFlag, "-course", course, "-goal", "enrolled",
			"-zone", "America/Los_Angeles", "-json")...), &reports)
		if len(reports) != 1 {
			t.Fatalf("%d reports", len(reports))
		}
		r := reports[0]
		// 18:01 UTC on Monday 2 March to the next morning: Monday in Los Angeles.
		if r.Zone != "America/Los_Angeles" || len(r.Weekly) != 1 || !r.Weekly[0].Week.Equal(time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)) ||
			r.Weekly[0].Buckets[1].Participants != sd.course[1] || r.Weekly[0].Buckets[1].Converted != sd.converted[1] || len(r.Series) != 2 {
			t.Errorf("zone %q, weekly %+v, %d days; want America/Los_Angeles, the week of 2026-03-02 with every participant, 2 days",
				r.Zone, r.Weekly, len(r.Series))
		}
		text := runOK(t, args("report", "-flag", checkoutFlag, "-course", course, "-goal", "enrolled", "-zone", "America/Los_Angeles")...)
		if want := fmt.Sprintf(`(?m)^week \(America/Los_Angeles\)\s+control\s+bucket 1\n2026-03-02\s+%d/%d `, sd.converted[0], sd.course[0]); !regexp.MustCompile(want).MatchString(text) {
			t.Errorf("report -zone: no lines matching %s in\n%s", want, text)
		}
	})

	t.Run("the DSN comes from EXPERIMENTS_DSN without -dsn", func(t *testing.T) {
		t.Setenv(dsnEnv, sd.dsn)
		if got, want := runOK(t, "list", "-schema", sd.schema), runOK(t, args("list")...); got != want {
			t.Errorf("with the environment:\n%s\nwant:\n%s", got, want)
		}
	})

	missing := newSchema(t) // not created
	for _, tc := range []struct {
		name string
		args []string
		env  string // EXPERIMENTS_DSN
		code int
		want string // in stderr
	}{
		{"nok, unknown command", []string{"frobnicate"}, "", exitUsage, `experiments: unknown command "frobnicate"; commands: list, report, migrate, help` + "\nRun 'experiments -h' for usage.\n"},
		{"nok, unknown flag", args("report", "-nope"), "", exitUsage, "report: flag provided but not defined: -nope\nRun 'experiments report -h' for usage."},
		{"nok, unexpected argument", args("list", "extra"), "", exitUsage, `list: unexpected argument "extra"`},
		{"nok, -buckets zero", args("report", "-buckets", "0"), "", exitUsage, `invalid value "0" for flag -buckets: want a whole number of buckets from 1 to 1024`},
		{"nok, -buckets not a number", args("report", "-buckets", "two"), "", exitUsage, `invalid value "two" for flag -buckets`},
		{"nok, -buckets too large", args("report", "-buckets", "1025"), "", exitUsage, `invalid value "1025" for flag -buckets`},
		{"nok, -buckets below a bucket with participants", args("report", "-flag", checkoutFlag, "-buckets", "1"), "", exitUsage, "-buckets 1: results: exposure bucket out of range"},
		{"nok, -weights not a number", args("report", "-weights", "90/ten"), "", exitUsage, `invalid value "90/ten" for flag -weights: weights "90/ten": weight 1 "ten": not a number`},
		{"nok, a single weight", args("report", "-weights", "1"), "", exitUsage, `invalid value "1" for flag -weights: weights 1: 1 weights: want 2 to 1024`},
		{"nok, a negative weight", args("report", "-weights", "1/-1"), "", exitUsage, `invalid value "1/-1" for flag -weights: weight 1 is -1`},
		{"nok, -weights of another count than -buckets", args("report", "-weights", "90/10", "-buckets", "3"), "", exitUsage, "-weights 90/10: 2 weights for -buckets 3"},
		{"nok, -zone unknown", args("report", "-zone", "Mars/Olympus"), "", exitUsage, `invalid value "Mars/Olympus" for flag -zone: unknown time zone`},
		{"nok, -zone Local", args("report", "-zone", "Local"), "", exitUsage, `invalid value "Local" for flag -zone: want an IANA time zone name`},
		{"nok, -by not a dimension name", args("report", "-by", "a b"), "", exitUsage, `-by: invalid: dimension name "a b"`},
		{"nok, unknown goal", args("report", "-goal", "signup"), "", exitUsage, `experiments: unknown goal "signup"; goals: enrolled, purchase` + "\n"},
		{"nok, empty -goal", args("report", "-goal", ""), "", exitUsage, "-goal is empty"},
		{"nok, configured flag without exposures", args("report", "-flag", "shop.banner"), "", exitUsage, `experiments: flag "shop.banner" has no exposures; flags with exposures: shop.checkout` + "\n"},
		{"nok, unknown flag name", args("report", "-flag", "shop.nothing"), "", exitUsage, `flag "shop.nothing" has no exposures`},
		{"nok, flag without exposures in that course", args("report", "-flag", checkoutFlag, "-course", "course-v1:X+Y+Z"), "", exitUsage,
			`flag "shop.checkout" has no exposures in course "course-v1:X+Y+Z"; its courses (-course): "", "` + course + `"`},
		{"nok, no experiment in that course", args("report", "-course", "course-v1:X+Y+Z"), "", exitUsage, `no experiment has exposures in course "course-v1:X+Y+Z"`},
		{"nok, no DSN", []string{"list", "-schema", sd.schema}, "", exitUsage, "experiments: no database: give -dsn or set EXPERIMENTS_DSN\n"},
		{"nok, schema that does not exist", []string{"report", "-dsn", sd.dsn, "-schema", missing}, "", exitUsage, fmt.Sprintf("schema %q does not exist (-schema)", missing)},
		{"nok, empty schema", []string{"list", "-dsn", sd.dsn, "-schema", ""}, "", exitUsage, "-schema is empty"},
		{"nok, database unreachable", []string{"list", "-dsn", "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=5"}, "", exitFailure,
			"experiments: sqlstore: connecting to PostgreSQL at 127.0.0.1:1: dial tcp 127.0.0.1:1: connect: connection refused\n"},
		{"nok, database unreachable for migrate", []string{"migrate", "-dsn", "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=5"}, "", exitFailure,
			"experiments: sqlstore: connecting to PostgreSQL at 127.0.0.1:1: dial tcp 127.0.0.1:1: connect: connection refused\n"},
		{"nok, a report flag before the command", append([]string{"-flag", checkoutFlag, "report"}, db...), "", exitUsage,
			"experiments: flag provided but not defined: -flag (before the command, only -dsn, -schema and -json)\nRun 'experiments -h' for usage.\n"},
		{"nok, unknown help topic", []string{"help", "nope"}, "", exitUsage, "help nope: unknown command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(dsnEnv, tc.env)
			code, stdout, stderr := runCLI(t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Errorf("%q: exit status %d, stderr:\n%s\nwant status %d and %q", tc.args, code, stderr, tc.code, tc.want)
			}
			if stdout != "" {
				t.Errorf("%q: stdout %q, want nothing", tc.args, stdout)
			}
		})
	}
	t.Run("a schema that does not exist is not created", func(t *testing.T) {
		var n int
		if err := testDB(t).Get(&n, "SELECT count(*) FROM pg_namespace WHERE nspname = $1", missing); err != nil || n != 0 {
			t.Errorf("schema %s: %d found (%v), want none", missing, n, err)
		}
	})
}

func TestSchemaWithoutStore(t *testing.T) {
	schema := newSchema(t)
	if _, err := testDB(t).Exec("CREATE SCHEMA " + pq.QuoteIdentifier(schema)); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, "list", "-dsn", testDSN(), "-schema", schema)
	if want := fmt.Sprintf("schema %q holds no experiments store", schema); code != exitUsage || !strings.Contains(stderr, want) {
		t.Errorf("exit status %d, stderr:\n%s\nwant 2 and %q", code, stderr, want)
	}
	var n int
	if err := testDB(t).Get(&n, "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1", schema); err != nil || n != 0 {
		t.Errorf("%d tables created in %s (%v), want none", n, schema, err)
	}
}

func TestEmptyStore(t *testing.T) {
	schema := newSchema(t)
	openTestStore(t, schema).Close()
	db := []string{"-dsn", testDSN(), "-schema", schema}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"ok, list says there is nothing", append([]string{"list"}, db...), "no experiment has exposures yet\n\nno goals: declare them with SetGoal\n"},
		{"ok, list -json has empty lists", append([]string{"list", "-json"}, db...),
			"{\n  \"experiments\": [],\n  \"flags_without_exposures\": [],\n  \"goals\": []\n}\n"},
		{"ok, report says there is nothing", append([]string{"report"}, db...), "no experiment has exposures yet\n"},
		{"ok, report -json is an empty array", append([]string{"report", "-json"}, db...), "[]\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tc.args...)
			if code != exitOK || stdout != tc.want || stderr != "" {
				t.Errorf("%q: exit status %d, stdout:\n%s\nstderr:\n%s\nwant 0 and:\n%s", tc.args, code, stdout, stderr, tc.want)
			}
		})
	}
	code, _, stderr := runCLI(t, append([]string{"report", "-goal", "enrolled"}, db...)...)
	if want := `unknown goal "enrolled"; the store has no goals`; code != exitUsage || !strings.Contains(stderr, want) {
		t.Errorf("report -goal in a store without goals: exit status %d, stderr:\n%s\nwant 2 and %q", code, stderr, want)
	}
}

func TestHelp(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-h"}, "experiments report [-dsn DSN]"},
		{[]string{"help"}, "experiments report [-dsn DSN]"},
		{[]string{"list", "-h"}, "experiments report [-dsn DSN]"},
		{[]string{"report", "-h"}, "-course '' means the\n              experiment without a course"},
		{[]string{"help", "report"}, "-buckets number"},
		{[]string{"help", "migrate"}, "-print"},
		{[]string{"migrate", "-h"}, "experiments migrate [-dsn DSN] [-schema S] [-print] [-json]"},
		{[]string{"-json", "-h"}, "-dsn, -schema and -json may also come before the command"},
	} {
		code, stdout, stderr := runCLI(t, tc.args...)
		if code != exitOK || !strings.Contains(stdout, tc.want) || stderr != "" {
			t.Errorf("%q: exit status %d, stdout:\n%s\nstderr: %s\nwant 0 and %q", tc.args, code, stdout, stderr, tc.want)
		}
	}
}

// TestClosesTheStore checks that no connection of the command outlives
// it: the pool, the LISTEN connection and the schema check.
func TestClosesTheStore(t *testing.T) {
	sd := seedStore(t)
	app := "exptest_cli_" + sd.schema[len(sd.schema)-12:]
	u, err := url.Parse(sd.dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("application_name", app)
	u.RawQuery = q.Encode()
	for _, args := range [][]string{
		{"list", "-dsn", u.String(), "-schema", sd.schema},
		{"report", "-dsn", u.String(), "-schema", sd.schema},
		{"report", "-dsn", u.String(), "-schema", sd.schema, "-goal", "nope"},
	} {
		if code, _, stderr := runCLI(t, args...); code != exitOK && code != exitUsage {
			t.Fatalf("%q: exit status %d: %s", args, code, stderr)
		}
	}
	// The server ends a backend shortly after its client closes it.
	db := testDB(t)
	deadline := time.Now().Add(5 * time.Second)
	for {
		var n int
		if err := db.Get(&n, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections of the command still open 5 s after it returned", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// decodeStrict decodes s, one JSON document, into v.
func decodeStrict(t *testing.T, s string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decoding %T: %v\n%s", v, err, s)
	}
	if dec.More() {
		t.Fatalf("more than one JSON document:\n%s", s)
	}
}
