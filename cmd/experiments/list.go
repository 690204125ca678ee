package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/results"
	"github.com/abkit/experiments/sqlstore"
	"github.com/lib/pq"
)

const listUsage = `Usage:
  experiments [list] [-dsn DSN] [-schema S] [-json]
  experiments report [-dsn DSN] [-schema S] [-flag F] [-course C] [-goal G] [-buckets N] [-json]
  experiments migrate [-dsn DSN] [-schema S] [-print] [-json]
  experiments help [report | migrate]

-dsn, -schema and -json may also come before the command:
"experiments -json report -flag F" is "experiments report -flag F -json".

experiments, or experiments list, lists the experiments with exposures
(a flag, in a course or in none, shown "-") with their participants per
bucket and the flag's rule, then the flags configured without exposures,
then the goals. -json prints the same as one JSON object.

experiments report prints the results of the experiments, goal by goal;
run 'experiments report -h' for its filters.

experiments migrate brings the store's tables up to this version, or
prints the SQL that would; run 'experiments migrate -h'.

The database is -dsn, or $EXPERIMENTS_DSN, and its schema -schema. For
list and report, the schema must hold a store at this version: they only
read, never create a store nor migrate one (a role that may only SELECT
runs them).

Exit status: 0 on success; 2 for bad input (an unknown command, flag or
argument, a bad value, a goal, flag, course or schema the store does not
have); 1 when something fails (the database, the output, a schema
behind or ahead of this version). With -json, an error is one line of
JSON on stderr, {"error": "…", "code": 2, "hint": "…"}: code is the exit
status, hint (left out when there is none) points to the usage.
`

type listOptions struct{ common }

func listFlags(o *listOptions) *flag.FlagSet {
	fs := flag.NewFlagSet("list", flag.ContinueOnError)
	o.register(fs)
	return fs
}

// listing is what list prints.
type listing struct {
	// Experiments are the experiments with exposures, by flag then
	// course key (byte order).
	Experiments []listedExperiment `json:"experiments"`
	// Unexposed are the main flags configured without any exposure, by
	// name; bucket flags ("ns.name.1") are left out.
	Unexposed []listedFlag `json:"flags_without_exposures"`
	// Goals are the store's goals, by name.
	Goals []listedGoal `json:"goals"`
}

type listedExperiment struct {
	Flag         string `json:"flag"`
	CourseKey    string `json:"course_key"` // "" when none
	Participants int64  `json:"participants"`
	// Buckets holds the buckets with participants, in order.
	Buckets []bucketCount `json:"buckets"`
	// Rule is the flag's rule; nil when the flag is not configured.
	Rule *experiments.Rule `json:"rule"`
}

type bucketCount struct {
	Index        int   `json:"index"`
	Participants int64 `json:"participants"`
}

type listedFlag struct {
	Flag string           `json:"flag"`
	Rule experiments.Rule `json:"rule"`
}

type listedGoal struct {
	Name    string   `json:"name"`
	Once    bool     `json:"once"`
	Value   string   `json:"value"` // ValueType.String()
	Include []string `json:"include,omitempty"`
	Exclude []string `json:"exclude,omitempty"`
}

// list runs "experiments list".
func list(ctx context.Context, g common, args []string, stdout, stderr io.Writer) (err error) {
	var o listOptions
	fs := listFlags(&o)
	if done, err := parse(fs, &o.common, g, args, listUsage, stdout); done {
		return err
	}
	s, err := openStore(ctx, o.common, stderr)
	if err != nil {
		return err
	}
	defer closeStore(s, &err)

	l, err := newListing(ctx, s)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(stdout)
	if o.json {
		if err := writeJSON(w, l); err != nil {
			return err
		}
	} else {
		l.writeText(w)
	}
	return w.Flush()
}

