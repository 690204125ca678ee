package storetest

import (
	"encoding/json"
	"errors"
	"maps"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/abkit/experiments"
)

// weightedFlag is the experiment of the weights tests: three buckets,
// equal shares by the modulo in the code, so that the store's weights
// are what changes its buckets.
var weightedFlag = experiments.NewFlag("storetest", "weighted", experiments.WithBuckets(3))

// weightedUsers are users whose buckets the weights tests check.
var weightedUsers = func() []experiments.User {
	users := make([]experiments.User, 50)
	for i := range users {
		users[i] = experiments.User{ID: "w" + string(rune('a'+i%26)) + string(rune('a'+i/26))}
	}
	return users
}()

func testWeights(t *testing.T, newStore func(*testing.T) Store) {
	t.Run("ok, weights read back in the snapshot as written", func(t *testing.T) {
		f := setUp(t, newStore)
		many := make([]float64, 1024)
		for i := range many {
			many[i] = float64(i % 7)
		}
		want := map[string]experiments.ExperimentMeta{
			weightedFlag.Name():   {Weights: []float64{50, 25, 25}},
			"storetest.fractions": {Weights: []float64{33.3, 33.3, 33.4}, Notes: "thirds"},
			"storetest.tiny":      {Weights: []float64{1e-300, 0, 1e300}},
			"storetest.many":      {Weights: many},
		}
		for _, flag := range slices.Sorted(maps.Keys(want)) {
			f.apply(setMeta(flag, want[flag]))
		}
		if got := f.data().Meta; !reflect.DeepEqual(got, normalized(experiments.SnapshotData{Meta: want}).Meta) {
			t.Errorf("Data().Meta =\n%+v\nwant\n%+v", got, want)
		}
	})
	t.Run("ok, the caller's weights are copied", func(t *testing.T) {
		f := setUp(t, newStore)
		w := []float64{1, 2, 3}
		f.apply(setMeta(weightedFlag.Name(), experiments.ExperimentMeta{Weights: w}))
		w[0] = 100
		if got := f.data().Meta[weightedFlag.Name()].Weights; !reflect.DeepEqual(got, []float64{1, 2, 3}) {
			t.Errorf("weights %v after the caller changed its slice, want [1 2 3]", got)
		}
	})
	t.Run("ok, stored weights decide the hashed buckets", func(t *testing.T) {
		f := setUp(t, newStore)
		f.apply(setFlag(weightedFlag.Name(), experiments.On()))
		for _, c := range []struct {
			weights []float64
			bucket  int
		}{{[]float64{0, 0, 1}, 2}, {[]float64{0, 5, 0}, 1}, {[]float64{1, 0, 0}, 0}} {
			f.apply(setMeta(weightedFlag.Name(), experiments.ExperimentMeta{Weights: c.weights}))
			for _, u := range weightedUsers {
				f.checkDecision(weightedFlag, u, courseA, want{bucket: c.bucket, reason: experiments.ReasonHashed})
				if d := f.decide(weightedFlag, u, courseA); d.Bucket != c.bucket {
					t.Fatalf("weights %v, user %s: bucket %d, want %d", c.weights, u.ID, d.Bucket, c.bucket)
				}
			}
		}
		// 50/25/25: the slot's range, for every user.
		w := []float64{50, 25, 25}
		f.apply(setMeta(weightedFlag.Name(), experiments.ExperimentMeta{Weights: w}))
		for _, u := range weightedUsers {
			slot := experiments.SHA256Bucket(weightedFlag.Name()+"."+courseA, u.ID, experiments.WeightSlots)
			if d := f.decide(weightedFlag, u, courseA); d.Bucket != experiments.SlotBucket(slot, w) || d.Err != nil {
				t.Errorf("user %s (slot %d): decision %+v, want bucket %d", u.ID, slot, d, experiments.SlotBucket(slot, w))
			}
		}
	})
	t.Run("ok, removing the weights gives the flag's own buckets back", func(t *testing.T) {
		f := setUp(t, newStore)
		f.apply(setFlag(weightedFlag.Name(), experiments.On()),
			setMeta(weightedFlag.Name(), experiments.ExperimentMeta{Weights: []float64{0, 0, 1}, Notes: "n"}),
			setMeta(weightedFlag.Name(), experiments.ExperimentMeta{Notes: "n"}))
		for _, u := range weightedUsers {
			want := experiments.SHA256Bucket(weightedFlag.Name()+"."+courseA, u.ID, 3)
			if d := f.decide(weightedFlag, u, courseA); d.Bucket != want || d.Err != nil {
				t.Errorf("user %s: decision %+v, want the modulo's bucket %d", u.ID, d, want)
			}
		}
	})
	t.Run("nok, weights of another count than the flag's buckets: its own buckets, with ErrInvalid", func(t *testing.T) {
		f := setUp(t, newStore)
		f.apply(setFlag(weightedFlag.Name(), experiments.On()),
			setMeta(weightedFlag.Name(), experiments.ExperimentMeta{Weights: []float64{0, 1}}))
		for _, u := range weightedUsers {
			want := experiments.SHA256Bucket(weightedFlag.Name()+"."+courseA, u.ID, 3)
			d := f.decide(weightedFlag, u, courseA)
			if d.Bucket != want || d.Reason != experiments.ReasonHashed || !errors.Is(d.Err, experiments.ErrInvalid) {
				t.Errorf("user %s: decision %+v, want bucket %d hashed with ErrInvalid", u.ID, d, want)
			}
		}
	})
	t.Run("ok, a change of weights is audited as meta, with the actor", func(t *testing.T) {
		f := setUpHistory(t, newStore)
		f.apply(setMeta(weightedFlag.Name(), experiments.ExperimentMeta{Weights: []float64{90, 10, 0}}),
			setMeta(weightedFlag.Name(), experiments.ExperimentMeta{Weights: []float64{80, 20, 0}}))
		changes, err := f.s.History(f.ctx, experiments.HistoryQuery{Flag: weightedFlag.Name()})
		if err != nil || len(changes) != 2 {
			t.Fatalf("History = %+v, %v; want 2 changes", changes, err)
		}
		c := changes[0]
		var old, new experiments.ExperimentMeta
		if err := errors.Join(json.Unmarshal(c.Old, &old), json.Unmarshal(c.New, &new)); err != nil {
			t.Fatal(err)
		}
		if c.Entity != "meta" || c.Key != weightedFlag.Name() || c.Actor != histActor ||
			!reflect.DeepEqual(old.Weights, []float64{90, 10, 0}) || !reflect.DeepEqual(new.Weights, []float64{80, 20, 0}) {
			t.Errorf("newest change %+v (old %s, new %s), want meta of %s by %q from 90/10/0 to 80/20/0",
				c, c.Old, c.New, weightedFlag.Name(), histActor)
		}
	})
	for _, c := range []struct {
		name    string
		weights []float64
		field   string
	}{
		{"nok, a single weight", []float64{1}, "1 weights"},
		{"nok, no weight", []float64{}, "0 weights"},
		{"nok, 1025 weights", make([]float64, 1025), "1025 weights"},
		{"nok, a negative weight", []float64{1, -1}, "weight 1 is -1"},
		{"nok, a NaN weight", []float64{math.NaN(), 1}, "weight 0 is NaN"},
		{"nok, an infinite weight", []float64{math.Inf(1), 1}, "weight 0 is +Inf"},
		{"nok, every weight 0", []float64{0, 0, 0}, "sum is 0"},
		{"nok, a sum that overflows", []float64{math.MaxFloat64, math.MaxFloat64}, "sum is +Inf"},
	} {
		t.Run(c.name+" is refused", func(t *testing.T) {
			f := setUp(t, newStore)
			f.apply(setMeta(weightedFlag.Name(), experiments.ExperimentMeta{Weights: []float64{1, 1, 1}}))
			err := f.refuse(t, c.field, func() error {
				return f.s.SetExperimentMeta(f.ctx, weightedFlag.Name(), experiments.ExperimentMeta{Weights: c.weights})
			})
			if err == nil || !strings.Contains(err.Error(), weightedFlag.Name()) {
				t.Errorf("error = %v; want one naming %s", err, weightedFlag.Name())
			}
		})
	}
}
