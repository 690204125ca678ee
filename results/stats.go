package results

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"gonum.org/v1/gonum/stat/distuv"
)

// ConfidenceLevel is the coverage of every confidence interval this
// package computes: 95%, two-sided.
const ConfidenceLevel = 0.95

// SRMThreshold is the p-value below which SampleRatioMismatch reports a
// mismatch. 0.001 is the usual choice for this check: it runs on every
// experiment all the time, so it must rarely fire by chance, and a real
// assignment or logging bug drives the p-value far below it anyway.
const SRMThreshold = 0.001

// Errors a Comparison, an SRM or AgainstControl can carry. They are
// wrapped with the bucket or value involved; test with errors.Is.
var (
	// ErrInvalidBucket: a negative count, more conversions than
	// participants, value sums that are not finite or that no data can
	// give (see Bucket.Validate), sums too large to compute with, or a
	// bucket index given twice.
	ErrInvalidBucket = errors.New("invalid bucket")
	// ErrNoParticipants: a bucket in a rate comparison, or every bucket
	// of a sample-ratio check, has no participants.
	ErrNoParticipants = errors.New("no participants")
	// ErrTooFewParticipants: a bucket in a mean comparison has fewer
	// than two participants, so it has no sample variance.
	ErrTooFewParticipants = errors.New("fewer than two participants")
	// ErrNoVariation: the data do not vary (both rates 0, both rates 1,
	// or two buckets whose values are each constant), so the test
	// statistic is undefined.
	ErrNoVariation = errors.New("no variation in the data")
	// ErrLiftUndefined: the relative lift or its interval needs both
	// the control and the variant value to be positive.
	ErrLiftUndefined = errors.New("relative lift undefined")
	// ErrLengthMismatch: the participants and weights given to
	// SampleRatioMismatch differ in length.
	ErrLengthMismatch = errors.New("participants and weights differ in length")
	// ErrInvalidWeights: a weight is negative, NaN or infinite, or no
	// weight is positive.
	ErrInvalidWeights = errors.New("invalid weights")
	// ErrTooFewBuckets: fewer than two buckets have a positive weight,
	// so there is no split to check.
	ErrTooFewBuckets = errors.New("fewer than two weighted buckets")
	// ErrNoControl: AgainstControl found no bucket with Index 0.
	ErrNoControl = errors.New("no control bucket (index 0)")
)

// Bucket holds the aggregates of one bucket of one experiment, enough to
// compare conversion rates and the means of a per-participant value
// without the raw data. Bucket 0 is control.
//
// ValueSum and ValueSumSquares sum a value over every participant, those
// without a conversion counting as 0 (for example revenue per
// participant): ValueSum = Σ v, ValueSumSquares = Σ v². Leave both 0
// when only rates matter.
type Bucket struct {
	// Index is the bucket number; 0 is control.
	Index int
	// Participants counts the participants enrolled in the bucket.
	Participants int64
	// Conversions counts the participants who converted, at most
	// Participants.
	Conversions int64
	// ValueSum is Σ v over every participant.
	ValueSum float64
	// ValueSumSquares is Σ v² over every participant.
	ValueSumSquares float64
}

// Rate returns Conversions / Participants, or 0 without participants.
func (b Bucket) Rate() float64 {
	if b.Participants <= 0 {
		return 0
	}
	return float64(b.Conversions) / float64(b.Participants)
}

// Mean returns the mean value per participant, ValueSum / Participants,
// or 0 without participants.
func (b Bucket) Mean() float64 {
	if b.Participants <= 0 {
		return 0
	}
	return b.ValueSum / float64(b.Participants)
}

// relativeZeroVariance is the fraction of ValueSumSquares below which the
// centred sum of squares is taken for rounding noise: 64 ulps.
const relativeZeroVariance = 64 * 0x1p-52

