package sqlstore_test

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/sqlstore"
	"github.com/lib/pq"
)

var (
	stickyFlag      = experiments.NewFlagSet().NewFlag("assign_test", "exp", experiments.WithStickyBuckets(true))
	stickyFlagThree = experiments.NewFlagSet().NewFlag("assign_test", "exp", experiments.WithBuckets(3), experiments.WithStickyBuckets(true))
)

const stickyCourse = "course-v1:AssignX+Sticky+2026"

// The row a first bucketing writes: the user, the flag's hashing group,
// the bucket and when; later decisions read it and write nothing.
func TestAssignmentsRow(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	if err := s.SetFlag(ctx, stickyFlag.Name(), experiments.On()); err != nil {
		t.Fatal(err)
	}
	x := experiments.New(experiments.Config{Store: s, Logger: slog.New(slog.DiscardHandler)})
	u := experiments.User{ID: "row-user"}
	before := time.Now().Add(-time.Minute)
	d := stickyFlag.Decide(x.NewContext(ctx, u), stickyCourse)
	if d.Reason != experiments.ReasonHashed || d.Err != nil {
		t.Fatalf("first decision %+v, want hashed", d)
	}
	type row struct {
		UserID     string    `db:"user_id"`
		Experiment string    `db:"experiment"`
		Bucket     int       `db:"bucket"`
		CreatedAt  time.Time `db:"created_at"`
	}
	table := pq.QuoteIdentifier(s.Schema()) + ".experiments_assignments"
	var rows []row
	if err := s.DB().SelectContext(ctx, &rows, "SELECT user_id, experiment, bucket, created_at FROM "+table); err != nil {
		t.Fatal(err)
	}
	want := row{UserID: u.ID, Experiment: stickyFlag.Name() + "." + stickyCourse, Bucket: d.Bucket}
	if len(rows) != 1 || rows[0].UserID != want.UserID || rows[0].Experiment != want.Experiment || rows[0].Bucket != want.Bucket ||
		rows[0].CreatedAt.Before(before) {
		t.Fatalf("rows %+v, want one: %+v, created now", rows, want)
	}
	if d := stickyFlagThree.Decide(x.NewContext(ctx, u), stickyCourse); d.Reason != experiments.ReasonSticky || d.Bucket != want.Bucket {
		t.Errorf("decision with 3 buckets %+v, want the remembered bucket %d", d, want.Bucket)
	}
	var n int
	if err := s.DB().GetContext(ctx, &n, "SELECT count(*) FROM "+table); err != nil || n != 1 {
		t.Errorf("%d rows (%v), want still 1", n, err)
	}
}

// A hung database costs a sticky decision the assignment timeout at most,
// and the user is then bucketed by hash, not sent to control; with every
// slot held by abandoned queries, reads fail fast with ErrAssignmentsBusy.
func TestAssignmentsStalledDatabase(t *testing.T) {
	const timeout = 200 * time.Millisecond
	ctx := context.Background()
	u, err := url.Parse(testDSN())
	if err != nil || u.Host == "" {
		t.Skipf("the test DSN %q is not a postgres:// URL with a host: cannot put a proxy in front of it", testDSN())
	}
	proxy := startProxy(t, u.Host)
	proxied, err := sqlstore.OpenWith(ctx, proxy.DSN(testDSN()), sqlstore.WithSchema(newSchema(t)),
		sqlstore.WithAssignmentTimeout(timeout), sqlstore.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		proxy.Restore() // the hung connections close, and whatever waits on them returns
		if err := proxied.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if err := proxied.SetFlag(ctx, stickyFlag.Name(), experiments.On()); err != nil {
		t.Fatal(err)
	}
	x := experiments.New(experiments.Config{Store: proxied, Logger: slog.New(slog.DiscardHandler)})
	user := func(i int) context.Context {
		return x.NewContext(ctx, experiments.User{ID: "stall-" + strconv.Itoa(i)})
	}
	if d := stickyFlag.Decide(user(0), ""); d.Reason != experiments.ReasonHashed || d.Err != nil {
		t.Fatalf("before the stall: %+v, want hashed", d)
	}

	proxy.Stall()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			start := time.Now()
			d := stickyFlag.Decide(user(i), "")
			took := time.Since(start)
			want := experiments.SHA256Bucket(stickyFlag.Name(), "stall-"+strconv.Itoa(i), 2)
			if d.Bucket != want || d.Reason != experiments.ReasonHashed || !errors.Is(d.Err, experiments.ErrAssignments) {
				t.Errorf("user %d during the stall: %+v, want the hashed bucket %d with ErrAssignments", i, d, want)
			}
			if took > timeout+300*time.Millisecond {
				t.Errorf("user %d during the stall took %v, want about the assignment timeout %v", i, took, timeout)
			}
		})
	}
	wg.Wait()
	// The 8 abandoned reads still hold their slots (connecting takes up to
	// the DSN's connect timeout, 1 s, and hung reads longer).
	if _, _, err := proxied.Assignment(ctx, "stall-9", stickyFlag.Name()); !errors.Is(err, sqlstore.ErrAssignmentsBusy) {
		t.Errorf("read with every slot held: %v, want ErrAssignmentsBusy", err)
	}
	proxy.Restore()
}
