package results_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/results"
)

// population returns n participants of bucket exposed at hour 0, the
// first converted of whom reach goal at hour 1.
func population(bucket, n, converted int, goal string) ([]experiments.Exposure, []experiments.Conversion) {
	var es []experiments.Exposure
	var cs []experiments.Conversion
	for i := range n {
		user := fmt.Sprintf("b%d-u%d", bucket, i)
		es = append(es, expose(user, bucket, 0))
		if i < converted {
			cs = append(cs, convert(goal, user, 1, 0))
		}
	}
	return es, cs
}

// populations concatenates population(i, sizes[i][0], sizes[i][1], goal).
func populations(goal string, sizes ...[2]int) *results.Memory {
	var es []experiments.Exposure
	var cs []experiments.Conversion
	for i, s := range sizes {
		e, c := population(i, s[0], s[1], goal)
		es, cs = append(es, e...), append(cs, c...)
	}
	return results.NewMemory(es, cs)
}

func mustBuild(t *testing.T, src results.Source, q results.Query) results.Report {
	t.Helper()
	r, err := results.Build(context.Background(), src, q)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestBuildRatesAndVerdict(t *testing.T) {
	tests := []struct {
		name         string
		sizes        [][2]int // participants, converted per bucket
		weights      []float64
		wantOutcome  results.Outcome
		wantText     string
		wantMismatch bool
	}{
		{
			name:        "ok, a variant that converts better beats control",
			sizes:       [][2]int{{1000, 48}, {1000, 70}},
			wantOutcome: results.OutcomeSignificant,
			wantText:    "bucket 1 beats control with 96% confidence",
		},
		{
			name:        "ok, a variant that converts worse loses to control",
			sizes:       [][2]int{{1000, 70}, {1000, 48}},
			wantOutcome: results.OutcomeSignificant,
			wantText:    "control beats bucket 1 with 96% confidence",
		},
		{
			name:        "ok, small buckets are too early to tell",
			sizes:       [][2]int{{50, 2}, {50, 20}},
			wantOutcome: results.OutcomeTooEarly,
			wantText:    results.TooEarlyText,
		},
		{
			name:         "nok, a skewed split is a sample ratio mismatch whatever the rates",
			sizes:        [][2]int{{300, 15}, {200, 40}},
			wantOutcome:  results.OutcomeMismatch,
			wantText:     results.MismatchText,
			wantMismatch: true,
		},
		{
			name:        "ok, the same split is no mismatch when the weights expect it",
			sizes:       [][2]int{{300, 15}, {200, 40}},
			weights:     []float64{60, 40},
			wantOutcome: results.OutcomeSignificant,
			wantText:    "bucket 1 beats control with 99% confidence",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := populations("signup", tt.sizes...)
			r := mustBuild(t, src, results.Query{Experiment: testExperiment, Goal: signup, Weights: tt.weights})

			if r.Verdict.Outcome != tt.wantOutcome.String() || r.Verdict.Text != tt.wantText {
				t.Errorf("verdict %q: %q (%s), want %q: %q", r.Verdict.Outcome, r.Verdict.Text, r.Verdict.Detail, tt.wantOutcome, tt.wantText)
			}
			if r.SRM.Mismatch != tt.wantMismatch {
				t.Errorf("SRM.Mismatch = %v (p = %v), want %v", r.SRM.Mismatch, r.SRM.PValue, tt.wantMismatch)
			}
			if r.MeansVerdict != nil || r.Means != nil {
				t.Errorf("a goal without a value has Means %v, MeansVerdict %v", r.Means, r.MeansVerdict)
			}

			// The report holds exactly what the package's functions give
			// on the hand-computed buckets.
			var buckets []results.Bucket
			var observed []int64
			for i, s := range tt.sizes {
				buckets = append(buckets, results.Bucket{Index: i, Participants: int64(s[0]), Conversions: int64(s[1])})
				observed = append(observed, int64(s[0]))
			}
			for i, b := range r.Buckets {
				if b.Bucket() != buckets[i] || b.Conversions != b.Converted || b.Rate != buckets[i].Rate() || b.Value != nil {
					t.Errorf("bucket %d = %+v, want %+v with Conversions = Converted and no Value", i, b, buckets[i])
				}
			}
			cmps, err := results.AgainstControl(buckets, results.CompareRates)
			if err != nil {
				t.Fatal(err)
			}
			c := cmps[0]
			want := results.ReportComparison{Variant: 1, ControlValue: c.ControlValue, VariantValue: c.VariantValue,
				Difference: results.ReportInterval(c.Difference), Lift: &results.ReportInterval{Estimate: c.Lift.Estimate, Low: c.Lift.Low, High: c.Lift.High},
				Statistic: c.Statistic, PValue: c.PValue}
			if len(r.Rates) != 1 || !reflect.DeepEqual(r.Rates[0], want) {
				t.Errorf("Rates = %+v, want [%+v]", r.Rates, want)
			}
			srm := results.SampleRatioMismatch(observed, tt.weights)
			if r.SRM.PValue != srm.PValue || r.SRM.ChiSquare != srm.ChiSquare || !reflect.DeepEqual(r.SRM.Observed, observed) {
				t.Errorf("SRM = %+v, want %+v", r.SRM, srm)
			}
			if v := results.Verdict(srm, cmps); r.Verdict.Detail != v.Detail || len(r.Verdict.Findings) != len(v.Findings) {
				t.Errorf("Verdict = %+v, want %+v", r.Verdict, v)
			}
		})
	}
}

