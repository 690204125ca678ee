package experiments_test

import (
	"context"
	"testing"

	"github.com/abkit/experiments"
)

// The hot path's allocation budget: one allocation for the request state,
// none for a decision, weighted or not (the store's weights included),
// with an audience or not, none for a cached decision.
func TestHotPathAllocations(t *testing.T) {
	x, users := benchRuntime(t, experiments.Config{})
	ax, ausers := benchAudienceRuntime(t)
	outside := ausers[0]
	outside.Attributes = map[string]any{"country": "JP", "app_version": "2.4.0", "age": 30}
	if d := benchAudienceFlag.Decide(ax.NewContext(context.Background(), outside), benchCourse); d.Reason != experiments.ReasonNotInAudience {
		t.Fatalf("the user outside the audience: %+v", d)
	}
	bg := context.Background()
	stored := experiments.NewMemStore()
	for _, err := range []error{
		stored.SetFlag(bg, benchWeighted.Name(), experiments.On()),
		stored.SetExperimentMeta(bg, benchWeighted.Name(), experiments.ExperimentMeta{Weights: []float64{50, 25}}),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	xStored := experiments.New(experiments.Config{Store: stored})
	cases := []struct {
		name string
		max  float64
		run  func()
	}{
		{"first decision in a request, state included", 1, func() {
			benchFlag.Bucket(x.NewContext(bg, users[0]), benchCourse)
		}},
		{"first weighted decision in a request, state included", 1, func() {
			benchWeighted.Bucket(x.NewContext(bg, users[0]), benchCourse)
		}},
		{"first decision with the store's weights, state included", 1, func() {
			if d := benchWeighted.Decide(xStored.NewContext(bg, users[0]), benchCourse); d.Err != nil {
				t.Fatal(d.Err)
			}
		}},
		{"cached decision", 0, func() {}},
		{"first decision with a three-condition audience, state included", 1, func() {
			benchAudienceFlag.Bucket(ax.NewContext(bg, ausers[0]), benchCourse)
		}},
		{"first decision of a user outside the audience, state included", 1, func() {
			benchAudienceFlag.Bucket(ax.NewContext(bg, outside), benchCourse)
		}},
	}
	ctx := x.NewContext(bg, users[1])
	benchFlag.Bucket(ctx, benchCourse)
	for i := range cases {
		if cases[i].name == "cached decision" {
			cases[i].run = func() {
				if d := benchFlag.Decide(ctx, benchCourse); d.Reason != experiments.ReasonCached {
					t.Fatalf("not cached: %+v", d)
				}
			}
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := testing.AllocsPerRun(200, c.run); got > c.max {
				t.Errorf("allocs = %v, want <= %v", got, c.max)
			}
		})
	}
}
