package sqlstore_test

import (
	"context"
	"testing"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/internal/gendata"
	"github.com/abkit/experiments/results"
)

// On a small data set of the benchmark's kind, loaded by gendata.Load,
// the SQL aggregation gives what the in-memory reference gives.
func TestAggregateMatchesTheReferenceOnGeneratedData(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	c := gendata.Config{Exposures: 5000, Conversions: 2000, Buckets: 3, Lift: 0.2, Seed: 5}
	if _, err := gendata.Load(ctx, s.DB().DB, s.Schema(), c); err != nil {
		t.Fatal(err)
	}
	if _, err := gendata.Load(ctx, s.DB().DB, s.Schema(), c); err == nil {
		t.Error("loading the same data twice: no error")
	}
	d, err := gendata.Generate(c)
	if err != nil {
		t.Fatal(err)
	}
	conversions := make([]experiments.Conversion, len(d.Conversions))
	for i, cv := range d.Conversions {
		conversions[i] = cv.Conversion
	}
	mem := results.NewMemory(d.Exposures, conversions)
	for _, g := range append(gendata.Goals(), experiments.Goal{Name: gendata.GoalVideo}) {
		t.Run(g.Name, func(t *testing.T) {
			q := results.Query{Experiment: results.Experiment{Flag: "course_experience.upgrade"}, Goal: g}
			got, err := s.Aggregate(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			want, err := mem.Aggregate(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			sameAggregates(t, got, want)
		})
	}
}
