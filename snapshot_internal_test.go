package experiments

import (
	"strconv"
	"sync/atomic"
	"testing"
)

// snapshotRuns makes the names of each run of the test new: IDs outlive it.
var snapshotRuns atomic.Int64

// A decision finds its flag in a snapshot whenever the flag was
// declared: before the snapshot was built (by the ID of its name), after
// it (by name), or in another FlagSet under a name declared before.
func TestSnapshotEntryFindsFlagsDeclaredBeforeAndAfter(t *testing.T) {
	ns := "snapid" + strconv.FormatInt(snapshotRuns.Add(1), 10)
	before := NewFlagSet().NewFlag(ns, "before")
	absent := NewFlagSet().NewFlag(ns, "absent") // declared, not in the store
	weights := []float64{1, 3}
	snap := NewSnapshot(SnapshotData{
		Flags: map[string]Rule{ns + ".before": On(), ns + ".after": On(), ns + ".undeclared": On()},
		Meta:  map[string]ExperimentMeta{ns + ".before": {Weights: weights}, ns + ".after": {Weights: weights}},
	})
	after := NewFlagSet().NewFlag(ns, "after")
	again := NewFlagSet().NewFlag(ns, "before") // same name, another set, declared after
	if after.id < len(snap.byID) {
		t.Fatalf("a name first declared after the snapshot has ID %d, within its %d entries", after.id, len(snap.byID))
	}
	if before.id >= len(snap.byID) || again.id != before.id {
		t.Fatalf("IDs: before %d, again %d, %d entries; want the same ID, within", before.id, again.id, len(snap.byID))
	}
	for _, f := range []*ExperimentFlag{before, after, again} {
		e := snap.entry(f)
		if e.flag != snap.flags[f.full] || e.flag == nil || e.weights != snap.weights[f.full] || e.weights == nil {
			t.Errorf("%s: entry %+v, want the flag and weights the snapshot has by name", f.full, e)
		}
	}
	if e := snap.entry(absent); e.flag != nil || e.weights != nil {
		t.Errorf("a flag the store does not have: entry %+v, want none", e)
	}
	if e := new(Snapshot).entry(before); e.flag != nil || e.weights != nil {
		t.Errorf("an empty snapshot: entry %+v, want none", e)
	}
}
