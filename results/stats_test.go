package results_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/abkit/experiments/results"
)

// Reference figures in this file were computed with R 4.2.2 (Debian
// bookworm's r-base-core) and the epitools 0.5-10.1 package (Debian's
// r-cran-epitools), printed with sprintf("%.17g"):
//
//   - rates: prop.test(c(x_v, x_c), c(n_v, n_c), correct = FALSE) for
//     the p-value, the interval of the difference and X-squared (= z²;
//     z's sign from (p_v − p_c)); epitools::riskratio.wald on the 2×2
//     table for the risk ratio and Katz's log interval (lift = RR − 1);
//   - means: t.test(y, x, var.equal = FALSE) on the data sets below, and
//     the lift interval written out in R as
//     exp(log(m_v/m_c) ± qnorm(0.975)·√(var(x)/(n_c·m_c²) + var(y)/(n_v·m_v²))) − 1;
//   - SRM: chisq.test(obs, p = w, rescale.p = TRUE);
//   - Holm: p.adjust(p, "holm").
//
// testdata/reference.R prints every one of them.

// tight is the relative tolerance where the computation matches R's
// formula step by step: a few ulps of float64 round-off at most, apart
// from the library's special functions.
const tight = 1e-9

// near reports whether got is within rel of want, relatively, or within
// rel absolutely when want is 0.
func near(got, want, rel float64) bool {
	if got == want {
		return true
	}
	return math.Abs(got-want) <= rel*math.Max(math.Abs(want), 1e-300) || (want == 0 && math.Abs(got) <= rel)
}

func checkNear(t *testing.T, what string, got, want, rel float64) {
	t.Helper()
	if !near(got, want, rel) {
		t.Errorf("%s = %.17g, want %.17g (rel err %.3g, tolerance %g)", what, got, want, math.Abs(got-want)/math.Abs(want), rel)
	}
}

// allFinite fails the test when any number in c is NaN or infinite.
func allFinite(t *testing.T, c results.Comparison) {
	t.Helper()
	for name, x := range map[string]float64{
		"ControlValue": c.ControlValue, "VariantValue": c.VariantValue,
		"Statistic": c.Statistic, "DF": c.DF, "PValue": c.PValue,
		"Difference.Estimate": c.Difference.Estimate, "Difference.Low": c.Difference.Low, "Difference.High": c.Difference.High,
		"Lift.Estimate": c.Lift.Estimate, "Lift.Low": c.Lift.Low, "Lift.High": c.Lift.High,
	} {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			t.Errorf("%s = %v, want a finite number", name, x)
		}
	}
	if c.PValue < 0 || c.PValue > 1 {
		t.Errorf("PValue = %v, want it in [0, 1]", c.PValue)
	}
}

