package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // -zone works where the system has no zone database

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/results"
)

const reportUsage = `Usage:
  experiments report [-dsn DSN] [-schema S] [-flag F] [-course C] [-goal G] [-buckets N] [-weights W]
                     [-zone ZONE] [-by DIMENSION] [-json]

Prints the results of every experiment with exposures that the filters
match (a flag, in a course or in none), for every goal: participants,
conversions and rates per bucket, each bucket against control (bucket 0)
with 95% intervals and p-values, the split check and the verdict, then
the cumulative totals per UTC day and per week (from Monday, in -zone).
Experiments come by flag then course, goals by name; a line
"=== [i/n] <experiment>, goal <name> ===" starts each report. -json
prints one JSON array of the reports (results.Report), for scripts.

  -zone ZONE      the time zone of the weekly rows, an IANA name
                  ("America/Los_Angeles"). Default: UTC. Days stay UTC.
  -by DIMENSION   break each report down by a dimension recorded with the
                  exposures (experiments.Config.Dimensions: "browser",
                  "site"): one table a report, a row per value, "(none)"
                  for participants without one; -json prints an array of
                  results.Breakdown, a full report per value. Its p-values
                  are not adjusted across values: read it as leads.

Filters (each optional; exact, case-sensitive matches):
  -flag F     only flag F, its full name ("course_experience.upgrade_button").
              Omitted: every flag.
  -course C   only the experiment in course C. -course '' means the
              experiment without a course. Omitted: every course.
  -goal G     only goal G. Omitted: every goal of the store.

The split check expects the shares of the weights: -weights W ("90/10",
one per bucket, control first), else the weights stored for the flag
(ExperimentMeta.Weights, as the dashboard sets them), else equal shares.
A flag declared WithWeights in code with no stored weights needs
-weights: the store does not know the code's. Weights are checked as
WithWeights checks them, and set the number of buckets without
-buckets.

With no filter and no exposure yet, it prints "no experiment has
exposures yet" (or [] with -json) and succeeds. A -flag or -course that
matches no experiment, an unknown -goal, a -buckets below a bucket
that has participants, or -weights that are refused or of another count
than -buckets, is bad input (exit status 2).

The database is -dsn, or $EXPERIMENTS_DSN; see 'experiments -h'.
`

// maxBuckets bounds -buckets (a report holds every bucket).
const maxBuckets = 1024

type reportOptions struct {
	common
	flag, course, goal string
	buckets            bucketsValue
	weights            weightsValue
	zone               zoneValue
	by                 string
}

func reportFlags(o *reportOptions) *flag.FlagSet {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	o.register(fs)
	fs.StringVar(&o.flag, "flag", "", "only the experiments of `flag` (its full name)")
	fs.StringVar(&o.course, "course", "", "only the experiment in `course` ('' for none; omitted: every course)")
	fs.StringVar(&o.goal, "goal", "", "only `goal` (omitted: every goal)")
	fs.Var(&o.buckets, "buckets", "`number` of buckets, control included, 1 to "+strconv.Itoa(maxBuckets)+
		" (default the highest bucket with participants + 1)")
	fs.Var(&o.weights, "weights", "the split `weights` expected, one per bucket, control first, as 90/10 "+
		"(default the flag's stored weights, else equal shares)")
	fs.Var(&o.zone, "zone", "time `zone` of the weekly rows, an IANA name such as America/Los_Angeles (default UTC)")
	fs.StringVar(&o.by, "by", "", "break the reports down by `dimension` (a name of Config.Dimensions)")
	return fs
}

// weightsValue is -weights: nil when not given.
type weightsValue []float64

func (w *weightsValue) String() string { return experiments.FormatWeights(*w) }

func (w *weightsValue) Set(s string) error {
	v, err := experiments.ParseWeights(s)
	if err == nil {
		err = experiments.ValidateWeights(v, 0)
	}
	if err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), experiments.ErrInvalid.Error()+": "))
	}
	*w = v
	return nil
}

