// README "Integrations": the Segment tracker, the MultiTracker and the
// Prometheus metrics together, on PostgreSQL (DATABASE_URL).
package main

import (
	"context"
	"log"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/internal/readmecheck"
	"github.com/abkit/experiments/prommetrics"
	"github.com/abkit/experiments/segment"
	"github.com/abkit/experiments/sqlstore"
)

func main() {
	ctx := context.Background()
	store, err := sqlstore.Open(ctx, os.Getenv("DATABASE_URL"))
	readmecheck.Must(err)
	defer store.Close()

	//readme:block 2

	//readme:block 1

	//readme:block 4

	flag := experiments.NewFlag("course_experience", "upgrade_button")
	readmecheck.Must(store.SetFlag(ctx, flag.Name(), experiments.On()))
	// An anonymous user: a decision for the metrics, no event for Segment.
	readmecheck.Decision("anonymous", flag.Decide(x.NewContext(ctx, experiments.User{}), ""), 0, experiments.ReasonAnonymous)
	families, err := prometheus.DefaultGatherer.Gather()
	readmecheck.Must(err)
	var names []string
	for _, f := range families {
		names = append(names, f.GetName())
	}
	for _, want := range []string{"experiments_decisions_total", "experiments_queue_length", "experiments_store_reload_age_seconds"} {
		if !slices.Contains(names, want) {
			readmecheck.Failf("metrics %v: no %s", names, want)
		}
	}

	//readme:block 3
}