func TestCompareRatesAgainstR(t *testing.T) {
	type want struct {
		z, p               float64
		diff, dLow, dHigh  float64
		lift, lLow, lHigh  float64
		liftUndefined      bool
		statTol, pTol, tol float64
	}
	tests := []struct {
		name           string
		xc, nc, xv, nv int64
		want           want
	}{
		{"ok, variant higher, 48/1000 vs 70/1000", 48, 1000, 70, 1000, want{
			z: 2.0877902517333933, p: 0.036816759303461143,
			diff: 0.022000000000000006, dLow: 0.0013694820351590337, dHigh: 0.042630517964840978,
			lift: 0.45833333333333348, lLow: 0.020821252787499134, lHigh: 1.0833579878002668,
		}},
		{"ok, a million participants a bucket", 100000, 1000000, 101000, 1000000, want{
			z: 2.3518054229045831, p: 0.018682544912617342,
			diff: 0.0010000000000000009, dLow: 0.00016661418699219792, dHigh: 0.0018333858130078038,
			lift: 0.010000000000000009, lLow: 0.0016591840681763337, lHigh: 0.018410269905306142,
		}},
		{"ok, unequal sizes, not significant", 15, 250, 30, 310, want{
			z: 1.5913955922709098, p: 0.11152057566692843,
			diff: 0.036774193548387096, dLow: -0.0073822052598844154, dHigh: 0.080930592356658615,
			lift: 0.61290322580645173, lLow: -0.11214498022275465, lHigh: 1.9300468633601238,
		}},
		{"ok, control never converts, lift undefined", 0, 200, 9, 210, want{
			z: 2.9603724045768018, p: 0.0030726737153973492,
			diff: 0.042857142857142858, dLow: 0.015464216348622734, dHigh: 0.070250069365662984,
			liftUndefined: true,
		}},
		{"ok, control higher", 320, 2000, 270, 2010, want{
			z: -2.2945620063763759, p: 0.021758237735321723,
			diff: -0.02567164179104478, dLow: -0.047589338191915145, dHigh: -0.0037539453901744152,
			lift: -0.16044776119402993, lLow: -0.2771501920717151, lHigh: -0.024903992567643085,
		}},
		{"ok, control converts 100%", 50, 50, 45, 50, want{
			z: -2.2941573387056162, p: 0.02178146279111956,
			diff: -0.099999999999999978, dLow: -0.18315422946098062, dHigh: -0.016845770539019339,
			lift: -0.099999999999999978, lLow: -0.17942839635013175, lHigh: -0.012883218969369836,
		}},
		{"ok, z of 18, p far in the tail", 1000, 1000000, 2000, 1000000, want{
			z: 18.271127071421276, p: 1.4051834289045753e-74,
			diff: 0.001, dLow: 0.0008927378483901292, dHigh: 0.0011072621516098708,
			lift: 1, lLow: 0.85389480264136908, lHigh: 1.1576197280994207,
			// R's p comes from pchisq(z², 1) and ours from erfc(|z|/√2):
			// two special functions, agreeing to 1e-12 this far out.
			pTol: 1e-12,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := tt.want
			pTol := tight
			if w.pTol != 0 {
				pTol = w.pTol
			}
			c := results.CompareRates(
				results.Bucket{Index: 0, Participants: tt.nc, Conversions: tt.xc},
				results.Bucket{Index: 1, Participants: tt.nv, Conversions: tt.xv},
			)
			allFinite(t, c)
			if c.Err != nil {
				t.Fatalf("Err = %v, want nil", c.Err)
			}
			if c.Metric != results.Rates || c.DF != 0 {
				t.Errorf("Metric, DF = %v, %v; want rates, 0", c.Metric, c.DF)
			}
			checkNear(t, "ControlValue", c.ControlValue, float64(tt.xc)/float64(tt.nc), tight)
			checkNear(t, "VariantValue", c.VariantValue, float64(tt.xv)/float64(tt.nv), tight)
			checkNear(t, "Statistic", c.Statistic, w.z, tight)
			checkNear(t, "PValue", c.PValue, w.p, pTol)
			checkNear(t, "Difference.Estimate", c.Difference.Estimate, w.diff, tight)
			checkNear(t, "Difference.Low", c.Difference.Low, w.dLow, tight)
			checkNear(t, "Difference.High", c.Difference.High, w.dHigh, tight)
			if w.liftUndefined {
				if !errors.Is(c.LiftErr, results.ErrLiftUndefined) {
					t.Errorf("LiftErr = %v, want ErrLiftUndefined", c.LiftErr)
				}
				if c.Lift != (results.Interval{}) {
					t.Errorf("Lift = %+v, want zero", c.Lift)
				}
				return
			}
			if c.LiftErr != nil {
				t.Fatalf("LiftErr = %v, want nil", c.LiftErr)
			}
			checkNear(t, "Lift.Estimate", c.Lift.Estimate, w.lift, tight)
			checkNear(t, "Lift.Low", c.Lift.Low, w.lLow, tight)
			checkNear(t, "Lift.High", c.Lift.High, w.lHigh, tight)
		})
	}
}

// sums aggregates values the way a store would: n, Σv, Σv².
func sums(index int, values []float64) results.Bucket {
	b := results.Bucket{Index: index, Participants: int64(len(values))}
	for _, v := range values {
		b.ValueSum += v
		b.ValueSumSquares += v * v
	}
	return b
}

