package sqlstore_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/sqlstore"
)

// BenchmarkTrackerIngest measures how fast a tracker gets events into the
// table: b.N events tracked from parallel goroutines, then Close, which
// returns once all are written. The queue holds them all, so none is
// dropped and events/s is the rate at which the database takes them.
// "default" is NewTracker's defaults (2 writers, batches of 500).
func BenchmarkTrackerIngest(b *testing.B) {
	for _, bc := range []struct {
		name           string
		writers, batch int
	}{
		{"writers=1/batch=500", 1, 500},
		{"default", 2, 500},
		{"writers=2/batch=2000", 2, 2000},
		{"writers=4/batch=500", 4, 500},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := openStore(b, sqlstore.WithLogger(slog.New(slog.DiscardHandler)))
			tr := s.NewTracker(sqlstore.WithQueueSize(b.N), sqlstore.WithWriters(bc.writers), sqlstore.WithBatchSize(bc.batch))
			e := benchEvent()
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := tr.Track(context.Background(), e); err != nil {
						b.Error(err)
						return
					}
				}
			})
			if err := tr.Close(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			st := tr.Stats()
			if st.Written != uint64(b.N) {
				b.Fatalf("%+v, want %d written", st, b.N)
			}
			b.ReportMetric(float64(st.Written)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkTrackerTrack measures Track alone, the part on the request
// path, with the default options: events beyond what the database takes
// are dropped (reported as dropped/op).
func BenchmarkTrackerTrack(b *testing.B) {
	s := openStore(b, sqlstore.WithLogger(slog.New(slog.DiscardHandler)))
	tr := s.NewTracker(sqlstore.WithTrackerLogger(slog.New(slog.DiscardHandler)))
	e := benchEvent()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tr.Track(context.Background(), e)
		}
	})
	b.StopTimer()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := tr.Close(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(tr.Stats().Dropped)/float64(b.N), "dropped/op")
}

func benchEvent() experiments.Event {
	return experiments.Event{
		Name: experiments.EventUserBucketed, Time: time.Now(), UserID: "1234567", Site: "learn.example.org",
		AppLabel: "course_experience", Experiment: "upgrade_button", CourseKey: "course-v1:OrgX+CS101+2026_T1", Bucket: 1,
	}
}
