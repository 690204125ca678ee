package results

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/abkit/experiments"
)

// Memory is the reference Source: it aggregates exposures and
// conversions held in memory, such as a MemStore's:
//
//	src := results.NewMemory(store.Exposures(), store.Conversions())
//
// It follows the semantics documented on Source exactly. It is an
// immutable snapshot of the data given to NewMemory, safe for concurrent
// use.
type Memory struct {
	experiments  []Experiment
	participants map[Experiment][]participant // by exposure time, then user
	conversions  map[string]map[string][]conv // goal → user → by time
}

var _ Source = (*Memory)(nil)

type participant struct {
	user   string
	bucket int
	time   time.Time
	day    int64 // days since 1970-01-01 UTC
	dims   experiments.Dimensions
}

type conv struct {
	time  time.Time
	day   int64
	value float64
}

// NewMemory indexes exposures and conversions for aggregation, in
// O(n log n); it keeps no reference to the slices.
func NewMemory(exposures []experiments.Exposure, conversions []experiments.Conversion) *Memory {
	type userKey struct {
		Experiment
		user string
	}
	first := make(map[userKey]experiments.Exposure, len(exposures))
	for _, e := range exposures {
		k := userKey{Experiment{Flag: e.Flag, CourseKey: e.CourseKey}, e.UserID}
		if old, ok := first[k]; ok {
			if c := e.Time.Compare(old.Time); c > 0 || c == 0 && e.Bucket >= old.Bucket {
				continue
			}
		}
		first[k] = e
	}
	m := &Memory{
		participants: make(map[Experiment][]participant),
		conversions:  make(map[string]map[string][]conv),
	}
	for k, e := range first {
		m.participants[k.Experiment] = append(m.participants[k.Experiment],
			participant{user: k.user, bucket: e.Bucket, time: e.Time, day: dayOf(e.Time), dims: e.Dimensions})
	}
	for x, ps := range m.participants {
		m.experiments = append(m.experiments, x)
		slices.SortFunc(ps, func(a, b participant) int {
			if c := a.time.Compare(b.time); c != 0 {
				return c
			}
			return cmp.Compare(a.user, b.user)
		})
	}
	slices.SortFunc(m.experiments, func(a, b Experiment) int {
		if c := cmp.Compare(a.Flag, b.Flag); c != 0 {
			return c
		}
		return cmp.Compare(a.CourseKey, b.CourseKey)
	})

	for _, c := range conversions {
		byUser := m.conversions[c.Goal]
		if byUser == nil {
			byUser = make(map[string][]conv)
			m.conversions[c.Goal] = byUser
		}
		byUser[c.UserID] = append(byUser[c.UserID], conv{time: c.Time, day: dayOf(c.Time), value: c.Value})
	}
	for _, byUser := range m.conversions {
		for _, cs := range byUser {
			slices.SortStableFunc(cs, func(a, b conv) int { return a.time.Compare(b.time) })
		}
	}
	return m
}

// weekOf returns the days since 1970-01-01 of the Monday on or before
// t's date in loc.
func weekOf(t time.Time, loc *time.Location) int64 {
	l := t.In(loc)
	y, m, d := l.Date()
	date := time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400
	return date - int64((l.Weekday()+6)%7)
}

// dayOf returns the days since 1970-01-01 of t's UTC date.
func dayOf(t time.Time) int64 {
	s := t.Unix()
	d := s / 86400
	if s%86400 < 0 {
		d--
	}
	return d
}

// Experiments returns the experiments with exposures, sorted by Flag then
// CourseKey.
func (m *Memory) Experiments(ctx context.Context) ([]Experiment, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return slices.Clone(m.experiments), nil
}

// Aggregate returns the aggregates of q.Goal in q.Experiment, as Source
// documents.
func (m *Memory) Aggregate(ctx context.Context, q Query) (Aggregates, error) {
	groups, err := m.aggregate(ctx, q, "")
	if err != nil {
		return Aggregates{}, err
	}
	return groups[0].Aggregates, nil
}

// AggregateBy returns the aggregates of q.Goal in q.Experiment per value
// of q.Dimension, as BreakdownSource documents.
func (m *Memory) AggregateBy(ctx context.Context, q Query) ([]ValueAggregates, error) {
	if q.Dimension == "" {
		return nil, fmt.Errorf("experiment %s: %w: no dimension to break down by", q.Experiment, experiments.ErrInvalid)
	}
	return m.aggregate(ctx, q, q.Dimension)
}

// aggregate returns q's aggregates per value of dimension dim; with dim
// "", one group, of value "".
func (m *Memory) aggregate(ctx context.Context, q Query, dim string) ([]ValueAggregates, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := q.Validate(); err != nil {
		return nil, fmt.Errorf("experiment %s: %w", q.Experiment, err)
	}
	ps := m.participantsOf(q.Experiment)
	if len(ps) == 0 {
		return nil, fmt.Errorf("experiment %s: %w", q.Experiment, ErrNoExposures)
	}
	lo, hi := ps[0].bucket, ps[0].bucket
	for _, p := range ps {
		lo, hi = min(lo, p.bucket), max(hi, p.bucket)
	}
	n := q.Buckets
	switch {
	case lo < 0:
		return nil, fmt.Errorf("experiment %s: a participant in bucket %d: %w", q.Experiment, lo, ErrBucketOutOfRange)
	case n == 0 && hi >= MaxBuckets:
		return nil, fmt.Errorf("experiment %s: a participant in bucket %d, beyond %d buckets: %w",
			q.Experiment, hi, MaxBuckets, ErrBucketOutOfRange)
	case n == 0:
		n = hi + 1
	case hi >= n:
		return nil, fmt.Errorf("experiment %s: a participant in bucket %d, query for %d buckets: %w",
			q.Experiment, hi, n, ErrBucketOutOfRange)
	}
	byValue := make(map[string][]participant)
	for _, p := range ps {
		var v string
		if dim != "" {
			v, _ = p.dims.Get(dim)
		}
		byValue[v] = append(byValue[v], p)
	}
	out := make([]ValueAggregates, 0, len(byValue))
	for _, v := range slices.Sorted(maps.Keys(byValue)) {
		out = append(out, ValueAggregates{Value: v, Aggregates: m.aggregateOf(q, byValue[v], n)})
	}
	return out, nil
}

