package experiments_test

import (
	"testing"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/storetest"
)

var _ storetest.Store = (*experiments.MemStore)(nil)

// TestMemStoreConformance runs the store conformance suite on MemStore,
// the reference: a failure here is a bug in the suite or in MemStore.
func TestMemStoreConformance(t *testing.T) {
	storetest.Run(t, func(*testing.T) storetest.Store { return experiments.NewMemStore() })
}
