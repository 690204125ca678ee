package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/results"
	"github.com/lib/pq"
)

var _ results.Source = (*Store)(nil)

// Experiments returns every experiment (flag and course) with exposures,
// sorted by flag then course key in byte order.
func (s *Store) Experiments(ctx context.Context) ([]results.Experiment, error) {
	var rows []struct {
		Flag      string `db:"flag"`
		CourseKey string `db:"course_key"`
	}
	err := s.db.SelectContext(ctx, &rows, `SELECT flag, course_key FROM `+s.t.exposures+
		` GROUP BY flag, course_key ORDER BY flag COLLATE "C", course_key COLLATE "C"`)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: experiments: %w", err)
	}
	out := make([]results.Experiment, len(rows))
	for i, r := range rows {
		out[i] = results.Experiment{Flag: r.Flag, CourseKey: r.CourseKey}
	}
	return out, nil
}

// Aggregate computes q's aggregates in the database, with the semantics
// of results.Source, in one query whose result is one row per day, week
// and bucket: only the aggregates leave PostgreSQL. It reads the exposures
// twice: once to count the participants per day, week and bucket, once
// to join the few who have a conversion of the goal (a semi-join on the
// conversions of the goal, so that the hash table holds conversions, not
// participants) to their attributed conversions. The primary key keeps
// one exposure per user and experiment, so each exposure of a course is
// a participant; for all courses (q.AllCourses), each user's first
// exposure of the flag is, picked once (DISTINCT ON) before both reads.
// Weeks are date_trunc('week', time AT TIME ZONE zone), with
// PostgreSQL's time zone database: for the rare zone whose rules differ
// between it and Go's, the weekly rows may differ from results.Memory's.
// The query runs with work_mem 32MB, so that its hash tables stay in
// memory, and without JIT compilation, which costs more than it saves
// on it.
func (s *Store) Aggregate(ctx context.Context, q results.Query) (results.Aggregates, error) {
	groups, err := s.aggregate(ctx, q, "")
	if err != nil {
		return results.Aggregates{}, err
	}
	return groups[0].Aggregates, nil
}

var _ results.BreakdownSource = (*Store)(nil)

// AggregateBy computes q's aggregates per value of q.Dimension (the
// dimensions column's key, "" where it has none), with the semantics of
// results.BreakdownSource, in the one query of Aggregate grouped by the
// value too.
func (s *Store) AggregateBy(ctx context.Context, q results.Query) ([]results.ValueAggregates, error) {
	if q.Dimension == "" {
		return nil, fmt.Errorf("sqlstore: results of %s: %w: no dimension to break down by", q.Experiment, experiments.ErrInvalid)
	}
	return s.aggregate(ctx, q, q.Dimension)
}

// aggregate returns q's aggregates per value of dimension dim, or, with
// dim "", in one group of value "".
func (s *Store) aggregate(ctx context.Context, q results.Query, dim string) ([]results.ValueAggregates, error) {
	if err := q.Validate(); err != nil {
		return nil, fmt.Errorf("sqlstore: results of %s: %w", q.Experiment, err)
	}
	query, args := s.aggregateQuery(q, dim)
	tx, err := s.db.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("sqlstore: results of %s: %w", q.Experiment, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "SET LOCAL work_mem = '32MB'; SET LOCAL jit = off"); err != nil {
		return nil, fmt.Errorf("sqlstore: results of %s: %w", q.Experiment, err)
	}
	var rows []struct {
		Value        string    `db:"value"`
		Day          time.Time `db:"day"`
		Week         time.Time `db:"week"`
		Bucket       int       `db:"bucket"`
		Participants int64     `db:"participants"`
		Converted    int64     `db:"converted"`
		Count        int64     `db:"count"`
		ValueSum     float64   `db:"value_sum"`
		ValueSquares float64   `db:"value_squares"`
	}
	if err := tx.SelectContext(ctx, &rows, query, args...); err != nil {
		return nil, fmt.Errorf("sqlstore: results of %s: %w", q.Experiment, err)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%w: %s", results.ErrNoExposures, q.Experiment)
	}
	first, last := rows[0].Bucket, rows[0].Bucket
	for _, r := range rows {
		first, last = min(first, r.Bucket), max(last, r.Bucket)
	}
	n := q.Buckets
	if n <= 0 {
		n = min(last, results.MaxBuckets-1) + 1 // a higher bucket is out of range below
	}
	if first < 0 || last >= n {
		bad := first
		if first >= 0 {
			bad = last
		}
		return nil, fmt.Errorf("%w: %s: bucket %d of %d", results.ErrBucketOutOfRange, q.Experiment, bad, n)
	}
	// Rows come by value, day, week, bucket: a day lies in one or two
	// weeks, so the daily and weekly rows are sums of them.
	type key struct {
		at     time.Time
		bucket int
	}
	var (
		out           []results.ValueAggregates
		daily, weekly map[key]*results.Bucket
		days, weeks   []key // in order of first appearance
		finish        func()
	)
	finish = func() {
		g := &out[len(out)-1]
		for _, k := range days {
			g.Daily = append(g.Daily, results.DailyBucket{Day: k.at, Bucket: *daily[k]})
		}
		for _, k := range weeks {
			g.Weekly = append(g.Weekly, results.DailyBucket{Day: k.at, Bucket: *weekly[k]})
		}
		sortRows(g.Daily)
		sortRows(g.Weekly)
	}
	add := func(m map[key]*results.Bucket, order *[]key, k key, np, nc int64) {
		b := m[k]
		if b == nil {
			b = &results.Bucket{Index: k.bucket}
			m[k] = b
			*order = append(*order, k)
		}
		b.Participants += np
		b.Conversions += nc
	}
	for _, r := range rows {
		if len(out) == 0 || out[len(out)-1].Value != r.Value {
			if len(out) > 0 {
				finish()
			}
			g := results.ValueAggregates{Value: r.Value}
			g.Buckets = make([]results.BucketAggregate, n)
			for i := range g.Buckets {
				g.Buckets[i].Index = i
			}
			out = append(out, g)
			daily, weekly, days, weeks = map[key]*results.Bucket{}, map[key]*results.Bucket{}, nil, nil
		}
		a := &out[len(out)-1].Buckets[r.Bucket]
		a.Participants += r.Participants
		a.Conversions += r.Converted
		a.Count += r.Count
		a.ValueSum += r.ValueSum
		a.ValueSumSquares += r.ValueSquares
		add(daily, &days, key{r.Day.UTC(), r.Bucket}, r.Participants, r.Converted)
		add(weekly, &weeks, key{r.Week.UTC(), r.Bucket}, r.Participants, r.Converted)
	}
	finish()
	return out, nil
}

