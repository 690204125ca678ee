// Package gendata makes a deterministic, realistic data set of exposures
// and conversions for one experiment and bulk-loads it into a sqlstore
// schema: the data behind the results benchmark (sqlstore's
// BenchmarkAggregate1M) and cmd/experimentsgen.
//
// The data: Exposures users exposed to the experiment at times spread
// evenly over Days, in Buckets buckets of equal weight; and Conversions
// conversions of the goals below, mostly by exposed users (some before
// their exposure), a few by users never exposed. Bucket 1 converts Lift
// more often than the others. Every conversion belongs to a visit of a
// converting user: an enrollment first, then maybe videos, maybe a
// purchase, and rarely a refund of it.
package gendata

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/internal/uuid"
	"github.com/lib/pq"
)

// The goals of the conversions.
const (
	GoalEnroll   = "enroll"   // once per converting user, no value
	GoalVideo    = "video"    // 1 to 4 per watching user, minutes watched
	GoalPurchase = "purchase" // the price paid
	GoalRefund   = "refund"   // the price refunded
)

// Goals returns goal definitions for the generated conversions: enroll
// (Once), video (ValueSum of minutes), purchase (ValuePerParticipant),
// refund (Once) and paid (complex: enroll and purchase, no refund).
func Goals() []experiments.Goal {
	return []experiments.Goal{
		{Name: GoalEnroll, Once: true},
		{Name: GoalVideo, Value: experiments.ValueSum},
		{Name: GoalPurchase, Value: experiments.ValuePerParticipant},
		{Name: GoalRefund, Once: true},
		{Name: "paid", Include: []string{GoalEnroll, GoalPurchase}, Exclude: []string{GoalRefund}},
	}
}

// Config describes a data set. Zero fields take their defaults.
type Config struct {
	// Flag is the experiment's flag. Optional. Default:
	// "course_experience.upgrade".
	Flag string
	// CourseKey is the experiment's course. Optional. Default: "" (none).
	CourseKey string
	// Exposures is the number of exposed users. Optional. Default:
	// 1,000,000.
	Exposures int
	// Conversions is the number of conversions. Optional. Default:
	// 200,000.
	Conversions int
	// Buckets is the number of buckets. Optional. Default: 2.
	Buckets int
	// Days is the span of the exposures. Optional. Default: 30.
	Days int
	// Start is the first possible exposure time. Optional. Default:
	// 2026-09-01 00:00 UTC.
	Start time.Time
	// Lift is how much more often bucket 1's users convert than the
	// others', 0.1 for 10 %. Optional. Default: 0 (none).
	Lift float64
	// Seed makes the data set: the same seed and config, the same data,
	// conversion IDs included. Optional. Default: 0.
	Seed uint64
}

func (c Config) withDefaults() Config {
	if c.Flag == "" {
		c.Flag = "course_experience.upgrade"
	}
	if c.Exposures == 0 {
		c.Exposures = 1_000_000
	}
	if c.Conversions == 0 {
		c.Conversions = 200_000
	}
	if c.Buckets == 0 {
		c.Buckets = 2
	}
	if c.Days == 0 {
		c.Days = 30
	}
	if c.Start.IsZero() {
		c.Start = time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	}
	return c
}

// Data is a generated data set, each slice in time order (then user).
type Data struct {
	Exposures   []experiments.Exposure
	Conversions []Conversion
}

// Conversion is an experiments.Conversion with its row's ID.
type Conversion struct {
	ID string // a UUID
	experiments.Conversion
}

