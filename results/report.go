package results

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/abkit/experiments"
)

// Errors of Source.Aggregate and Build, wrapped with the experiment
// involved; test with errors.Is. A Query that Query.Validate refuses
// gives an error wrapping experiments.ErrInvalid.
var (
	// ErrNoExposures: the experiment has no exposure at all, so no
	// participants: an unknown flag or course, or one nobody saw yet.
	ErrNoExposures = errors.New("no exposures")
	// ErrBucketOutOfRange: a participant's bucket is negative, or not
	// below Query.Buckets.
	ErrBucketOutOfRange = errors.New("exposure bucket out of range")
)

// Experiment identifies an experiment: a flag and, for a course-scoped
// experiment, a course; or a flag in all courses together.
type Experiment struct {
	// Flag is the flag's full name, "namespace.name", as in
	// experiments.Exposure.
	Flag string `json:"flag"`
	// CourseKey is the course, "" when none.
	CourseKey string `json:"course_key,omitempty"`
	// AllCourses pools the flag's exposures of every course (and of no
	// course): each user is one participant, in the bucket of their
	// first exposure in any course (see Source). CourseKey must be ""
	// then. Sources never list such an experiment (Experiments, Counter);
	// queries ask for it.
	AllCourses bool `json:"all_courses,omitempty"`
}

// String returns "ns.name", "ns.name in <course key>" or "ns.name in
// all courses".
func (e Experiment) String() string {
	switch {
	case e.AllCourses:
		return e.Flag + " in all courses"
	case e.CourseKey == "":
		return e.Flag
	}
	return e.Flag + " in " + e.CourseKey
}

// Query asks for the aggregates of one goal in one experiment.
type Query struct {
	Experiment
	// Goal is the goal's definition, as the store keeps it
	// (Snapshot(ctx).Data().Goals[name]).
	Goal experiments.Goal
	// Buckets is the number of buckets, 0..Buckets-1 (bucket 0 is
	// control). Optional. Default: the highest bucket of a participant
	// plus one; Build uses len(Weights) when Weights are given.
	Buckets int
	// Weights is the expected split for the sample-ratio check, one
	// relative weight per bucket ({50, 50} and {1, 1} are the same).
	// Sources ignore it. Optional. Default: an even split.
	Weights []float64
	// Dimension breaks the participants down by the value of this
	// dimension of their exposure (experiments.Exposure.Dimensions), for
	// BuildBreakdown and BreakdownSource.AggregateBy; Build and
	// Source.Aggregate ignore it. Optional. Default: "", no breakdown.
	Dimension string
	// Zone is the time zone of the weekly series: weeks start on Monday
	// at midnight there (DST included). The daily series stays in UTC.
	// It must be UTC or a zone loaded by its IANA name
	// (time.LoadLocation("America/Los_Angeles")), which PostgreSQL knows
	// too; time.Local and fixed zones are refused. Optional. Default:
	// nil, UTC.
	Zone *time.Location
}

// String returns "goal <name> in <experiment>".
func (q Query) String() string { return "goal " + q.Goal.Name + " in " + q.Experiment.String() }

// Validate reports the first problem with q as an error wrapping
// experiments.ErrInvalid: a goal that Goal.Validate refuses, a course
// key with AllCourses, a negative Buckets, or Weights that differ in
// length from a positive Buckets, hold a negative, NaN or infinite
// weight, or no positive one; a Dimension that
// experiments.ValidateDimensionName refuses; a Zone that is not UTC or
// a zone of the IANA database loaded by name.
func (q Query) Validate() error {
	if err := q.Goal.Validate(); err != nil {
		return err
	}
	if q.Dimension != "" {
		if err := experiments.ValidateDimensionName(q.Dimension); err != nil {
			return err
		}
	}
	if err := validateZone(q.Zone); err != nil {
		return err
	}
	if q.AllCourses && q.CourseKey != "" {
		return fmt.Errorf("%w: course_key %q with all_courses: want one or the other", experiments.ErrInvalid, q.CourseKey)
	}
	if q.Buckets < 0 || q.Buckets > MaxBuckets {
		return fmt.Errorf("%w: %d buckets: want 0 to %d", experiments.ErrInvalid, q.Buckets, MaxBuckets)
	}
	if q.Weights == nil {
		return nil
	}
	if q.Buckets > 0 && len(q.Weights) != q.Buckets {
		return fmt.Errorf("%w: %d weights for %d buckets", experiments.ErrInvalid, len(q.Weights), q.Buckets)
	}
	positive := false
	for i, w := range q.Weights {
		if !finite(w) || w < 0 || w > 0 && (w < minWeight || w > maxWeight) {
			return fmt.Errorf("%w: weight %d is %v: want 0 or %g to %g", experiments.ErrInvalid, i, w, minWeight, maxWeight)
		}
		positive = positive || w > 0
	}
	if !positive {
		return fmt.Errorf("%w: no positive weight", experiments.ErrInvalid)
	}
	return nil
}

