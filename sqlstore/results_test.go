package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/results"
	"github.com/abkit/experiments/sqlstore"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// recorded is a data set of exposures and conversions.
type recorded struct {
	exposures   []experiments.Exposure
	conversions []experiments.Conversion
}

// randomRecords makes users exposed to two experiments (one per course
// key, one without) and converting to goals a, b, c around their
// exposure, some before it.
func randomRecords(seed uint64, users int) recorded {
	r := rand.New(rand.NewPCG(seed, 1))
	// Five days each side of a DST change in Los Angeles, where weeks
	// start at 07:00 or 08:00 UTC: around 2026-03-08 and 2026-11-01.
	starts := []time.Time{time.Date(2026, 3, 6, 23, 0, 0, 0, time.UTC), time.Date(2026, 10, 29, 23, 0, 0, 0, time.UTC)}
	browsers := []string{"", "Chrome", "Firefox", "Safari"}
	var d recorded
	for u := range users {
		id := fmt.Sprint("u", u)
		exposed := starts[r.IntN(2)].Add(time.Duration(r.IntN(5*24*3600)) * time.Second)
		for _, course := range []string{"course-v1:X+Y+Z", ""} {
			if r.IntN(4) == 0 {
				continue
			}
			// Each exposure its own browser, so that in all courses the
			// tie rule picks the dimensions too.
			m := map[string]string{"site": "s"}
			if b := browsers[r.IntN(len(browsers))]; b != "" {
				m["browser"] = b
			}
			dims, err := experiments.NewDimensions(m)
			if err != nil {
				panic(err)
			}
			d.exposures = append(d.exposures, experiments.Exposure{
				Flag: "ns.exp", CourseKey: course, UserID: id, Bucket: r.IntN(3), Time: exposed, Dimensions: dims,
			})
		}
		for range r.IntN(5) {
			d.conversions = append(d.conversions, experiments.Conversion{
				Goal: []string{"a", "b", "c"}[r.IntN(3)], UserID: id,
				Value: math.Round(r.Float64()*10000) / 100,
				Time:  exposed.Add(time.Duration(r.IntN(3*24*3600)-12*3600) * time.Second),
			})
		}
	}
	return d
}

// insert writes d straight into the store's tables.
func (d recorded) insert(t testing.TB, db *sqlx.DB, schema string) {
	t.Helper()
	q := pq.QuoteIdentifier(schema) + "."
	var flags, courses, users, etimes, dims []string
	var buckets []int64
	for _, e := range d.exposures {
		flags, courses, users = append(flags, e.Flag), append(courses, e.CourseKey), append(users, e.UserID)
		buckets, etimes = append(buckets, int64(e.Bucket)), append(etimes, e.Time.Format(time.RFC3339Nano))
		j, _ := e.Dimensions.MarshalJSON()
		dims = append(dims, string(j))
	}
	db.MustExec("INSERT INTO "+q+"experiments_exposures (flag, course_key, user_id, bucket, time, dimensions) "+
		"SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::integer[], $5::timestamptz[], $6::jsonb[])",
		pq.Array(flags), pq.Array(courses), pq.Array(users), pq.Array(buckets), pq.Array(etimes), pq.Array(dims))
	var goals, cusers, ctimes []string
	var values []float64
	for _, c := range d.conversions {
		goals, cusers = append(goals, c.Goal), append(cusers, c.UserID)
		values, ctimes = append(values, c.Value), append(ctimes, c.Time.Format(time.RFC3339Nano))
	}
	db.MustExec("INSERT INTO "+q+"experiments_conversions (id, goal, user_id, value, time) "+
		"SELECT gen_random_uuid(), * FROM unnest($1::text[], $2::text[], $3::float8[], $4::timestamptz[])",
		pq.Array(goals), pq.Array(cusers), pq.Array(values), pq.Array(ctimes))
	db.MustExec("ANALYZE " + q + "experiments_exposures, " + q + "experiments_conversions")
}