// aggregateOf returns the aggregates of q over participants ps (sorted
// by exposure time, then user) in n buckets.
func (m *Memory) aggregateOf(q Query, ps []participant, n int) Aggregates {
	g := q.Goal
	loc := q.zone()
	valued := !g.Complex() && g.Value != experiments.ValueCount
	var (
		simple           map[string][]conv
		include, exclude []map[string][]conv
	)
	if g.Complex() {
		for _, name := range g.Include {
			include = append(include, m.conversions[name])
		}
		for _, name := range g.Exclude {
			exclude = append(exclude, m.conversions[name])
		}
	} else {
		simple = m.conversions[g.Name]
	}

	daily, weekly := make(map[dayKey]*Bucket), make(map[dayKey]*Bucket)
	row := func(rows map[dayKey]*Bucket, day int64, bucket int) *Bucket {
		k := dayKey{day, bucket}
		b := rows[k]
		if b == nil {
			b = &Bucket{Index: bucket}
			rows[k] = b
		}
		return b
	}

	agg := Aggregates{Buckets: make([]BucketAggregate, n)}
	for i := range agg.Buckets {
		agg.Buckets[i].Index = i
	}
	for _, p := range ps {
		b := &agg.Buckets[p.bucket]
		b.Participants++
		row(daily, p.day, p.bucket).Participants++
		row(weekly, weekOf(p.time, loc), p.bucket).Participants++

		var (
			converted bool
			at        conv // the conversion that converts p
			count     int64
			value     float64
		)
		if g.Complex() {
			converted, at = reachedComplex(p, include, exclude)
			count = 1
		} else if cs := attributed(simple[p.user], p.time); len(cs) > 0 {
			converted, at = true, cs[0]
			count = int64(len(cs))
			if g.Once {
				count = 1
			}
			if valued {
				for _, c := range cs {
					value += c.value
				}
			}
		}
		if converted {
			b.Conversions++
			b.Count += count
			row(daily, at.day, p.bucket).Conversions++
			row(weekly, weekOf(at.time, loc), p.bucket).Conversions++
		}
		b.ValueSum += value
		b.ValueSumSquares += value * value
	}
	agg.Daily, agg.Weekly = dailyRows(daily), dailyRows(weekly)
	return agg
}

// dayKey is a day (days since 1970-01-01) and a bucket.
type dayKey struct {
	day    int64
	bucket int
}

// dailyRows returns the rows of days (days since 1970-01-01, bucket),
// ordered by day then bucket.
func dailyRows(rows map[dayKey]*Bucket) []DailyBucket {
	out := make([]DailyBucket, 0, len(rows))
	for k, b := range rows {
		out = append(out, DailyBucket{Day: time.Unix(k.day*86400, 0).UTC(), Bucket: *b})
	}
	slices.SortFunc(out, func(a, b DailyBucket) int {
		if c := a.Day.Compare(b.Day); c != 0 {
			return c
		}
		return cmp.Compare(a.Index, b.Index)
	})
	return out
}

// participantsOf returns x's participants, sorted by exposure time then
// user. For all courses, they are the users of every course of x.Flag,
// each with their earliest exposure (then the smallest bucket).
func (m *Memory) participantsOf(x Experiment) []participant {
	if !x.AllCourses {
		return m.participants[x]
	}
	first := make(map[string]participant)
	for _, e := range m.experiments {
		if e.Flag != x.Flag {
			continue
		}
		for _, p := range m.participants[e] {
			if old, ok := first[p.user]; ok {
				// m.experiments is sorted: on equal times and buckets, the
				// smallest course key, seen first, stays.
				if c := p.time.Compare(old.time); c > 0 || c == 0 && p.bucket >= old.bucket {
					continue
				}
			}
			first[p.user] = p
		}
	}
	ps := make([]participant, 0, len(first))
	for _, p := range first {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b participant) int {
		if c := a.time.Compare(b.time); c != 0 {
			return c
		}
		return cmp.Compare(a.user, b.user)
	})
	return ps
}

// attributed returns the conversions of cs (sorted by time) at or after
// t.
func attributed(cs []conv, t time.Time) []conv {
	i := sort.Search(len(cs), func(i int) bool { return !cs[i].time.Before(t) })
	return cs[i:]
}

// reachedComplex reports whether p reached a complex goal whose
// included and excluded goals' conversions are given, and the
// conversion that reaches it: the latest first attributed conversion of
// an included goal.
func reachedComplex(p participant, include, exclude []map[string][]conv) (bool, conv) {
	var last conv
	for i, byUser := range include {
		cs := attributed(byUser[p.user], p.time)
		if len(cs) == 0 {
			return false, conv{}
		}
		if i == 0 || cs[0].time.After(last.time) {
			last = cs[0]
		}
	}
	for _, byUser := range exclude {
		if len(attributed(byUser[p.user], p.time)) > 0 {
			return false, conv{}
		}
	}
	return true, last
}