// Generate makes the data set of c. It fails when c has a negative
// count, fewer than one bucket or day, or an invalid flag name.
func Generate(c Config) (Data, error) {
	c = c.withDefaults()
	if c.Exposures < 0 || c.Conversions < 0 || c.Buckets < 1 || c.Days < 1 || c.Lift < 0 {
		return Data{}, fmt.Errorf("%w: %d exposures, %d conversions, %d buckets, %d days, lift %v",
			experiments.ErrInvalid, c.Exposures, c.Conversions, c.Buckets, c.Days, c.Lift)
	}
	r := rand.New(rand.NewPCG(c.Seed, 0x9e3779b97f4a7c15))
	span := int64(c.Days) * int64(24*time.Hour/time.Microsecond)
	at := func(us int64) time.Time { return c.Start.Add(time.Duration(us) * time.Microsecond) }

	// Users 10000000, 10000001, … in random order of exposure.
	var d Data
	d.Exposures = make([]experiments.Exposure, c.Exposures)
	for i := range d.Exposures {
		d.Exposures[i] = experiments.Exposure{
			Flag: c.Flag, CourseKey: c.CourseKey, UserID: strconv.Itoa(10_000_000 + i),
			Bucket: r.IntN(c.Buckets), Time: at(r.Int64N(span)),
		}
	}

	// Bucket 1 accepts every user drawn to convert; the others 1/(1+Lift).
	accept := 1 / (1 + c.Lift)
	hour := float64(time.Hour / time.Microsecond)
	d.Conversions = make([]Conversion, 0, c.Conversions)
	add := func(goal, user string, value float64, t time.Time) bool {
		if len(d.Conversions) == c.Conversions {
			return false
		}
		var id [16]byte
		for i := 0; i < 16; i += 8 {
			v := r.Uint64()
			for j := range 8 {
				id[i+j] = byte(v >> (8 * j))
			}
		}
		id[6], id[8] = id[6]&0x0f|0x40, id[8]&0x3f|0x80 // version 4, variant 10
		d.Conversions = append(d.Conversions, Conversion{ID: uuid.Format(id[:]), Conversion: experiments.Conversion{
			Goal: goal, UserID: user, Value: value, Time: t.Truncate(time.Microsecond)}})
		return true
	}
	unexposed := 0
	for len(d.Conversions) < c.Conversions {
		var user string
		var t time.Time
		if r.IntN(20) == 0 { // 5 %: a user outside the experiment
			user, t = strconv.Itoa(20_000_000+unexposed), at(r.Int64N(span))
			unexposed++
		} else {
			e := d.Exposures[r.IntN(len(d.Exposures))]
			if e.Bucket != 1 && r.Float64() >= accept {
				continue
			}
			user, t = e.UserID, e.Time
			if r.IntN(100) < 8 { // 8 %: enrolled before the exposure, up to 3 days
				t = t.Add(-time.Duration(r.Float64() * 72 * hour))
			} else { // then after, 2 days on average
				t = t.Add(time.Duration(r.ExpFloat64() * 48 * hour))
			}
		}
		// A visit: the enrollment, then more, 6 h apart on average.
		next := func() time.Time {
			t = t.Add(time.Duration(1 + r.ExpFloat64()*6*hour))
			return t
		}
		if !add(GoalEnroll, user, 0, t) {
			break
		}
		if r.IntN(2) == 0 {
			for range 1 + r.IntN(4) {
				add(GoalVideo, user, math.Round(r.Float64()*300)/10, next())
			}
		}
		if r.IntN(10) < 3 {
			price := []float64{49, 99, 149, 199}[r.IntN(4)]
			add(GoalPurchase, user, price, next())
			if r.IntN(10) == 0 {
				add(GoalRefund, user, price, next())
			}
		}
	}
	slices.SortFunc(d.Exposures, func(a, b experiments.Exposure) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return cmp.Compare(a.UserID, b.UserID)
	})
	slices.SortStableFunc(d.Conversions, func(a, b Conversion) int { return a.Time.Compare(b.Time) })
	return d, nil
}

// Stats says what Load did.
type Stats struct {
	Exposures, Conversions int
	Generate               time.Duration // making the data in memory
	Copy                   time.Duration // COPY into the tables, commit included
	Vacuum                 time.Duration // VACUUM ANALYZE of both tables
}

// Total is the whole time Load took.
func (s Stats) Total() time.Duration { return s.Generate + s.Copy + s.Vacuum }

// Load generates c's data set and writes it into the experiments_exposures
// and experiments_conversions tables of schema (migrated by sqlstore) in
// one transaction with COPY, in time order as a live store appends it,
// then runs VACUUM ANALYZE on both, as autovacuum would in time, so that
// the planner has statistics and index-only scans a visibility map. It
// fails, writing nothing, when a row conflicts with one already there
// (the same seed loaded twice).
func Load(ctx context.Context, db *sql.DB, schema string, c Config) (Stats, error) {
	var st Stats
	start := time.Now()
	d, err := Generate(c)
	if err != nil {
		return st, err
	}
	st.Generate = time.Since(start)

	start = time.Now()
	if err := copyIn(ctx, db, schema, d); err != nil {
		return st, fmt.Errorf("gendata: loading schema %q: %w", schema, err)
	}
	st.Copy = time.Since(start)
	st.Exposures, st.Conversions = len(d.Exposures), len(d.Conversions)

	start = time.Now()
	q := pq.QuoteIdentifier(schema) + "."
	if _, err := db.ExecContext(ctx, "VACUUM ANALYZE "+q+"experiments_exposures, "+q+"experiments_conversions"); err != nil {
		return st, fmt.Errorf("gendata: vacuum: %w", err)
	}
	st.Vacuum = time.Since(start)
	return st, nil
}

func copyIn(ctx context.Context, db *sql.DB, schema string, d Data) (err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	err = copyRows(ctx, tx, pq.CopyInSchema(schema, "experiments_exposures", "flag", "course_key", "user_id", "bucket", "time"),
		len(d.Exposures), func(i int) []any {
			e := d.Exposures[i]
			return []any{e.Flag, e.CourseKey, e.UserID, e.Bucket, e.Time}
		})
	if err != nil {
		return fmt.Errorf("exposures: %w", err)
	}
	err = copyRows(ctx, tx, pq.CopyInSchema(schema, "experiments_conversions", "id", "goal", "user_id", "value", "time"),
		len(d.Conversions), func(i int) []any {
			c := d.Conversions[i]
			return []any{c.ID, c.Goal, c.UserID, c.Value, c.Time}
		})
	if err != nil {
		return fmt.Errorf("conversions: %w", err)
	}
	return tx.Commit()
}

func copyRows(ctx context.Context, tx *sql.Tx, query string, n int, row func(int) []any) error {
	stmt, err := tx.PrepareContext(ctx, query)
	if err != nil {
		return err
	}
	for i := range n {
		if _, err := stmt.ExecContext(ctx, row(i)...); err != nil {
			return errors.Join(err, stmt.Close())
		}
	}
	if _, err := stmt.ExecContext(ctx); err != nil {
		return errors.Join(err, stmt.Close())
	}
	return stmt.Close()
}