// Variance returns the sample variance (denominator n-1) of the value
// per participant, or 0 with fewer than two participants.
//
// It computes the centred sum of squares as ValueSumSquares − mean ×
// ValueSum in one fused multiply-add, then divides by n−1. Sums cannot do
// better than this: the result carries a relative error of about
// ε·(1 + mean²/variance) with ε ≈ 2.2e-16 on top of whatever error the
// sums already hold. Values of a few units with a spread of the same
// order lose nothing that matters; values near 1e6 with a standard
// deviation near 1 keep only about 4 significant digits. Subtract a
// known offset from every value before summing when the mean dwarfs
// the spread (the variance does not change; the mean shifts by the
// offset). A centred sum of squares below 64 ulps of ValueSumSquares,
// or a negative one, is rounding noise and reads as 0.
func (b Bucket) Variance() float64 {
	if b.Participants < 2 {
		return 0
	}
	n := float64(b.Participants)
	mean := b.ValueSum / n
	ss := math.FMA(-mean, b.ValueSum, b.ValueSumSquares)
	if ss <= relativeZeroVariance*math.Abs(b.ValueSumSquares) {
		return 0
	}
	return ss / (n - 1)
}

// Add returns the bucket with b's Index and the counts and sums of b and
// o added, for example to merge two days.
func (b Bucket) Add(o Bucket) Bucket {
	b.Participants += o.Participants
	b.Conversions += o.Conversions
	b.ValueSum += o.ValueSum
	b.ValueSumSquares += o.ValueSumSquares
	return b
}

// inconsistentSums is how far below (Σv)²/n, relative to Σv², a sum of
// squares may be before Validate calls it impossible rather than
// rounded.
const inconsistentSums = 1e-9

