package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/abkit/experiments"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

var _ experiments.Assignments = (*Store)(nil)

// ErrAssignmentsBusy is the error of a read or save of a sticky bucket
// that waited until its deadline for one of the others still running (the
// database is slow or hung) to end. Decisions then bucket as without
// stickiness (see experiments.ErrAssignments).
var ErrAssignmentsBusy = errors.New("sqlstore: too many assignment reads and saves running; the database is slow or away")

// WithAssignmentTimeout bounds each read and save of a sticky bucket
// (experiments.Assignments; the request's context may bound it further).
// Optional. Default: 500 ms.
func WithAssignmentTimeout(d time.Duration) Option {
	return func(o *options) { o.assignTimeout = d }
}

// assignments runs the queries of experiments.Assignments on the table
// experiments_assignments, each within the assignment timeout and at most
// maxLookups at once (bounded), as Enrollments runs its lookups.
type assignments struct {
	db        *sqlx.DB
	get, save string
	bounds
}

func newAssignments(db *sqlx.DB, schema string, timeout time.Duration) assignments {
	t := pq.QuoteIdentifier(schema) + "." + pq.QuoteIdentifier("experiments_assignments")
	return assignments{
		db: db, bounds: newBounds(timeout, ErrAssignmentsBusy),
		get: "SELECT bucket FROM " + t + " WHERE user_id = $1 AND experiment = $2",
		// The smaller bucket wins: the first one saved, unless the flag
		// lost it (WithBuckets lowered) and a smaller one replaces it.
		save: "INSERT INTO " + t + " AS a (user_id, experiment, bucket) VALUES ($1, $2, $3)" +
			" ON CONFLICT (user_id, experiment) DO UPDATE SET bucket = EXCLUDED.bucket, created_at = now()" +
			" WHERE a.bucket > EXCLUDED.bucket",
	}
}

// Assignment returns the bucket remembered for userID in experiment,
// from the table experiments_assignments, within the assignment timeout
// (WithAssignmentTimeout). A user ID or experiment that no PostgreSQL text
// can hold (a NUL byte, invalid UTF-8) has none: it could not have been
// saved.
func (s *Store) Assignment(ctx context.Context, userID, experiment string) (int, bool, error) {
	if !storable(userID) || !storable(experiment) {
		return 0, false, nil
	}
	a := &s.assignments
	b, err := bounded(ctx, &a.bounds, func(ctx context.Context) (int, error) {
		var b int
		err := a.db.QueryRowContext(ctx, a.get, userID, experiment).Scan(&b)
		return b, err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	return b, true, nil
}

// SaveAssignment remembers bucket for userID in experiment, keeping the
// smaller bucket when one is already remembered (see
// experiments.Assignments), in one statement: concurrent saves agree. It
// runs within the assignment timeout.
func (s *Store) SaveAssignment(ctx context.Context, userID, experiment string, bucket int) error {
	if err := experiments.ValidateAssignment(userID, experiment, bucket); err != nil {
		return err
	}
	a := &s.assignments
	_, err := bounded(ctx, &a.bounds, func(ctx context.Context) (struct{}, error) {
		_, err := a.db.ExecContext(ctx, a.save, userID, experiment, bucket)
		return struct{}{}, err
	})
	return err
}
