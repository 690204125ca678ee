package results_test

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/abkit/experiments/results"
)

func rateBuckets(counts ...[2]int64) []results.Bucket {
	out := make([]results.Bucket, len(counts))
	for i, c := range counts {
		out[i] = results.Bucket{Index: i, Conversions: c[0], Participants: c[1]}
	}
	return out
}

func mustCompare(t *testing.T, buckets []results.Bucket, compare func(c, v results.Bucket) results.Comparison) []results.Comparison {
	t.Helper()
	cmps, err := results.AgainstControl(buckets, compare)
	if err != nil {
		t.Fatal(err)
	}
	return cmps
}

func participants(buckets []results.Bucket) []int64 {
	out := make([]int64, len(buckets))
	for i, b := range buckets {
		out[i] = b.Participants
	}
	return out
}

func TestVerdict(t *testing.T) {
	tests := []struct {
		name     string
		buckets  []results.Bucket
		compare  func(c, v results.Bucket) results.Comparison
		srm      *results.SRM // nil: SampleRatioMismatch of the buckets, even split
		outcome  results.Outcome
		text     string
		detail   string // a substring of Detail
		findings []results.Finding
	}{
		{
			// R: p = 0.036816759303461143 (TestCompareRatesAgainstR).
			name:    "ok, bucket 1 beats control with 96% confidence",
			buckets: rateBuckets([2]int64{48, 1000}, [2]int64{70, 1000}),
			compare: results.CompareRates,
			outcome: results.OutcomeSignificant,
			text:    "bucket 1 beats control with 96% confidence",
			findings: []results.Finding{{Control: 0, Variant: 1, VariantWins: true, Confidence: 96,
				PValue: 0.036816759303461143, Text: "bucket 1 beats control with 96% confidence"}},
		},
		{
			// R: p = 0.021758237735321723, 1 − p = 0.978.
			name:    "ok, control beats bucket 1 with 97% confidence",
			buckets: rateBuckets([2]int64{320, 2000}, [2]int64{270, 2010}),
			compare: results.CompareRates,
			outcome: results.OutcomeSignificant,
			text:    "control beats bucket 1 with 97% confidence",
		},
		{
			// R: p = 0.11152057566692843.
			name:    "ok, not significant is too early to tell",
			buckets: rateBuckets([2]int64{15, 250}, [2]int64{30, 310}),
			compare: results.CompareRates,
			outcome: results.OutcomeTooEarly,
			text:    "too early to tell",
			detail:  "no bucket differs from control with 95% confidence yet; closest: bucket 1 at 88%",
		},
		{
			name:    "ok, too few participants is too early to tell, however large the difference",
			buckets: rateBuckets([2]int64{5, 50}, [2]int64{40, 50}),
			compare: results.CompareRates,
			outcome: results.OutcomeTooEarly,
			text:    "too early to tell",
			detail:  "control has 50 participants, 100 needed",
		},
		{
			// R: p = 0.0030726737153973492, but control expects 4.4
			// conversions (prop.test warns "Chi-squared approximation may
			// be incorrect").
			name:    "ok, too few expected conversions is too early to tell",
			buckets: rateBuckets([2]int64{0, 200}, [2]int64{9, 210}),
			compare: results.CompareRates,
			outcome: results.OutcomeTooEarly,
			text:    "too early to tell",
			detail:  "control expects 4.4 conversions or non-conversions",
		},
		{
			name:    "ok, no variation is too early to tell",
			buckets: rateBuckets([2]int64{0, 1000}, [2]int64{0, 1000}),
			compare: results.CompareRates,
			outcome: results.OutcomeTooEarly,
			text:    "too early to tell",
			detail:  "bucket 1 not compared: buckets 0 and 1: every rate is 0: no variation in the data",
		},
		{
			name:    "nok, sample ratio mismatch comes first",
			buckets: rateBuckets([2]int64{3000, 50600}, [2]int64{5000, 49400}),
			compare: results.CompareRates,
			outcome: results.OutcomeMismatch,
			text:    "sample ratio mismatch: investigate before reading results",
			detail:  "chi-square 14.4 on 1 df, p = 0.00015 < 0.001",
		},
		{
			name:    "nok, participants in a closed bucket is a mismatch",
			buckets: rateBuckets([2]int64{48, 1000}, [2]int64{70, 1000}, [2]int64{1, 3}),
			compare: results.CompareRates,
			srm:     ptr(results.SampleRatioMismatch([]int64{1000, 1000, 3}, []float64{1, 1, 0})),
			outcome: results.OutcomeMismatch,
			text:    "sample ratio mismatch: investigate before reading results",
			detail:  "bucket 2 has weight 0 but 3 participants",
		},
		{
			name:    "ok, an SRM that could not run does not block the verdict",
			buckets: rateBuckets([2]int64{48, 1000}, [2]int64{70, 1000}),
			compare: results.CompareRates,
			srm:     ptr(results.SampleRatioMismatch([]int64{1000, 1000}, []float64{1})),
			outcome: results.OutcomeSignificant,
			text:    "bucket 1 beats control with 96% confidence",
		},
		{
			// R: prop.test raw p-values against control 500/10000:
			// 0.058257806033515963, 0.00068061483057170545,
			// 0.51238482353027914; p.adjust(…, "holm"):
			// 0.11651561206703193, 0.0020418444917151162, 0.51238482353027914.
			name: "ok, three variants, Holm keeps the clear winner",
			buckets: rateBuckets([2]int64{500, 10000}, [2]int64{560, 10000},
				[2]int64{610, 10000}, [2]int64{480, 10000}),
			compare: results.CompareRates,
			outcome: results.OutcomeSignificant,
			text:    "bucket 2 beats control with 99% confidence",
			detail:  "3 comparisons read",
			findings: []results.Finding{{Control: 0, Variant: 2, VariantWins: true, Confidence: 99,
				PValue: 0.0020418444917151162, Text: "bucket 2 beats control with 99% confidence"}},
		},
		{
			// R: raw p-values 0.040656671578537591, 0.87143289383381672,
			// 0.94821370193609922; Holm: 0.12197001473561278, 1, 1.
			name: "ok, three variants, 95% alone is not enough after Holm",
			buckets: rateBuckets([2]int64{500, 10000}, [2]int64{565, 10000},
				[2]int64{505, 10000}, [2]int64{498, 10000}),
			compare: results.CompareRates,
			outcome: results.OutcomeTooEarly,
			text:    "too early to tell",
			detail:  "yet; closest: bucket 1 at 87%, after adjusting for multiple comparisons",
		},
		{
			// R: raw p-values 0.00064733780101445832,
			// 0.00068061483057170545, 0.87143289383381672; Holm:
			// 0.001942013403043375 (twice), 0.87143289383381672.
			name: "ok, two significant variants are both reported",
			buckets: rateBuckets([2]int64{500, 10000}, [2]int64{400, 10000},
				[2]int64{610, 10000}, [2]int64{505, 10000}),
			compare: results.CompareRates,
			outcome: results.OutcomeSignificant,
			text:    "control beats bucket 1 with 99% confidence; bucket 2 beats control with 99% confidence",
		},
		{
			name: "ok, a too-small bucket is left out, the others read",
			buckets: []results.Bucket{
				{Index: 0, Participants: 1000, Conversions: 48},
				{Index: 1, Participants: 1000, Conversions: 70},
				{Index: 2, Participants: 20, Conversions: 19},
			},
			compare: results.CompareRates,
			srm:     &results.SRM{},
			outcome: results.OutcomeSignificant,
			text:    "bucket 1 beats control with 96% confidence",
			detail:  "not read: bucket 2 has 20 participants, 100 needed",
		},
		{
			// m3 of TestCompareMeansAgainstR at a million a bucket: R's
			// t.test p = 3.6033166783685675e-34.
			name: "ok, means: higher mean wins",
			buckets: []results.Bucket{
				sums(0, seq(1000000, func(i int) float64 { return float64(i % 100) })),
				sums(1, seq(1000000, func(i int) float64 { return float64(i * 7 % 101) })),
			},
			compare: results.CompareMeans,
			outcome: results.OutcomeSignificant,
			text:    "bucket 1 beats control with 99% confidence",
		},
		{
			name:    "ok, no comparison is too early to tell",
			buckets: rateBuckets([2]int64{48, 1000}),
			compare: results.CompareRates,
			outcome: results.OutcomeTooEarly,
			text:    "too early to tell",
			detail:  "no comparison against control",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srm := results.SampleRatioMismatch(participants(tt.buckets), nil)
			if tt.srm != nil {
				srm = *tt.srm
			}
			r := results.Verdict(srm, mustCompare(t, tt.buckets, tt.compare))
			if r.Outcome != tt.outcome || r.Text != tt.text || r.String() != tt.text {
				t.Errorf("Verdict = %v %q, want %v %q", r.Outcome, r.Text, tt.outcome, tt.text)
			}
			if !strings.Contains(r.Detail, tt.detail) {
				t.Errorf("Detail = %q, want it to contain %q", r.Detail, tt.detail)
			}
			if (r.Outcome == results.OutcomeSignificant) != (len(r.Findings) > 0) {
				t.Errorf("Outcome %v with %d findings", r.Outcome, len(r.Findings))
			}
			if tt.findings == nil {
				return
			}
			if len(r.Findings) != len(tt.findings) {
				t.Fatalf("Findings = %+v, want %+v", r.Findings, tt.findings)
			}
			for i, want := range tt.findings {
				got := r.Findings[i]
				checkNear(t, "Finding.PValue", got.PValue, want.PValue, tight)
				got.PValue = want.PValue
				if got != want {
					t.Errorf("Finding %d = %+v, want %+v", i, got, want)
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestConfidence(t *testing.T) {
	tests := []struct {
		p    float64
		want int
	}{
		{0.03, 97},
		{0.0300000001, 96},
		{0.049, 95},
		{0.0501, 94},
		{0.2, 80},
		{0.01, 99},
		{0.001, 99},
		{1e-300, 99},
		{0, 99},
		{-0.5, 99},
		{1, 0},
		{1.5, 0},
		{math.NaN(), 0},
	}
	for _, tt := range tests {
		if got := results.Confidence(tt.p); got != tt.want {
			t.Errorf("Confidence(%v) = %d, want %d", tt.p, got, tt.want)
		}
	}
}

func TestHolmAdjustAgainstR(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want []float64
	}{
		// R: p.adjust(c(0.01, 0.04, 0.03), "holm")
		{"ok, three p-values out of order", []float64{0.01, 0.04, 0.03},
			[]float64{0.029999999999999999, 0.059999999999999998, 0.059999999999999998}},
		// R: p.adjust(c(0.02, 0.2, 0.001, 0.049), "holm")
		{"ok, four p-values, one capped by monotonicity", []float64{0.02, 0.2, 0.001, 0.049},
			[]float64{0.059999999999999998, 0.20000000000000001, 0.0040000000000000001, 0.098000000000000004}},
		{"ok, one p-value is unchanged", []float64{0.037}, []float64{0.037}},
		{"ok, adjusted p-values stop at 1", []float64{0.6, 0.7}, []float64{1, 1}},
		{"ok, none", nil, []float64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]float64(nil), tt.in...)
			got := results.HolmAdjust(in)
			if len(got) != len(tt.want) {
				t.Fatalf("HolmAdjust = %v, want %v", got, tt.want)
			}
			for i := range got {
				checkNear(t, "adjusted", got[i], tt.want[i], tight)
				if in[i] != tt.in[i] {
					t.Fatal("input modified")
				}
			}
		})
	}
}

func TestOutcomeAndMetricStrings(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{results.OutcomeTooEarly.String(), "too early"},
		{results.OutcomeSignificant.String(), "significant"},
		{results.OutcomeMismatch.String(), "sample ratio mismatch"},
		{results.Outcome(9).String(), "Outcome(9)"},
		{results.Rates.String(), "rates"},
		{results.Means.String(), "means"},
		{results.Metric(0).String(), "Metric(0)"},
	} {
		if tt.got != tt.want {
			t.Errorf("String() = %q, want %q", tt.got, tt.want)
		}
	}
	if !errors.Is(results.CompareRates(results.Bucket{}, results.Bucket{}).Err, results.ErrNoParticipants) {
		t.Error("empty buckets: want ErrNoParticipants")
	}
}
