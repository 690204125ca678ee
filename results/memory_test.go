package results_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/results"
)

// t0 is 2026-03-01 10:00 UTC; hour(h) is h hours later.
var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

func hour(h int) time.Time { return t0.Add(time.Duration(h) * time.Hour) }

// march returns midnight UTC of March d, 2026.
func march(d int) time.Time { return time.Date(2026, 3, d, 0, 0, 0, 0, time.UTC) }

const testFlag = "shop.checkout"

var testExperiment = results.Experiment{Flag: testFlag}

func expose(user string, bucket, h int) experiments.Exposure {
	return experiments.Exposure{Flag: testFlag, UserID: user, Bucket: bucket, Time: hour(h)}
}

func convert(goal, user string, h int, value float64) experiments.Conversion {
	return experiments.Conversion{Goal: goal, UserID: user, Value: value, Time: hour(h)}
}

func agg(index int, participants, converted, count int64, sum, squares float64) results.BucketAggregate {
	return results.BucketAggregate{Count: count, Bucket: results.Bucket{Index: index,
		Participants: participants, Conversions: converted, ValueSum: sum, ValueSumSquares: squares}}
}

func daily(day, index int, participants, converted int64) results.DailyBucket {
	return results.DailyBucket{Day: march(day), Bucket: results.Bucket{Index: index,
		Participants: participants, Conversions: converted}}
}

func query(g experiments.Goal) results.Query {
	return results.Query{Experiment: testExperiment, Goal: g}
}

var (
	signup   = experiments.Goal{Name: "signup", Once: true}
	pageview = experiments.Goal{Name: "pageview"}
	purchase = experiments.Goal{Name: "purchase", Value: experiments.ValueSum}
	engaged  = experiments.Goal{Name: "engaged", Include: []string{"enrolled", "video"}, Exclude: []string{"refunded"}}
)