// validateZone checks Query.Zone: nil, UTC, or a location whose name
// time.LoadLocation loads.
func validateZone(z *time.Location) error {
	if z == nil || z == time.UTC {
		return nil
	}
	name := z.String()
	if name == "UTC" {
		return nil
	}
	if name == "Local" || name == "" {
		return fmt.Errorf("%w: zone %q: want UTC or an IANA zone name (America/Los_Angeles)", experiments.ErrInvalid, name)
	}
	if _, err := time.LoadLocation(name); err != nil {
		return fmt.Errorf("%w: zone %q: not an IANA zone name: %w", experiments.ErrInvalid, name, err)
	}
	return nil
}

// zone returns q.Zone, UTC when nil.
func (q Query) zone() *time.Location {
	if q.Zone == nil {
		return time.UTC
	}
	return q.Zone
}

// ZoneName returns the name of q.Zone: "UTC" when nil.
func (q Query) ZoneName() string { return q.zone().String() }

// MaxBuckets is the most buckets a report has, as experiments.NewFlag
// allows: a participant in a higher bucket is ErrBucketOutOfRange.
const MaxBuckets = 1024

// Weights are relative: positive ones stay within a range where their
// sum and ratios are exact enough for the sample-ratio check.
const minWeight, maxWeight = 1e-9, 1e9

// BucketAggregate is one bucket's aggregates for one goal. Bucket's
// Conversions counts the participants who converted (the rate's
// numerator); Count counts the conversions as the goal counts them.
type BucketAggregate struct {
	Bucket
	// Count is the number of conversions: Bucket.Conversions for a Once
	// or a complex goal, otherwise every attributed conversion.
	Count int64
}

// Aggregates are what a Source computes for a Query: everything a Report
// needs from the raw data.
type Aggregates struct {
	// Buckets holds one entry per bucket, Index 0..n-1 in order, empty
	// buckets included.
	Buckets []BucketAggregate
	// Daily holds new participants and new converted participants per
	// UTC day and bucket, ordered by Day then Index; value sums are 0.
	// Cumulative turns them into running totals.
	Daily []DailyBucket
	// Weekly holds the same per week in Query.Zone and bucket: Day is
	// the date of the week's Monday in the zone, as midnight UTC (so
	// that a week is a date, whatever the zone's offsets), ordered by
	// Day then Index.
	Weekly []DailyBucket
}

