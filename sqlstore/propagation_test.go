package sqlstore_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/abkit/experiments"
)

var propagationFlag = experiments.NewFlag("propagation_test", "toggled")

// TestPropagationLatency measures how long a change made through one store
// takes to reach another store on the same schema, by LISTEN/NOTIFY (the
// poll interval is left at its 5 s default, so the poll cannot be what
// delivers it). Each change must arrive within 1 s.
func TestPropagationLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("100 round trips through PostgreSQL")
	}
	ctx := context.Background()
	schema := newSchema(t)
	a := openStoreIn(t, schema)
	b := openStoreIn(t, schema)
	const (
		changes = 100
		bound   = time.Second
	)
	// percentOf returns the rule of the flag in b's snapshot, if any.
	percentOf := func() (float64, bool) {
		snap, err := b.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		r, ok := snap.Data().Flags[propagationFlag.Name()]
		return r.Percent, ok
	}
	latencies := make([]time.Duration, 0, changes)
	writes := make([]time.Duration, 0, changes)
	for i := range changes {
		// Every change differs from the last, so that an old rule cannot
		// pass for the new one: 1%, 2%, … 100%.
		want := float64(i + 1)
		written := make(chan error, 1)
		start := time.Now()
		go func() { written <- a.SetFlag(ctx, propagationFlag.Name(), experiments.Rule{Percent: want}) }()
		// b is watched from the start of the write, not from its return:
		// SetFlag also reloads a, which b does not wait for.
		for {
			if p, ok := percentOf(); ok && p == want {
				break
			}
			if time.Since(start) > bound {
				t.Fatalf("change %d (percent %v) not visible in the other store after %v (write error: %v)",
					i, want, bound, <-written)
			}
			time.Sleep(100 * time.Microsecond) // a measurement: observe b often, leave the CPU to the stores
		}
		latencies = append(latencies, time.Since(start))
		if err := <-written; err != nil {
			t.Fatal(err)
		}
		writes = append(writes, time.Since(start))
	}
	slices.Sort(latencies)
	slices.Sort(writes)
	t.Logf("%d changes, from the start of SetFlag on one store to the other store's snapshot: median %v, p90 %v, max %v",
		changes, latencies[changes/2], latencies[changes*9/10], latencies[changes-1])
	t.Logf("SetFlag itself (write, notify, reload of its own store): median %v, max %v", writes[changes/2], writes[changes-1])
}
