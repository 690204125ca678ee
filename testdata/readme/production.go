// README "Going to production": on a schema migrated ahead, a request is
// served, the process is told to stop, and what the request tracked is in
// PostgreSQL once the store is closed.
package main

import (
	"cmp"
	"context"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/gorilla/sessions"
	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/internal/readmecheck"
	"github.com/abkit/experiments/sqlstore"
)

var upgradeButton = experiments.NewFlag("course_experience", "upgrade_button")

func main() {
	// The migration, ahead of the deploy, with its flag.
	db, err := sqlx.Connect("postgres", os.Getenv("DATABASE_URL"))
	readmecheck.Must(err)
	defer db.Close()
	if _, _, err := sqlstore.Migrate(context.Background(), db, "public"); err != nil {
		readmecheck.Failf("migrating: %v", err)
	}
	owner, err := sqlstore.Open(context.Background(), os.Getenv("DATABASE_URL"))
	readmecheck.Must(err)
	readmecheck.Must(owner.SetFlag(context.Background(), upgradeButton.Name(), experiments.On()))
	readmecheck.Must(owner.Close())

	mux := http.NewServeMux()
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "bucket %d", upgradeButton.Bucket(r.Context(), ""))
	})
	currentUser := func(r *http.Request) experiments.User { return experiments.User{ID: r.Header.Get("X-Account")} }
	ctx, stop := context.WithCancel(context.Background())
	go func() { // a visitor, then SIGTERM
		defer stop()
		addr := "127.0.0.1:" + cmp.Or(os.Getenv("PORT"), "8080")
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if c, err := net.Dial("tcp", addr); err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				readmecheck.Failf("nothing listens at %s", addr)
			}
		}
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
		req.Header.Set("X-Account", "42")
		resp, err := http.DefaultClient.Do(req)
		readmecheck.Must(err)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || len(resp.Header.Values("Set-Cookie")) != 1 {
			readmecheck.Failf("GET /: %s, Set-Cookie %q; want 200 and the session cookie", resp.Status, resp.Header.Values("Set-Cookie"))
		}
	}()

	//readme:block 1

	var events, exposures int
	readmecheck.Must(db.Get(&events, "SELECT count(*) FROM experiments_events WHERE user_id = '42'"))
	readmecheck.Must(db.Get(&exposures, "SELECT count(*) FROM experiments_exposures WHERE user_id = '42'"))
	if events != 1 || exposures != 1 {
		readmecheck.Failf("after Close: %d events and %d exposures of the request, want 1 and 1", events, exposures)
	}
}
