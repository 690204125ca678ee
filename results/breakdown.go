package results

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/abkit/experiments"
)

// ErrTooManyValues is wrapped by BuildBreakdown's error when the
// dimension has more than MaxBreakdownValues values among the
// participants: it is no category (a user ID, a full user agent).
var ErrTooManyValues = errors.New("too many values to break down by")

// MaxBreakdownValues is the most values a Breakdown has, "" included.
const MaxBreakdownValues = 100

// ValueAggregates are the aggregates of the participants with one value
// of the query's dimension.
type ValueAggregates struct {
	// Value is the dimension's value; "" for the participants whose
	// exposure has none.
	Value string
	Aggregates
}

// BreakdownSource is a Source that also aggregates per value of a
// dimension. Memory, Live and sqlstore.Store implement it.
//
// AggregateBy splits q's participants (Source, rule 1) by the value of
// dimension q.Dimension in the Dimensions of their exposure (the one
// that makes them participants), "" when it has none, and returns, per
// value with a participant, the aggregates Source.Aggregate would
// compute if those were the only participants, except that every value
// has the same number of buckets: q.Buckets when positive, otherwise the
// highest bucket of any participant + 1. Values are sorted in byte
// order ("" first). Summed over values, they give Aggregate's figures.
// Errors are Aggregate's, and one wrapping experiments.ErrInvalid when
// q.Dimension is "".
type BreakdownSource interface {
	Source
	// AggregateBy returns the aggregates of q.Goal in q.Experiment per
	// value of q.Dimension.
	AggregateBy(ctx context.Context, q Query) ([]ValueAggregates, error)
}

var (
	_ BreakdownSource = (*Memory)(nil)
	_ BreakdownSource = Live{}
)

// AggregateBy returns q's aggregates per value, as Memory does.
func (l Live) AggregateBy(ctx context.Context, q Query) ([]ValueAggregates, error) {
	return l.memory().AggregateBy(ctx, q)
}

// Breakdown is the results of one goal in one experiment, split by the
// value of a dimension: one full Report per value, each computed from
// that value's participants alone. It marshals with encoding/json.
//
// Read it as exploration, not as a test: each row's p-values and
// verdict are adjusted for the row's own comparisons (Holm, across
// buckets) but not across rows, so with k values the chance that some
// row shows a "significant" difference by luck alone grows with k (at
// 95% confidence, about 1 − 0.95^k: 40% for 10 values). A difference
// found in one value is a hypothesis for a new experiment. Each row also
// has fewer participants than the whole, so it reaches a verdict later.
type Breakdown struct {
	Experiment Experiment `json:"experiment"`
	Goal       string     `json:"goal"`
	// Dimension is the dimension broken down by.
	Dimension string `json:"dimension"`
	// Rows holds one row per value, sorted by value in byte order
	// ("" first: participants without a value).
	Rows []BreakdownRow `json:"rows"`
}

// BreakdownRow is one value of a Breakdown.
type BreakdownRow struct {
	// Value is the dimension's value, "" for participants without one.
	Value string `json:"value"`
	// Report is the report of the participants with this value.
	Report Report `json:"report"`
}

// BuildBreakdown computes the Breakdown of q by q.Dimension from src:
// src.AggregateBy, then for each value what Build computes (comparisons
// against control, the sample-ratio check with q.Weights, verdicts,
// daily and weekly series). Errors: q.Validate's and an empty
// q.Dimension (wrapping experiments.ErrInvalid), src's, ErrInvalidBucket
// when src breaks the contract, ErrTooManyValues beyond
// MaxBreakdownValues values.
func BuildBreakdown(ctx context.Context, src BreakdownSource, q Query) (Breakdown, error) {
	if err := q.prepare(); err != nil {
		return Breakdown{}, err
	}
	if q.Dimension == "" {
		return Breakdown{}, fmt.Errorf("results: %s: %w: no dimension to break down by", q.Experiment, experiments.ErrInvalid)
	}
	groups, err := src.AggregateBy(ctx, q)
	if err != nil {
		return Breakdown{}, fmt.Errorf("results: %w", err)
	}
	if len(groups) > MaxBreakdownValues {
		return Breakdown{}, fmt.Errorf("results: %s: dimension %s has %d values, more than %d: %w",
			q.Experiment, q.Dimension, len(groups), MaxBreakdownValues, ErrTooManyValues)
	}
	b := Breakdown{Experiment: q.Experiment, Goal: q.Goal.Name, Dimension: q.Dimension, Rows: make([]BreakdownRow, 0, len(groups))}
	for i, g := range groups {
		if i > 0 && g.Value <= groups[i-1].Value {
			return Breakdown{}, fmt.Errorf("results: %s: source: value %q after %q: %w", q.Experiment, g.Value, groups[i-1].Value, ErrInvalidBucket)
		}
		r, err := reportOf(q, g.Aggregates)
		if err != nil {
			return Breakdown{}, fmt.Errorf("%w (%s %q)", err, q.Dimension, g.Value)
		}
		b.Rows = append(b.Rows, BreakdownRow{Value: g.Value, Report: r})
	}
	return b, nil
}

// WriteText writes b as one plain-text table, a row per value ("" as
// "(none)"): the
// participants, each bucket's converted/participants and rate, each
// variant's p-value against control, and the verdict; then a reminder
// that the rows' p-values are not adjusted across values.
func (b Breakdown) WriteText(w io.Writer) error {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	row := func(cells ...string) { fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t") }
	row("experiment", b.Experiment.String())
	row("goal", b.Goal)
	row("by", b.Dimension)
	fmt.Fprintln(tw)
	n := 0
	for _, r := range b.Rows {
		n = max(n, len(r.Report.Buckets))
	}
	head := []string{b.Dimension, "participants"}
	for i := range n {
		head = append(head, bucketName(i))
	}
	for i := 1; i < n; i++ {
		head = append(head, "p "+strconv.Itoa(i))
	}
	row(append(head, "verdict")...)
	for _, r := range b.Rows {
		value := r.Value
		if value == "" {
			value = "(none)"
		}
		cells := []string{value, strconv.FormatInt(r.Report.participants(), 10)}
		for _, bk := range r.Report.Buckets {
			cells = append(cells, fmt.Sprintf("%d/%d %s", bk.Converted, bk.Participants, percent(bk.Rate, 1)))
		}
		for i := 1; i < n; i++ {
			p := "n/a"
			for _, c := range r.Report.Rates {
				if c.Variant == i && c.Error == "" {
					p = pValue(c.PValue)
				}
			}
			cells = append(cells, p)
		}
		row(append(cells, r.Report.Verdict.Text)...)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var out bytes.Buffer
	for line := range bytes.Lines(buf.Bytes()) {
		out.Write(bytes.TrimRight(line, " \n"))
		out.WriteByte('\n')
	}
	fmt.Fprintf(&out, "\n%d values: p-values are not adjusted across values; a difference in one value is a lead, not a result.\n", len(b.Rows))
	_, err := w.Write(out.Bytes())
	return err
}