// Validate reports an ErrInvalidBucket when b cannot be aggregates of
// real data: a negative count, more conversions than participants, a
// NaN or infinite sum, a negative sum of squares, or a sum of squares
// below (Σv)²/n by more than rounding (1e-9 of Σv²), which no data give.
func (b Bucket) Validate() error {
	switch {
	case b.Participants < 0 || b.Conversions < 0:
		return fmt.Errorf("bucket %d: negative count (%d participants, %d conversions): %w",
			b.Index, b.Participants, b.Conversions, ErrInvalidBucket)
	case b.Conversions > b.Participants:
		return fmt.Errorf("bucket %d: %d conversions exceed %d participants: %w",
			b.Index, b.Conversions, b.Participants, ErrInvalidBucket)
	case !finite(b.ValueSum) || !finite(b.ValueSumSquares):
		return fmt.Errorf("bucket %d: value sums %v, %v not finite: %w",
			b.Index, b.ValueSum, b.ValueSumSquares, ErrInvalidBucket)
	case b.ValueSumSquares < 0:
		return fmt.Errorf("bucket %d: negative sum of squares %v: %w",
			b.Index, b.ValueSumSquares, ErrInvalidBucket)
	}
	if b.Participants > 0 {
		// Σv² ≥ (Σv)²/n for any data; allow rounding, and fail when
		// (Σv)²/n overflows (ss is then −Inf).
		n := float64(b.Participants)
		ss := math.FMA(-(b.ValueSum / n), b.ValueSum, b.ValueSumSquares)
		if ss < -inconsistentSums*b.ValueSumSquares || math.IsInf(ss, 0) {
			return fmt.Errorf("bucket %d: sum of squares %v below (sum %v)² / %d participants: %w",
				b.Index, b.ValueSumSquares, b.ValueSum, b.Participants, ErrInvalidBucket)
		}
	}
	return nil
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// Metric names what a Comparison compares.
type Metric int

const (
	// Rates compares conversion rates with a two-proportion z-test.
	Rates Metric = iota + 1
	// Means compares mean values per participant with Welch's t-test.
	Means
)

// String returns "rates" or "means".
func (m Metric) String() string {
	switch m {
	case Rates:
		return "rates"
	case Means:
		return "means"
	}
	return fmt.Sprintf("Metric(%d)", int(m))
}

// Interval is an estimate with its ConfidenceLevel confidence interval
// [Low, High].
type Interval struct {
	Estimate, Low, High float64
}

// Comparison is the result of comparing a variant bucket with control.
// Every float field is finite: no NaN or Inf ever leaves this package.
//
// When Err is nil the test ran: Statistic, PValue and Difference hold
// its results. When Err is non-nil the test could not run (see the Err
// variables); then ControlValue and VariantValue are still set if both
// buckets are valid, PValue is 1 so that code ignoring Err reads "no
// evidence", and Statistic, DF, Difference and Lift are zero.
type Comparison struct {
	// Metric is Rates or Means.
	Metric Metric
	// Control and Variant are the compared buckets, as given.
	Control, Variant Bucket
	// ControlValue and VariantValue are the two rates or means.
	ControlValue, VariantValue float64
	// Difference is VariantValue − ControlValue with its interval.
	Difference Interval
	// Lift is the relative lift VariantValue/ControlValue − 1 with its
	// interval, set only when LiftErr is nil.
	Lift Interval
	// LiftErr is nil when Lift is set; ErrLiftUndefined (wrapped) when a
	// value is not positive; Err when the test itself could not run.
	LiftErr error
	// Statistic is z for Rates and Welch's t for Means, positive when
	// the variant is higher.
	Statistic float64
	// DF is the Welch–Satterthwaite degrees of freedom for Means, 0 for
	// Rates.
	DF float64
	// PValue is the two-sided p-value.
	PValue float64
	// Err is nil when the test ran; otherwise why it did not.
	Err error
}

// z975 is the standard normal quantile for a two-sided ConfidenceLevel
// interval, 1.959963984540054.
var z975 = distuv.UnitNormal.Quantile(1 - (1-ConfidenceLevel)/2)

// failed fills the fields a Comparison that could not run still has.
func failed(c Comparison, err error) Comparison {
	c.Err = err
	c.LiftErr = err
	c.PValue = 1
	return c
}

// CompareRates compares the conversion rates of variant and control with
// the two-proportion z-test, the test that R's prop.test(correct=FALSE)
// performs (its X-squared is z²):
//
//   - Statistic z = (p_v − p_c) / √(p(1−p)(1/n_c + 1/n_v)), with the
//     pooled rate p = (x_c + x_v) / (n_c + n_v); PValue = 2Φ(−|z|).
//   - Difference: p_v − p_c ± z₀.₉₇₅ √(p_c(1−p_c)/n_c + p_v(1−p_v)/n_v),
//     the unpooled Wald interval. Like every Wald interval it is too
//     narrow for rates near 0 or 1 in small samples (a bucket at 0% or
//     100% adds no width at all).
//   - Lift: p_v/p_c − 1 with Katz's log interval for the risk ratio,
//     exp(ln(p_v/p_c) ± z₀.₉₇₅ √(1/x_c − 1/n_c + 1/x_v − 1/n_v)) − 1, the
//     delta method on the log ratio; it needs conversions in both
//     buckets, else LiftErr is ErrLiftUndefined.
//
// Err is ErrInvalidBucket for impossible aggregates, ErrNoParticipants
// when either bucket is empty, and ErrNoVariation when both rates are 0
// or both are 1. The normal approximation wants about five expected
// conversions and five expected non-conversions per bucket; Verdict
// enforces that, CompareRates does not.
func CompareRates(control, variant Bucket) Comparison {
	c := Comparison{Metric: Rates, Control: control, Variant: variant}
	if err := errors.Join(control.Validate(), variant.Validate()); err != nil {
		return failed(c, err)
	}
	c.ControlValue, c.VariantValue = control.Rate(), variant.Rate()
	for _, b := range []Bucket{control, variant} {
		if b.Participants == 0 {
			return failed(c, fmt.Errorf("bucket %d: %w", b.Index, ErrNoParticipants))
		}
	}
	nc, nv := float64(control.Participants), float64(variant.Participants)
	xc, xv := float64(control.Conversions), float64(variant.Conversions)
	pc, pv := c.ControlValue, c.VariantValue
	pooled := (xc + xv) / (nc + nv)
	if pooled == 0 || pooled == 1 {
		return failed(c, fmt.Errorf("buckets %d and %d: every rate is %v: %w",
			control.Index, variant.Index, pooled, ErrNoVariation))
	}
	diff := pv - pc
	se := math.Sqrt(pooled * (1 - pooled) * (1/nc + 1/nv))
	c.Statistic = diff / se
	c.PValue = twoSidedNormal(c.Statistic)

	seDiff := math.Sqrt(pc*(1-pc)/nc + pv*(1-pv)/nv)
	c.Difference = Interval{Estimate: diff, Low: diff - z975*seDiff, High: diff + z975*seDiff}

	if xc == 0 || xv == 0 {
		c.LiftErr = fmt.Errorf("buckets %d and %d: %v and %v conversions: %w",
			control.Index, variant.Index, control.Conversions, variant.Conversions, ErrLiftUndefined)
		return c
	}
	seLog := math.Sqrt(1/xc - 1/nc + 1/xv - 1/nv)
	c.Lift = logInterval(pc, pv, seLog)
	return c
}

// checkFinite turns a Comparison with any non-finite number, which only
// absurd sums (beyond about 1e150) can produce, into a failed one.
func checkFinite(c Comparison) Comparison {
	for _, x := range []float64{
		c.ControlValue, c.VariantValue, c.Statistic, c.DF, c.PValue,
		c.Difference.Estimate, c.Difference.Low, c.Difference.High,
		c.Lift.Estimate, c.Lift.Low, c.Lift.High,
	} {
		if !finite(x) {
			c = failed(Comparison{Metric: c.Metric, Control: c.Control, Variant: c.Variant},
				fmt.Errorf("buckets %d and %d: value sums out of range: %w", c.Control.Index, c.Variant.Index, ErrInvalidBucket))
			return c
		}
	}
	return c
}

// CompareMeans compares the mean values per participant of variant and
// control with Welch's unequal-variances t-test, the test that R's
// t.test(var.equal=FALSE) performs:
//
//   - Statistic t = (m_v − m_c) / √(s²_c/n_c + s²_v/n_v), with the
//     sample variances of Bucket.Variance (whose precision limits apply);
//   - DF by Welch–Satterthwaite; PValue = 2·T_DF(−|t|) from Student's t;
//   - Difference: m_v − m_c ± t_{DF,0.975} · √(s²_c/n_c + s²_v/n_v);
//   - Lift: m_v/m_c − 1 with the delta-method interval on the log ratio,
//     exp(ln(m_v/m_c) ± z₀.₉₇₅ √(s²_c/(n_c m_c²) + s²_v/(n_v m_v²))) − 1,
//     a large-sample interval; it needs both means positive, else
//     LiftErr is ErrLiftUndefined.
//
// Err is ErrInvalidBucket for impossible aggregates,
// ErrTooFewParticipants when a bucket has fewer than two participants,
// and ErrNoVariation when both buckets' values are constant (R's t.test
// stops with "data are essentially constant" there). One constant bucket
// is fine. Conversions play no part.
func CompareMeans(control, variant Bucket) Comparison {
	return checkFinite(compareMeans(control, variant))
}

func compareMeans(control, variant Bucket) Comparison {
	c := Comparison{Metric: Means, Control: control, Variant: variant}
	if err := errors.Join(control.Validate(), variant.Validate()); err != nil {
		return failed(c, err)
	}
	c.ControlValue, c.VariantValue = control.Mean(), variant.Mean()
	for _, b := range []Bucket{control, variant} {
		if b.Participants < 2 {
			return failed(c, fmt.Errorf("bucket %d: %d participants: %w",
				b.Index, b.Participants, ErrTooFewParticipants))
		}
	}
	nc, nv := float64(control.Participants), float64(variant.Participants)
	qc, qv := control.Variance()/nc, variant.Variance()/nv // squared standard errors
	se2 := qc + qv
	if se2 == 0 {
		return failed(c, fmt.Errorf("buckets %d and %d: constant values: %w",
			control.Index, variant.Index, ErrNoVariation))
	}
	se := math.Sqrt(se2)
	diff := c.VariantValue - c.ControlValue
	c.Statistic = diff / se
	c.DF = se2 * se2 / (qc*qc/(nc-1) + qv*qv/(nv-1))
	t := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: c.DF}
	c.PValue = 2 * t.CDF(-math.Abs(c.Statistic))
	q := t.Quantile(1 - (1-ConfidenceLevel)/2)
	c.Difference = Interval{Estimate: diff, Low: diff - q*se, High: diff + q*se}

	if c.ControlValue <= 0 || c.VariantValue <= 0 {
		c.LiftErr = fmt.Errorf("buckets %d and %d: means %v and %v: %w",
			control.Index, variant.Index, c.ControlValue, c.VariantValue, ErrLiftUndefined)
		return c
	}
	mc, mv := c.ControlValue, c.VariantValue
	seLog := math.Sqrt(qc/(mc*mc) + qv/(mv*mv))
	c.Lift = logInterval(mc, mv, seLog)
	return c
}

