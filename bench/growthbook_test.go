package bench_test

import (
	"context"
	"testing"

	gb "github.com/growthbook/growthbook-golang"
)

// growthBookFeatures is a GrowthBook SDK payload's "features": feature
// "exp" with one experiment rule, variations 0 and 1 weighted 50/50,
// hashed on the "id" attribute.
const growthBookFeatures = `{
  "exp": {
    "defaultValue": 0,
    "rules": [{
      "key": "exp",
      "variations": [0, 1],
      "weights": [0.5, 0.5],
      "coverage": 1,
      "hashAttribute": "id",
      "hashVersion": 2
    }]
  }
}`

// newGrowthBook returns a client whose features are set locally: no client
// key, no data source, so it starts no goroutine and makes no request. No
// callback, plugin or tracking buffer is set (like this package's runs
// without a tracker).
func newGrowthBook(tb testing.TB) *gb.Client {
	tb.Helper()
	client, err := gb.NewClient(context.Background(), gb.WithJsonFeatures(growthBookFeatures))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = client.Close() })
	return client
}

// growthBookBucket evaluates "exp" the README's way: a child client with
// the user's attributes (per request), then EvalFeature.
func growthBookBucket(tb testing.TB, client *gb.Client, id string) int {
	child, err := client.WithAttributes(gb.Attributes{"id": id})
	if err != nil {
		tb.Fatal(err)
	}
	return growthBookValue(tb, child.EvalFeature(context.Background(), "exp"))
}

func growthBookValue(tb testing.TB, res *gb.FeatureResult) int {
	if !res.InExperiment() {
		tb.Fatalf("not in the experiment: %+v", res)
	}
	v, ok := res.Value.(float64) // a JSON number
	if !ok {
		tb.Fatalf("value %#v: want a number", res.Value)
	}
	return int(v)
}

// BenchmarkGrowthBook is GrowthBook's evaluation of the same experiment.
//
// "child-per-request" is the counterpart of BucketFirst: the child client
// with the user's attributes is made per request, as the README shows,
// then EvalFeature. "prebuilt-child" evaluates on child clients made
// before the loop: EvalFeature alone, a lower bound.
func BenchmarkGrowthBook(b *testing.B) {
	client := newGrowthBook(b)
	ctx := context.Background()
	b.Run("child-per-request", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			child, _ := client.WithAttributes(gb.Attributes{"id": benchUsers[i%len(benchUsers)]})
			child.EvalFeature(ctx, "exp")
			i++
		}
	})
	b.Run("prebuilt-child", func(b *testing.B) {
		children := make([]*gb.Client, len(benchUsers))
		for i, id := range benchUsers {
			children[i], _ = client.WithAttributes(gb.Attributes{"id": id})
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			children[i%len(children)].EvalFeature(ctx, "exp")
			i++
		}
	})
}