// splitOf returns the expected split of experiment e's report for
// results.Query.Weights: -weights, else the stored weights of its flag
// when they fit -buckets, else nil (equal shares). Weights are given as
// the slots they give each bucket, the split decisions make.
func (o *reportOptions) splitOf(meta map[string]experiments.ExperimentMeta, e results.Experiment) []float64 {
	w := []float64(o.weights)
	if w == nil {
		w = meta[e.Flag].Weights
		if o.buckets > 0 && len(w) != int(o.buckets) {
			w = nil
		}
	}
	return experiments.SlotSplit(w)
}

// zoneValue is -zone: nil when not given.
type zoneValue struct{ loc *time.Location }

func (z *zoneValue) String() string {
	if z.loc == nil {
		return ""
	}
	return z.loc.String()
}

func (z *zoneValue) Set(s string) error {
	if s == "" || s == "Local" {
		return errors.New("want an IANA time zone name such as America/Los_Angeles, or UTC")
	}
	loc, err := time.LoadLocation(s)
	if err != nil {
		return errors.New("unknown time zone: want an IANA name such as America/Los_Angeles, or UTC")
	}
	z.loc = loc
	return nil
}

// bucketsValue is -buckets: 0 when not given.
type bucketsValue int

func (b *bucketsValue) String() string { return strconv.Itoa(int(*b)) }

func (b *bucketsValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxBuckets {
		return fmt.Errorf("want a whole number of buckets from 1 to %d", maxBuckets)
	}
	*b = bucketsValue(n)
	return nil
}

// report runs "experiments report".
func report(ctx context.Context, g common, args []string, stdout, stderr io.Writer) (err error) {
	var o reportOptions
	fs := reportFlags(&o)
	if done, err := parse(fs, &o.common, g, args, reportUsage, stdout); done {
		return err
	}
	set := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, name := range []string{"flag", "goal"} {
		if set[name] && fs.Lookup(name).Value.String() == "" {
			return &usageError{err: fmt.Errorf("-%s is empty: give a %s's name or leave -%[1]s out", name, name),
				hint: "Run 'experiments report -h' for usage."}
		}
	}

	if o.weights != nil && o.buckets > 0 && len(o.weights) != int(o.buckets) {
		return usagef("-weights %s: %d weights for -buckets %d", o.weights.String(), len(o.weights), o.buckets)
	}
	if set["by"] {
		if err := experiments.ValidateDimensionName(o.by); err != nil {
			return &usageError{err: fmt.Errorf("-by: %w", err), hint: "Run 'experiments report -h' for usage."}
		}
	}

	s, err := openStore(ctx, o.common, stderr)
	if err != nil {
		return err
	}
	defer closeStore(s, &err)

	// A mistyped -goal is reported even when no experiment matches.
	snap, err := s.Snapshot(ctx)
	if err != nil {
		return err
	}
	goals, err := selectGoals(snap.Data().Goals, o.goal, set["goal"])
	if err != nil {
		return err
	}
	all, err := s.Experiments(ctx)
	if err != nil {
		return err
	}
	var course *string
	if set["course"] {
		course = &o.course
	}
	exps, err := selectExperiments(all, o.flag, course)
	if err != nil {
		return err
	}
	if len(exps) > 0 && len(goals) == 0 {
		return errors.New("the store has no goals to report on: declare them with SetGoal")
	}

	// A report that fails (bad data in one experiment) does not keep the
	// others from being printed; the failures are returned after them.
	var (
		reports    = make([]results.Report, 0, len(exps)*len(goals))
		breakdowns []results.Breakdown
		failed     []error
	)
	for _, e := range exps {
		for _, g := range goals {
			q := results.Query{Experiment: e, Goal: g, Buckets: int(o.buckets), Zone: o.zone.loc, Dimension: o.by,
				Weights: o.splitOf(snap.Data().Meta, e)}
			var (
				r   results.Report
				err error
			)
			if o.by != "" {
				var b results.Breakdown
				b, err = results.BuildBreakdown(ctx, s, q)
				if err == nil {
					breakdowns = append(breakdowns, b)
				}
			} else {
				r, err = results.Build(ctx, s, q)
			}
			if o.weights != nil && errors.Is(err, results.ErrBucketOutOfRange) {
				return usagef("-weights %s: %w", o.weights.String(), err)
			}
			if o.buckets > 0 && errors.Is(err, results.ErrBucketOutOfRange) {
				return usagef("-buckets %d: %w", o.buckets, err)
			}
			if err != nil {
				if ctx.Err() != nil {
					return err
				}
				failed = append(failed, fmt.Errorf("%s, goal %s: %w", e, g.Name, err))
				continue
			}
			if o.by == "" {
				reports = append(reports, r)
			}
		}
	}
	defer func() {
		if err == nil {
			err = errors.Join(failed...)
		}
	}()

	w := bufio.NewWriter(stdout)
	if o.json {
		var v any = reports
		if o.by != "" {
			v = append([]results.Breakdown{}, breakdowns...)
		}
		if err := writeJSON(w, v); err != nil {
			return err
		}
		return w.Flush()
	}
	if len(reports) == 0 && len(breakdowns) == 0 && len(failed) == 0 {
		fmt.Fprintln(w, "no experiment has exposures yet")
	}
	for i, r := range reports {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "=== [%d/%d] %s, goal %s ===\n", i+1, len(reports), r.Experiment, r.Goal.Name)
		if err := r.WriteText(w); err != nil {
			return err
		}
	}
	for i, b := range breakdowns {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "=== [%d/%d] %s, goal %s, by %s ===\n", i+1, len(breakdowns), b.Experiment, b.Goal, b.Dimension)
		if err := b.WriteText(w); err != nil {
			return err
		}
	}
	return w.Flush()
}