func TestMemoryAggregate(t *testing.T) {
	tests := []struct {
		name        string
		exposures   []experiments.Exposure
		conversions []experiments.Conversion
		query       results.Query
		want        results.Aggregates
	}{
		{
			name:      "ok, a conversion at or after the exposure counts and one before it does not",
			exposures: []experiments.Exposure{expose("a", 0, 0), expose("b", 1, 0), expose("c", 1, 5)},
			conversions: []experiments.Conversion{
				convert("signup", "a", -1, 0), // before a's exposure
				convert("signup", "b", 0, 0),  // at b's exposure: counts
				convert("signup", "c", 3, 0),  // before c's exposure
				convert("signup", "c", 6, 0),
			},
			query: query(signup),
			want: results.Aggregates{
				Buckets: []results.BucketAggregate{agg(0, 1, 0, 0, 0, 0), agg(1, 2, 2, 2, 0, 0)},
				Daily:   []results.DailyBucket{daily(1, 0, 1, 0), daily(1, 1, 2, 2)},
			},
		},
		{
			name:      "ok, conversions of other goals, of users never exposed and of other experiments are ignored",
			exposures: []experiments.Exposure{expose("a", 0, 0), expose("b", 1, 0), {Flag: testFlag, CourseKey: "course-v1:X", UserID: "c", Bucket: 1, Time: hour(0)}, {Flag: "shop.other", UserID: "d", Time: hour(0)}},
			conversions: []experiments.Conversion{
				convert("pageview", "a", 1, 0),
				convert("signup", "stranger", 1, 0),
				convert("signup", "c", 1, 0), // exposed in the course only
				convert("signup", "b", 1, 0),
			},
			query: query(signup),
			want: results.Aggregates{
				Buckets: []results.BucketAggregate{agg(0, 1, 0, 0, 0, 0), agg(1, 1, 1, 1, 0, 0)},
				Daily:   []results.DailyBucket{daily(1, 0, 1, 0), daily(1, 1, 1, 1)},
			},
		},
		{
			name: "ok, all courses: a user counts once, in the bucket of their first exposure in any course, converting after it",
			exposures: []experiments.Exposure{
				{Flag: testFlag, CourseKey: "course-v1:X", UserID: "a", Bucket: 1, Time: hour(30)},
				{Flag: testFlag, CourseKey: "course-v1:Y", UserID: "a", Bucket: 0, Time: hour(0)}, // a's first: bucket 0 on March 1
				{Flag: testFlag, CourseKey: "course-v1:X", UserID: "b", Bucket: 1, Time: hour(0)},
				{Flag: testFlag, CourseKey: "course-v1:Y", UserID: "b", Bucket: 0, Time: hour(0)}, // same time: the smaller bucket
				{Flag: testFlag, UserID: "c", Bucket: 1, Time: hour(1)},                           // no course counts too
				{Flag: "shop.other", CourseKey: "course-v1:X", UserID: "d", Bucket: 1, Time: hour(0)},
			},
			conversions: []experiments.Conversion{
				convert("signup", "a", 2, 0),  // after a's first exposure, before the second: counts once
				convert("signup", "c", 26, 0), // on March 2
				convert("signup", "d", 2, 0),  // another flag's
			},
			query: results.Query{Experiment: results.Experiment{Flag: testFlag, AllCourses: true}, Goal: signup},
			want: results.Aggregates{
				Buckets: []results.BucketAggregate{agg(0, 2, 1, 1, 0, 0), agg(1, 1, 1, 1, 0, 0)},
				Daily:   []results.DailyBucket{daily(1, 0, 2, 1), daily(1, 1, 1, 0), daily(2, 1, 0, 1)},
			},
		},
		{
			name:      "ok, a Once goal counts a converted participant once",
			exposures: []experiments.Exposure{expose("a", 0, 0), expose("b", 1, 0)},
			conversions: []experiments.Conversion{
				convert("signup", "a", 1, 0), convert("signup", "a", 2, 0), convert("signup", "a", 3, 0),
				convert("signup", "b", 1, 0),
			},
			query: query(signup),
			want: results.Aggregates{
				Buckets: []results.BucketAggregate{agg(0, 1, 1, 1, 0, 0), agg(1, 1, 1, 1, 0, 0)},
				Daily:   []results.DailyBucket{daily(1, 0, 1, 1), daily(1, 1, 1, 1)},
			},
		},
		{
			name:      "ok, a counting goal counts every attributed conversion",
			exposures: []experiments.Exposure{expose("a", 0, 0), expose("b", 1, 0)},
			conversions: []experiments.Conversion{
				convert("pageview", "a", -1, 0), convert("pageview", "a", 1, 0), convert("pageview", "a", 2, 0), convert("pageview", "a", 3, 0),
				convert("pageview", "b", 1, 0),
			},
			query: query(pageview),
			want: results.Aggregates{
				Buckets: []results.BucketAggregate{agg(0, 1, 1, 3, 0, 0), agg(1, 1, 1, 1, 0, 0)},
				Daily:   []results.DailyBucket{daily(1, 0, 1, 1), daily(1, 1, 1, 1)},
			},
		},
		{
			name:      "ok, a value goal sums the attributed values per participant, non-converted participants adding 0",
			exposures: []experiments.Exposure{expose("a", 0, 0), expose("b", 0, 0), expose("c", 1, 0), expose("d", 1, 0)},
			conversions: []experiments.Conversion{
				convert("purchase", "a", -1, 100), // before exposure
				convert("purchase", "a", 1, 10), convert("purchase", "a", 2, 5),
				convert("purchase", "c", 1, 7),
				convert("purchase", "d", 1, 3), convert("purchase", "d", 2, 4),
			},
			query: query(purchase),
			want: results.Aggregates{
				// a: 15; b: 0 | c: 7; d: 7.
				Buckets: []results.BucketAggregate{agg(0, 2, 1, 2, 15, 225), agg(1, 2, 2, 3, 14, 98)},
				Daily:   []results.DailyBucket{daily(1, 0, 2, 1), daily(1, 1, 2, 2)},
			},
		},
		{
			name:      "ok, a Once value goal counts the participant once and still sums all their values",
			exposures: []experiments.Exposure{expose("a", 0, 0), expose("b", 1, 0)},
			conversions: []experiments.Conversion{
				convert("purchase", "a", 1, 10), convert("purchase", "a", 2, 5),
				convert("purchase", "b", 1, 2),
			},
			query: query(experiments.Goal{Name: "purchase", Once: true, Value: experiments.ValueAverage}),
			want: results.Aggregates{
				Buckets: []results.BucketAggregate{agg(0, 1, 1, 1, 15, 225), agg(1, 1, 1, 1, 2, 4)},
				Daily:   []results.DailyBucket{daily(1, 0, 1, 1), daily(1, 1, 1, 1)},
			},
		},
		{
			name:        "ok, a ValueCount goal ignores values",
			exposures:   []experiments.Exposure{expose("a", 0, 0), expose("b", 1, 0)},
			conversions: []experiments.Conversion{convert("pageview", "a", 1, 10), convert("pageview", "b", 1, 5)},
			query:       query(pageview),
			want: results.Aggregates{
				Buckets: []results.BucketAggregate{agg(0, 1, 1, 1, 0, 0), agg(1, 1, 1, 1, 0, 0)},
				Daily:   []results.DailyBucket{daily(1, 0, 1, 1), daily(1, 1, 1, 1)},
			},
		},
		{
			name: "ok, a complex goal needs every included goal and no excluded one, all after exposure",
			exposures: []experiments.Exposure{
				expose("a", 0, 0), expose("b", 0, 0),
				expose("c", 1, 0), expose("d", 1, 10), expose("e", 1, 10), expose("f", 1, 0),
			},
			conversions: []experiments.Conversion{
				// a reaches it on March 2, with video's first conversion
				// (its later conversions do not move the day).
				convert("enrolled", "a", 1, 0), convert("video", "a", 30, 0), convert("video", "a", 40, 0), convert("enrolled", "a", 45, 0),
				// b misses video.
				convert("enrolled", "b", 1, 0),
				// c is refunded, later than both included goals.
				convert("enrolled", "c", 1, 0), convert("video", "c", 2, 0), convert("refunded", "c", 50, 0),
				// d was refunded before exposure, which does not count.
				convert("refunded", "d", 5, 0), convert("enrolled", "d", 11, 0), convert("video", "d", 12, 0),
				// e watched the video before exposure only.
				convert("video", "e", 5, 0), convert("enrolled", "e", 11, 0),
				// conversions under the complex goal's own name are ignored.
				convert("engaged", "f", 1, 0),
			},
			query: query(engaged),
			want: results.Aggregates{
				Buckets: []results.BucketAggregate{agg(0, 2, 1, 1, 0, 0), agg(1, 4, 1, 1, 0, 0)},
				Daily:   []results.DailyBucket{daily(1, 0, 2, 0), daily(1, 1, 4, 1), daily(2, 0, 0, 1)},
			},
		},
		{
			name: "ok, the earliest exposure of a user counts, the smaller bucket on equal times",
			exposures: []experiments.Exposure{
				expose("a", 1, 5), expose("a", 0, 2),
				expose("b", 1, 1), expose("b", 0, 1),
			},
			conversions: []experiments.Conversion{convert("signup", "a", 3, 0)}, // after a's earliest exposure only
			query:       results.Query{Experiment: testExperiment, Goal: signup, Buckets: 2},
			want: results.Aggregates{
				Buckets: []results.BucketAggregate{agg(0, 2, 1, 1, 0, 0), agg(1, 0, 0, 0, 0, 0)},
				Daily:   []results.DailyBucket{daily(1, 0, 2, 1)},
			},
		},
		{
			name:      "ok, buckets without participants up to the highest bucket seen are zeros",
			exposures: []experiments.Exposure{expose("a", 0, 0), expose("b", 3, 0)},
			query:     query(signup),
			want: results.Aggregates{
				Buckets: []results.BucketAggregate{agg(0, 1, 0, 0, 0, 0), agg(1, 0, 0, 0, 0, 0), agg(2, 0, 0, 0, 0, 0), agg(3, 1, 0, 0, 0, 0)},
				Daily:   []results.DailyBucket{daily(1, 0, 1, 0), daily(1, 3, 1, 0)},
			},
		},
		{
			name:      "ok, buckets without participants up to the number asked for are zeros",
			exposures: []experiments.Exposure{expose("a", 0, 0), expose("b", 1, 0)},
			query:     results.Query{Experiment: testExperiment, Goal: signup, Buckets: 3},
			want: results.Aggregates{
				Buckets: []results.BucketAggregate{agg(0, 1, 0, 0, 0, 0), agg(1, 1, 0, 0, 0, 0), agg(2, 0, 0, 0, 0, 0)},
				Daily:   []results.DailyBucket{daily(1, 0, 1, 0), daily(1, 1, 1, 0)},
			},
		},
		{
			name: "ok, daily rows count new participants by UTC exposure day and new converted participants by first conversion day",
			exposures: []experiments.Exposure{
				expose("a", 0, 0),  // March 1
				expose("b", 1, 20), // March 2, 06:00
				expose("c", 0, 24), // March 2
				// 01:00 on March 2 at +03:00 is 22:00 on March 1 UTC.
				{Flag: testFlag, UserID: "d", Bucket: 1, Time: time.Date(2026, 3, 2, 1, 0, 0, 0, time.FixedZone("+03", 3*3600))},
			},
			conversions: []experiments.Conversion{
				convert("pageview", "a", 40, 0),                                  // March 3
				convert("pageview", "b", 21, 0), convert("pageview", "b", 45, 0), // March 2, then 3
			},
			query: query(pageview),
			want: results.Aggregates{
				Buckets: []results.BucketAggregate{agg(0, 2, 1, 1, 0, 0), agg(1, 2, 1, 2, 0, 0)},
				Daily: []results.DailyBucket{
					daily(1, 0, 1, 0), daily(1, 1, 1, 0),
					daily(2, 0, 1, 0), daily(2, 1, 1, 1),
					daily(3, 0, 0, 1),
				},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := results.NewMemory(tt.exposures, tt.conversions).Aggregate(context.Background(), tt.query)
			if err != nil {
				t.Fatal(err)
			}
			// The weekly rows (TestMemoryWeekly) add up to the buckets too.
			weekly := make(map[int]results.Bucket)
			for _, d := range got.Weekly {
				weekly[d.Index] = weekly[d.Index].Add(d.Bucket)
			}
			for _, b := range got.Buckets {
				if s := weekly[b.Index]; s.Participants != b.Participants || s.Conversions != b.Conversions {
					t.Errorf("bucket %d: weekly rows sum to %+v, want %+v", b.Index, s, b.Bucket)
				}
			}
			got.Weekly = nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Aggregate =\n%s\nwant\n%s", formatAggregates(got), formatAggregates(tt.want))
			}
			// The daily rows add up to the buckets.
			sums := make(map[int]results.Bucket)
			for _, d := range got.Daily {
				sums[d.Index] = sums[d.Index].Add(d.Bucket)
			}
			for _, b := range got.Buckets {
				if s := sums[b.Index]; s.Participants != b.Participants || s.Conversions != b.Conversions {
					t.Errorf("bucket %d: daily rows add up to %d participants, %d converted; buckets say %d, %d",
						b.Index, s.Participants, s.Conversions, b.Participants, b.Conversions)
				}
			}
		})
	}
}