// valueData: bucket 0 has a (10 + 5), b and g (nothing); bucket 1 has c
// (7), d (3 + 4), e and f (nothing); bucket 2 is empty.
func valueData() *results.Memory {
	return results.NewMemory(
		[]experiments.Exposure{
			expose("a", 0, 0), expose("b", 0, 0), expose("g", 0, 0),
			expose("c", 1, 0), expose("d", 1, 0), expose("e", 1, 0), expose("f", 1, 0),
		},
		[]experiments.Conversion{
			convert("purchase", "a", 1, 10), convert("purchase", "a", 2, 5),
			convert("purchase", "c", 1, 7),
			convert("purchase", "d", 1, 3), convert("purchase", "d", 2, 4),
			convert("purchase", "b", -1, 1000), // before exposure
		})
}

func TestBuildValueSummaries(t *testing.T) {
	ptr := func(x float64) *float64 { return &x }
	tests := []struct {
		name string
		goal experiments.Goal
		want []*float64 // Value per bucket
	}{
		{"ok, a sum goal reports the total", experiments.Goal{Name: "purchase", Value: experiments.ValueSum}, []*float64{ptr(15), ptr(14), ptr(0)}},
		{"ok, an average goal reports the total per conversion", experiments.Goal{Name: "purchase", Value: experiments.ValueAverage}, []*float64{ptr(7.5), ptr(14.0 / 3), ptr(0)}},
		{"ok, a Once average goal reports the total per converted participant", experiments.Goal{Name: "purchase", Once: true, Value: experiments.ValueAverage}, []*float64{ptr(15), ptr(7), ptr(0)}},
		{"ok, a per-participant goal reports the total per participant", experiments.Goal{Name: "purchase", Value: experiments.ValuePerParticipant}, []*float64{ptr(5), ptr(3.5), ptr(0)}},
		{"ok, a count goal reports no value", experiments.Goal{Name: "purchase"}, []*float64{nil, nil, nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustBuild(t, valueData(), results.Query{Experiment: testExperiment, Goal: tt.goal, Buckets: 3})
			if len(r.Buckets) != 3 {
				t.Fatalf("%d buckets, want 3", len(r.Buckets))
			}
			for i, b := range r.Buckets {
				if !reflect.DeepEqual(b.Value, tt.want[i]) {
					t.Errorf("bucket %d: Value = %v, want %v", i, deref(b.Value), deref(tt.want[i]))
				}
			}
			valued := tt.goal.Value != experiments.ValueCount
			if got := r.Means != nil && r.MeansVerdict != nil; got != valued {
				t.Fatalf("Means %v and MeansVerdict %v; want them %v", r.Means, r.MeansVerdict, valued)
			}
			if !valued {
				if b := r.Buckets[0]; b.ValueSum != 0 || b.Mean != 0 {
					t.Errorf("count goal: bucket 0 has ValueSum %v, Mean %v; want 0", b.ValueSum, b.Mean)
				}
				return
			}
			// Mean per participant: 15/3 and 14/4, compared with Welch.
			if r.Buckets[0].Mean != 5 || r.Buckets[1].Mean != 3.5 {
				t.Errorf("means %v, %v; want 5, 3.5", r.Buckets[0].Mean, r.Buckets[1].Mean)
			}
			c := results.CompareMeans(r.Buckets[0].Bucket(), r.Buckets[1].Bucket())
			if len(r.Means) != 2 || r.Means[0].Statistic != c.Statistic || r.Means[0].DF != c.DF || r.Means[0].PValue != c.PValue {
				t.Errorf("Means[0] = %+v, want CompareMeans %+v", r.Means, c)
			}
			if e := r.Means[1].Error; !strings.Contains(e, results.ErrTooFewParticipants.Error()) {
				t.Errorf("Means[1].Error = %q, want the empty bucket's %q", e, results.ErrTooFewParticipants)
			}
		})
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestBuildComplexGoal(t *testing.T) {
	src := results.NewMemory(
		[]experiments.Exposure{expose("a", 0, 0), expose("b", 0, 0), expose("c", 1, 0), expose("d", 1, 0)},
		[]experiments.Conversion{
			convert("enrolled", "a", 1, 0), convert("video", "a", 30, 0), // reached on March 2
			convert("enrolled", "b", 1, 0),                              // no video
			convert("enrolled", "c", 1, 0), convert("video", "c", 2, 0), // reached on March 1
			convert("enrolled", "d", 1, 0), convert("video", "d", 2, 0), convert("refunded", "d", 3, 0), // excluded
		})
	r := mustBuild(t, src, query(engaged))
	want := []results.ReportBucket{
		{Index: 0, Participants: 2, Converted: 1, Conversions: 1, Rate: 0.5},
		{Index: 1, Participants: 2, Converted: 1, Conversions: 1, Rate: 0.5},
	}
	if !reflect.DeepEqual(r.Buckets, want) {
		t.Errorf("Buckets = %+v, want %+v", r.Buckets, want)
	}
	wantSeries := []results.ReportDay{
		{Day: march(1), Buckets: []results.ReportDayBucket{{Index: 0, Participants: 2}, {Index: 1, Participants: 2, Converted: 1, Rate: 0.5}}},
		{Day: march(2), Buckets: []results.ReportDayBucket{{Index: 0, Participants: 2, Converted: 1, Rate: 0.5}, {Index: 1, Participants: 2, Converted: 1, Rate: 0.5}}},
	}
	if !reflect.DeepEqual(r.Series, wantSeries) {
		t.Errorf("Series = %+v, want %+v", r.Series, wantSeries)
	}
	if r.Means != nil {
		t.Errorf("a complex goal has Means %+v", r.Means)
	}
}

func TestBuildSeries(t *testing.T) {
	// a (bucket 0) exposed March 1, converts March 3; b (bucket 2)
	// exposed and converted March 2; bucket 1 stays empty.
	src := results.NewMemory(
		[]experiments.Exposure{expose("a", 0, 0), expose("b", 2, 20)},
		[]experiments.Conversion{convert("signup", "a", 40, 0), convert("signup", "b", 21, 0)})
	r := mustBuild(t, src, query(signup))
	want := []results.ReportDay{
		{Day: march(1), Buckets: []results.ReportDayBucket{{Index: 0, Participants: 1}, {Index: 1}, {Index: 2}}},
		{Day: march(2), Buckets: []results.ReportDayBucket{{Index: 0, Participants: 1}, {Index: 1}, {Index: 2, Participants: 1, Converted: 1, Rate: 1}}},
		{Day: march(3), Buckets: []results.ReportDayBucket{{Index: 0, Participants: 1, Converted: 1, Rate: 1}, {Index: 1}, {Index: 2, Participants: 1, Converted: 1, Rate: 1}}},
	}
	if !reflect.DeepEqual(r.Series, want) {
		t.Errorf("Series = %+v\nwant %+v", r.Series, want)
	}
}

// badSource returns fixed aggregates, to check that Build refuses those
// that break the Source contract.
type badSource results.Aggregates

func (s badSource) Experiments(context.Context) ([]results.Experiment, error) {
	return []results.Experiment{testExperiment}, nil
}

func (s badSource) Aggregate(context.Context, results.Query) (results.Aggregates, error) {
	return results.Aggregates(s), nil
}

func TestBuildErrors(t *testing.T) {
	src := populations("signup", [2]int{10, 1}, [2]int{10, 2}, [2]int{10, 3})
	tests := []struct {
		name    string
		src     results.Source
		query   results.Query
		want    error
		mention string
	}{
		{"nok, an unknown flag", src, results.Query{Experiment: results.Experiment{Flag: "shop.unknown"}, Goal: signup}, results.ErrNoExposures, "experiment shop.unknown: no exposures"},
		{"nok, an unknown course", src, results.Query{Experiment: results.Experiment{Flag: testFlag, CourseKey: "course-v1:X"}, Goal: signup}, results.ErrNoExposures, testFlag + " in course-v1:X"},
		{"nok, an invalid goal", src, query(experiments.Goal{Name: "a b"}), experiments.ErrInvalid, `goal name "a b"`},
		{"nok, a complex goal that includes itself", src, query(experiments.Goal{Name: "g", Include: []string{"g"}}), experiments.ErrInvalid, "the goal itself"},
		{"nok, fewer buckets than the data hold", src, results.Query{Experiment: testExperiment, Goal: signup, Buckets: 2}, results.ErrBucketOutOfRange, "bucket 2"},
		{"nok, fewer weights than the data hold buckets", src, results.Query{Experiment: testExperiment, Goal: signup, Weights: []float64{1, 1}}, results.ErrBucketOutOfRange, "2 buckets"},
		{"nok, a NaN weight", src, results.Query{Experiment: testExperiment, Goal: signup, Weights: []float64{1, 1, nan()}}, experiments.ErrInvalid, "weight 2 is NaN"},
		{"nok, a subnormal weight", src, results.Query{Experiment: testExperiment, Goal: signup, Weights: []float64{1, 1e-320, 1}}, experiments.ErrInvalid, "weight 1"},
		{"nok, a weight whose sum overflows", src, results.Query{Experiment: testExperiment, Goal: signup, Weights: []float64{1e308, 1e308, 1}}, experiments.ErrInvalid, "weight 0"},
		{"nok, more buckets than a flag can have", src, results.Query{Experiment: testExperiment, Goal: signup, Buckets: results.MaxBuckets + 1}, experiments.ErrInvalid, "buckets"},
		{"nok, a source that skips a bucket", badSource{Buckets: []results.BucketAggregate{agg(0, 1, 0, 0, 0, 0), agg(2, 1, 0, 0, 0, 0)}}, query(signup), results.ErrInvalidBucket, "bucket 2 at position 1"},
		{"nok, a source that returns no bucket", badSource{}, query(signup), results.ErrInvalidBucket, "no bucket"},
		{"nok, a source that counts fewer conversions than converted participants", badSource{Buckets: []results.BucketAggregate{agg(0, 5, 3, 2, 0, 0)}}, query(pageview), results.ErrInvalidBucket, "2 conversions for 3 converted"},
		{"nok, a source that counts a Once goal twice", badSource{Buckets: []results.BucketAggregate{agg(0, 5, 3, 4, 0, 0)}}, query(signup), results.ErrInvalidBucket, "4 conversions for 3 converted"},
		{"nok, a source with a NaN sum", badSource{Buckets: []results.BucketAggregate{agg(0, 5, 3, 3, nan(), 0)}}, query(purchase), results.ErrInvalidBucket, "not finite"},
		{"nok, a source with a daily row outside the buckets", badSource{Buckets: []results.BucketAggregate{agg(0, 5, 3, 3, 0, 0)}, Daily: []results.DailyBucket{daily(1, 1, 5, 3)}}, query(signup), results.ErrInvalidBucket, "2026-03-01 bucket 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := results.Build(context.Background(), tt.src, tt.query)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.mention) || !strings.HasPrefix(err.Error(), "results: ") {
				t.Errorf("err = %q, want it to start with %q and mention %q", err, "results: ", tt.mention)
			}
		})
	}
}