// selectGoals returns the goal named name when given (a usageError when
// goals do not have it), otherwise every goal, by name.
func selectGoals(goals map[string]experiments.Goal, name string, given bool) ([]experiments.Goal, error) {
	names := slices.Sorted(maps.Keys(goals))
	if given {
		g, ok := goals[name]
		if !ok {
			if len(names) == 0 {
				return nil, usagef("unknown goal %q; the store has no goals", name)
			}
			return nil, usagef("unknown goal %q; goals: %s", name, nameList(names, false))
		}
		return []experiments.Goal{g}, nil
	}
	out := make([]experiments.Goal, len(names))
	for i, n := range names {
		out[i] = goals[n]
	}
	return out, nil
}

// selectExperiments returns the experiments of all that match flag (when
// not "") and course (when not nil). A filter that matches nothing is a
// usageError naming what there is.
func selectExperiments(all []results.Experiment, flag string, course *string) ([]results.Experiment, error) {
	var out, ofFlag []results.Experiment
	for _, e := range all {
		if flag != "" && e.Flag != flag {
			continue
		}
		ofFlag = append(ofFlag, e)
		if course == nil || e.CourseKey == *course {
			out = append(out, e)
		}
	}
	if len(out) > 0 || flag == "" && course == nil {
		return out, nil
	}
	switch {
	case flag == "":
		return nil, usagef("no experiment has exposures in %s", courseName(*course))
	case len(ofFlag) == 0:
		var flags []string
		for _, e := range all {
			flags = append(flags, e.Flag)
		}
		flags = slices.Compact(flags) // all is sorted by flag
		if len(flags) == 0 {
			return nil, usagef("flag %q has no exposures; no flag has any yet", flag)
		}
		return nil, usagef("flag %q has no exposures; flags with exposures: %s", flag, nameList(flags, false))
	}
	courses := make([]string, len(ofFlag))
	for i, e := range ofFlag {
		courses[i] = e.CourseKey
	}
	return nil, usagef("flag %q has no exposures in %s; its courses (-course): %s", flag, courseName(*course), nameList(courses, true))
}

// courseName names a -course value in an error.
func courseName(key string) string {
	if key == "" {
		return "no course (-course '')"
	}
	return fmt.Sprintf("course %q", key)
}

// nameList joins names, quoted when quote is set, keeping the first 10.
func nameList(names []string, quote bool) string {
	const limit = 10
	shown := names
	if len(shown) > limit {
		shown = shown[:limit]
	}
	parts := make([]string, len(shown))
	for i, n := range shown {
		if quote {
			n = strconv.Quote(n)
		}
		parts[i] = n
	}
	s := strings.Join(parts, ", ")
	if len(names) > limit {
		s += fmt.Sprintf(", … (%d in all)", len(names))
	}
	return s
}
