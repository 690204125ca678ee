package results

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
)

// Alpha is the significance level of Verdict: a comparison counts when
// its (multiplicity-adjusted) p-value is below it, that is at 95%
// confidence or more.
const Alpha = 0.05

// MinParticipants is the number of participants each of the two buckets
// of a comparison needs before Verdict reads it. Below it the tests'
// large-sample approximations are poor and early swings are the rule.
const MinParticipants = 100

// MinExpected is, for rate comparisons, the number of conversions and of
// non-conversions each bucket must expect under the pooled rate before
// Verdict reads the comparison: the usual rule of thumb for the normal
// approximation of the z-test.
const MinExpected = 5

// The fixed phrases of a Reading's Text.
const (
	// TooEarlyText is the Text of an OutcomeTooEarly Reading.
	TooEarlyText = "too early to tell"
	// MismatchText is the Text of an OutcomeMismatch Reading.
	MismatchText = "sample ratio mismatch: investigate before reading results"
)

// Outcome classifies a Reading.
type Outcome int

const (
	// OutcomeTooEarly: no comparison is both large enough and
	// significant. The zero value.
	OutcomeTooEarly Outcome = iota
	// OutcomeSignificant: at least one bucket differs from control at
	// 95% confidence or more; see Reading.Findings.
	OutcomeSignificant
	// OutcomeMismatch: the sample-ratio check failed, so the assignment
	// or the logging is suspect and no comparison should be read.
	OutcomeMismatch
)

