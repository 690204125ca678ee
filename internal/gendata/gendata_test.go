package gendata_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/internal/gendata"
)

func TestGenerate(t *testing.T) {
	c := gendata.Config{Exposures: 20_000, Conversions: 5_000, Buckets: 3, Lift: 0.5, Seed: 3}
	d, err := gendata.Generate(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Exposures) != c.Exposures || len(d.Conversions) != c.Conversions {
		t.Fatalf("%d exposures, %d conversions; want %d, %d", len(d.Exposures), len(d.Conversions), c.Exposures, c.Conversions)
	}
	again, _ := gendata.Generate(c)
	if !reflect.DeepEqual(d, again) {
		t.Error("the same config and seed gave other data")
	}
	c.Seed = 4
	if other, _ := gendata.Generate(c); reflect.DeepEqual(d.Conversions, other.Conversions) {
		t.Error("another seed gave the same data")
	}

	exposed := map[string]experiments.Exposure{}
	perBucket := make([]int, c.Buckets)
	for i, e := range d.Exposures {
		if i > 0 && e.Time.Before(d.Exposures[i-1].Time) {
			t.Fatalf("exposure %d out of time order", i)
		}
		if e.Time.Nanosecond()%1000 != 0 || e.Flag != "course_experience.upgrade" || e.CourseKey != "" {
			t.Fatalf("exposure %d = %+v", i, e)
		}
		if _, dup := exposed[e.UserID]; dup {
			t.Fatalf("user %s exposed twice", e.UserID)
		}
		exposed[e.UserID] = e
		perBucket[e.Bucket]++
	}
	ids := map[string]bool{}
	before, outside := 0, 0
	converting := make([]map[string]bool, c.Buckets)
	for i := range converting {
		converting[i] = map[string]bool{}
	}
	for i, cv := range d.Conversions {
		if i > 0 && cv.Time.Before(d.Conversions[i-1].Time) {
			t.Fatalf("conversion %d out of time order", i)
		}
		if ids[cv.ID] || len(cv.ID) != 36 || cv.Time.Nanosecond()%1000 != 0 {
			t.Fatalf("conversion %d = %+v", i, cv)
		}
		ids[cv.ID] = true
		e, ok := exposed[cv.UserID]
		switch {
		case !ok:
			outside++
		case cv.Time.Before(e.Time):
			before++
		default:
			converting[e.Bucket][cv.UserID] = true
		}
	}
	if outside == 0 || before == 0 {
		t.Errorf("%d conversions by users never exposed, %d before exposure; want some of each", outside, before)
	}
	rate := func(b int) float64 { return float64(len(converting[b])) / float64(perBucket[b]) }
	if rate(1) < 1.2*rate(0) || rate(1) < 1.2*rate(2) {
		t.Errorf("conversion rates %v, %v, %v: want bucket 1's about 1.5 times the others'", rate(0), rate(1), rate(2))
	}
}

func TestGenerateRefuses(t *testing.T) {
	for _, c := range []gendata.Config{
		{Exposures: -1},
		{Buckets: -1},
		{Lift: -0.1},
	} {
		if _, err := gendata.Generate(c); !errors.Is(err, experiments.ErrInvalid) {
			t.Errorf("Generate(%+v) = %v, want ErrInvalid", c, err)
		}
	}
}

func TestGoalsAreValid(t *testing.T) {
	for _, g := range gendata.Goals() {
		if err := g.Validate(); err != nil {
			t.Error(err)
		}
	}
}
