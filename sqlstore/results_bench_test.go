package sqlstore_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/internal/gendata"
	"github.com/abkit/experiments/results"
)

// BenchmarkAggregate1M computes the results of one experiment with
// 1,000,000 exposures and 200,000 conversions (cmd/experimentsgen's
// default data set, seed 1, loaded once into a fresh schema), for a goal
// of each kind: Aggregate alone, and Build, which adds the statistics.
// The target is under 2 s an operation; ms-median is the median
// operation. load reports how long loading took (s-load; its ns/op means
// nothing). Run it as
//
//	go test -run '^$' -bench Aggregate1M -benchtime 5x ./sqlstore/
//
// (-count > 1 loads the data again for each count).
func BenchmarkAggregate1M(b *testing.B) {
	if testing.Short() {
		b.Skip("loads 1.2 million rows")
	}
	ctx := context.Background()
	s := openStore(b)
	st, err := gendata.Load(ctx, s.DB().DB, s.Schema(), gendata.Config{Seed: 1, Lift: 0.1})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("load", func(b *testing.B) {
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(st.Total().Seconds(), "s-load")
		b.ReportMetric(st.Copy.Seconds(), "s-copy")
		b.ReportMetric(st.Vacuum.Seconds(), "s-vacuum")
		b.ReportMetric(float64(st.Exposures+st.Conversions)/st.Total().Seconds(), "rows/s")
	})

	exp := results.Experiment{Flag: "course_experience.upgrade"}
	goals := map[string]experiments.Goal{}
	for _, g := range gendata.Goals() {
		goals[g.Name] = g
	}
	for _, bc := range []struct {
		name string
		goal experiments.Goal
	}{
		{"goal=count", experiments.Goal{Name: gendata.GoalVideo}},
		{"goal=once", goals[gendata.GoalEnroll]},
		{"goal=value", goals[gendata.GoalPurchase]},
		{"goal=complex", goals["paid"]},
	} {
		q := results.Query{Experiment: exp, Goal: bc.goal, Buckets: 2}
		b.Run(bc.name+"/Aggregate", func(b *testing.B) {
			benchMedian(b, func() error {
				agg, err := s.Aggregate(ctx, q)
				if err == nil && agg.Buckets[0].Participants+agg.Buckets[1].Participants != int64(st.Exposures) {
					b.Fatalf("participants %+v, want %d in all", agg.Buckets, st.Exposures)
				}
				return err
			})
		})
		b.Run(bc.name+"/Build", func(b *testing.B) {
			benchMedian(b, func() error {
				_, err := results.Build(ctx, s, q)
				return err
			})
		})
	}
}

// benchMedian runs op b.N times and reports the median operation as
// ms-median besides the mean ns/op.
func benchMedian(b *testing.B, op func() error) {
	var times []time.Duration
	for b.Loop() {
		start := time.Now()
		if err := op(); err != nil {
			b.Fatal(err)
		}
		times = append(times, time.Since(start))
	}
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2])/float64(time.Millisecond), "ms-median")
}