// Source computes aggregates from recorded exposures and conversions.
// A participant's bucket must be below q.Buckets, or below MaxBuckets
// when q.Buckets is 0, else Aggregate fails with ErrBucketOutOfRange.
// Memory is the reference implementation; a store that computes them in
// its database (GROUP BY) must give exactly the same results, which a
// conformance test compares. The semantics:
//
// Experiments returns every distinct (Flag, CourseKey) of the exposures,
// each once, sorted by Flag then CourseKey in byte order (in
// PostgreSQL: COLLATE "C"). Strings compare exactly; CourseKey "" is
// "no course" and a separate experiment from any course.
//
// Aggregate computes, for q.Experiment and q.Goal:
//
//  1. Participants. A participant is a user (Exposure.UserID) with an
//     exposure whose Flag and CourseKey equal q's; with q.AllCourses,
//     whose Flag equals q's, whatever its CourseKey. A user counts
//     once, with their earliest exposure: the smallest Time, among
//     equal times the smallest Bucket, then the smallest CourseKey. Its
//     Bucket, Time and Dimensions are the participant's bucket,
//     exposure time and dimensions. (Stores keep one exposure
//     per user and experiment, so the rule matters for all courses,
//     where a user seen in several courses has an exposure in each.)
//  2. Attribution. A participant's attributed conversions of goal name
//     G are the conversions with Goal == G, UserID == the participant's
//     and Time >= the exposure time (an equal time counts). CourseKey
//     plays no part: a conversion counts for every experiment its user
//     was exposed to before it. Other conversions are ignored.
//  3. A goal without Include (simple), per participant: converted when
//     they have at least one attributed conversion of q.Goal.Name;
//     their count is 1 if converted and q.Goal.Once, otherwise the
//     number of attributed conversions; their value v is the sum of the
//     Values of all their attributed conversions (Once or not) when
//     q.Goal.Value is not ValueCount, and 0 for ValueCount (values are
//     ignored). They convert on the day of their first attributed
//     conversion.
//  4. A complex goal (Include not empty), per participant: converted
//     when they have an attributed conversion of every goal of Include
//     and no attributed conversion of any goal of Exclude (whenever it
//     happened after exposure, even after the included ones).
//     Conversions recorded under the complex goal's own name are
//     ignored. Their count is 1 if converted, their value 0. They
//     convert on the day of the latest, over the goals of Include, of
//     the first attributed conversion of that goal.
//  5. Buckets. n is q.Buckets when positive, otherwise the highest
//     participant bucket + 1. Buckets has n entries, Index 0..n-1 in
//     order, each with Participants = its participants, Conversions =
//     its converted participants, Count = the sum of their counts,
//     ValueSum = Σv and ValueSumSquares = Σv² over all its participants
//     (unconverted ones add 0). A bucket without participants is all
//     zeros.
//  6. Daily. A time's day is its UTC date, as midnight UTC with
//     Location time.UTC. For each day and bucket: Participants = the
//     bucket's participants exposed that day, Conversions = its
//     converted participants who convert that day (3, 4); value sums 0.
//     A row exists only when one of the two is positive. Rows are
//     ordered by Day, then Index. Summed over days they give the
//     Buckets' Participants and Conversions.
//  7. Weekly. The same as Daily, by week instead of day: a time's week
//     is the date of the Monday on or before its date in q.Zone (UTC
//     when nil), as midnight UTC with Location time.UTC. Weeks follow
//     the zone's calendar, so a week across a DST change lasts 167 or
//     169 hours.
//
// Value sums are float64 sums: Memory adds each participant's values in
// conversion time order (input order on equal times), then the
// participants in exposure time order (then UserID); another order of
// summation may differ in the last bits, so compare sums with a
// relative tolerance (1e-9). Times compare as given: MemStore and
// PostgreSQL both keep microseconds.
//
// In SQL (sqlstore), roughly: count the experiment's exposures per UTC
// day, week in the zone (date_trunc('week', time AT TIME ZONE zone))
// and bucket; join the exposures of users who have a conversion of
// the goal to their conversions with time >= the exposure time, GROUP BY
// participant (count(*), sum(value), min(time)); then add both up per
// day and bucket.
//
// Errors, checked in this order: q.Validate's (wrapping
// experiments.ErrInvalid); ErrNoExposures when the experiment has no
// participant; ErrBucketOutOfRange when a participant's bucket is
// negative or, with a positive q.Buckets, not below it. Each names the
// experiment. Beyond Validate, q.Weights and q.Dimension play no part.
// Implementations are safe for concurrent use and honour ctx.
type Source interface {
	// Experiments returns the experiments that have exposures, sorted.
	Experiments(ctx context.Context) ([]Experiment, error)
	// Aggregate returns the aggregates of q.Goal in q.Experiment.
	Aggregate(ctx context.Context, q Query) (Aggregates, error)
}

