package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/abkit/experiments"
	"github.com/jmoiron/sqlx"
)

var _ experiments.Enrollments = (*Enrollments)(nil)

// Enrollments looks enrollments up with an app's own SQL query, for apps
// that already keep them in a table of their own:
//
//	x := experiments.New(experiments.Config{
//		Store: store,
//		Enrollments: sqlstore.NewEnrollments(db,
//			"SELECT created FROM student_courseenrollment WHERE user_id = $1 AND course_id = $2 AND is_active",
//			300*time.Millisecond),
//	})
//
// Lookups run only for experiments with an enrollment window, once per
// request, user and course. It is safe for concurrent use.
type Enrollments struct {
	db    *sqlx.DB
	query string
	bounds
}

// ErrLookupsBusy is the error of an enrollment lookup that waited until
// its deadline for one of the others still running (the database is slow
// or hung) to end.
var ErrLookupsBusy = errors.New("sqlstore: too many enrollment lookups running; the database is slow or away")

// NewEnrollments returns Enrollments that run query with $1 = user ID and
// $2 = course key; it must return no row (not enrolled) or one row whose
// first column is the enrollment time (timestamptz, or timestamp in UTC).
// Each lookup is bounded by timeout (0: only by the caller's context); at
// most 8 run at once, and one more waits for a slot until its deadline,
// then fails with ErrLookupsBusy.
func NewEnrollments(db *sqlx.DB, query string, timeout time.Duration) *Enrollments {
	return &Enrollments{db: db, query: query, bounds: newBounds(timeout, ErrLookupsBusy)}
}

// Enrollment returns when userID enrolled in courseKey. A user ID or
// course key that no PostgreSQL text can hold (a NUL byte, invalid UTF-8)
// is not enrolled: it could not have been stored.
func (e *Enrollments) Enrollment(ctx context.Context, userID, courseKey string) (time.Time, bool, error) {
	if !storable(userID) || !storable(courseKey) {
		return time.Time{}, false, nil
	}
	created, err := bounded(ctx, &e.bounds, func(ctx context.Context) (time.Time, error) {
		var created time.Time
		err := e.db.QueryRowxContext(ctx, e.query, userID, courseKey).Scan(&created)
		return created, err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, err
	}
	return created, true, nil
}

// storable reports whether PostgreSQL text can hold s.
func storable(s string) bool {
	return utf8.ValidString(s) && !strings.Contains(s, "\x00")
}