func formatAggregates(a results.Aggregates) string {
	var sb strings.Builder
	for _, b := range a.Buckets {
		fmt.Fprintf(&sb, "  bucket %d: %d participants, %d converted, count %d, Σv %v, Σv² %v\n",
			b.Index, b.Participants, b.Conversions, b.Count, b.ValueSum, b.ValueSumSquares)
	}
	for _, d := range a.Daily {
		fmt.Fprintf(&sb, "  %s (%v) bucket %d: %d participants, %d converted\n",
			d.Day.Format(time.DateOnly), d.Day.Location(), d.Index, d.Participants, d.Conversions)
	}
	return sb.String()
}

func TestMemoryAggregateErrors(t *testing.T) {
	src := results.NewMemory([]experiments.Exposure{
		expose("a", 0, 0), expose("b", 2, 0),
		{Flag: "shop.negative", UserID: "a", Bucket: -1, Time: hour(0)},
		{Flag: "shop.course", CourseKey: "course-v1:X", UserID: "a", Time: hour(0)},
	}, nil)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		query   results.Query
		want    error
		mention string
	}{
		{"nok, a flag without exposures", nil, results.Query{Experiment: results.Experiment{Flag: "shop.unknown"}, Goal: signup}, results.ErrNoExposures, "shop.unknown"},
		{"nok, a course-scoped flag asked for without its course", nil, results.Query{Experiment: results.Experiment{Flag: "shop.course"}, Goal: signup}, results.ErrNoExposures, "shop.course"},
		{"nok, a course without exposures", nil, results.Query{Experiment: results.Experiment{Flag: "shop.course", CourseKey: "course-v1:Y"}, Goal: signup}, results.ErrNoExposures, "shop.course in course-v1:Y"},
		{"nok, a goal without a name", nil, query(experiments.Goal{}), experiments.ErrInvalid, "goal name"},
		{"nok, a complex goal with a value", nil, query(experiments.Goal{Name: "g", Include: []string{"a"}, Value: experiments.ValueSum}), experiments.ErrInvalid, "complex goal has no value"},
		{"nok, exclude without include", nil, query(experiments.Goal{Name: "g", Exclude: []string{"a"}}), experiments.ErrInvalid, "exclude without include"},
		{"nok, fewer buckets asked for than participants are in", nil, results.Query{Experiment: testExperiment, Goal: signup, Buckets: 2}, results.ErrBucketOutOfRange, "bucket 2"},
		{"nok, a participant in a negative bucket", nil, results.Query{Experiment: results.Experiment{Flag: "shop.negative"}, Goal: signup}, results.ErrBucketOutOfRange, "bucket -1"},
		{"nok, a negative number of buckets", nil, results.Query{Experiment: testExperiment, Goal: signup, Buckets: -1}, experiments.ErrInvalid, "-1 buckets"},
		{"nok, weights for another number of buckets", nil, results.Query{Experiment: testExperiment, Goal: signup, Buckets: 3, Weights: []float64{1, 1}}, experiments.ErrInvalid, "2 weights for 3 buckets"},
		{"nok, a negative weight", nil, results.Query{Experiment: testExperiment, Goal: signup, Weights: []float64{1, -1, 1}}, experiments.ErrInvalid, "weight 1"},
		{"nok, no positive weight", nil, results.Query{Experiment: testExperiment, Goal: signup, Weights: []float64{0, 0, 0}}, experiments.ErrInvalid, "no positive weight"},
		{"nok, a course with all courses", nil, results.Query{Experiment: results.Experiment{Flag: "shop.course", CourseKey: "course-v1:X", AllCourses: true}, Goal: signup}, experiments.ErrInvalid, `course_key "course-v1:X" with all_courses`},
		{"nok, all courses of a flag without exposures", nil, results.Query{Experiment: results.Experiment{Flag: "shop.unknown", AllCourses: true}, Goal: signup}, results.ErrNoExposures, "shop.unknown in all courses"},
		{"nok, a canceled context", canceled, query(signup), context.Canceled, "canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := tt.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			_, err := src.Aggregate(ctx, tt.query)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("err = %q, want it to mention %q", err, tt.mention)
			}
		})
	}
}

