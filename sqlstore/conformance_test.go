package sqlstore_test

import (
	"testing"

	"github.com/abkit/experiments/sqlstore"
	"github.com/abkit/experiments/storetest"
	"github.com/lib/pq"
)

var (
	_ storetest.Store   = (*sqlstore.Store)(nil)
	_ storetest.Reader  = (*sqlstore.Store)(nil)
	_ storetest.Flusher = (*sqlstore.Store)(nil)
)

// TestConformance runs the store conformance suite on a Store: it must
// behave like experiments.MemStore. The subtests share one schema, emptied
// before each (a migration per subtest would take most of the run), after
// the records the last one queued are written.
func TestConformance(t *testing.T) {
	s := openStore(t)
	q := pq.QuoteIdentifier(s.Schema()) + "."
	storetest.Run(t, func(t *testing.T) storetest.Store {
		if err := s.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		db := s.DB()
		db.MustExec("TRUNCATE " + q + "experiments_flags, " + q + "experiments_course_overrides, " +
			q + "experiments_org_overrides, " + q + "experiments_values, " + q + "experiments_enrollments, " +
			q + "experiments_audit, " + q + "experiments_events, " + q + "experiments_goals, " +
			q + "experiments_exposures, " + q + "experiments_conversions, " + q + "experiments_meta, " +
			q + "experiments_assignments")
		db.MustExec("UPDATE " + q + "experiments_version SET version = version + 1")
		if err := s.Reload(t.Context()); err != nil {
			t.Fatal(err)
		}
		return s
	})
}