// twoSidedNormal returns 2Φ(−|z|). It uses the lower tail, which gonum
// computes with erfc and so keeps its precision far out (Survival
// computes 1 − erf and underflows to 0 near |z| = 8.3).
func twoSidedNormal(z float64) float64 {
	return 2 * distuv.UnitNormal.CDF(-math.Abs(z))
}

// logInterval returns the lift variant/control − 1 with the interval
// exp(ln(variant/control) ± z·se) − 1. Working from the difference with
// Log1p and Expm1 keeps the digits of lifts near 0.
func logInterval(control, variant, se float64) Interval {
	lift := (variant - control) / control
	l := math.Log1p(lift)
	return Interval{
		Estimate: lift,
		Low:      math.Expm1(l - z975*se),
		High:     math.Expm1(l + z975*se),
	}
}

// AgainstControl compares every bucket with the one whose Index is 0,
// using compare (CompareRates or CompareMeans), and returns the
// comparisons in the order of buckets, control left out. It fails with
// ErrNoControl when no bucket has Index 0 and ErrInvalidBucket when an
// index appears twice; buckets itself is not modified.
func AgainstControl(buckets []Bucket, compare func(control, variant Bucket) Comparison) ([]Comparison, error) {
	seen := make(map[int]bool, len(buckets))
	ci := -1
	for i, b := range buckets {
		if seen[b.Index] {
			return nil, fmt.Errorf("bucket %d given twice: %w", b.Index, ErrInvalidBucket)
		}
		seen[b.Index] = true
		if b.Index == 0 {
			ci = i
		}
	}
	if ci < 0 {
		return nil, ErrNoControl
	}
	out := make([]Comparison, 0, len(buckets)-1)
	for i, b := range buckets {
		if i != ci {
			out = append(out, compare(buckets[ci], b))
		}
	}
	return out, nil
}

