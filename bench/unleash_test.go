package bench_test

import (
	"errors"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/Unleash/unleash-client-go/v4"
	unleashcontext "github.com/Unleash/unleash-client-go/v4/context"
)

// unleashFeatures is the bootstrap file, a /client/features payload:
// toggle "exp" on, one flexibleRollout strategy at 100% with stickiness on
// userId, carrying two strategy variants, control and treatment, of
// weight 500 each, also sticky on userId.
const unleashFeatures = "testdata/unleash-features.json"

// unleashBuckets maps the variants of "exp" to buckets: control is 0.
var unleashBuckets = map[string]int{"control": 0, "treatment": 1}

// errOffline is the answer of offlineTransport to every request.
var errOffline = errors.New("bench: no network")

// offlineTransport is the Unleash client's HTTP transport: it fails every
// request without leaving the process, and records them.
type offlineTransport struct {
	mu   sync.Mutex
	reqs []string
}

func (t *offlineTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_ = r.Body.Close()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.reqs = append(t.reqs, r.Method+" "+r.URL.Path)
	return nil, errOffline
}

func (t *offlineTransport) requests() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.reqs...)
}

// unleashListener passes the client's first error on; it discards the
// rest and every other event.
type unleashListener struct {
	unleash.NoopListener
	errs chan error
}

func (l *unleashListener) OnError(err error) {
	select {
	case l.errs <- err:
	default:
	}
}

// newUnleash returns a client whose toggles come from the bootstrap file
// unleashFeatures, read in NewClient. Metrics are off, so the client
// neither registers nor sends metrics; its one request, the fetch of
// /client/features at start, goes to offlineTransport (and its URL is a
// closed loopback port), and the next fetch would be an hour later. The
// backup file it writes on Close goes to a temporary directory.
//
// The client's Ready channel only fires after a successful fetch from a
// server, which never comes here: newUnleash waits for that first fetch
// to fail instead, so that nothing runs in the background afterwards, and
// checks that the bootstrap was loaded.
func newUnleash(tb testing.TB) *unleash.Client {
	tb.Helper()
	features, err := os.Open(unleashFeatures)
	if err != nil {
		tb.Fatal(err)
	}
	defer features.Close()
	transport := &offlineTransport{}
	listener := &unleashListener{errs: make(chan error, 1)}
	const nowhere = "http://127.0.0.1:9/api/"
	client, err := unleash.NewClient(
		unleash.WithAppName("bench"),
		unleash.WithUrl(nowhere),
		unleash.WithStorage(&unleash.BootstrapStorage{Reader: features}),
		unleash.WithBackupPath(tb.TempDir()),
		unleash.WithHttpClient(&http.Client{Transport: transport}),
		unleash.WithDisableMetrics(true),
		unleash.WithRefreshInterval(time.Hour),
		unleash.WithListener(listener),
	)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = client.Close() })
	select {
	case err := <-listener.errs:
		if !errors.Is(err, errOffline) {
			tb.Fatalf("first fetch: %v, want %v", err, errOffline)
		}
	case <-time.After(10 * time.Second):
		tb.Fatal("Unleash client: no fetch after 10s")
	}
	if got := transport.requests(); len(got) != 1 || got[0] != "GET /api/client/features" {
		tb.Fatalf("Unleash client requests %q, want only GET /api/client/features", got)
	}
	if got := client.ListFeatures(); len(got) != 1 || got[0].Name != "exp" {
		tb.Fatalf("Unleash toggles %+v: want exp from %s", got, unleashFeatures)
	}
	return client
}

func unleashBucket(tb testing.TB, client *unleash.Client, id string) int {
	v := client.GetVariant("exp", unleash.WithVariantContext(unleashcontext.Context{UserId: id}))
	b, ok := unleashBuckets[v.Name]
	if !ok || !v.Enabled || !v.FeatureEnabled {
		tb.Fatalf("%s: variant %+v, want control or treatment", id, v)
	}
	return b
}

// BenchmarkUnleash is Unleash's evaluation of the same experiment: a
// context with the user's ID (a value, built per request), then
// GetVariant.
func BenchmarkUnleash(b *testing.B) {
	client := newUnleash(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		client.GetVariant("exp", unleash.WithVariantContext(unleashcontext.Context{UserId: benchUsers[i%len(benchUsers)]}))
		i++
	}
}
