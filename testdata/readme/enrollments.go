// README "PostgreSQL", enrollments from the app's own table: a learner
// who enrolled before the window opened gets control, one who enrolled
// after it is bucketed.
package main

import (
	"context"
	"log"
	"os"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/internal/readmecheck"
	"github.com/abkit/experiments/sqlstore"
)

func main() {
	ctx := context.Background()
	store := experiments.NewMemStore()
	flag := experiments.NewFlag("course_experience", "new_outline", experiments.WithExperimentID(12))
	readmecheck.Must(store.SetFlag(ctx, flag.Name(), experiments.On()))
	readmecheck.Must(store.SetExperimentValue(ctx, 12, experiments.EnrollmentStart, "2026-09-01"))

	//readme:block 1

	_, err = db.Exec(`CREATE TABLE student_courseenrollment (user_id text, course_id text, created timestamptz, is_active bool);
		INSERT INTO student_courseenrollment VALUES
			('1', 'course-v1:edX+DemoX+2026', '2026-08-20', true),
			('2', 'course-v1:edX+DemoX+2026', '2026-09-02', true)`)
	readmecheck.Must(err)
	const course = "course-v1:edX+DemoX+2026"
	readmecheck.Decision("enrolled before the start", flag.Decide(x.NewContext(ctx, experiments.User{ID: "1"}), course), 0, experiments.ReasonOutsideWindow)
	readmecheck.Decision("enrolled after the start", flag.Decide(x.NewContext(ctx, experiments.User{ID: "2"}), course),
		experiments.SHA256Bucket(flag.Name()+"."+course, "2", 2), experiments.ReasonHashed)
}