// SRM is the result of a sample-ratio-mismatch check: Pearson's
// chi-square goodness-of-fit test of the participants per bucket
// against the expected split. Every float field is finite.
type SRM struct {
	// Observed is a copy of the participants per bucket, in the order
	// given. Nil when Err is set.
	Observed []int64
	// Expected is the expected number of participants per bucket, in the
	// order given (0 for a bucket with weight 0). Nil when Err is set.
	Expected []float64
	// ChiSquare is Σ (observed − expected)² / expected over the buckets
	// with a positive weight.
	ChiSquare float64
	// DF is the number of buckets with a positive weight, minus 1.
	DF int
	// PValue is the chi-square upper-tail probability of ChiSquare on DF
	// degrees of freedom; 0 when a zero-weight bucket has participants;
	// 1 when Err is set.
	PValue float64
	// Mismatch is true when PValue < SRMThreshold, or when a bucket with
	// weight 0 has participants. Never true when Err is set.
	Mismatch bool
	// Err is nil when the check ran; otherwise why it did not.
	Err error
}

// SampleRatioMismatch checks whether participants, where participants[i]
// counts bucket i, fit the split given by weights[i], with Pearson's chi-square test on k−1 degrees
// of freedom (k buckets of positive weight), as R's chisq.test(x, p=w,
// rescale.p=TRUE) does. Weights are relative: {1, 1} and {50, 50} are the
// same even split, and nil weights mean an even split over every bucket.
//
// A bucket of weight 0 (closed to new participants) takes no part in the
// test, unless it has participants: then the split is broken whatever the
// numbers, and SRM reports a Mismatch with PValue 0. A ChiSquare from
// very small expected counts (under 5) is only a rough approximation.
//
// Err is ErrLengthMismatch, ErrInvalidWeights (a negative, NaN or
// infinite weight, or none positive), ErrInvalidBucket (a negative
// count), ErrTooFewBuckets (fewer than two positive weights), or
// ErrNoParticipants (no participant in any weighted bucket).
func SampleRatioMismatch(participants []int64, weights []float64) SRM {
	if weights == nil {
		weights = make([]float64, len(participants))
		for i := range weights {
			weights[i] = 1
		}
	}
	if len(weights) != len(participants) {
		return SRM{PValue: 1, Err: fmt.Errorf("%d participant counts, %d weights: %w",
			len(participants), len(weights), ErrLengthMismatch)}
	}
	var wsum, total float64
	k := 0
	for i, w := range weights {
		if !finite(w) || w < 0 {
			return SRM{PValue: 1, Err: fmt.Errorf("weight %d is %v: %w", i, w, ErrInvalidWeights)}
		}
		if participants[i] < 0 {
			return SRM{PValue: 1, Err: fmt.Errorf("bucket %d: %d participants: %w", i, participants[i], ErrInvalidBucket)}
		}
		if w > 0 {
			wsum += w
			total += float64(participants[i])
			k++
		}
	}
	switch {
	case k == 0:
		return SRM{PValue: 1, Err: fmt.Errorf("no positive weight: %w", ErrInvalidWeights)}
	case k < 2:
		return SRM{PValue: 1, Err: fmt.Errorf("%d bucket with a positive weight: %w", k, ErrTooFewBuckets)}
	case total == 0:
		return SRM{PValue: 1, Err: fmt.Errorf("weighted buckets: %w", ErrNoParticipants)}
	}
	s := SRM{Observed: slices.Clone(participants), Expected: make([]float64, len(participants)), DF: k - 1}
	stray := false
	for i, w := range weights {
		if w == 0 {
			stray = stray || participants[i] > 0
			continue
		}
		e := total * (w / wsum)
		d := float64(participants[i]) - e
		s.Expected[i] = e
		s.ChiSquare += d * d / e
	}
	if stray {
		s.Mismatch = true
		return s
	}
	s.PValue = distuv.ChiSquared{K: float64(s.DF)}.Survival(s.ChiSquare)
	s.Mismatch = s.PValue < SRMThreshold
	return s
}

