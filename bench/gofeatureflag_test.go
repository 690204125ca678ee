package bench_test

import (
	"testing"
	"time"

	ffclient "github.com/thomaspoignant/go-feature-flag"
	"github.com/thomaspoignant/go-feature-flag/ffcontext"
	"github.com/thomaspoignant/go-feature-flag/retriever/fileretriever"
)

// goFeatureFlagFile holds flag "exp": variations control (0) and
// treatment (1), a default rule splitting 50%/50% on the evaluation
// context's key, trackEvents off.
const goFeatureFlagFile = "testdata/go-feature-flag.yaml"

// newGoFeatureFlag returns a client that reads goFeatureFlagFile with the
// file retriever. New reads the file before it returns (and fails if it
// cannot), so the client is ready then. No data exporter, no notifier
// (but the logs notifier go-feature-flag always adds, with no logger set:
// silent), and the next poll of the file would be an hour later.
func newGoFeatureFlag(tb testing.TB) *ffclient.GoFeatureFlag {
	tb.Helper()
	client, err := ffclient.New(ffclient.Config{
		PollingInterval:       time.Hour,
		Retriever:             &fileretriever.Retriever{Path: goFeatureFlagFile},
		FileFormat:            "yaml",
		DisableNotifierOnInit: true,
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(client.Close)
	return client
}

func goFeatureFlagBucket(tb testing.TB, client *ffclient.GoFeatureFlag, id string) int {
	res, err := client.IntVariationDetails("exp", ffcontext.NewEvaluationContext(id), -1)
	if err != nil {
		tb.Fatal(err)
	}
	if res.Failed || res.Reason != "SPLIT" {
		tb.Fatalf("%s: %+v, want a split", id, res)
	}
	return res.Value
}

// BenchmarkGoFeatureFlag is go-feature-flag's evaluation of the same
// experiment: an evaluation context for the user (built per request),
// then IntVariation.
func BenchmarkGoFeatureFlag(b *testing.B) {
	client := newGoFeatureFlag(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		_, _ = client.IntVariation("exp", ffcontext.NewEvaluationContext(benchUsers[i%len(benchUsers)]), -1)
		i++
	}
}