// newListing reads the listing from s: the experiments (Source's), their
// participants per bucket (one GROUP BY over the exposures) and the
// configuration of s's snapshot.
func newListing(ctx context.Context, s *sqlstore.Store) (listing, error) {
	exps, err := s.Experiments(ctx)
	if err != nil {
		return listing{}, err
	}
	counts, err := participants(ctx, s)
	if err != nil {
		return listing{}, err
	}
	snap, err := s.Snapshot(ctx)
	if err != nil {
		return listing{}, err
	}
	d := snap.Data()

	l := listing{Experiments: []listedExperiment{}, Unexposed: []listedFlag{}, Goals: []listedGoal{}}
	exposed := make(map[string]bool)
	for _, e := range exps {
		exposed[e.Flag] = true
		le := listedExperiment{Flag: e.Flag, CourseKey: e.CourseKey, Buckets: counts[e]}
		if le.Buckets == nil {
			le.Buckets = []bucketCount{} // exposed after Experiments read the table
		}
		for _, b := range le.Buckets {
			le.Participants += b.Participants
		}
		if r, ok := d.Flags[e.Flag]; ok {
			le.Rule = &r
		}
		l.Experiments = append(l.Experiments, le)
	}
	for _, name := range slices.Sorted(maps.Keys(d.Flags)) {
		if !exposed[name] && !isBucketFlag(d.Flags, name) {
			l.Unexposed = append(l.Unexposed, listedFlag{Flag: name, Rule: d.Flags[name]})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(d.Goals)) {
		g := d.Goals[name]
		l.Goals = append(l.Goals, listedGoal{Name: g.Name, Once: g.Once, Value: g.Value.String(),
			Include: g.Include, Exclude: g.Exclude})
	}
	return l, nil
}

// participants counts the participants of every experiment per bucket.
// The exposures table keeps one row per user and experiment, so rows are
// participants, as results.Source counts them.
func participants(ctx context.Context, s *sqlstore.Store) (map[results.Experiment][]bucketCount, error) {
	var rows []struct {
		Flag         string `db:"flag"`
		CourseKey    string `db:"course_key"`
		Bucket       int    `db:"bucket"`
		Participants int64  `db:"participants"`
	}
	table := pq.QuoteIdentifier(s.Schema()) + ".experiments_exposures"
	err := s.DB().SelectContext(ctx, &rows, `SELECT flag, course_key, bucket, count(*) AS participants FROM `+
		table+` GROUP BY flag, course_key, bucket ORDER BY bucket`)
	if err != nil {
		return nil, fmt.Errorf("participants per bucket: %w", err)
	}
	out := make(map[results.Experiment][]bucketCount)
	for _, r := range rows {
		e := results.Experiment{Flag: r.Flag, CourseKey: r.CourseKey}
		out[e] = append(out[e], bucketCount{Index: r.Bucket, Participants: r.Participants})
	}
	return out, nil
}

// isBucketFlag reports whether name is a bucket flag, "ns.name.i", of a
// flag in flags, as experiments.NewSnapshot reads them.
func isBucketFlag(flags map[string]experiments.Rule, name string) bool {
	dot := strings.LastIndexByte(name, '.')
	if dot < 0 {
		return false
	}
	digits := name[dot+1:]
	if digits == "" || len(digits) > 1 && digits[0] == '0' || strings.Trim(digits, "0123456789") != "" {
		return false
	}
	_, ok := flags[name[:dot]]
	return ok
}

func (l listing) writeText(w io.Writer) {
	if len(l.Experiments) == 0 {
		fmt.Fprintln(w, "no experiment has exposures yet")
	} else {
		rows := [][]string{{"flag", "course", "participants", "buckets", "rule"}}
		for _, e := range l.Experiments {
			var counts []string
			for _, b := range e.Buckets {
				counts = append(counts, fmt.Sprintf("%d: %d", b.Index, b.Participants))
			}
			rule := "not configured"
			if e.Rule != nil {
				rule = e.Rule.String()
			}
			rows = append(rows, []string{e.Flag, courseText(e.CourseKey),
				strconv.FormatInt(e.Participants, 10), strings.Join(counts, ", "), rule})
		}
		writeTable(w, rows)
	}
	if len(l.Unexposed) > 0 {
		fmt.Fprintln(w)
		rows := [][]string{{"flag without exposures", "rule"}}
		for _, f := range l.Unexposed {
			rows = append(rows, []string{f.Flag, f.Rule.String()})
		}
		writeTable(w, rows)
	}
	fmt.Fprintln(w)
	if len(l.Goals) == 0 {
		fmt.Fprintln(w, "no goals: declare them with SetGoal")
		return
	}
	rows := [][]string{{"goal", "counts"}}
	for _, g := range l.Goals {
		rows = append(rows, []string{g.Name, goalText(g)})
	}
	writeTable(w, rows)
}

// courseText shows the course of an experiment; "-" for none.
func courseText(key string) string {
	if key == "" {
		return "-"
	}
	return key
}

// goalText says how g counts.
func goalText(g listedGoal) string {
	switch {
	case len(g.Include) > 0:
		s := "complex: all of " + strings.Join(g.Include, ", ")
		if len(g.Exclude) > 0 {
			s += "; none of " + strings.Join(g.Exclude, ", ")
		}
		return s
	case g.Once:
		s := "once per participant"
		if g.Value != experiments.ValueCount.String() {
			s += ", value: " + g.Value
		}
		return s
	}
	return "every conversion, value: " + g.Value
}

// writeTable writes rows as columns separated by two spaces, the first
// row being the header.
func writeTable(w io.Writer, rows [][]string) {
	widths := make([]int, 0, 8)
	for _, r := range rows {
		for i, c := range r {
			if i == len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	for _, r := range rows {
		var b strings.Builder
		for i, c := range r {
			b.WriteString(c)
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)+2))
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

// writeJSON writes v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