func repeat(v float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func concat(parts ...[]float64) []float64 {
	var out []float64
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// seq returns f(i) for i = 1..n, like R's f(1:n).
func seq(n int, f func(i int) float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = f(i + 1)
	}
	return out
}

func TestCompareMeansAgainstR(t *testing.T) {
	type want struct {
		meanC, varC, meanV, varV float64
		t, df, p                 float64
		diff, dLow, dHigh        float64
		lift, lLow, lHigh        float64
	}
	tests := []struct {
		name             string
		control, variant []float64
		want             want
		tol              float64
	}{
		{
			name:    "ok, small samples with unequal variances",
			control: []float64{12.1, 9.8, 11.4, 10.2, 13.5, 8.7, 10.9},
			variant: []float64{14.2, 12.8, 15.1, 11.9, 13.3, 16.0, 12.5, 14.7},
			want: want{
				meanC: 10.942857142857143, varC: 2.4961904761904767, meanV: 13.8125, varV: 2.0069642857142846,
				t: 3.6818469128216575, df: 12.225389234894639, p: 0.0030461544612305782,
				diff: 2.8696428571428569, dLow: 1.1749352419891892, dHigh: 4.5643504722965247,
				lift: 0.26223890339425582, lLow: 0.11012194869280401, lHigh: 0.4352000256530566,
			},
			tol: tight,
		},
		{
			name:    "ok, revenue per participant, mostly zero",
			control: concat(repeat(0, 40), []float64{5, 10, 20, 9.99, 49.5}),
			variant: concat(repeat(0, 35), []float64{5, 15, 20, 9.99, 49.5, 30, 12}),
			want: want{
				meanC: 2.0997777777777777, varC: 65.378229494949494, meanV: 3.3688095238095239, varV: 91.887737572590012,
				t: 0.66509373002642191, df: 80.468120188851813, p: 0.50789232754222313,
				diff: 1.2690317460317462, dLow: -2.527768649153038, dHigh: 5.0658321412165304,
				lift: 0.60436478538923244, lLow: -0.6108274399436634, lHigh: 5.6139975650503917,
			},
			tol: tight,
		},
		{
			// x <- (1:1e6) %% 100; y <- ((1:1e6) * 7) %% 101
			name:    "ok, a million participants a bucket",
			control: seq(1000000, func(i int) float64 { return float64(i % 100) }),
			variant: seq(1000000, func(i int) float64 { return float64(i * 7 % 101) }),
			want: want{
				meanC: 49.5, varC: 833.25083325083324, meanV: 50.000050000000002, varV: 849.99919999669999,
				t: 12.188187193399596, df: 1999800.0141154809, p: 3.6033166783685675e-34,
				diff: 0.50005000000000166, dLow: 0.41963766565492433, dHigh: 0.5804623343450791,
				lift: 0.010102020202020334, lLow: 0.0084707039985438826, lHigh: 0.011735975245222408,
			},
			// Student's t at 2e6 df: gonum's regularized incomplete beta
			// (a = 1e6) gives the p-value to 9e-10 of R's pt, and its
			// inverse the interval to 4e-11 of R's qt.
			tol: 1e-8,
		},
		{
			// x <- 1e6 + (1:1000) %% 3; y <- 1e6 + ((1:1200) %% 4) * 0.5
			name:    "ok, values near 1e6 with a spread near 1",
			control: seq(1000, func(i int) float64 { return 1e6 + float64(i%3) }),
			variant: seq(1200, func(i int) float64 { return 1e6 + float64(i%4)*0.5 }),
			want: want{
				meanC: 1000001, varC: 0.66666666666666663, meanV: 1000000.75, varV: 0.31276063386155128,
				t: -8.2097466488908584, df: 1714.475194171958, p: 4.3087656169376437e-16,
				diff: -0.25, dLow: -0.30972622241274717, dHigh: -0.19027377758725283,
				lift: -2.4999975001271935e-07, lLow: -3.0968373598838639e-07, lHigh: -1.9031576048433863e-07,
			},
			// Bucket.Variance's documented limit: mean²/variance ≈ 1e12
			// can cost ~12 digits. These sums are exact and the means
			// exact binary fractions, so the fused multiply-add recovers
			// the variances exactly (p within 1e-12 of R's). The lift is
			// -2.5e-7: R's log(m_v/m_c) of a ratio that close to 1 keeps
			// only ~9 significant digits, hence the tolerance.
			tol: 1e-8,
		},
		{
			name:    "ok, control constant, variant varies",
			control: repeat(3, 20),
			variant: []float64{2, 4, 3, 5, 3, 4, 6, 2, 3, 4},
			want: want{
				meanC: 3, varC: 0, meanV: 3.6000000000000001, varV: 1.6000000000000001,
				t: 1.5000000000000002, df: 9, p: 0.16785065605707472,
				diff: 0.60000000000000009, dLow: -0.3048628651192819, dHigh: 1.5048628651192821,
				lift: 0.19999999999999996, lLow: -0.034831150395703059, lHigh: 0.49196692432663558,
			},
			tol: tight,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := tt.want
			ctl, vnt := sums(0, tt.control), sums(1, tt.variant)
			checkNear(t, "control Mean", ctl.Mean(), w.meanC, tt.tol)
			checkNear(t, "control Variance", ctl.Variance(), w.varC, tt.tol)
			checkNear(t, "variant Mean", vnt.Mean(), w.meanV, tt.tol)
			checkNear(t, "variant Variance", vnt.Variance(), w.varV, tt.tol)

			c := results.CompareMeans(ctl, vnt)
			allFinite(t, c)
			if c.Err != nil || c.LiftErr != nil {
				t.Fatalf("Err, LiftErr = %v, %v; want nil", c.Err, c.LiftErr)
			}
			if c.Metric != results.Means {
				t.Errorf("Metric = %v, want means", c.Metric)
			}
			checkNear(t, "Statistic", c.Statistic, w.t, tt.tol)
			checkNear(t, "DF", c.DF, w.df, tt.tol)
			checkNear(t, "PValue", c.PValue, w.p, tt.tol)
			checkNear(t, "Difference.Estimate", c.Difference.Estimate, w.diff, tt.tol)
			checkNear(t, "Difference.Low", c.Difference.Low, w.dLow, tt.tol)
			checkNear(t, "Difference.High", c.Difference.High, w.dHigh, tt.tol)
			checkNear(t, "Lift.Estimate", c.Lift.Estimate, w.lift, tt.tol)
			checkNear(t, "Lift.Low", c.Lift.Low, w.lLow, tt.tol)
			checkNear(t, "Lift.High", c.Lift.High, w.lHigh, tt.tol)
		})
	}
}

