// README "PostgreSQL", exposures and conversions: a store with a larger
// recorder queue records an exposure.
package main

import (
	"context"
	"log"
	"os"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/internal/readmecheck"
	"github.com/abkit/experiments/sqlstore"
)

func main() {
	ctx := context.Background()
	dsn := os.Getenv("DATABASE_URL")

	//readme:block 1

	defer store.Close()
	flag := experiments.NewFlag("course_experience", "upgrade_button")
	readmecheck.Must(store.SetFlag(ctx, flag.Name(), experiments.On()))
	flag.Bucket(x.NewContext(ctx, experiments.User{ID: "42"}), "")
	readmecheck.Must(store.Flush(ctx))
	var n int
	readmecheck.Must(store.DB().GetContext(ctx, &n, "SELECT count(*) FROM experiments_exposures WHERE user_id = '42'"))
	if n != 1 {
		readmecheck.Failf("%d exposures, want 1", n)
	}
}