// sortRows orders rows by day, then bucket.
func sortRows(rows []results.DailyBucket) {
	slices.SortFunc(rows, func(a, b results.DailyBucket) int {
		if c := a.Day.Compare(b.Day); c != 0 {
			return c
		}
		return cmp.Compare(a.Index, b.Index)
	})
}

// arg appends v to a query's arguments and returns its placeholder.
func arg(args *[]any, v any) string {
	*args = append(*args, v)
	return "$" + strconv.Itoa(len(*args))
}

// weekOf returns the SQL of the date of the Monday that starts the week
// of timestamptz column col in the zone of placeholder zone.
func weekOf(col, zone string) string {
	return `date_trunc('week', ` + col + ` AT TIME ZONE ` + zone + `::text)::date`
}

// aggregateQuery returns the query of q's aggregates per value of
// dimension dim (” for all with dim ""), UTC day, week in q's zone and
// bucket (value, day, week, bucket, participants: exposed then,
// converted: converting then, and their count, value_sum and
// value_squares), ordered by value (byte order), day, week and bucket,
// and its arguments.
func (s *Store) aggregateQuery(q results.Query, dim string) (string, []any) {
	var args []any
	zone := arg(&args, q.ZoneName())
	with, from := s.participantsQuery(q, dim, &args)
	converted := s.convertedQuery(q, from, &args)
	return `WITH ` + with + `c AS (` + converted + `)
		SELECT value, day::timestamp AT TIME ZONE 'UTC' AS day, week::timestamp AT TIME ZONE 'UTC' AS week,
			bucket, sum(np)::bigint AS participants,
			sum(nc)::bigint AS converted, sum(n)::bigint AS count,
			sum(v) AS value_sum, sum(v2) AS value_squares
		FROM (
			SELECT value, (time AT TIME ZONE 'UTC')::date AS day, ` + weekOf("time", zone) + ` AS week, bucket, count(*) AS np,
				0::bigint AS nc, 0::bigint AS n, 0::double precision AS v, 0::double precision AS v2
			FROM ` + from + ` AS e
			GROUP BY 1, 2, 3, 4
			UNION ALL
			SELECT value, (first AT TIME ZONE 'UTC')::date, ` + weekOf("first", zone) + `, bucket, 0, count(*), sum(n), sum(v), sum(v * v)
			FROM c GROUP BY 1, 2, 3, 4
		) AS d
		GROUP BY value, day, week, bucket ORDER BY value COLLATE "C", day, week, bucket`, args
}