func nan() float64 { var zero float64; return zero / zero }

func TestBuildWeightsSetTheNumberOfBuckets(t *testing.T) {
	src := populations("signup", [2]int{100, 5}, [2]int{100, 5})
	r := mustBuild(t, src, results.Query{Experiment: testExperiment, Goal: signup, Weights: []float64{1, 1, 0}})
	if len(r.Buckets) != 3 || r.Buckets[2].Participants != 0 {
		t.Fatalf("buckets %+v, want 3, the last empty", r.Buckets)
	}
	if r.SRM.Mismatch || r.SRM.Error != "" || !reflect.DeepEqual(r.SRM.Weights, []float64{1, 1, 0}) {
		t.Errorf("SRM = %+v, want no mismatch with the weights given", r.SRM)
	}
}

func TestReportJSONRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		src   results.Source
		query results.Query
	}{
		{"ok, a value goal with an empty bucket and comparisons that could not run", valueData(),
			results.Query{Experiment: testExperiment, Goal: experiments.Goal{Name: "purchase", Value: experiments.ValueAverage}, Buckets: 3}},
		{"ok, a significant result", populations("signup", [2]int{1000, 48}, [2]int{1000, 70}), query(signup)},
		{"ok, a sample ratio mismatch", populations("signup", [2]int{300, 15}, [2]int{200, 40}), query(signup)},
		{"ok, a single bucket", populations("signup", [2]int{10, 1}), query(signup)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustBuild(t, tt.src, tt.query)
			data, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			var back results.Report
			if err := json.Unmarshal(data, &back); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, r) {
				t.Errorf("round trip changed the report:\n%s\n%+v\nwant\n%+v", data, back, r)
			}
			var generic map[string]any
			if err := json.Unmarshal(data, &generic); err != nil {
				t.Fatal(err)
			}
			for _, key := range []string{"experiment", "goal", "buckets", "rates", "srm", "verdict", "series"} {
				if _, ok := generic[key]; !ok {
					t.Errorf("JSON has no %q: %s", key, data)
				}
			}
		})
	}
}

