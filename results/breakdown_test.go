package results_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/results"
)

var losAngeles = func() *time.Location {
	loc, err := time.LoadLocation("America/Los_Angeles")
	if err != nil {
		panic(err)
	}
	return loc
}()

func utc(s string) time.Time {
	t, err := time.Parse(time.DateTime, s)
	if err != nil {
		panic(err)
	}
	return t
}

func date(s string) time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return t
}

func dims(kv ...string) experiments.Dimensions {
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	d, err := experiments.NewDimensions(m)
	if err != nil {
		panic(err)
	}
	return d
}

// Weeks start on Monday at midnight in the query's zone, on both sides
// of Los Angeles' DST changes (2026-03-08 and 2026-11-01, both Sundays):
// midnight is 08:00 UTC in winter and 07:00 UTC in summer.
func TestMemoryWeeklyAcrossDST(t *testing.T) {
	exposures := []struct {
		at   string // UTC
		week string // its week in Los Angeles
		utc  string // its week in UTC
	}{
		{"2026-03-02 07:59:59", "2026-02-23", "2026-03-02"}, // Sunday 23:59:59 PST
		{"2026-03-02 08:00:00", "2026-03-02", "2026-03-02"}, // Monday 00:00 PST
		{"2026-03-09 06:59:59", "2026-03-02", "2026-03-09"}, // Sunday 23:59:59 PDT, the day DST began
		{"2026-03-09 07:00:00", "2026-03-09", "2026-03-09"}, // Monday 00:00 PDT
		{"2026-10-26 06:59:59", "2026-10-19", "2026-10-26"},
		{"2026-10-26 07:00:00", "2026-10-26", "2026-10-26"},
		{"2026-11-02 07:59:59", "2026-10-26", "2026-11-02"}, // Sunday 23:59:59 PST, the day DST ended
		{"2026-11-02 08:00:00", "2026-11-02", "2026-11-02"},
	}
	var es []experiments.Exposure
	var cs []experiments.Conversion
	wantLA, wantUTC := map[string]int64{}, map[string]int64{}
	for i, e := range exposures {
		user := fmt.Sprint("u", i)
		es = append(es, experiments.Exposure{Flag: testFlag, UserID: user, Time: utc(e.at)})
		wantLA[e.week]++
		wantUTC[e.utc]++
	}
	// u0 converts on Monday 9 March 00:00 PDT: the week of 9 March in
	// Los Angeles and in UTC.
	cs = append(cs, experiments.Conversion{Goal: "signup", UserID: "u0", Time: utc("2026-03-09 07:00:00")})
	m := results.NewMemory(es, cs)
	for _, c := range []struct {
		name string
		zone *time.Location
		want map[string]int64
	}{{"Los Angeles", losAngeles, wantLA}, {"UTC by default", nil, wantUTC}} {
		t.Run(c.name, func(t *testing.T) {
			agg, err := m.Aggregate(context.Background(), results.Query{Experiment: testExperiment, Goal: signup, Zone: c.zone})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]int64{}
			var conversions []string
			for _, w := range agg.Weekly {
				if w.Day.Location() != time.UTC || w.Day.Hour() != 0 || w.Day.Weekday() != time.Monday {
					t.Errorf("week %v: want a Monday at midnight UTC", w.Day)
				}
				if w.Participants > 0 {
					got[w.Day.Format(time.DateOnly)] = w.Participants
				}
				if w.Conversions > 0 {
					conversions = append(conversions, w.Day.Format(time.DateOnly))
				}
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("participants per week = %v, want %v", got, c.want)
			}
			if !reflect.DeepEqual(conversions, []string{"2026-03-09"}) {
				t.Errorf("conversion weeks = %v, want [2026-03-09]", conversions)
			}
			// The daily rows stay in UTC whatever the zone.
			if d := agg.Daily[0].Day; !d.Equal(date("2026-03-02")) {
				t.Errorf("first day %v, want 2026-03-02 UTC", d)
			}
		})
	}

	r, err := results.Build(context.Background(), m, results.Query{Experiment: testExperiment, Goal: signup, Zone: losAngeles})
	if err != nil {
		t.Fatal(err)
	}
	if r.Zone != "America/Los_Angeles" || len(r.Weekly) != 6 {
		t.Fatalf("Zone %q, %d weeks; want America/Los_Angeles, 6", r.Zone, len(r.Weekly))
	}
	last := r.Weekly[len(r.Weekly)-1]
	if !last.Week.Equal(date("2026-11-02")) || last.Buckets[0].Participants != 8 || last.Buckets[0].Converted != 1 {
		t.Errorf("last week %+v, want 2026-11-02 with the 8 participants, 1 converted", last)
	}
}