// DailyBucket is one bucket's aggregates for one day.
type DailyBucket struct {
	// Day identifies the day, typically midnight in the zone the
	// caller aggregates in. Rows with Equal days are the same day.
	Day time.Time
	Bucket
}

// SeriesPoint is the state of an experiment at the end of one day.
type SeriesPoint struct {
	// Day is the day, as given.
	Day time.Time
	// Buckets holds, by ascending Index, the totals from the first day
	// through Day of every bucket seen so far (a bucket without a row on
	// Day keeps its earlier totals). Call Rate, Mean or CompareRates on
	// them for the cumulative figures.
	Buckets []Bucket
}

// Cumulative turns per-day, per-bucket aggregates into running totals:
// one SeriesPoint per distinct day, in ascending day order. Rows may come
// in any order; rows of the same day and bucket are added together. rows
// is not modified; nil or empty rows give nil.
func Cumulative(rows []DailyBucket) []SeriesPoint {
	if len(rows) == 0 {
		return nil
	}
	sorted := slices.Clone(rows)
	slices.SortStableFunc(sorted, func(a, b DailyBucket) int {
		if c := a.Day.Compare(b.Day); c != 0 {
			return c
		}
		return cmp.Compare(a.Index, b.Index)
	})
	var (
		out    []SeriesPoint
		totals []Bucket // ascending Index
	)
	for i, r := range sorted {
		j, found := slices.BinarySearchFunc(totals, r.Index, func(b Bucket, idx int) int { return cmp.Compare(b.Index, idx) })
		if found {
			totals[j] = totals[j].Add(r.Bucket)
		} else {
			totals = slices.Insert(totals, j, r.Bucket)
		}
		if i == len(sorted)-1 || !sorted[i+1].Day.Equal(r.Day) {
			out = append(out, SeriesPoint{Day: r.Day, Buckets: slices.Clone(totals)})
		}
	}
	return out
}