func TestBucketDerivedValues(t *testing.T) {
	tests := []struct {
		name                 string
		b                    results.Bucket
		rate, mean, variance float64
	}{
		{"ok, no participants gives zeros", results.Bucket{}, 0, 0, 0},
		{"ok, one participant has no variance", results.Bucket{Participants: 1, Conversions: 1, ValueSum: 9.5, ValueSumSquares: 90.25}, 1, 9.5, 0},
		{"ok, constant non-representable values read as no variance", sums(0, repeat(0.1, 1000)), 0, 0.1, 0},
		// Sums that no data can give (Σv² < (Σv)²/n; Validate rejects
		// them) read as no variance.
		{"ok, inconsistent sums clamp to zero variance", results.Bucket{Participants: 4, ValueSum: 8, ValueSumSquares: 1}, 0, 2, 0},
		// R: var(c(1, 2, 3, 4)) = 1.6666666666666667
		{"ok, 1 2 3 4", sums(0, []float64{1, 2, 3, 4}), 0, 2.5, 1.6666666666666667},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.b.Rate(); got != tt.rate {
				t.Errorf("Rate() = %v, want %v", got, tt.rate)
			}
			checkNear(t, "Mean()", tt.b.Mean(), tt.mean, tight)
			checkNear(t, "Variance()", tt.b.Variance(), tt.variance, tight)
		})
	}
}

