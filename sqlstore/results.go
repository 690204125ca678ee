package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
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
// of results.Source, in one query whose result is one row per day and
// bucket: only the aggregates leave PostgreSQL. It reads the exposures
// twice: once to count the participants per day and bucket, once to join
// the few who have a conversion of the goal (a semi-join on the
// conversions of the goal, so that the hash table holds conversions, not
// participants) to their attributed conversions. The primary key keeps
// one exposure per user and experiment, so each exposure of a course is
// a participant; for all courses (q.AllCourses), each user's first
// exposure of the flag is, picked once (DISTINCT ON) before both reads. The query runs with work_mem 32MB, so that its hash tables
// stay in memory, and without JIT compilation, which costs more than it
// saves on it.
func (s *Store) Aggregate(ctx context.Context, q results.Query) (results.Aggregates, error) {
	var agg results.Aggregates
	if err := q.Validate(); err != nil {
		return agg, fmt.Errorf("sqlstore: results of %s: %w", q.Experiment, err)
	}
	query, args := s.aggregateQuery(q)
	tx, err := s.db.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return agg, fmt.Errorf("sqlstore: results of %s: %w", q.Experiment, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "SET LOCAL work_mem = '32MB'; SET LOCAL jit = off"); err != nil {
		return agg, fmt.Errorf("sqlstore: results of %s: %w", q.Experiment, err)
	}
	var rows []struct {
		Day          time.Time `db:"day"`
		Bucket       int       `db:"bucket"`
		Participants int64     `db:"participants"`
		Converted    int64     `db:"converted"`
		Count        int64     `db:"count"`
		ValueSum     float64   `db:"value_sum"`
		ValueSquares float64   `db:"value_squares"`
	}
	if err := tx.SelectContext(ctx, &rows, query, args...); err != nil {
		return agg, fmt.Errorf("sqlstore: results of %s: %w", q.Experiment, err)
	}
	if len(rows) == 0 {
		return agg, fmt.Errorf("%w: %s", results.ErrNoExposures, q.Experiment)
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
		return agg, fmt.Errorf("%w: %s: bucket %d of %d", results.ErrBucketOutOfRange, q.Experiment, bad, n)
	}
	agg.Buckets = make([]results.BucketAggregate, n)
	for i := range agg.Buckets {
		agg.Buckets[i].Index = i
	}
	agg.Daily = make([]results.DailyBucket, len(rows))
	for i, r := range rows {
		a := &agg.Buckets[r.Bucket]
		a.Participants += r.Participants
		a.Conversions += r.Converted
		a.Count += r.Count
		a.ValueSum += r.ValueSum
		a.ValueSumSquares += r.ValueSquares
		agg.Daily[i] = results.DailyBucket{Day: r.Day.UTC(), Bucket: results.Bucket{
			Index: r.Bucket, Participants: r.Participants, Conversions: r.Converted}}
	}
	return agg, nil
}

// aggregateQuery returns the query of q's aggregates per UTC day and
// bucket (day, bucket, participants: exposed that day, converted:
// converting that day, and their count, value_sum and value_squares),
// ordered by day and bucket, and its arguments: the goal's three ($1 to
// $3), then the flag ($4) and, but for all courses, the course key ($5).
func (s *Store) aggregateQuery(q results.Query) (string, []any) {
	with, from := s.participantsQuery(q)
	converted, args := s.convertedQuery(q, from)
	args = append(args, q.Flag)
	if !q.AllCourses {
		args = append(args, q.CourseKey)
	}
	return `WITH ` + with + `c AS (` + converted + `)
		SELECT day::timestamp AT TIME ZONE 'UTC' AS day, bucket, sum(np)::bigint AS participants,
			sum(nc)::bigint AS converted, sum(n)::bigint AS count,
			sum(v) AS value_sum, sum(v2) AS value_squares
		FROM (
			SELECT (time AT TIME ZONE 'UTC')::date AS day, bucket, count(*) AS np,
				0::bigint AS nc, 0::bigint AS n, 0::double precision AS v, 0::double precision AS v2
			FROM ` + from + ` AS e
			GROUP BY 1, 2
			UNION ALL
			SELECT (first AT TIME ZONE 'UTC')::date, bucket, 0, count(*), sum(n), sum(v), sum(v * v)
			FROM c GROUP BY 1, 2
		) AS d
		GROUP BY day, bucket ORDER BY day, bucket`, args
}

// participantsQuery returns the participants of q's experiment, one row
// (user_id, bucket, time) per participant: a WITH item to put before
// the others ("" or "p AS (…), ") and the FROM item to read them from.
// In one course, they are its exposures, one per user (the primary
// key), read where they are used; in all courses, each user's first
// exposure (then smallest bucket), computed once. The flag is $4, the
// course key $5.
func (s *Store) participantsQuery(q results.Query) (with, from string) {
	if q.AllCourses {
		return `p AS MATERIALIZED (SELECT DISTINCT ON (user_id) user_id, bucket, time FROM ` + s.t.exposures +
			` WHERE flag = $4 ORDER BY user_id, time, bucket), `, `p`
	}
	return ``, `(SELECT user_id, bucket, time FROM ` + s.t.exposures + ` WHERE flag = $4 AND course_key = $5)`
}

// convertedQuery returns the query of the converted participants (bucket,
// n: their count, v: their value, first: when they converted) for q's
// goal among the participants of from, and the goal's arguments ($1 to
// $3). Only the participants with a conversion of the goal (of every
// goal of Include, for a complex goal) can convert: a semi-join keeps
// those before the join on the conversions' times.
func (s *Store) convertedQuery(q results.Query, from string) (string, []any) {
	g := q.Goal
	if !g.Complex() {
		args := []any{g.Name, g.Once, g.Value != experiments.ValueCount}
		return `SELECT e.bucket,
			CASE WHEN $2 THEN 1 ELSE count(*) END AS n,
			CASE WHEN $3 THEN sum(x.value) ELSE 0 END AS v,
			min(x.time) AS first
			FROM ` + from + ` AS e
			JOIN ` + s.t.conversions + ` AS x ON x.user_id = e.user_id AND x.goal = $1 AND x.time >= e.time
			WHERE e.user_id IN (SELECT user_id FROM ` + s.t.conversions + ` WHERE goal = $1)
			GROUP BY e.user_id, e.bucket`, args
	}
	include, exclude := distinct(g.Include), distinct(g.Exclude)
	args := []any{pq.Array(include), pq.Array(exclude), len(include)}
	// Per participant and goal, the first attributed conversion; then the
	// participants with every included goal and no excluded one.
	return `SELECT bucket, 1 AS n, 0::double precision AS v,
		max(first) FILTER (WHERE goal = ANY($1)) AS first
		FROM (SELECT e.user_id, e.bucket, x.goal, min(x.time) AS first
			FROM ` + from + ` AS e
			JOIN ` + s.t.conversions + ` AS x ON x.user_id = e.user_id
				AND (x.goal = ANY($1) OR x.goal = ANY($2)) AND x.time >= e.time
			WHERE e.user_id IN (SELECT user_id FROM ` + s.t.conversions + ` WHERE goal = ANY($1))
			GROUP BY e.user_id, e.bucket, x.goal) AS g
		GROUP BY user_id, bucket
		HAVING count(*) FILTER (WHERE goal = ANY($1)) = $3 AND count(*) FILTER (WHERE goal = ANY($2)) = 0`, args
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