// In UTC, a week's rows are the sums of its days' rows.
func TestMemoryWeeklyInUTCSumsTheDays(t *testing.T) {
	m := results.NewMemory(randomData(3, 300))
	for _, g := range []experiments.Goal{signup, {Name: "purchase", Value: experiments.ValueSum}} {
		agg, err := m.Aggregate(context.Background(), results.Query{Experiment: testExperiment, Goal: g})
		if err != nil {
			t.Fatal(err)
		}
		type key struct {
			week  time.Time
			index int
		}
		sums := map[key]results.Bucket{}
		for _, d := range agg.Daily {
			monday := d.Day.AddDate(0, 0, -int((d.Day.Weekday()+6)%7))
			k := key{monday, d.Index}
			b := sums[k].Add(d.Bucket)
			b.Index = d.Index
			sums[k] = b
		}
		if len(sums) != len(agg.Weekly) {
			t.Fatalf("%d weekly rows, want %d", len(agg.Weekly), len(sums))
		}
		for _, w := range agg.Weekly {
			if s := sums[key{w.Day, w.Index}]; s != w.Bucket {
				t.Errorf("week %v bucket %d = %+v, want %+v", w.Day, w.Index, w.Bucket, s)
			}
		}
	}
}

// randomData exposes users over four weeks, in three buckets, with a
// browser dimension (or none), converting to signup and purchase.
func randomData(seed, users int) ([]experiments.Exposure, []experiments.Conversion) {
	var es []experiments.Exposure
	var cs []experiments.Conversion
	x := uint64(seed)
	next := func(n int) int { // a small LCG: deterministic, no import
		x = x*6364136223846793005 + 1442695040888963407
		return int((x >> 33) % uint64(n))
	}
	browsers := []string{"", "Chrome", "Firefox", "Safari"}
	for u := range users {
		user := fmt.Sprint("u", u)
		at := hour(next(28 * 24))
		e := experiments.Exposure{Flag: testFlag, UserID: user, Bucket: next(3), Time: at}
		if b := browsers[next(len(browsers))]; b != "" {
			e.Dimensions = dims("browser", b, "site", "s")
		}
		es = append(es, e)
		for range next(3) {
			cs = append(cs, experiments.Conversion{Goal: []string{"signup", "purchase"}[next(2)], UserID: user,
				Value: float64(next(100)), Time: at.Add(time.Duration(next(72)-12) * time.Hour)})
		}
	}
	return es, cs
}