func TestCompareEdgeCases(t *testing.T) {
	tests := []struct {
		name    string
		compare func(c, v results.Bucket) results.Comparison
		c, v    results.Bucket
		err     error
	}{
		{"nok, rates, no participants at all", results.CompareRates,
			results.Bucket{}, results.Bucket{Index: 1}, results.ErrNoParticipants},
		{"nok, rates, empty variant", results.CompareRates,
			results.Bucket{Participants: 10, Conversions: 2}, results.Bucket{Index: 1}, results.ErrNoParticipants},
		{"nok, rates, no conversions in either", results.CompareRates,
			results.Bucket{Participants: 1000}, results.Bucket{Index: 1, Participants: 900}, results.ErrNoVariation},
		{"nok, rates, everyone converts in both", results.CompareRates,
			results.Bucket{Participants: 10, Conversions: 10}, results.Bucket{Index: 1, Participants: 12, Conversions: 12}, results.ErrNoVariation},
		{"nok, rates, more conversions than participants", results.CompareRates,
			results.Bucket{Participants: 10, Conversions: 11}, results.Bucket{Index: 1, Participants: 10}, results.ErrInvalidBucket},
		{"nok, rates, negative count", results.CompareRates,
			results.Bucket{Participants: -1}, results.Bucket{Index: 1, Participants: 10}, results.ErrInvalidBucket},
		{"nok, means, no participants", results.CompareMeans,
			results.Bucket{}, results.Bucket{Index: 1}, results.ErrTooFewParticipants},
		{"nok, means, a single participant", results.CompareMeans,
			results.Bucket{Participants: 1, ValueSum: 5, ValueSumSquares: 25}, sums(1, []float64{1, 2, 3}), results.ErrTooFewParticipants},
		{"nok, means, both constant", results.CompareMeans,
			sums(0, repeat(2, 50)), sums(1, repeat(3, 60)), results.ErrNoVariation},
		{"nok, means, both all zero", results.CompareMeans,
			results.Bucket{Participants: 50}, results.Bucket{Index: 1, Participants: 60}, results.ErrNoVariation},
		{"nok, means, NaN sum", results.CompareMeans,
			results.Bucket{Participants: 5, ValueSum: math.NaN()}, sums(1, []float64{1, 2, 3}), results.ErrInvalidBucket},
		{"nok, means, infinite sum of squares", results.CompareMeans,
			sums(0, []float64{1, 2}), results.Bucket{Index: 1, Participants: 5, ValueSumSquares: math.Inf(1)}, results.ErrInvalidBucket},
		{"nok, means, negative sum of squares", results.CompareMeans,
			sums(0, []float64{1, 2}), results.Bucket{Index: 1, Participants: 5, ValueSumSquares: -1}, results.ErrInvalidBucket},
		{"nok, means, sums no data can give (Σv² < (Σv)²/n)", results.CompareMeans,
			results.Bucket{Participants: 4, ValueSum: 8, ValueSumSquares: 1}, sums(1, []float64{1, 2, 3}), results.ErrInvalidBucket},
		{"nok, means, sums whose square overflows", results.CompareMeans,
			results.Bucket{Participants: 3, ValueSum: 1e200, ValueSumSquares: 1e300}, sums(1, []float64{1, 2, 3}), results.ErrInvalidBucket},
		{"nok, means, consistent sums too large to compute with", results.CompareMeans,
			results.Bucket{Participants: 1e12, ValueSum: 1e155, ValueSumSquares: 1e300}, sums(1, []float64{1, 2, 3}), results.ErrInvalidBucket},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.compare(tt.c, tt.v)
			allFinite(t, c)
			if !errors.Is(c.Err, tt.err) {
				t.Fatalf("Err = %v, want %v", c.Err, tt.err)
			}
			if c.PValue != 1 {
				t.Errorf("PValue = %v, want 1 when the test could not run", c.PValue)
			}
			if c.Statistic != 0 || c.DF != 0 || c.Difference != (results.Interval{}) || c.Lift != (results.Interval{}) {
				t.Errorf("Statistic, DF, Difference, Lift = %v, %v, %+v, %+v; want zeros", c.Statistic, c.DF, c.Difference, c.Lift)
			}
			if c.LiftErr == nil {
				t.Error("LiftErr = nil, want the test's error")
			}
		})
	}
}

func TestCompareMeansLiftUndefined(t *testing.T) {
	c := results.CompareMeans(sums(0, []float64{0, 0, 0, 0}), sums(1, []float64{0, 1, 2, 3}))
	allFinite(t, c)
	if c.Err != nil {
		t.Fatalf("Err = %v, want nil", c.Err)
	}
	if !errors.Is(c.LiftErr, results.ErrLiftUndefined) {
		t.Errorf("LiftErr = %v, want ErrLiftUndefined", c.LiftErr)
	}
	// R: t.test(c(0, 1, 2, 3), c(0, 0, 0, 0)): t = 2.3237900077244502,
	// df = 3, p-value = 0.10272807885839903, conf.int
	// -0.55426025676052082 3.5542602567605206.
	checkNear(t, "Statistic", c.Statistic, 2.3237900077244502, tight)
	checkNear(t, "DF", c.DF, 3, tight)
	checkNear(t, "PValue", c.PValue, 0.10272807885839903, tight)
	checkNear(t, "Difference.Low", c.Difference.Low, -0.55426025676052082, tight)
	checkNear(t, "Difference.High", c.Difference.High, 3.5542602567605206, tight)
}

