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
// of results.Source: the participants' exposures are joined to their
// attributed conversions and grouped by bucket and by day, so that only
// the aggregates leave PostgreSQL.
func (s *Store) Aggregate(ctx context.Context, q results.Query) (results.Aggregates, error) {
	var agg results.Aggregates
	if err := q.Validate(); err != nil {
		return agg, err
	}
	converted, args := s.convertedQuery(q)
	tx, err := s.db.BeginTxx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return agg, fmt.Errorf("sqlstore: results of %s: %w", q.Experiment, err)
	}
	defer tx.Rollback()

	with := "WITH p AS (SELECT DISTINCT ON (user_id) user_id, bucket, time FROM " + s.t.exposures +
		" WHERE flag = $1 AND course_key = $2 ORDER BY user_id, time, bucket), c AS (" + converted + ") "
	var buckets []struct {
		Bucket       int     `db:"bucket"`
		Participants int64   `db:"participants"`
		Converted    int64   `db:"converted"`
		Count        int64   `db:"count"`
		ValueSum     float64 `db:"value_sum"`
		ValueSquares float64 `db:"value_squares"`
	}
	err = tx.SelectContext(ctx, &buckets, with+`SELECT p.bucket, count(*) AS participants,
		count(c.user_id) AS converted, COALESCE(sum(c.n), 0) AS count,
		COALESCE(sum(c.v), 0) AS value_sum, COALESCE(sum(c.v * c.v), 0) AS value_squares
		FROM p LEFT JOIN c USING (user_id) GROUP BY p.bucket ORDER BY p.bucket`, args...)
	if err != nil {
		return agg, fmt.Errorf("sqlstore: results of %s: %w", q.Experiment, err)
	}
	if len(buckets) == 0 {
		return agg, fmt.Errorf("%w: %s", results.ErrNoExposures, q.Experiment)
	}
	n := q.Buckets
	if n <= 0 {
		n = buckets[len(buckets)-1].Bucket + 1
	}
	if first, last := buckets[0].Bucket, buckets[len(buckets)-1].Bucket; first < 0 || last >= n {
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
	for _, b := range buckets {
		a := &agg.Buckets[b.Bucket]
		a.Participants, a.Conversions, a.Count = b.Participants, b.Converted, b.Count
		a.ValueSum, a.ValueSumSquares = b.ValueSum, b.ValueSquares
	}

	var daily []struct {
		Day          time.Time `db:"day"`
		Bucket       int       `db:"bucket"`
		Participants int64     `db:"participants"`
		Converted    int64     `db:"converted"`
	}
	err = tx.SelectContext(ctx, &daily, with+`SELECT day::timestamp AT TIME ZONE 'UTC' AS day, bucket,
		sum(np) AS participants, sum(nc) AS converted FROM (
			SELECT (p.time AT TIME ZONE 'UTC')::date AS day, p.bucket, 1 AS np, 0 AS nc FROM p
			UNION ALL
			SELECT (c.first AT TIME ZONE 'UTC')::date, p.bucket, 0, 1 FROM p JOIN c USING (user_id)
		) AS d GROUP BY day, bucket ORDER BY day, bucket`, args...)
	if err != nil {
		return agg, fmt.Errorf("sqlstore: results of %s: daily: %w", q.Experiment, err)
	}
	agg.Daily = make([]results.DailyBucket, len(daily))
	for i, d := range daily {
		agg.Daily[i] = results.DailyBucket{Day: d.Day.UTC(), Bucket: results.Bucket{
			Index: d.Bucket, Participants: d.Participants, Conversions: d.Converted}}
	}
	return agg, nil
}

// convertedQuery returns the query of the converted participants of p
// (user_id, n: their count, v: their value, first: when they converted)
// for q's goal, and the arguments of the whole aggregate query.
func (s *Store) convertedQuery(q results.Query) (string, []any) {
	g := q.Goal
	args := []any{q.Flag, q.CourseKey}
	if !g.Complex() {
		args = append(args, g.Name, g.Once, g.Value != experiments.ValueCount)
		return `SELECT p.user_id,
			CASE WHEN $4 THEN 1 ELSE count(*) END AS n,
			CASE WHEN $5 THEN sum(x.value) ELSE 0 END AS v,
			min(x.time) AS first
			FROM p JOIN ` + s.t.conversions + ` AS x ON x.user_id = p.user_id AND x.goal = $3 AND x.time >= p.time
			GROUP BY p.user_id`, args
	}
	include, exclude := distinct(g.Include), distinct(g.Exclude)
	args = append(args, pq.Array(include), pq.Array(exclude), len(include))
	// Per participant and goal, the first attributed conversion; then the
	// participants with every included goal and no excluded one.
	return `SELECT user_id, 1 AS n, 0::double precision AS v,
		max(first) FILTER (WHERE goal = ANY($3)) AS first
		FROM (SELECT p.user_id, x.goal, min(x.time) AS first
			FROM p JOIN ` + s.t.conversions + ` AS x ON x.user_id = p.user_id
				AND (x.goal = ANY($3) OR x.goal = ANY($4)) AND x.time >= p.time
			GROUP BY p.user_id, x.goal) AS g
		GROUP BY user_id
		HAVING count(*) FILTER (WHERE goal = ANY($3)) = $5 AND count(*) FILTER (WHERE goal = ANY($4)) = 0`, args
}

func distinct(names []string) []string {
	out := slices.Clone(names)
	slices.Sort(out)
	return slices.Compact(out)
}