// AggregateBy splits the participants by the dimension of their first
// exposure: each value's aggregates are those of a Memory holding only
// its participants, in as many buckets as the whole experiment has.
func TestMemoryAggregateBy(t *testing.T) {
	ctx := context.Background()
	es, cs := randomData(5, 400)
	m := results.NewMemory(es, cs)
	for _, g := range []experiments.Goal{signup, {Name: "purchase", Value: experiments.ValueAverage},
		{Name: "both", Include: []string{"signup", "purchase"}}} {
		t.Run(g.Name, func(t *testing.T) {
			q := results.Query{Experiment: testExperiment, Goal: g, Dimension: "browser", Zone: losAngeles}
			groups, err := m.AggregateBy(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			var values []string
			for _, gr := range groups {
				values = append(values, gr.Value)
				var sub []experiments.Exposure
				for _, e := range es {
					if v, _ := e.Dimensions.Get("browser"); v == gr.Value {
						sub = append(sub, e)
					}
				}
				want, err := results.NewMemory(sub, cs).Aggregate(ctx, results.Query{Experiment: testExperiment, Goal: g, Buckets: 3, Zone: losAngeles})
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(gr.Aggregates, want) {
					t.Errorf("value %q:\n%s\nwant\n%s", gr.Value, formatAggregates(gr.Aggregates), formatAggregates(want))
				}
			}
			if want := []string{"", "Chrome", "Firefox", "Safari"}; !reflect.DeepEqual(values, want) {
				t.Errorf("values %q, want %q", values, want)
			}
		})
	}
}

// The participant's dimensions are those of the exposure that makes
// them one: the earliest, and in all courses on equal times and buckets
// that of the smallest course key.
func TestMemoryAggregateByUsesTheParticipantsExposure(t *testing.T) {
	es := []experiments.Exposure{
		{Flag: testFlag, CourseKey: "b", UserID: "1", Time: hour(1), Dimensions: dims("browser", "late")},
		{Flag: testFlag, CourseKey: "a", UserID: "1", Time: hour(0), Dimensions: dims("browser", "early")},
		{Flag: testFlag, CourseKey: "b", UserID: "2", Time: hour(0), Dimensions: dims("browser", "course b")},
		{Flag: testFlag, CourseKey: "a", UserID: "2", Time: hour(0), Dimensions: dims("browser", "course a")},
		{Flag: testFlag, CourseKey: "a", UserID: "3", Time: hour(0)},
	}
	groups, err := results.NewMemory(es, nil).AggregateBy(context.Background(), results.Query{
		Experiment: results.Experiment{Flag: testFlag, AllCourses: true}, Goal: signup, Dimension: "browser"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, g := range groups {
		got[g.Value] = g.Buckets[0].Participants
	}
	if want := map[string]int64{"": 1, "early": 1, "course a": 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("participants per value %v, want %v", got, want)
	}
}

func TestQueryValidatesDimensionAndZone(t *testing.T) {
	m := results.NewMemory([]experiments.Exposure{expose("a", 0, 0)}, nil)
	ctx := context.Background()
	cases := []struct {
		name string
		q    results.Query
		want string
	}{
		{"nok, a dimension with a space", results.Query{Dimension: "a b"}, `dimension name "a b"`},
		{"nok, the local zone", results.Query{Zone: time.Local}, `zone "Local"`},
		{"nok, a fixed zone", results.Query{Zone: time.FixedZone("PST", -8*3600)}, `zone "PST"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.q.Experiment, c.q.Goal = testExperiment, signup
			_, err := m.Aggregate(ctx, c.q)
			if !errors.Is(err, experiments.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Aggregate = %v, want ErrInvalid saying %s", err, c.want)
			}
		})
	}
	if _, err := m.AggregateBy(ctx, query(signup)); !errors.Is(err, experiments.ErrInvalid) {
		t.Errorf("AggregateBy without a dimension = %v, want ErrInvalid", err)
	}
	if _, err := results.BuildBreakdown(ctx, m, query(signup)); !errors.Is(err, experiments.ErrInvalid) {
		t.Errorf("BuildBreakdown without a dimension = %v, want ErrInvalid", err)
	}
	q := query(signup)
	q.Zone = time.UTC
	if _, err := m.Aggregate(ctx, q); err != nil {
		t.Errorf("Aggregate in UTC: %v", err)
	}
}

// Each row of a breakdown is the report Build gives on that value's
// participants alone, in the whole experiment's buckets.
func TestBuildBreakdown(t *testing.T) {
	ctx := context.Background()
	es, cs := randomData(9, 600)
	m := results.NewMemory(es, cs)
	q := results.Query{Experiment: testExperiment, Goal: experiments.Goal{Name: "purchase", Value: experiments.ValueSum},
		Dimension: "browser", Weights: []float64{1, 1, 2}}
	b, err := results.BuildBreakdown(ctx, m, q)
	if err != nil {
		t.Fatal(err)
	}
	if b.Dimension != "browser" || b.Goal != "purchase" || len(b.Rows) != 4 {
		t.Fatalf("breakdown by %q of %q with %d rows, want browser, purchase, 4", b.Dimension, b.Goal, len(b.Rows))
	}
	var total int64
	for _, row := range b.Rows {
		var sub []experiments.Exposure
		for _, e := range es {
			if v, _ := e.Dimensions.Get("browser"); v == row.Value {
				sub = append(sub, e)
			}
		}
		sq := q
		sq.Dimension = ""
		want := mustBuild(t, results.NewMemory(sub, cs), sq)
		if !reflect.DeepEqual(row.Report, want) {
			t.Errorf("value %q: report differs from Build on its participants", row.Value)
		}
		if !reflect.DeepEqual(row.Report.SRM.Weights, []float64{1, 1, 2}) {
			t.Errorf("value %q: SRM weights %v", row.Value, row.Report.SRM.Weights)
		}
		total += int64(len(sub))
	}
	if total != 600 {
		t.Errorf("rows hold %d participants, want 600", total)
	}
	data, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	var back results.Breakdown
	if err := json.Unmarshal(data, &back); err != nil || !reflect.DeepEqual(back, b) {
		t.Errorf("JSON round trip: %v; equal %v", err, reflect.DeepEqual(back, b))
	}
}

func TestBuildBreakdownRefusesTooManyValues(t *testing.T) {
	var es []experiments.Exposure
	for i := range results.MaxBreakdownValues + 1 {
		e := expose(fmt.Sprint("u", i), 0, 0)
		e.Dimensions = dims("user", fmt.Sprint(i))
		es = append(es, e)
	}
	q := query(signup)
	q.Dimension = "user"
	if _, err := results.BuildBreakdown(context.Background(), results.NewMemory(es, nil), q); !errors.Is(err, results.ErrTooManyValues) {
		t.Errorf("BuildBreakdown = %v, want ErrTooManyValues", err)
	}
}

func TestBreakdownWriteText(t *testing.T) {
	var es []experiments.Exposure
	var cs []experiments.Conversion
	for i, spec := range []struct {
		browser     string
		bucket      int
		n, converts int
	}{{"Firefox", 0, 4, 1}, {"Firefox", 1, 4, 2}, {"", 0, 2, 0}, {"", 1, 2, 2}} {
		for u := range spec.n {
			user := fmt.Sprint(i, "-", u)
			e := expose(user, spec.bucket, 0)
			if spec.browser != "" {
				e.Dimensions = dims("browser", spec.browser)
			}
			es = append(es, e)
			if u < spec.converts {
				cs = append(cs, convert("signup", user, 1, 0))
			}
		}
	}
	q := query(signup)
	q.Dimension = "browser"
	b, err := results.BuildBreakdown(context.Background(), results.NewMemory(es, cs), q)
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	if err := b.WriteText(&sb); err != nil {
		t.Fatal(err)
	}
	want := `experiment  shop.checkout
goal        signup
by          browser

browser  participants  control    bucket 1    p 1     verdict
(none)   4             0/2 0.0%   2/2 100.0%  0.0455  too early to tell
Firefox  8             1/4 25.0%  2/4 50.0%   0.4652  too early to tell

2 values: p-values are not adjusted across values; a difference in one value is a lead, not a result.
`
	if got := sb.String(); got != want {
		t.Errorf("WriteText =\n%s\nwant\n%s", got, want)
	}
}
