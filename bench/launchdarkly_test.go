package bench_test

import (
	"testing"
	"time"

	"github.com/launchdarkly/go-sdk-common/v3/ldcontext"
	"github.com/launchdarkly/go-sdk-common/v3/ldvalue"
	"github.com/launchdarkly/go-server-sdk-evaluation/v3/ldbuilders"
	ld "github.com/launchdarkly/go-server-sdk/v7"
	"github.com/launchdarkly/go-server-sdk/v7/interfaces"
	"github.com/launchdarkly/go-server-sdk/v7/ldcomponents"
	"github.com/launchdarkly/go-server-sdk/v7/testhelpers/ldtestdata"
)

// LaunchDarkly is not one of the SDKs the issue names: it is another
// widely used SDK that evaluates locally.

// newLaunchDarkly returns a client whose only flag, "exp", is on with a
// percentage rollout on the context key: variations 0 and 1, 50%/50%. The
// flag comes from the SDK's local test data source; events and
// diagnostics are off (like this package's runs without a tracker), and
// every service endpoint points at a closed loopback port, so that a
// request, if the SDK made one, would fail here rather than leave the
// machine.
func newLaunchDarkly(tb testing.TB) *ld.LDClient {
	tb.Helper()
	td := ldtestdata.DataSource()
	td.UsePreconfiguredFlag(ldbuilders.NewFlagBuilder("exp").
		On(true).
		Salt("exp").
		Variations(ldvalue.Int(0), ldvalue.Int(1)).
		OffVariation(0).
		Fallthrough(ldbuilders.Rollout(ldbuilders.Bucket(0, 50000), ldbuilders.Bucket(1, 50000))).
		Build())
	const nowhere = "http://127.0.0.1:9"
	client, err := ld.MakeCustomClient("sdk-local", ld.Config{
		DataSource:       td,
		Events:           ldcomponents.NoEvents(),
		DiagnosticOptOut: true,
		Logging:          ldcomponents.NoLogging(),
		ServiceEndpoints: interfaces.ServiceEndpoints{Streaming: nowhere, Polling: nowhere, Events: nowhere},
	}, 5*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = client.Close() })
	if !client.Initialized() {
		tb.Fatal("LaunchDarkly client not initialized")
	}
	return client
}

func launchDarklyBucket(tb testing.TB, client *ld.LDClient, id string) int {
	v, err := client.IntVariation("exp", ldcontext.New(id), -1)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// BenchmarkLaunchDarkly is LaunchDarkly's evaluation of the same
// experiment: a context for the user (a value, built per request), then
// IntVariation.
func BenchmarkLaunchDarkly(b *testing.B) {
	client := newLaunchDarkly(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		_, _ = client.IntVariation("exp", ldcontext.New(benchUsers[i%len(benchUsers)]), -1)
		i++
	}
}