// TestCompareNeverLeaksNaN feeds random, often degenerate, aggregates to
// both comparisons: every number must stay finite and nothing may panic.
func TestCompareNeverLeaksNaN(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	pick := func() results.Bucket {
		n := []int64{0, 1, 2, 3, 10, 1000, 1 << 40}[r.IntN(7)]
		var x int64
		switch r.IntN(4) {
		case 0:
		case 1:
			x = n
		default:
			if n > 0 {
				x = r.Int64N(n + 1)
			}
		}
		mean := []float64{0, 1e-300, 1, 1e6, 1e150}[r.IntN(5)] * r.Float64()
		sd := []float64{0, 1e-12, 1, 1e3}[r.IntN(4)]
		fn := float64(n)
		return results.Bucket{
			Participants: n, Conversions: x,
			ValueSum: mean * fn, ValueSumSquares: (mean*mean + sd*sd) * fn,
		}
	}
	for i := 0; i < 20000; i++ {
		c, v := pick(), pick()
		v.Index = 1
		allFinite(t, results.CompareRates(c, v))
		allFinite(t, results.CompareMeans(c, v))
		if t.Failed() {
			t.Fatalf("control %+v, variant %+v", c, v)
		}
	}
}

func TestAgainstControl(t *testing.T) {
	buckets := []results.Bucket{
		{Index: 2, Participants: 1000, Conversions: 70},
		{Index: 0, Participants: 1000, Conversions: 48},
		{Index: 1, Participants: 1000, Conversions: 50},
	}
	cmps, err := results.AgainstControl(buckets, results.CompareRates)
	if err != nil {
		t.Fatal(err)
	}
	if len(cmps) != 2 || cmps[0].Variant.Index != 2 || cmps[1].Variant.Index != 1 {
		t.Fatalf("variants = %+v, want buckets 2 then 1", cmps)
	}
	for _, c := range cmps {
		if c.Control.Index != 0 {
			t.Errorf("control = bucket %d, want 0", c.Control.Index)
		}
	}
	checkNear(t, "bucket 2 PValue", cmps[0].PValue, 0.036816759303461143, tight) // R, as in TestCompareRatesAgainstR

	t.Run("nok, no bucket 0", func(t *testing.T) {
		_, err := results.AgainstControl(buckets[2:], results.CompareRates)
		if !errors.Is(err, results.ErrNoControl) {
			t.Errorf("err = %v, want ErrNoControl", err)
		}
	})
	t.Run("nok, bucket given twice", func(t *testing.T) {
		_, err := results.AgainstControl(append(buckets[:2:2], results.Bucket{Index: 2}), results.CompareMeans)
		if !errors.Is(err, results.ErrInvalidBucket) {
			t.Errorf("err = %v, want ErrInvalidBucket", err)
		}
	})
	t.Run("ok, control alone gives no comparison", func(t *testing.T) {
		cmps, err := results.AgainstControl(buckets[1:2], results.CompareRates)
		if err != nil || len(cmps) != 0 {
			t.Errorf("AgainstControl = %v, %v; want empty, nil", cmps, err)
		}
	})
}