// Report is the results of one goal in one experiment: per-bucket
// figures, comparisons against control, the sample-ratio check, the
// verdict and the cumulative daily series. Build makes it; WriteText
// prints it; it marshals with encoding/json as it is (no NaN or
// infinite number, errors as strings) and unmarshals back to an equal
// Report.
type Report struct {
	Experiment Experiment       `json:"experiment"`
	Goal       experiments.Goal `json:"goal"`
	// Buckets holds every bucket, Index 0..n-1 in order.
	Buckets []ReportBucket `json:"buckets"`
	// Rates compares each bucket's conversion rate with control's, in
	// bucket order; nil with a single bucket.
	Rates []ReportComparison `json:"rates"`
	// Means compares each bucket's mean value per participant with
	// control's (Welch's t-test); only for goals with a value.
	Means []ReportComparison `json:"means,omitempty"`
	// SRM is the sample-ratio-mismatch check of the participants.
	SRM ReportSRM `json:"srm"`
	// Verdict reads Rates (and SRM).
	Verdict ReportVerdict `json:"verdict"`
	// MeansVerdict reads Means (and SRM); only for goals with a value.
	MeansVerdict *ReportVerdict `json:"means_verdict,omitempty"`
	// Series holds the cumulative totals at the end of each UTC day with
	// a new participant or conversion, in day order.
	Series []ReportDay `json:"series"`
	// Zone names the time zone of Weekly: Query.Zone, "UTC" by default.
	Zone string `json:"zone"`
	// Weekly holds the cumulative totals at the end of each week (Monday
	// to Sunday in Zone) with a new participant or conversion, in week
	// order.
	Weekly []ReportWeek `json:"weekly"`
}

// ReportBucket is one bucket of a Report.
type ReportBucket struct {
	// Index is the bucket; 0 is control.
	Index int `json:"index"`
	// Participants counts the bucket's participants.
	Participants int64 `json:"participants"`
	// Converted counts the participants who converted.
	Converted int64 `json:"converted"`
	// Conversions counts the conversions: Converted for a Once or
	// complex goal, every attributed conversion otherwise.
	Conversions int64 `json:"conversions"`
	// Rate is Converted / Participants, 0 without participants.
	Rate float64 `json:"rate"`
	// ValueSum and ValueSumSquares are Σv and Σv² of the value per
	// participant; 0 for goals without a value.
	ValueSum        float64 `json:"value_sum,omitempty"`
	ValueSumSquares float64 `json:"value_sum_squares,omitempty"`
	// Mean is the mean value per participant, ValueSum / Participants
	// (0 without participants); 0 for goals without a value.
	Mean float64 `json:"mean,omitempty"`
	// Value is the figure the goal's value type asks for: the total
	// (ValueSum), the total / Conversions (ValueAverage), the total /
	// Participants (ValuePerParticipant), 0 when the divisor is 0. Nil
	// for ValueCount and complex goals.
	Value *float64 `json:"value,omitempty"`
}

// Bucket returns the bucket's aggregates, with Conversions the
// converted participants, for CompareRates or CompareMeans.
func (b ReportBucket) Bucket() Bucket {
	return Bucket{Index: b.Index, Participants: b.Participants, Conversions: b.Converted,
		ValueSum: b.ValueSum, ValueSumSquares: b.ValueSumSquares}
}

// ReportInterval is an estimate with its 95% confidence interval.
type ReportInterval struct {
	Estimate float64 `json:"estimate"`
	Low      float64 `json:"low"`
	High     float64 `json:"high"`
}

// ReportComparison is a Comparison of one bucket with control.
type ReportComparison struct {
	// Variant is the bucket compared with control (bucket 0).
	Variant int `json:"variant"`
	// ControlValue and VariantValue are the two rates or means.
	ControlValue float64 `json:"control_value"`
	VariantValue float64 `json:"variant_value"`
	// Difference is VariantValue − ControlValue; zero when Error is set.
	Difference ReportInterval `json:"difference"`
	// Lift is VariantValue / ControlValue − 1; nil when LiftError is set.
	Lift *ReportInterval `json:"lift,omitempty"`
	// LiftError says why there is no Lift.
	LiftError string `json:"lift_error,omitempty"`
	// Statistic is z (rates) or Welch's t (means).
	Statistic float64 `json:"statistic"`
	// DF is the Welch–Satterthwaite degrees of freedom (means only).
	DF float64 `json:"df,omitempty"`
	// PValue is the two-sided p-value, not adjusted; 1 when Error is set.
	PValue float64 `json:"p_value"`
	// Error says why the test could not run; "" when it ran.
	Error string `json:"error,omitempty"`
}