func TestMemoryExperiments(t *testing.T) {
	src := results.NewMemory([]experiments.Exposure{
		{Flag: "shop.b", UserID: "u", Time: hour(0)},
		{Flag: "shop.a", CourseKey: "course-v1:Y", UserID: "u", Time: hour(0)},
		{Flag: "shop.a", UserID: "u", Time: hour(0)},
		{Flag: "shop.a", CourseKey: "course-v1:X", UserID: "u", Time: hour(0)},
		{Flag: "shop.a", CourseKey: "course-v1:X", UserID: "v", Time: hour(0)},
		{Flag: "Shop.a", UserID: "u", Time: hour(0)},
	}, nil)
	got, err := src.Experiments(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []results.Experiment{
		{Flag: "Shop.a"}, // byte order: upper case first
		{Flag: "shop.a"},
		{Flag: "shop.a", CourseKey: "course-v1:X"},
		{Flag: "shop.a", CourseKey: "course-v1:Y"},
		{Flag: "shop.b"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Experiments = %v, want %v", got, want)
	}
	got[0].Flag = "changed"
	if again, _ := src.Experiments(context.Background()); again[0].Flag != "Shop.a" {
		t.Errorf("Experiments returned the source's own slice")
	}
	if none, err := results.NewMemory(nil, nil).Experiments(context.Background()); err != nil || len(none) != 0 {
		t.Errorf("Experiments without exposures = %v, %v; want none", none, err)
	}
}

func TestMemoryKeepsNoReferenceToItsInput(t *testing.T) {
	exposures := []experiments.Exposure{expose("a", 0, 0), expose("b", 1, 0)}
	conversions := []experiments.Conversion{convert("signup", "a", 1, 0)}
	src := results.NewMemory(exposures, conversions)
	exposures[1].Bucket = 5
	conversions[0].UserID = "b"
	got, err := src.Aggregate(context.Background(), query(signup))
	if err != nil {
		t.Fatal(err)
	}
	want := []results.BucketAggregate{agg(0, 1, 1, 1, 0, 0), agg(1, 1, 0, 0, 0, 0)}
	if !reflect.DeepEqual(got.Buckets, want) {
		t.Errorf("Buckets = %+v, want %+v", got.Buckets, want)
	}
}

// TestMemoryFromMemStore goes through the recorder: a MemStore keeps the
// first exposure per user and experiment and every conversion.
func TestMemoryFromMemStore(t *testing.T) {
	ctx := context.Background()
	store := experiments.NewMemStore()
	if err := store.SetGoal(ctx, purchase); err != nil {
		t.Fatal(err)
	}
	for _, e := range []experiments.Exposure{expose("a", 0, 0), expose("a", 1, 1), expose("b", 1, 0)} {
		if err := store.RecordExposure(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []experiments.Conversion{convert("purchase", "a", 2, 3.5), convert("purchase", "b", 2, 1.25), convert("purchase", "b", 3, 0.75)} {
		if err := store.RecordConversion(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	snap, err := store.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	src := results.NewMemory(store.Exposures(), store.Conversions())
	got, err := src.Aggregate(ctx, query(snap.Data().Goals["purchase"]))
	if err != nil {
		t.Fatal(err)
	}
	want := []results.BucketAggregate{agg(0, 1, 1, 1, 3.5, 12.25), agg(1, 1, 1, 2, 2, 4)}
	if !reflect.DeepEqual(got.Buckets, want) {
		t.Errorf("Buckets = %+v, want %+v", got.Buckets, want)
	}
}

func TestMemoryIsSafeForConcurrentUse(t *testing.T) {
	exposures, conversions := benchData(2000, 500)
	src := results.NewMemory(exposures, conversions)
	want, err := src.Aggregate(context.Background(), query(purchase))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			got, err := src.Aggregate(context.Background(), query(purchase))
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("concurrent Aggregate differs: %v", err)
			}
			if _, err := src.Experiments(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

// benchData returns n exposures of testFlag over two buckets and 30
// days, and m purchase conversions of exposed users, a fifth of them
// before their user's exposure.
func benchData(n, m int) ([]experiments.Exposure, []experiments.Conversion) {
	r := rand.New(rand.NewPCG(1, 2))
	exposures := make([]experiments.Exposure, n)
	for i := range exposures {
		exposures[i] = experiments.Exposure{Flag: testFlag, UserID: fmt.Sprintf("user-%d", i),
			Bucket: r.IntN(2), Time: t0.Add(time.Duration(r.Int64N(int64(30 * 24 * time.Hour))))}
	}
	conversions := make([]experiments.Conversion, m)
	for i := range conversions {
		e := exposures[r.IntN(n)]
		d := time.Duration(r.Int64N(int64(72*time.Hour))) - 18*time.Hour
		conversions[i] = experiments.Conversion{Goal: "purchase", UserID: e.UserID,
			Value: float64(r.IntN(10000)) / 100, Time: e.Time.Add(d)}
	}
	return exposures, conversions
}

func BenchmarkMemoryAggregate(b *testing.B) {
	exposures, conversions := benchData(100_000, 20_000)
	ctx := context.Background()
	b.Run("aggregate", func(b *testing.B) {
		src := results.NewMemory(exposures, conversions)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := src.Aggregate(ctx, query(purchase)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("index and aggregate", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := results.NewMemory(exposures, conversions).Aggregate(ctx, query(purchase)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestMemoryRefusesABucketBeyondMaxBuckets(t *testing.T) {
	m := results.NewMemory([]experiments.Exposure{
		{Flag: "a.b", UserID: "1", Bucket: 0, Time: time.Unix(0, 0)},
		{Flag: "a.b", UserID: "2", Bucket: results.MaxBuckets, Time: time.Unix(0, 0)},
	}, nil)
	_, err := m.Aggregate(context.Background(), results.Query{Experiment: results.Experiment{Flag: "a.b"}, Goal: experiments.Goal{Name: "g"}})
	if !errors.Is(err, results.ErrBucketOutOfRange) {
		t.Errorf("Aggregate with a participant in bucket %d = %v, want ErrBucketOutOfRange", results.MaxBuckets, err)
	}
}

func TestParticipantsCountsEachUserOncePerBucket(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	exp := func(flag, course, user string, bucket int, d time.Duration) experiments.Exposure {
		return experiments.Exposure{Flag: flag, CourseKey: course, UserID: user, Bucket: bucket, Time: at.Add(d)}
	}
	m := results.NewMemory([]experiments.Exposure{
		exp("a.x", "", "1", 0, 0),
		exp("a.x", "", "1", 1, time.Hour), // later: the earlier one counts
		exp("a.x", "", "2", 2, 0),
		exp("a.x", "c", "1", 1, 0),
		exp("a.x", "", "3", -1, 0), // out of range: not counted
	}, nil)
	got, err := m.Participants(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := []results.Participation{
		{Experiment: results.Experiment{Flag: "a.x"}, Buckets: []int64{1, 0, 1}},
		{Experiment: results.Experiment{Flag: "a.x", CourseKey: "c"}, Buckets: []int64{0, 1}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Participants = %+v, want %+v", got, want)
	}
	if got[0].Total() != 2 {
		t.Errorf("Total = %d, want 2", got[0].Total())
	}
}

func TestLiveSeesLaterRecordings(t *testing.T) {
	store := experiments.NewMemStore()
	live := results.NewLive(store)
	if xs, _ := live.Experiments(t.Context()); len(xs) != 0 {
		t.Fatalf("Experiments = %v before any exposure", xs)
	}
	if err := store.RecordExposure(t.Context(), experiments.Exposure{Flag: "a.x", UserID: "1", Bucket: 1, Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	ps, err := live.Participants(t.Context())
	if err != nil || len(ps) != 1 || ps[0].Total() != 1 {
		t.Fatalf("Participants = %+v, %v; want one experiment with one participant", ps, err)
	}
}