func TestSampleRatioMismatchAgainstR(t *testing.T) {
	tests := []struct {
		name         string
		participants []int64
		weights      []float64
		chi2         float64
		df           int
		p            float64
		expected     []float64
		mismatch     bool
	}{
		{"ok, even split within chance", []int64{5050, 4950}, []float64{1, 1},
			1, 1, 0.31731050786291415, []float64{5000, 5000}, false},
		{"ok, nil weights mean an even split", []int64{5050, 4950}, nil,
			1, 1, 0.31731050786291415, []float64{5000, 5000}, false},
		{"nok, 50.6% against 49.4% of 100,000", []int64{50600, 49400}, []float64{50, 50},
			14.4, 1, 0.00014780231033445406, []float64{50000, 50000}, true},
		{"ok, significant at 5% is not a mismatch at 0.1%", []int64{10165, 9835}, []float64{1, 1},
			5.4450000000000003, 1, 0.019624414976639686, []float64{10000, 10000}, false},
		{"ok, three buckets", []int64{3400, 3300, 3150}, []float64{1, 1, 1},
			9.6446700507614214, 2, 0.0080479729607294808, []float64{3283.333333333333, 3283.333333333333, 3283.333333333333}, false},
		{"ok, a 2:1:1 split", []int64{50310, 24820, 24870}, []float64{2, 1, 1},
			3.8940000000000001, 2, 0.14270153467530902, []float64{50000, 25000, 25000}, false},
		{"ok, a million a bucket", []int64{1000000, 1002000}, nil,
			1.9980019980019981, 1, 0.15750670890194149, []float64{1001000, 1001000}, false},
		{"nok, a million against 1.01 million", []int64{1000000, 1010000}, nil,
			49.75124378109453, 1, 1.7452751468538426e-12, []float64{1005000, 1005000}, true},
		// By hand, a weighted flag's 90/10 (experiments.SlotSplit: 9000 and
		// 1000 of 10,000 slots): expected 9000 and 1000 of 10,000;
		// chi-square 100²/9000 + 100²/1000 = 100/9 = 11.111…; on one df the
		// survival is erfc(√(χ²/2)) = erfc(10/(3√2)) = 0.00085812066639367
		// (R: chisq.test(c(9100, 900), p = c(0.9, 0.1))): below 0.001, a
		// mismatch. The same counts against an even split would be far off.
		{"nok, 9100/900 is a mismatch for 90/10", []int64{9100, 900}, []float64{9000, 1000},
			11.111111111111111, 1, 0.0008581206663936747, []float64{9000, 1000}, true},
		// By hand: expected 900 and 100; 5²/900 + 5²/100 = 0.2777…;
		// erfc(√0.13888…) = 0.59816145268352820.
		{"ok, 905/95 fits 90/10", []int64{905, 95}, []float64{90, 10},
			0.27777777777777778, 1, 0.5981614526835282, []float64{900, 100}, false},
		// R: chisq.test(c(50310, 24870), p = c(2, 1), rescale.p = TRUE), the
		// zero-weight bucket left out.
		{"ok, an empty zero-weight bucket takes no part", []int64{50310, 0, 24870}, []float64{2, 0, 1},
			2.1608140462889063, 1, 0.14156967238528612, []float64{50120, 0, 25060}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := results.SampleRatioMismatch(tt.participants, tt.weights)
			if s.Err != nil {
				t.Fatalf("Err = %v", s.Err)
			}
			checkNear(t, "ChiSquare", s.ChiSquare, tt.chi2, tight)
			checkNear(t, "PValue", s.PValue, tt.p, tight)
			if s.DF != tt.df || s.Mismatch != tt.mismatch {
				t.Errorf("DF, Mismatch = %d, %v; want %d, %v", s.DF, s.Mismatch, tt.df, tt.mismatch)
			}
			if len(s.Expected) != len(tt.expected) {
				t.Fatalf("Expected = %v, want %v", s.Expected, tt.expected)
			}
			for i := range s.Expected {
				checkNear(t, "Expected", s.Expected[i], tt.expected[i], tight)
			}
		})
	}
}

func TestSampleRatioMismatchEdgeCases(t *testing.T) {
	t.Run("nok, participants in a zero-weight bucket", func(t *testing.T) {
		s := results.SampleRatioMismatch([]int64{5000, 3, 5000}, []float64{1, 0, 1})
		if s.Err != nil || !s.Mismatch || s.PValue != 0 {
			t.Errorf("SRM = %+v, want a mismatch with PValue 0", s)
		}
	})
	tests := []struct {
		name         string
		participants []int64
		weights      []float64
		err          error
	}{
		{"nok, lengths differ", []int64{1, 2, 3}, []float64{1, 1}, results.ErrLengthMismatch},
		{"nok, a negative weight", []int64{1, 2}, []float64{1, -1}, results.ErrInvalidWeights},
		{"nok, a NaN weight", []int64{1, 2}, []float64{1, math.NaN()}, results.ErrInvalidWeights},
		{"nok, an infinite weight", []int64{1, 2}, []float64{1, math.Inf(1)}, results.ErrInvalidWeights},
		{"nok, all weights zero", []int64{1, 2}, []float64{0, 0}, results.ErrInvalidWeights},
		{"nok, one bucket", []int64{100}, nil, results.ErrTooFewBuckets},
		{"nok, one weighted bucket", []int64{100, 0}, []float64{1, 0}, results.ErrTooFewBuckets},
		{"nok, no buckets", nil, nil, results.ErrInvalidWeights},
		{"nok, no participants yet", []int64{0, 0}, nil, results.ErrNoParticipants},
		{"nok, negative participants", []int64{10, -1}, nil, results.ErrInvalidBucket},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := results.SampleRatioMismatch(tt.participants, tt.weights)
			if !errors.Is(s.Err, tt.err) {
				t.Fatalf("Err = %v, want %v", s.Err, tt.err)
			}
			if s.Mismatch || s.PValue != 1 {
				t.Errorf("Mismatch, PValue = %v, %v; want false, 1", s.Mismatch, s.PValue)
			}
		})
	}
	t.Run("ok, the caller's slice is copied", func(t *testing.T) {
		in := []int64{10, 12}
		s := results.SampleRatioMismatch(in, nil)
		in[0] = 99
		if s.Observed[0] != 10 {
			t.Errorf("Observed = %v, want a copy of the input", s.Observed)
		}
	})
}