// ReportSRM is the sample-ratio-mismatch check of a Report.
type ReportSRM struct {
	// Weights is the expected split used: Query.Weights, or 1 per bucket.
	Weights []float64 `json:"weights"`
	// Observed is the participants per bucket.
	Observed []int64 `json:"observed"`
	// Expected is the expected participants per bucket; nil when Error
	// is set.
	Expected  []float64 `json:"expected,omitempty"`
	ChiSquare float64   `json:"chi_square"`
	DF        int       `json:"df"`
	PValue    float64   `json:"p_value"`
	// Mismatch is true when the split is broken: read nothing else.
	Mismatch bool `json:"mismatch"`
	// Error says why the check could not run (a single bucket, say).
	Error string `json:"error,omitempty"`
}

// ReportVerdict is a Reading of a Report's comparisons.
type ReportVerdict struct {
	// Outcome is Outcome.String(): "too early", "significant" or
	// "sample ratio mismatch".
	Outcome string `json:"outcome"`
	// Text is the verdict, Reading.Text.
	Text string `json:"text"`
	// Detail says why, Reading.Detail.
	Detail string `json:"detail"`
	// Findings are the significant comparisons.
	Findings []ReportFinding `json:"findings,omitempty"`
}

// ReportFinding is one Finding of a ReportVerdict.
type ReportFinding struct {
	Variant     int     `json:"variant"`
	VariantWins bool    `json:"variant_wins"`
	PValue      float64 `json:"p_value"` // adjusted (Holm)
	Confidence  int     `json:"confidence"`
	Text        string  `json:"text"`
}

// ReportDay is the state of the experiment at the end of one day.
type ReportDay struct {
	// Day is midnight UTC of the day.
	Day time.Time `json:"day"`
	// Buckets holds every bucket's totals from the first day through
	// Day, Index 0..n-1 in order.
	Buckets []ReportDayBucket `json:"buckets"`
}

// ReportWeek is the state of the experiment at the end of one week of
// Report.Zone.
type ReportWeek struct {
	// Week is the week's Monday: its date in Report.Zone, as midnight
	// UTC (2026-03-09T00:00:00Z is the week from Monday 9 March).
	Week time.Time `json:"week"`
	// Buckets holds every bucket's totals from the first week through
	// Week, Index 0..n-1 in order.
	Buckets []ReportDayBucket `json:"buckets"`
}

// ReportDayBucket is one bucket's running totals in a ReportDay or a
// ReportWeek.
type ReportDayBucket struct {
	Index        int     `json:"index"`
	Participants int64   `json:"participants"`
	Converted    int64   `json:"converted"`
	Rate         float64 `json:"rate"`
}

// prepare gives q the number of buckets of its weights when it has none,
// and validates it, for Build and BuildBreakdown.
func (q *Query) prepare() error {
	if q.Buckets == 0 && q.Weights != nil {
		q.Buckets = len(q.Weights)
	}
	if err := q.Validate(); err != nil {
		return fmt.Errorf("results: %s: %w", q.Experiment, err)
	}
	return nil
}

// Build computes the Report of q from src: the aggregates, then
// CompareRates of every bucket against control (and CompareMeans for a
// goal with a value), SampleRatioMismatch with q.Weights, Verdict and
// the cumulative series. When q.Buckets is 0 and q.Weights are given,
// there are len(q.Weights) buckets.
//
// Errors: q.Validate's (wrapping experiments.ErrInvalid), src's
// (ErrNoExposures, ErrBucketOutOfRange, its own), or an
// ErrInvalidBucket when src returns aggregates that break the Source
// contract (missing buckets, impossible counts, sums that are not
// finite).
func Build(ctx context.Context, src Source, q Query) (Report, error) {
	if err := q.prepare(); err != nil {
		return Report{}, err
	}
	agg, err := src.Aggregate(ctx, q)
	if err != nil {
		return Report{}, fmt.Errorf("results: %w", err)
	}
	return reportOf(q, agg)
}

