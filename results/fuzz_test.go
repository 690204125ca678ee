package results_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"testing"
	"time"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/results"
)

// FuzzReportJSON builds reports from arbitrary aggregates, as a Source
// (a store's SQL, say) may return them. Build refuses those that break
// the Source contract with ErrInvalidBucket (or ErrInvalid); any report
// it builds marshals with encoding/json (so holds no NaN or infinity),
// unmarshals back to an equal Report, and prints with WriteText.
// More seeds are in testdata/fuzz/FuzzReportJSON/.
func FuzzReportJSON(f *testing.F) {
	f.Add(uint8(1), false, false, int64(1000), int64(48), int64(48), 0.0, 0.0, int64(1000), int64(70), int64(70), 0.0, 0.0, int16(0))
	f.Add(uint8(0), true, true, int64(300), int64(15), int64(40), 0.0, 0.0, int64(200), int64(40), int64(90), 0.0, 0.0, int16(-5))
	f.Add(uint8(2), false, false, int64(10), int64(3), int64(5), 120.5, 5000.25, int64(12), int64(4), int64(4), 99.0, 2500.0, int16(3))
	f.Add(uint8(3), true, false, int64(1), int64(1), int64(1), 1e15, 1e30, int64(1), int64(0), int64(0), 0.0, 0.0, int16(100))
	f.Add(uint8(4), false, true, int64(0), int64(0), int64(0), 0.0, 0.0, int64(5), int64(5), int64(9), -3.0, 9.0, int16(1))
	f.Add(uint8(5), true, true, int64(1<<62), int64(1<<61), int64(1<<61), 0.0, 0.0, int64(1<<62), int64(1), int64(1), 0.0, 0.0, int16(32767))
	f.Add(uint8(2), false, false, int64(2), int64(2), int64(2), 1e308, 1.7e308, int64(2), int64(1), int64(1), -1e308, 1e308, int16(0))
	f.Add(uint8(1), false, false, int64(5), int64(6), int64(6), 0.0, 0.0, int64(5), int64(1), int64(1), 0.0, 0.0, int16(0))
	f.Fuzz(func(t *testing.T, goalKind uint8, threeBuckets, weighted bool,
		p0, c0, n0 int64, sum0, squares0 float64, p1, c1, n1 int64, sum1, squares1 float64, day int16) {
		goal := []experiments.Goal{
			{Name: "pageview"},
			{Name: "signup", Once: true},
			{Name: "purchase", Value: experiments.ValueSum},
			{Name: "purchase", Value: experiments.ValueAverage, Once: true},
			{Name: "minutes", Value: experiments.ValuePerParticipant},
			{Name: "engaged", Include: []string{"enrolled", "video"}, Exclude: []string{"refunded"}},
		}[int(goalKind)%6]
		buckets := []results.BucketAggregate{agg(0, p0, c0, n0, sum0, squares0), agg(1, p1, c1, n1, sum1, squares1)}
		if threeBuckets {
			buckets = append(buckets, agg(2, p1/3, c1/3, n1/3, sum1/3, squares1/3))
		}
		var daily []results.DailyBucket
		for i, b := range buckets {
			at := time.Date(2026, 3, 1+int(day), 0, 0, 0, 0, time.UTC)
			daily = append(daily, results.DailyBucket{Day: at, Bucket: results.Bucket{Index: i, Participants: b.Participants, Conversions: b.Conversions}})
		}
		q := query(goal)
		if weighted {
			q.Weights = []float64{1, 2, 3}[:len(buckets)]
		}
		r, err := results.Build(context.Background(), badSource{Buckets: buckets, Daily: daily}, q)
		if err != nil {
			if !errors.Is(err, results.ErrInvalidBucket) && !errors.Is(err, experiments.ErrInvalid) {
				t.Fatalf("Build(%+v) = %v, want ErrInvalidBucket or ErrInvalid", buckets, err)
			}
			return
		}
		data, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("Build(%+v) made a report that does not marshal: %v\n%+v", buckets, err, r)
		}
		var back results.Report
		if err := json.Unmarshal(data, &back); err != nil {
			t.Fatalf("report %s does not unmarshal: %v", data, err)
		}
		if !reflect.DeepEqual(back, r) {
			t.Fatalf("round trip changed the report:\n%s\n%+v\nwant\n%+v", data, back, r)
		}
		if err := r.WriteText(io.Discard); err != nil {
			t.Fatalf("WriteText: %v", err)
		}
	})
}