func TestCumulative(t *testing.T) {
	utc := func(d int) time.Time { return time.Date(2026, 3, d, 0, 0, 0, 0, time.UTC) }
	paris := time.FixedZone("CET", 3600)
	rows := []results.DailyBucket{
		{Day: utc(3), Bucket: results.Bucket{Index: 1, Participants: 5, Conversions: 1}},
		{Day: utc(1), Bucket: results.Bucket{Index: 1, Participants: 10, Conversions: 1, ValueSum: 2}},
		{Day: utc(1), Bucket: results.Bucket{Index: 0, Participants: 12, Conversions: 3}},
		// Day 2 has no row for bucket 1; bucket 0 comes in two rows, one
		// of them in another zone but the same instant.
		{Day: utc(2), Bucket: results.Bucket{Index: 0, Participants: 4, Conversions: 1}},
		{Day: utc(2).In(paris), Bucket: results.Bucket{Index: 0, Participants: 4, Conversions: 0}},
		{Day: utc(3), Bucket: results.Bucket{Index: 0, Participants: 10, Conversions: 6}},
	}
	orig := append([]results.DailyBucket(nil), rows...)
	got := results.Cumulative(rows)
	want := []results.SeriesPoint{
		{Day: utc(1), Buckets: []results.Bucket{{Index: 0, Participants: 12, Conversions: 3}, {Index: 1, Participants: 10, Conversions: 1, ValueSum: 2}}},
		{Day: utc(2), Buckets: []results.Bucket{{Index: 0, Participants: 20, Conversions: 4}, {Index: 1, Participants: 10, Conversions: 1, ValueSum: 2}}},
		{Day: utc(3), Buckets: []results.Bucket{{Index: 0, Participants: 30, Conversions: 10}, {Index: 1, Participants: 15, Conversions: 2, ValueSum: 2}}},
	}
	if len(got) != len(want) {
		t.Fatalf("Cumulative = %+v, want %d points", got, len(want))
	}
	for i := range want {
		if !got[i].Day.Equal(want[i].Day) {
			t.Errorf("point %d: Day = %v, want %v", i, got[i].Day, want[i].Day)
		}
		if len(got[i].Buckets) != len(want[i].Buckets) {
			t.Fatalf("point %d: Buckets = %+v, want %+v", i, got[i].Buckets, want[i].Buckets)
		}
		for j := range want[i].Buckets {
			if got[i].Buckets[j] != want[i].Buckets[j] {
				t.Errorf("point %d bucket %d = %+v, want %+v", i, j, got[i].Buckets[j], want[i].Buckets[j])
			}
		}
	}
	if r := got[2].Buckets[0].Rate(); r != 1.0/3 {
		t.Errorf("cumulative control rate on day 3 = %v, want 1/3", r)
	}
	for i := range rows {
		if rows[i] != orig[i] {
			t.Fatalf("rows modified: %+v, was %+v", rows, orig)
		}
	}
	// Points own their slices: changing one changes no other.
	got[0].Buckets[0].Participants = -1
	if got[1].Buckets[0].Participants != 20 {
		t.Error("points share their Buckets slices")
	}
	if results.Cumulative(nil) != nil {
		t.Error("Cumulative(nil) != nil")
	}
}