// reportOf turns q's aggregates into its Report (q is valid).
func reportOf(q Query, agg Aggregates) (Report, error) {
	if err := checkAggregates(q, agg); err != nil {
		return Report{}, fmt.Errorf("results: %s: source: %w", q.Experiment, err)
	}
	n := len(agg.Buckets)
	goal := q.Goal
	goal.Include, goal.Exclude = slices.Clone(goal.Include), slices.Clone(goal.Exclude)
	r := Report{Experiment: q.Experiment, Goal: goal, Buckets: make([]ReportBucket, n)}
	valued := !q.Goal.Complex() && q.Goal.Value != experiments.ValueCount

	buckets := make([]Bucket, n)
	observed := make([]int64, n)
	for i, a := range agg.Buckets {
		buckets[i] = a.Bucket
		observed[i] = a.Participants
		rb := ReportBucket{Index: a.Index, Participants: a.Participants, Converted: a.Conversions,
			Conversions: a.Count, Rate: a.Rate()}
		if valued {
			rb.ValueSum, rb.ValueSumSquares, rb.Mean = a.ValueSum, a.ValueSumSquares, a.Mean()
			v := summary(q.Goal.Value, a)
			rb.Value = &v
		}
		r.Buckets[i] = rb
	}

	weights := slices.Clone(q.Weights)
	if weights == nil {
		weights = make([]float64, n)
		for i := range weights {
			weights[i] = 1
		}
	}
	srm := SampleRatioMismatch(observed, weights)
	r.SRM = ReportSRM{Weights: weights, Observed: observed, Expected: srm.Expected,
		ChiSquare: srm.ChiSquare, DF: srm.DF, PValue: srm.PValue, Mismatch: srm.Mismatch, Error: errText(srm.Err)}

	rates, err := AgainstControl(buckets, CompareRates)
	if err != nil {
		return Report{}, fmt.Errorf("results: %s: %w", q.Experiment, err) // checkAggregates rules it out
	}
	r.Rates = reportComparisons(rates)
	r.Verdict = reportVerdict(Verdict(srm, rates))
	if valued {
		means, err := AgainstControl(buckets, CompareMeans)
		if err != nil {
			return Report{}, fmt.Errorf("results: %s: %w", q.Experiment, err)
		}
		r.Means = reportComparisons(means)
		v := reportVerdict(Verdict(srm, means))
		r.MeansVerdict = &v
	}
	r.Series = reportSeries(Cumulative(agg.Daily), n)
	r.Zone = q.ZoneName()
	for _, d := range reportSeries(Cumulative(agg.Weekly), n) {
		r.Weekly = append(r.Weekly, ReportWeek{Week: d.Day, Buckets: d.Buckets})
	}
	return r, nil
}

// checkAggregates verifies that agg keeps the Source contract for q.
func checkAggregates(q Query, agg Aggregates) error {
	n := len(agg.Buckets)
	switch {
	case n == 0:
		return fmt.Errorf("no bucket: %w", ErrInvalidBucket)
	case q.Buckets > 0 && n != q.Buckets:
		return fmt.Errorf("%d buckets, %d asked for: %w", n, q.Buckets, ErrInvalidBucket)
	case q.Weights != nil && n != len(q.Weights):
		return fmt.Errorf("%d buckets, %d weights: %w", n, len(q.Weights), ErrInvalidBucket)
	}
	binary := q.Goal.Once || q.Goal.Complex()
	for i, a := range agg.Buckets {
		if a.Index != i {
			return fmt.Errorf("bucket %d at position %d: %w", a.Index, i, ErrInvalidBucket)
		}
		if err := a.Validate(); err != nil {
			return err
		}
		if a.Count < a.Conversions || binary && a.Count != a.Conversions {
			return fmt.Errorf("bucket %d: %d conversions for %d converted participants: %w",
				a.Index, a.Count, a.Conversions, ErrInvalidBucket)
		}
	}
	for kind, rows := range map[string][]DailyBucket{"daily": agg.Daily, "weekly": agg.Weekly} {
		for _, d := range rows {
			if d.Index < 0 || d.Index >= n || d.Participants < 0 || d.Conversions < 0 {
				return fmt.Errorf("%s row %s bucket %d: %d participants, %d conversions: %w",
					kind, d.Day.Format(time.DateOnly), d.Index, d.Participants, d.Conversions, ErrInvalidBucket)
			}
		}
	}
	return nil
}

