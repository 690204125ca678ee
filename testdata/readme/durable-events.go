// README "PostgreSQL", durable events: an event tracked through the
// store's tracker lands in experiments_events.
package main

import (
	"context"
	"os"

	"github.com/gorilla/sessions"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/internal/readmecheck"
	"github.com/abkit/experiments/sqlstore"
)

func main() {
	ctx := context.Background()
	store, err := sqlstore.Open(ctx, os.Getenv("DATABASE_URL"))
	readmecheck.Must(err)
	defer store.Close()
	sessionStore := sessions.NewCookieStore([]byte("readme-test-key-of-32-bytes-long"))

	//readme:block 1

	flag := experiments.NewFlag("course_experience", "upgrade_button")
	readmecheck.Must(store.SetFlag(ctx, flag.Name(), experiments.On()))
	if d := flag.Decide(x.NewContext(ctx, experiments.User{ID: "42"}), ""); !d.Tracked || d.Err != nil {
		readmecheck.Failf("decision %+v, want it tracked", d)
	}
	readmecheck.Must(tracker.Close(ctx))
	var n int
	readmecheck.Must(store.DB().GetContext(ctx, &n, "SELECT count(*) FROM experiments_events WHERE user_id = '42'"))
	if n != 1 {
		readmecheck.Failf("%d events in experiments_events, want 1", n)
	}
}