// String returns "too early", "significant" or "sample ratio mismatch".
func (o Outcome) String() string {
	switch o {
	case OutcomeTooEarly:
		return "too early"
	case OutcomeSignificant:
		return "significant"
	case OutcomeMismatch:
		return "sample ratio mismatch"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Finding is one significant comparison of a Reading.
type Finding struct {
	// Control and Variant are the bucket indices compared.
	Control, Variant int
	// VariantWins is true when the variant's value is the higher one.
	VariantWins bool
	// PValue is the comparison's p-value after Holm's adjustment for the
	// number of comparisons read (the raw p-value when there is one).
	PValue float64
	// Confidence is Confidence(PValue), 95 to 99.
	Confidence int
	// Text reads "bucket 2 beats control with 97% confidence" or
	// "control beats bucket 1 with 99% confidence".
	Text string
}

// Reading is the verdict on an experiment in plain words.
type Reading struct {
	// Outcome classifies the reading.
	Outcome Outcome
	// Findings lists the significant comparisons in the order given;
	// empty unless Outcome is OutcomeSignificant.
	Findings []Finding
	// Text is the verdict: MismatchText, TooEarlyText, or the Findings'
	// texts joined with "; ".
	Text string
	// Detail says why, in a sentence: which bucket is too small, the
	// best confidence reached so far, or what the sample-ratio check saw.
	Detail string
}

// String returns r.Text.
func (r Reading) String() string { return r.Text }

// Verdict reads an experiment the way gae_bingo's result summary did,
// in fewer words: srm is the experiment's SampleRatioMismatch and
// comparisons its buckets' comparisons against control, all of one
// metric (AgainstControl gives them). For means, higher is better.
//
// In order:
//
//  1. A failed sample-ratio check wins: MismatchText, nothing else. An
//     SRM whose Err is set (or the zero SRM) does not count as failed.
//  2. Comparisons that could not run (Err), that have fewer than
//     MinParticipants in a bucket, or (rates) fewer than MinExpected
//     expected conversions or non-conversions in a bucket, are not read.
//  3. The p-values of the comparisons read are adjusted with Holm's
//     method (HolmAdjust), so that several variants against one control
//     do not find winners by chance; with one variant nothing changes.
//  4. Each comparison with an adjusted p-value below Alpha is a Finding,
//     worded "bucket 2 beats control with 97% confidence" (or "control
//     beats bucket 1 …"), confidence being Confidence(p). All findings
//     are reported, joined with "; ", not only the best.
//  5. Otherwise TooEarlyText, with the reason in Detail.
//
// Like gae_bingo's, the verdict says which is better, not by how much:
// read Comparison.Difference and Lift for that.
func Verdict(srm SRM, comparisons []Comparison) Reading {
	if srm.Err == nil && srm.Mismatch {
		return Reading{Outcome: OutcomeMismatch, Text: MismatchText, Detail: srmDetail(srm)}
	}
	var (
		read    []Comparison
		skipped []string
	)
	for _, c := range comparisons {
		if why := unreadable(c); why != "" {
			skipped = append(skipped, why)
			continue
		}
		read = append(read, c)
	}
	if len(read) == 0 {
		detail := "no comparison against control"
		if len(skipped) > 0 {
			detail = strings.Join(skipped, "; ")
		}
		return Reading{Outcome: OutcomeTooEarly, Text: TooEarlyText, Detail: detail}
	}
	ps := make([]float64, len(read))
	for i, c := range read {
		ps[i] = c.PValue
	}
	adjusted := HolmAdjust(ps)

	var r Reading
	best := -1
	for i, c := range read {
		if best < 0 || adjusted[i] < adjusted[best] {
			best = i
		}
		if !(adjusted[i] < Alpha) {
			continue
		}
		f := Finding{
			Control:     c.Control.Index,
			Variant:     c.Variant.Index,
			VariantWins: c.Difference.Estimate > 0,
			PValue:      adjusted[i],
			Confidence:  max(Confidence(adjusted[i]), confidencePercent),
		}
		winner, loser := f.Control, f.Variant
		if f.VariantWins {
			winner, loser = loser, winner
		}
		f.Text = fmt.Sprintf("%s beats %s with %d%% confidence", bucketName(winner), bucketName(loser), f.Confidence)
		r.Findings = append(r.Findings, f)
	}
	if len(r.Findings) == 0 {
		c := read[best]
		r.Outcome, r.Text = OutcomeTooEarly, TooEarlyText
		r.Detail = fmt.Sprintf("no bucket differs from control with %d%% confidence yet; closest: %s at %d%%",
			confidencePercent, bucketName(c.Variant.Index), Confidence(adjusted[best]))
		if len(read) > 1 {
			r.Detail += ", after adjusting for multiple comparisons"
		}
		if len(skipped) > 0 {
			r.Detail += "; " + strings.Join(skipped, "; ")
		}
		return r
	}
	texts := make([]string, len(r.Findings))
	for i, f := range r.Findings {
		texts[i] = f.Text
	}
	r.Outcome, r.Text = OutcomeSignificant, strings.Join(texts, "; ")
	switch {
	case len(read) > 1:
		r.Detail = fmt.Sprintf("%d comparisons read, confidence adjusted for multiple comparisons (Holm)", len(read))
	default:
		r.Detail = "1 comparison read"
	}
	if len(skipped) > 0 {
		r.Detail += "; not read: " + strings.Join(skipped, "; ")
	}
	return r
}

// confidencePercent is 100·(1 − Alpha), the whole percent Verdict needs.
const confidencePercent = 95

// unreadable says why Verdict does not read c, or "" when it does.
func unreadable(c Comparison) string {
	if c.Err != nil {
		return fmt.Sprintf("%s not compared: %v", bucketName(c.Variant.Index), c.Err)
	}
	for _, b := range []Bucket{c.Control, c.Variant} {
		if b.Participants < MinParticipants {
			return fmt.Sprintf("%s has %d participants, %d needed", bucketName(b.Index), b.Participants, MinParticipants)
		}
	}
	if c.Metric == Rates {
		x := float64(c.Control.Conversions + c.Variant.Conversions)
		n := float64(c.Control.Participants + c.Variant.Participants)
		for _, b := range []Bucket{c.Control, c.Variant} {
			conv := float64(b.Participants) * x / n
			if e := min(conv, float64(b.Participants)-conv); e < MinExpected {
				return fmt.Sprintf("%s expects %.1f conversions or non-conversions at the pooled rate, %d needed",
					bucketName(b.Index), e, MinExpected)
			}
		}
	}
	return ""
}

// srmDetail says what the sample-ratio check saw.
func srmDetail(s SRM) string {
	for i, e := range s.Expected {
		if e == 0 && i < len(s.Observed) && s.Observed[i] > 0 {
			return fmt.Sprintf("bucket %d has weight 0 but %d participants", i, s.Observed[i])
		}
	}
	return fmt.Sprintf("participants per bucket %v, expected %v: chi-square %.4g on %d df, p = %.2g < %g",
		s.Observed, roundAll(s.Expected), s.ChiSquare, s.DF, s.PValue, SRMThreshold)
}

func roundAll(xs []float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = math.Round(x*10) / 10
	}
	return out
}

// bucketName returns "control" for bucket 0, else "bucket N".
func bucketName(i int) string {
	if i == 0 {
		return "control"
	}
	return fmt.Sprintf("bucket %d", i)
}

// Confidence returns 1 − p as a whole percent rounded down, capped at 99
// (no test of sampled data gives 100% confidence): 0.03 gives 97, 0.0001
// gives 99. A p outside [0, 1] or NaN is clamped; NaN gives 0.
func Confidence(p float64) int {
	if math.IsNaN(p) || p >= 1 {
		return 0
	}
	// The 1e-9 absorbs the rounding of 1 − p, so 0.03 gives 97, not 96.
	c := math.Floor((1-max(p, 0))*100 + 1e-9)
	return int(min(c, 99))
}

// HolmAdjust returns Holm's step-down adjustment of the p-values ps, as
// R's p.adjust(ps, "holm"): sorted ascending, the i-th smallest (from 0)
// becomes max over j ≤ i of min(1, (m − j)·p₍ⱼ₎). It controls the chance
// of any false finding among the m comparisons at the nominal level and
// never rejects less than Bonferroni. The result is in the order of ps;
// ps is not modified. NaN reads as 1.
func HolmAdjust(ps []float64) []float64 {
	m := len(ps)
	order := make([]int, m)
	for i := range order {
		order[i] = i
	}
	clean := func(p float64) float64 {
		if math.IsNaN(p) {
			return 1
		}
		return min(max(p, 0), 1)
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(clean(ps[a]), clean(ps[b])) })
	out := make([]float64, m)
	running := 0.0
	for rank, i := range order {
		running = max(running, min(1, float64(m-rank)*clean(ps[i])))
		out[i] = running
	}
	return out
}