// The SQL aggregation gives what the in-memory reference gives, for every
// kind of goal, in UTC and in Los Angeles' weeks, whole and broken down
// by a dimension.
func TestAggregateMatchesTheReference(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	d := randomRecords(7, 2000)
	d.insert(t, s.DB(), s.Schema())
	mem := results.NewMemory(d.exposures, d.conversions)

	gotExps, err := s.Experiments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantExps, _ := mem.Experiments(ctx)
	if !reflect.DeepEqual(gotExps, wantExps) {
		t.Fatalf("Experiments = %v, want %v", gotExps, wantExps)
	}
	gotCounts, err := s.Participants(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantCounts, _ := mem.Participants(ctx)
	if !reflect.DeepEqual(gotCounts, wantCounts) {
		t.Fatalf("Participants = %v, want %v", gotCounts, wantCounts)
	}
	goals := []experiments.Goal{
		{Name: "a"},
		{Name: "a", Once: true},
		{Name: "b", Value: experiments.ValueSum},
		{Name: "b", Once: true, Value: experiments.ValuePerParticipant},
		{Name: "c", Value: experiments.ValueAverage},
		{Name: "abc", Include: []string{"a", "b"}, Exclude: []string{"c"}},
		{Name: "ab", Include: []string{"a", "b", "a"}},
		{Name: "none"},
	}
	// And every flag in all courses, where a user seen in both courses
	// (at the same time, in random buckets) counts once.
	all := []results.Experiment{{Flag: "ns.exp", AllCourses: true}}
	for _, exp := range append(wantExps, all...) {
		for _, g := range goals {
			for _, n := range []int{0, 4} {
				q := results.Query{Experiment: exp, Goal: g, Buckets: n}
				if n == 4 {
					q.Zone = losAngeles
				}
				t.Run(fmt.Sprintf("%s %s once=%v value=%s buckets=%d zone=%s", exp, g.Name, g.Once, g.Value, n, q.ZoneName()), func(t *testing.T) {
					got, err := s.Aggregate(ctx, q)
					if err != nil {
						t.Fatal(err)
					}
					want, err := mem.Aggregate(ctx, q)
					if err != nil {
						t.Fatal(err)
					}
					sameAggregates(t, got, want)
					for _, dim := range []string{"browser", "site", "absent"} {
						q.Dimension = dim
						got, err := s.AggregateBy(ctx, q)
						if err != nil {
							t.Fatal(err)
						}
						want, err := mem.AggregateBy(ctx, q)
						if err != nil {
							t.Fatal(err)
						}
						if len(got) != len(want) {
							t.Fatalf("by %s: %d values, want %d", dim, len(got), len(want))
						}
						for i := range got {
							if got[i].Value != want[i].Value {
								t.Fatalf("by %s: value %d is %q, want %q", dim, i, got[i].Value, want[i].Value)
							}
							sameAggregates(t, got[i].Aggregates, want[i].Aggregates)
						}
					}
				})
			}
		}
	}
}

func sameAggregates(t *testing.T, got, want results.Aggregates) {
	t.Helper()
	if len(got.Buckets) != len(want.Buckets) {
		t.Fatalf("%d buckets, want %d", len(got.Buckets), len(want.Buckets))
	}
	for i := range got.Buckets {
		g, w := got.Buckets[i], want.Buckets[i]
		if !near(g.ValueSum, w.ValueSum) || !near(g.ValueSumSquares, w.ValueSumSquares) {
			t.Errorf("bucket %d sums %v, %v; want %v, %v", i, g.ValueSum, g.ValueSumSquares, w.ValueSum, w.ValueSumSquares)
		}
		g.ValueSum, g.ValueSumSquares = w.ValueSum, w.ValueSumSquares
		if g != w {
			t.Errorf("bucket %d = %+v, want %+v", i, g, w)
		}
	}
	if !reflect.DeepEqual(got.Daily, want.Daily) {
		t.Errorf("daily rows differ:\n got %+v\nwant %+v", got.Daily, want.Daily)
	}
	if !reflect.DeepEqual(got.Weekly, want.Weekly) {
		t.Errorf("weekly rows differ:\n got %+v\nwant %+v", got.Weekly, want.Weekly)
	}
}

var losAngeles = func() *time.Location {
	loc, err := time.LoadLocation("America/Los_Angeles")
	if err != nil {
		panic(err)
	}
	return loc
}()

func near(a, b float64) bool {
	return a == b || math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))
}

func TestAggregateErrors(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	randomRecords(3, 50).insert(t, s.DB(), s.Schema())
	exp := results.Experiment{Flag: "ns.exp", CourseKey: "course-v1:X+Y+Z"}
	cases := []struct {
		name string
		q    results.Query
		want error
	}{
		{"nok, an experiment without exposures", results.Query{Experiment: results.Experiment{Flag: "ns.other"}, Goal: experiments.Goal{Name: "a"}}, results.ErrNoExposures},
		{"nok, fewer buckets than exposed", results.Query{Experiment: exp, Goal: experiments.Goal{Name: "a"}, Buckets: 2}, results.ErrBucketOutOfRange},
		{"nok, an invalid goal", results.Query{Experiment: exp, Goal: experiments.Goal{Name: "a b"}}, experiments.ErrInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := s.Aggregate(ctx, c.q); !errors.Is(err, c.want) {
				t.Errorf("Aggregate = %v, want %v", err, c.want)
			}
		})
	}
}

var _ results.Source = (*sqlstore.Store)(nil)