func TestReportJSONFieldNames(t *testing.T) {
	r := mustBuild(t, valueData(), results.Query{Experiment: results.Experiment{Flag: testFlag}, Goal: purchase, Buckets: 3})
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"experiment":{"flag":"shop.checkout"}`,
		`"goal":{"name":"purchase","value":"sum"}`,
		`{"index":0,"participants":3,"converted":1,"conversions":2,"rate":0.3333333333333333,"value_sum":15,"value_sum_squares":225,"mean":5,"value":15}`,
		`"error":"bucket 2: no participants"`,
		`"error":"bucket 2: 0 participants: fewer than two participants"`,
		`"outcome":"too early"`,
		`"day":"2026-03-01T00:00:00Z"`,
	} {
		if !bytes.Contains(data, []byte(want)) {
			t.Errorf("JSON lacks %s:\n%s", want, data)
		}
	}
}

func TestReportWriteText(t *testing.T) {
	tests := []struct {
		name  string
		src   results.Source
		query results.Query
		want  string
	}{
		{
			name: "ok, a rate goal with a winner",
			src: func() results.Source {
				es, cs := population(0, 1000, 48, "signup")
				e1, c1 := population(1, 1000, 70, "signup")
				es = append(es, e1...)
				for i := range es {
					es[i].CourseKey = "course-v1:edX+Demo+2026"
				}
				// 30 of bucket 1's participants arrive on March 2 and
				// convert on March 3.
				for i := range es[1000:1030] {
					es[1000+i].Time = hour(24)
				}
				for i := range c1[:30] {
					c1[i].Time = hour(48)
				}
				return results.NewMemory(es, append(cs, c1...))
			}(),
			query: results.Query{Experiment: results.Experiment{Flag: testFlag, CourseKey: "course-v1:edX+Demo+2026"}, Goal: signup,
				Zone: losAngeles},
			want: `experiment    shop.checkout in course-v1:edX+Demo+2026
goal          signup (once per participant)
participants  2000
verdict       bucket 1 beats control with 96% confidence
              1 comparison read
split         ok: chi-square 0 on 1 df, p = 1.0000

bucket    participants  converted  rate   difference                lift               p
control   1000          48         4.80%
bucket 1  1000          70         7.00%  +2.20 pts [+0.14, +4.26]  +46% [+2%, +108%]  0.0368

day         control       bucket 1
2026-03-01  48/1000 4.8%  40/970 4.1%
2026-03-02  48/1000 4.8%  40/1000 4.0%
2026-03-03  48/1000 4.8%  70/1000 7.0%

week (America/Los_Angeles)  control       bucket 1
2026-02-23                  48/1000 4.8%  40/970 4.1%
2026-03-02                  48/1000 4.8%  70/1000 7.0%
`,
		},
		{
			name:  "ok, a value goal with an empty bucket",
			src:   valueData(),
			query: results.Query{Experiment: testExperiment, Goal: purchase, Buckets: 3},
			want: `experiment     shop.checkout
goal           purchase (every conversion counts, value: sum)
participants   7
verdict        too early to tell
               control has 3 participants, 100 needed; bucket 2 not compared: bucket 2: no participants
value verdict  too early to tell
               control has 3 participants, 100 needed; bucket 2 not compared: bucket 2: 0 participants: fewer than two participants
split          ok: chi-square 3.71 on 2 df, p = 0.1561

bucket    participants  converted  rate    difference                   lift                p
control   3             1          33.33%
bucket 1  4             2          50.00%  +16.67 pts [-55.77, +89.10]  +50% [-77%, +880%]  0.6592
bucket 2  0             0          0.00%   n/a                          n/a                 n/a

bucket    conversions  sum    mean  difference              lift                p
control   2            15.00  5.00
bucket 1  3            14.00  3.50  -1.50 [-19.98, +16.98]  -30% [-93%, +573%]  0.8011
bucket 2  0            0.00   0.00  n/a                     n/a                 n/a

day         control    bucket 1   bucket 2
2026-03-01  1/3 33.3%  2/4 50.0%  0/0 0.0%

week (UTC)  control    bucket 1   bucket 2
2026-02-23  1/3 33.3%  2/4 50.0%  0/0 0.0%
`,
		},
		{
			name:  "nok, a skewed split reads as a sample ratio mismatch",
			src:   populations("signup", [2]int{300, 15}, [2]int{200, 40}),
			query: query(engaged),
			want: `experiment    shop.checkout
goal          engaged (complex: all of enrolled, video; none of refunded)
participants  500
verdict       sample ratio mismatch: investigate before reading results
              participants per bucket [300 200], expected [250 250]: chi-square 20 on 1 df, p = 7.7e-06 < 0.001
split         MISMATCH: observed [300 200], expected [250 250], p < 0.0001

bucket    participants  converted  rate   difference  lift  p
control   300           0          0.00%
bucket 1  200           0          0.00%  n/a         n/a   n/a

day         control     bucket 1
2026-03-01  0/300 0.0%  0/200 0.0%

week (UTC)  control     bucket 1
2026-02-23  0/300 0.0%  0/200 0.0%
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustBuild(t, tt.src, tt.query)
			var sb strings.Builder
			if err := r.WriteText(&sb); err != nil {
				t.Fatal(err)
			}
			if got := sb.String(); got != tt.want {
				t.Errorf("WriteText =\n%s\nwant\n%s", got, tt.want)
			}
			// ReportSRM.String is the split line.
			if !regexp.MustCompile(`(?m)^split +` + regexp.QuoteMeta(r.SRM.String()) + `$`).MatchString(tt.want) {
				t.Errorf("SRM.String() = %q, not the split line of\n%s", r.SRM.String(), tt.want)
			}
		})
	}
}

func TestReportJSONOfAllCourses(t *testing.T) {
	q := results.Query{Experiment: results.Experiment{Flag: testFlag, AllCourses: true}, Goal: signup}
	r := mustBuild(t, populations("signup", [2]int{10, 1}, [2]int{10, 2}), results.Query{Experiment: testExperiment, Goal: signup})
	r.Experiment = q.Experiment
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if want := `"experiment":{"flag":"shop.checkout","all_courses":true}`; !bytes.Contains(data, []byte(want)) {
		t.Errorf("JSON lacks %s:\n%s", want, data)
	}
	var back results.Report
	if err := json.Unmarshal(data, &back); err != nil || back.Experiment != q.Experiment {
		t.Errorf("round trip: %v, experiment %+v", err, back.Experiment)
	}
	if got, want := q.Experiment.String(), "shop.checkout in all courses"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