// summary returns the figure value type t asks for.
func summary(t experiments.ValueType, a BucketAggregate) float64 {
	switch t {
	case experiments.ValueAverage:
		if a.Count == 0 {
			return 0
		}
		return a.ValueSum / float64(a.Count)
	case experiments.ValuePerParticipant:
		return a.Mean()
	}
	return a.ValueSum
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func reportComparisons(cs []Comparison) []ReportComparison {
	var out []ReportComparison
	for _, c := range cs {
		rc := ReportComparison{
			Variant:      c.Variant.Index,
			ControlValue: c.ControlValue,
			VariantValue: c.VariantValue,
			Difference:   ReportInterval(c.Difference),
			Statistic:    c.Statistic,
			DF:           c.DF,
			PValue:       c.PValue,
			Error:        errText(c.Err),
		}
		if c.LiftErr == nil {
			lift := ReportInterval(c.Lift)
			rc.Lift = &lift
		} else {
			rc.LiftError = c.LiftErr.Error()
		}
		out = append(out, rc)
	}
	return out
}

func reportVerdict(r Reading) ReportVerdict {
	v := ReportVerdict{Outcome: r.Outcome.String(), Text: r.Text, Detail: r.Detail}
	for _, f := range r.Findings {
		v.Findings = append(v.Findings, ReportFinding{Variant: f.Variant, VariantWins: f.VariantWins,
			PValue: f.PValue, Confidence: f.Confidence, Text: f.Text})
	}
	return v
}

// reportSeries gives every point all n buckets.
func reportSeries(points []SeriesPoint, n int) []ReportDay {
	var out []ReportDay
	for _, p := range points {
		d := ReportDay{Day: p.Day, Buckets: make([]ReportDayBucket, n)}
		for i := range d.Buckets {
			d.Buckets[i].Index = i
		}
		for _, b := range p.Buckets {
			d.Buckets[b.Index] = ReportDayBucket{Index: b.Index, Participants: b.Participants,
				Converted: b.Conversions, Rate: b.Rate()}
		}
		out = append(out, d)
	}
	return out
}

// WriteText writes r as plain-text tables: the experiment, goal, verdict
// and split check; the buckets with their rates and comparisons against
// control; for a goal with a value, the values and their comparisons;
// then the cumulative participants and rates per UTC day, and per week
// in r.Zone.
func (r Report) WriteText(w io.Writer) error {
	// Every cell ends in a tab so that rows with empty trailing cells
	// stay in their column block; the padding this leaves at the end of
	// lines is trimmed below.
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	row := func(cells ...string) { fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t") }

	row("experiment", r.Experiment.String())
	row("goal", goalText(r.Goal))
	row("participants", strconv.FormatInt(r.participants(), 10))
	verdictRows(row, "verdict", r.Verdict)
	if r.MeansVerdict != nil {
		verdictRows(row, "value verdict", *r.MeansVerdict)
	}
	row("split", srmText(r.SRM))

	fmt.Fprintln(tw)
	row("bucket", "participants", "converted", "rate", "difference", "lift", "p")
	for _, b := range r.Buckets {
		cells := []string{bucketName(b.Index), strconv.FormatInt(b.Participants, 10),
			strconv.FormatInt(b.Converted, 10), percent(b.Rate, 2)}
		row(append(cells, comparisonCells(r.Rates, b.Index, true)...)...)
	}

	if r.Means != nil {
		fmt.Fprintln(tw)
		row("bucket", "conversions", r.Goal.Value.String(), "mean", "difference", "lift", "p")
		for _, b := range r.Buckets {
			value := ""
			if b.Value != nil {
				value = number(*b.Value)
			}
			cells := []string{bucketName(b.Index), strconv.FormatInt(b.Conversions, 10), value, number(b.Mean)}
			row(append(cells, comparisonCells(r.Means, b.Index, false)...)...)
		}
	}

	// series prints a cumulative series: a row a day or week, a column a
	// bucket.
	series := func(label string, n int, at func(i int) time.Time, buckets func(i int) []ReportDayBucket) {
		if n == 0 {
			return
		}
		fmt.Fprintln(tw)
		head := []string{label}
		for _, b := range r.Buckets {
			head = append(head, bucketName(b.Index))
		}
		row(head...)
		for i := range n {
			cells := []string{at(i).UTC().Format(time.DateOnly)}
			for _, b := range buckets(i) {
				cells = append(cells, fmt.Sprintf("%d/%d %s", b.Converted, b.Participants, percent(b.Rate, 1)))
			}
			row(cells...)
		}
	}
	series("day", len(r.Series), func(i int) time.Time { return r.Series[i].Day }, func(i int) []ReportDayBucket { return r.Series[i].Buckets })
	series("week ("+r.Zone+")", len(r.Weekly), func(i int) time.Time { return r.Weekly[i].Week }, func(i int) []ReportDayBucket { return r.Weekly[i].Buckets })
	if err := tw.Flush(); err != nil {
		return err
	}
	var out bytes.Buffer
	for line := range bytes.Lines(buf.Bytes()) {
		out.Write(bytes.TrimRight(line, " \n"))
		out.WriteByte('\n')
	}
	_, err := w.Write(out.Bytes())
	return err
}

func (r Report) participants() int64 {
	var n int64
	for _, b := range r.Buckets {
		n += b.Participants
	}
	return n
}

func verdictRows(row func(...string), label string, v ReportVerdict) {
	row(label, v.Text)
	if v.Detail != "" {
		row("", v.Detail)
	}
}

func goalText(g experiments.Goal) string {
	switch {
	case g.Complex():
		s := g.Name + " (complex: all of " + strings.Join(g.Include, ", ")
		if len(g.Exclude) > 0 {
			s += "; none of " + strings.Join(g.Exclude, ", ")
		}
		return s + ")"
	case g.Once:
		s := g.Name + " (once per participant"
		if g.Value != experiments.ValueCount {
			s += ", value: " + g.Value.String()
		}
		return s + ")"
	}
	return g.Name + " (every conversion counts, value: " + g.Value.String() + ")"
}

// String says in words how the split compares with the expected one,
// as WriteText's "split" line does: "ok: chi-square 4.41 on 1 df, p =
// 0.0357", "MISMATCH: observed [...], expected [...], p < 0.0001" or
// "not checked: …".
func (s ReportSRM) String() string { return srmText(s) }

func srmText(s ReportSRM) string {
	switch {
	case s.Error != "":
		return "not checked: " + s.Error
	case s.Mismatch:
		return fmt.Sprintf("MISMATCH: observed %v, expected %v, %s", s.Observed, roundAll(s.Expected), pClause(s.PValue))
	}
	return fmt.Sprintf("ok: chi-square %.3g on %d df, %s", s.ChiSquare, s.DF, pClause(s.PValue))
}

// pClause returns "p = 0.0368" or "p < 0.0001".
func pClause(p float64) string {
	if s := pValue(p); s[0] != '<' {
		return "p = " + s
	}
	return "p < 0.0001"
}

// comparisonCells returns the difference, lift and p cells of bucket i,
// empty for control.
func comparisonCells(cs []ReportComparison, i int, rates bool) []string {
	for _, c := range cs {
		if c.Variant != i {
			continue
		}
		if c.Error != "" {
			return []string{"n/a", "n/a", "n/a"}
		}
		d, unit := c.Difference, ""
		if rates {
			d, unit = ReportInterval{100 * d.Estimate, 100 * d.Low, 100 * d.High}, " pts"
		}
		diff := fmt.Sprintf("%s%s [%s, %s]", signed(d.Estimate, 2), unit, signed(d.Low, 2), signed(d.High, 2))
		lift := "n/a"
		if l := c.Lift; l != nil {
			lift = fmt.Sprintf("%s%% [%s%%, %s%%]", signed(100*l.Estimate, 0), signed(100*l.Low, 0), signed(100*l.High, 0))
		}
		return []string{diff, lift, pValue(c.PValue)}
	}
	return []string{"", "", ""}
}

func percent(x float64, digits int) string {
	return strconv.FormatFloat(100*x, 'f', digits, 64) + "%"
}

func number(x float64) string { return strconv.FormatFloat(x, 'f', 2, 64) }

// signed formats x with its sign and digits decimals; what rounds to
// zero reads "+0".
func signed(x float64, digits int) string {
	s := strconv.FormatFloat(math.Abs(x), 'f', digits, 64)
	if x < 0 && strings.Trim(s, "0.") != "" {
		return "-" + s
	}
	return "+" + s
}

func pValue(p float64) string {
	if p < 0.0001 {
		return "<0.0001"
	}
	return strconv.FormatFloat(p, 'f', 4, 64)
}
