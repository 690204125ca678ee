// Command experimentsgen fills a sqlstore schema with a generated data
// set for one experiment: exposures spread over a month, conversions of
// the goals enroll, video, purchase and refund (and the complex goal
// paid), bucket 1 converting a little more often. The same flags and
// seed give the same data. It migrates the schema, loads the rows with
// COPY in one transaction (refusing to load the same data twice), runs
// VACUUM ANALYZE, and defines the goals. The data set of the results
// benchmark (sqlstore's BenchmarkAggregate1M) is the default:
//
//	go run ./cmd/experimentsgen -dsn postgres://… -schema bench \
//	    -exposures 1000000 -conversions 200000 -seed 1
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"time"

	"github.com/abkit/experiments/internal/gendata"
	"github.com/abkit/experiments/sqlstore"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "experimentsgen:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("experimentsgen", flag.ContinueOnError)
	dsn := fs.String("dsn", os.Getenv("EXPERIMENTS_DSN"), "PostgreSQL connection string (default $EXPERIMENTS_DSN)")
	schema := fs.String("schema", "public", "schema of the store's tables, created and migrated if needed")
	var c gendata.Config
	fs.StringVar(&c.Flag, "flag", "course_experience.upgrade", "the experiment's flag")
	fs.StringVar(&c.CourseKey, "course", "", "the experiment's course key (none by default)")
	fs.IntVar(&c.Exposures, "exposures", 1_000_000, "exposed users")
	fs.IntVar(&c.Conversions, "conversions", 200_000, "conversions")
	fs.IntVar(&c.Buckets, "buckets", 2, "buckets")
	fs.IntVar(&c.Days, "days", 30, "days the exposures span")
	fs.Float64Var(&c.Lift, "lift", 0.1, "how much more often bucket 1 converts (0.1: 10 %)")
	fs.Uint64Var(&c.Seed, "seed", 1, "seed of the data set")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dsn == "" {
		return fmt.Errorf("-dsn is required (or $EXPERIMENTS_DSN)")
	}
	if c.Exposures <= 0 || c.Conversions <= 0 || c.Buckets < 1 || c.Days < 1 || c.Lift < 0 {
		return fmt.Errorf("want exposures > 0, conversions > 0, buckets >= 1, days >= 1, lift >= 0")
	}

	s, err := sqlstore.OpenWith(ctx, *dsn, sqlstore.WithSchema(*schema),
		sqlstore.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, nil))))
	if err != nil {
		return err
	}
	defer s.Close()
	st, err := gendata.Load(ctx, s.DB().DB, s.Schema(), c)
	if err != nil {
		return err
	}
	for _, g := range gendata.Goals() {
		if err := s.SetGoal(ctx, g); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "schema %s: %d exposures of %s, %d conversions in %v (generate %v, copy %v, vacuum analyze %v)\n",
		s.Schema(), st.Exposures, c.Flag, st.Conversions, st.Total().Round(time.Millisecond),
		st.Generate.Round(time.Millisecond), st.Copy.Round(time.Millisecond), st.Vacuum.Round(time.Millisecond))
	return s.Close()
}