// participantsQuery returns the participants of q's experiment, one row
// (user_id, bucket, time, value: of dimension dim, ” without) per
// participant: a WITH item to put before the others ("" or "p AS (…), ")
// and the FROM item to read them from. In one course, they are its
// exposures, one per user (the primary key), read where they are used;
// in all courses, each user's first exposure (then smallest bucket, then
// smallest course key), computed once.
func (s *Store) participantsQuery(q results.Query, dim string, args *[]any) (with, from string) {
	value := `''::text`
	if dim != "" {
		value = `coalesce(dimensions->>` + arg(args, dim) + `::text, '')`
	}
	flag := arg(args, q.Flag)
	if q.AllCourses {
		return `p AS MATERIALIZED (SELECT DISTINCT ON (user_id) user_id, bucket, time, ` + value + ` AS value FROM ` + s.t.exposures +
			` WHERE flag = ` + flag + ` ORDER BY user_id, time, bucket, course_key COLLATE "C"), `, `p`
	}
	return ``, `(SELECT user_id, bucket, time, ` + value + ` AS value FROM ` + s.t.exposures +
		` WHERE flag = ` + flag + ` AND course_key = ` + arg(args, q.CourseKey) + `)`
}

// convertedQuery returns the query of the converted participants (value,
// bucket, n: their count, v: their value, first: when they converted)
// for q's goal among the participants of from, adding the goal's
// arguments. Only the participants with a conversion of the goal (of
// every goal of Include, for a complex goal) can convert: a semi-join
// keeps those before the join on the conversions' times.
func (s *Store) convertedQuery(q results.Query, from string, args *[]any) string {
	g := q.Goal
	if !g.Complex() {
		name, once, valued := arg(args, g.Name), arg(args, g.Once), arg(args, g.Value != experiments.ValueCount)
		return `SELECT e.value, e.bucket,
			CASE WHEN ` + once + ` THEN 1 ELSE count(*) END AS n,
			CASE WHEN ` + valued + ` THEN sum(x.value) ELSE 0 END AS v,
			min(x.time) AS first
			FROM ` + from + ` AS e
			JOIN ` + s.t.conversions + ` AS x ON x.user_id = e.user_id AND x.goal = ` + name + ` AND x.time >= e.time
			WHERE e.user_id IN (SELECT user_id FROM ` + s.t.conversions + ` WHERE goal = ` + name + `)
			GROUP BY e.user_id, e.bucket, e.value`
	}
	include, exclude := distinct(g.Include), distinct(g.Exclude)
	inc, exc, n := arg(args, pq.Array(include)), arg(args, pq.Array(exclude)), arg(args, len(include))
	// Per participant and goal, the first attributed conversion; then the
	// participants with every included goal and no excluded one.
	return `SELECT value, bucket, 1 AS n, 0::double precision AS v,
		max(first) FILTER (WHERE goal = ANY(` + inc + `)) AS first
		FROM (SELECT e.user_id, e.bucket, e.value, x.goal, min(x.time) AS first
			FROM ` + from + ` AS e
			JOIN ` + s.t.conversions + ` AS x ON x.user_id = e.user_id
				AND (x.goal = ANY(` + inc + `) OR x.goal = ANY(` + exc + `)) AND x.time >= e.time
			WHERE e.user_id IN (SELECT user_id FROM ` + s.t.conversions + ` WHERE goal = ANY(` + inc + `))
			GROUP BY e.user_id, e.bucket, e.value, x.goal) AS g
		GROUP BY user_id, bucket, value
		HAVING count(*) FILTER (WHERE goal = ANY(` + inc + `)) = ` + n + ` AND count(*) FILTER (WHERE goal = ANY(` + exc + `)) = 0`
}

func distinct(names []string) []string {
	out := slices.Clone(names)
	slices.Sort(out)
	return slices.Compact(out)
}

var _ results.Counter = (*Store)(nil)

// Participants counts the participants of every experiment per bucket,
// in one grouped scan of the exposures (one row per participant).
func (s *Store) Participants(ctx context.Context) ([]results.Participation, error) {
	var rows []struct {
		Flag      string `db:"flag"`
		CourseKey string `db:"course_key"`
		Bucket    int    `db:"bucket"`
		N         int64  `db:"n"`
	}
	err := s.db.SelectContext(ctx, &rows, `SELECT flag, course_key, bucket, count(*) AS n FROM `+s.t.exposures+
		` WHERE bucket >= 0 AND bucket < $1 GROUP BY flag, course_key, bucket ORDER BY flag COLLATE "C", course_key COLLATE "C", bucket`,
		results.MaxBuckets)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: participants: %w", err)
	}
	var out []results.Participation
	for _, r := range rows {
		x := results.Experiment{Flag: r.Flag, CourseKey: r.CourseKey}
		if len(out) == 0 || out[len(out)-1].Experiment != x {
			out = append(out, results.Participation{Experiment: x})
		}
		p := &out[len(out)-1]
		p.Buckets = append(p.Buckets, make([]int64, r.Bucket+1-len(p.Buckets))...)
		p.Buckets[r.Bucket] = r.N
	}
	return out, nil
}
