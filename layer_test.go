package experiments_test

import (
	"context"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/abkit/experiments"
)

// No user is in two experiments of a layer: each falls in one flag's
// range, by the hash of the layer's name and the user, and the other
// flags give control with ReasonOtherExperiment, untracked.
func TestLayerKeepsExperimentsApart(t *testing.T) {
	ctx := context.Background()
	layer := experiments.NewLayer("layer_test")
	flags := experiments.NewFlagSet()
	a := flags.NewFlag("layer_test", "a", experiments.InLayer(layer, 0, 50))
	b := flags.NewFlag("layer_test", "b", experiments.WithBuckets(3), experiments.InLayer(layer, 50, 80))
	// 80 to 100: room for an experiment to come.
	store := experiments.NewMemStore()
	for _, f := range []*experiments.ExperimentFlag{a, b} {
		mustE2E(t, store.SetFlag(ctx, f.Name(), experiments.On()))
	}
	events := &eventLog{}
	x := experiments.New(experiments.Config{Store: store, Tracker: events.tracker()})
	const n = 20000
	var inA, inB, neither int
	for i := range n {
		id := strconv.Itoa(i)
		slot := experiments.SHA256Bucket("layer:layer_test", id, 10000)
		ctx := x.NewContext(ctx, experiments.User{ID: id})
		da, db := a.Decide(ctx, "course-v1:edX+DemoX+2026"), b.Decide(ctx, "course-v1:edX+DemoX+2026")
		switch {
		case slot < 5000:
			inA++
			wantDecision(t, da, experiments.SHA256Bucket(a.Name()+".course-v1:edX+DemoX+2026", id, 2), experiments.ReasonHashed)
			wantDecision(t, db, 0, experiments.ReasonOtherExperiment)
		case slot < 8000:
			inB++
			wantDecision(t, da, 0, experiments.ReasonOtherExperiment)
			wantDecision(t, db, experiments.SHA256Bucket(b.Name()+".course-v1:edX+DemoX+2026", id, 3), experiments.ReasonHashed)
		default:
			neither++
			wantDecision(t, da, 0, experiments.ReasonOtherExperiment)
			wantDecision(t, db, 0, experiments.ReasonOtherExperiment)
		}
		if t.Failed() {
			t.Fatalf("user %s at slot %d", id, slot)
		}
	}
	// The shares are the ranges', within 4 standard deviations.
	for _, s := range []struct {
		name  string
		got   int
		share float64
	}{{"a", inA, 0.5}, {"b", inB, 0.3}, {"neither", neither, 0.2}} {
		if sd := math.Sqrt(n * s.share * (1 - s.share)); math.Abs(float64(s.got)-n*s.share) > 4*sd {
			t.Errorf("%s: %d of %d users, want about %.0f", s.name, s.got, n, n*s.share)
		}
	}
	if got := len(events.all()); got != inA+inB {
		t.Errorf("%d events, want one per user in an experiment: %d", got, inA+inB)
	}
}

// A bucket flag forces a user into an experiment whatever the layer;
// another experiment may join the layer's free room later without moving
// anyone.
func TestLayerForcedUsersAndNewExperiments(t *testing.T) {
	ctx := context.Background()
	layer := experiments.NewLayer("layer_forced")
	flags := experiments.NewFlagSet()
	a := flags.NewFlag("layer_test", "forced_a", experiments.InLayer(layer, 0, 1))
	store := experiments.NewMemStore()
	mustE2E(t, store.SetFlag(ctx, a.Name(), experiments.On()))
	mustE2E(t, store.SetFlag(ctx, a.BucketFlag(1), experiments.Rule{Users: []string{"qa"}}))
	x := experiments.New(experiments.Config{Store: store})
	wantDecision(t, a.Decide(x.NewContext(ctx, experiments.User{ID: "q", Username: "qa"}), ""), 1, experiments.ReasonForced)

	// Users of a before and after c joins.
	var inA []string
	for i := range 3000 {
		id := strconv.Itoa(i)
		if a.Decide(x.NewContext(ctx, experiments.User{ID: id}), "").Reason != experiments.ReasonOtherExperiment {
			inA = append(inA, id)
		}
	}
	c := flags.NewFlag("layer_test", "forced_c", experiments.InLayer(layer, 1, 100))
	mustE2E(t, store.SetFlag(ctx, c.Name(), experiments.On()))
	for _, id := range inA {
		u := x.NewContext(ctx, experiments.User{ID: id})
		if d := a.Decide(u, ""); d.Reason == experiments.ReasonOtherExperiment {
			t.Fatalf("user %s left a when c joined", id)
		}
		wantDecision(t, c.Decide(u, ""), 0, experiments.ReasonOtherExperiment)
	}
	if len(inA) < 10 || len(inA) > 60 {
		t.Errorf("%d of 3000 users in 1%% of the layer", len(inA))
	}
	if l, from, to := c.Layer(); l != layer || from != 1 || to != 100 || l.Name() != "layer_forced" {
		t.Errorf("Layer() = %v, %v, %v", l, from, to)
	}
}

func TestInLayerPanicsOnMistakes(t *testing.T) {
	layer := experiments.NewLayer("layer_mistakes")
	flags := experiments.NewFlagSet()
	flags.NewFlag("layer_test", "first", experiments.InLayer(layer, 20, 40))
	tests := []struct {
		name string
		opts []experiments.FlagOption
		want string
	}{
		{"nok, an overlap", []experiments.FlagOption{experiments.InLayer(layer, 39.99, 60)}, "overlaps layer_test.first"},
		{"nok, an empty range", []experiments.FlagOption{experiments.InLayer(layer, 50, 50)}, "want 0 <= from < to <= 100"},
		{"nok, past 100", []experiments.FlagOption{experiments.InLayer(layer, 90, 101)}, "want 0 <= from < to <= 100"},
		{"nok, NaN", []experiments.FlagOption{experiments.InLayer(layer, math.NaN(), 10)}, "want 0 <= from < to <= 100"},
		{"nok, narrower than a slot", []experiments.FlagOption{experiments.InLayer(layer, 0, 0.001)}, "narrower than 0.01"},
		{"nok, another bucketing key", []experiments.FlagOption{experiments.InLayer(layer, 60, 70), experiments.WithBucketingAttribute("company")},
			"hashes the attribute company, but layer_test.first of the layer hashes the user ID"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := panicOf(func() { flags.NewFlag("layer_test", "bad"+strconv.Itoa(i), tt.opts...) })
			if msg, _ := p.(string); !strings.Contains(msg, tt.want) {
				t.Errorf("panic %v, want one saying %q", p, tt.want)
			}
		})
	}
	t.Run("ok, the range next to another", func(t *testing.T) {
		flags.NewFlag("layer_test", "next", experiments.InLayer(layer, 40, 60))
	})
	t.Run("nok, a bad layer name", func(t *testing.T) {
		if p := panicOf(func() { experiments.NewLayer("a.b") }); p == nil {
			t.Error("NewLayer(\"a.b\"): no panic")
		}
	})
	t.Run("nok, a flag redefined does not take a range", func(t *testing.T) {
		if p := panicOf(func() { flags.NewFlag("layer_test", "first", experiments.InLayer(layer, 80, 90)) }); p == nil {
			t.Fatal("a redefined flag: no panic")
		}
		flags.NewFlag("layer_test", "after", experiments.InLayer(layer, 80, 90)) // the range is still free
	})
}
