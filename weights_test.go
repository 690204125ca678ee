package experiments_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/abkit/experiments"
)

const goldenWeights = "testdata/weights.golden"

// goldenWeightSets are the weights of the weighted golden file, each
// applied to every pair of goldenPairs.
var goldenWeightSets = [][]float64{
	{1, 1}, {90, 10}, {10, 90}, {50, 25, 25}, {1, 1, 1}, {0, 1}, {1, 0, 1},
	{33.3, 33.3, 33.4}, {99.99, 0.01}, {1, 2, 3, 4, 5, 6, 7},
}

// refSlotBucket is SlotBucket written the obvious way: the first bucket
// whose cumulative share of the slots, rounded, is above slot.
func refSlotBucket(slot int, w []float64) int {
	total := 0.0
	for _, v := range w {
		total += v
	}
	cum := 0.0
	for i, v := range w {
		cum += v
		if i == len(w)-1 || float64(slot) < math.Round(cum/total*experiments.WeightSlots) {
			return i
		}
	}
	return len(w) - 1
}

// TestGoldenWeightedBuckets freezes the slot scheme of weighted flags:
// each line is "group" "key" "weights" slot bucket, with slot
// SHA256Bucket(group, key, WeightSlots) and bucket SlotBucket(slot, w).
// A change here moves live users of weighted experiments: regenerate
// only on purpose, with go test -run TestGoldenWeightedBuckets -update.
func TestGoldenWeightedBuckets(t *testing.T) {
	if *updateGolden {
		var buf bytes.Buffer
		buf.WriteString("# Weighted bucket vectors: \"group\" \"key\" \"weights\" slot bucket, slot = SHA256Bucket(group, key, 10000), bucket = SlotBucket(slot, weights).\n")
		buf.WriteString("# A change here moves live users between buckets. Regenerate with: go test -run TestGoldenWeightedBuckets -update\n")
		for _, w := range goldenWeightSets {
			for _, p := range goldenPairs() {
				slot := experiments.SHA256Bucket(p[0], p[1], experiments.WeightSlots)
				fmt.Fprintf(&buf, "%s %s %s %d %d\n", strconv.Quote(p[0]), strconv.Quote(p[1]),
					strconv.Quote(experiments.FormatWeights(w)), slot, experiments.SlotBucket(slot, w))
			}
		}
		if err := os.WriteFile(goldenWeights, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", goldenWeights)
	}
	count := 0
	eachGoldenLine(t, goldenWeights, func(lineNo int, line string) {
		var fields [3]string
		rest := line
		for i := range fields {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				t.Fatalf("%s:%d: %v", goldenWeights, lineNo, err)
			}
			fields[i], _ = strconv.Unquote(q)
			rest = strings.TrimPrefix(rest[len(q):], " ")
		}
		var slot, bucket int
		if _, err := fmt.Sscanf(rest, "%d %d", &slot, &bucket); err != nil {
			t.Fatalf("%s:%d: %v", goldenWeights, lineNo, err)
		}
		w, err := experiments.ParseWeights(fields[2])
		if err != nil {
			t.Fatalf("%s:%d: %v", goldenWeights, lineNo, err)
		}
		count++
		if got := experiments.SHA256Bucket(fields[0], fields[1], experiments.WeightSlots); got != slot {
			t.Errorf("%s:%d: slot %d, golden %d", goldenWeights, lineNo, got, slot)
		}
		if got := experiments.SlotBucket(slot, w); got != bucket {
			t.Errorf("%s:%d: SlotBucket(%d, %v) = %d, golden %d", goldenWeights, lineNo, slot, w, got, bucket)
		}
		if ref := refSlotBucket(slot, w); ref != bucket {
			t.Errorf("%s:%d: reference gives %d, golden %d", goldenWeights, lineNo, ref, bucket)
		}
	})
	if want := len(goldenWeightSets) * len(goldenPairs()); count != want {
		t.Errorf("%s has %d vectors, want %d", goldenWeights, count, want)
	}
}

// weightedRuntime returns an Experiments on a MemStore with flag on for
// everyone, and the store.
func weightedRuntime(t *testing.T, cfg experiments.Config, flags ...*experiments.ExperimentFlag) (*experiments.Experiments, *experiments.MemStore) {
	t.Helper()
	store := experiments.NewMemStore()
	for _, f := range flags {
		if err := store.SetFlag(context.Background(), f.Name(), experiments.On()); err != nil {
			t.Fatal(err)
		}
	}
	cfg.Store = store
	return experiments.New(cfg), store
}

func TestWeightedDecisionsAreTheSlotsBucket(t *testing.T) {
	w := []float64{50, 25, 25}
	aware := experiments.NewFlagSet().NewFlag("weights", "aware", experiments.WithBuckets(3), experiments.WithWeights(w...))
	unaware := experiments.NewFlagSet().NewFlag("weights", "unaware", experiments.WithBuckets(3), experiments.WithWeights(w...),
		experiments.WithCourseAwareBucketing(false))
	x, _ := weightedRuntime(t, experiments.Config{}, aware, unaware)
	const course = "course-v1:edX+DemoX+2026"
	for i := range 2000 {
		u := experiments.User{ID: strconv.Itoa(i)}
		for _, c := range []struct {
			flag  *experiments.ExperimentFlag
			group string
		}{{aware, aware.Name() + "." + course}, {unaware, unaware.Name()}} {
			d := c.flag.Decide(x.NewContext(context.Background(), u), course)
			want := experiments.SlotBucket(experiments.SHA256Bucket(c.group, u.ID, experiments.WeightSlots), w)
			if d.Bucket != want || d.Reason != experiments.ReasonHashed || d.Err != nil {
				t.Fatalf("user %s, %s: decision %+v, want bucket %d hashed", u.ID, c.flag.Name(), d, want)
			}
		}
	}
}

// countBuckets buckets n users, IDs 0 to n-1, in group under w, by the
// function decisions are proved to agree with above.
func countBuckets(group string, n int, w []float64) (counts []int, buckets []int) {
	counts = make([]int, len(w))
	buckets = make([]int, n)
	for i := range n {
		b := experiments.SlotBucket(experiments.SHA256Bucket(group, strconv.Itoa(i), experiments.WeightSlots), w)
		counts[b]++
		buckets[i] = b
	}
	return counts, buckets
}

func TestWeightsSplitUsersInTheirShares(t *testing.T) {
	const n = 100_000
	tests := []struct {
		name    string
		weights []float64
	}{
		{"ok, 90/10", []float64{90, 10}},
		{"ok, 50/25/25", []float64{50, 25, 25}},
		{"ok, 1/0/1: a zero weight gets nobody", []float64{1, 0, 1}},
		{"ok, 99/1", []float64{99, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			counts, _ := countBuckets("weights.split", n, tt.weights)
			total := 0.0
			for _, v := range tt.weights {
				total += v
			}
			for i, c := range counts {
				p := tt.weights[i] / total
				// Five standard deviations of a binomial count.
				tol := 5 * math.Sqrt(n*p*(1-p))
				if want := n * p; math.Abs(float64(c)-want) > tol {
					t.Errorf("bucket %d: %d users, want %.0f ± %.0f", i, c, want, tol)
				}
			}
		})
	}
}

func TestChangingWeightsMovesOnlyTheUsersOfTheSlotsThatChangeRange(t *testing.T) {
	const n = 100_000
	tests := []struct {
		name     string
		from, to []float64
		// moves maps "from→to" to the share of users expected to move so.
		moves map[[2]int]float64
	}{
		{"ok, 50/50 to 60/40 moves a tenth, from bucket 1 to control", []float64{50, 50}, []float64{60, 40},
			map[[2]int]float64{{1, 0}: 0.10}},
		{"ok, 90/10 to 80/20 moves a tenth, from control to bucket 1", []float64{90, 10}, []float64{80, 20},
			map[[2]int]float64{{0, 1}: 0.10}},
		{"ok, 50/25/25 to 40/30/30 moves 10% from 0 to 1 and 5% from 1 to 2", []float64{50, 25, 25}, []float64{40, 30, 30},
			map[[2]int]float64{{0, 1}: 0.10, {1, 2}: 0.05}},
		{"ok, the same shares in other units move nobody", []float64{1, 1}, []float64{50, 50}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, before := countBuckets("weights.moves", n, tt.from)
			_, after := countBuckets("weights.moves", n, tt.to)
			moved := map[[2]int]int{}
			for i := range before {
				if before[i] != after[i] {
					moved[[2]int{before[i], after[i]}]++
				}
			}
			for m, c := range moved {
				if _, ok := tt.moves[m]; !ok {
					t.Errorf("%d users moved from bucket %d to %d, want none", c, m[0], m[1])
				}
			}
			for m, share := range tt.moves {
				want := share * n
				if tol := 5 * math.Sqrt(n*share*(1-share)); math.Abs(float64(moved[m])-want) > tol {
					t.Errorf("%d users moved from bucket %d to %d, want %.0f ± %.0f", moved[m], m[0], m[1], want, tol)
				}
			}
		})
	}
}

func TestWithEqualWeightsAFlagUsesSlotsNotTheModulo(t *testing.T) {
	plain := experiments.NewFlagSet().NewFlag("weights", "equal")
	weighted := experiments.NewFlagSet().NewFlag("weights", "equal", experiments.WithWeights(1, 1))
	x, _ := weightedRuntime(t, experiments.Config{}, plain)
	differ := 0
	for i := range 1000 {
		u := experiments.User{ID: strconv.Itoa(i)}
		p := plain.Bucket(x.NewContext(context.Background(), u), "")
		w := weighted.Bucket(x.NewContext(context.Background(), u), "")
		if want := experiments.SHA256Bucket(plain.Name(), u.ID, 2); p != want {
			t.Fatalf("user %s: the flag without weights gives %d, want SHA256Bucket's %d", u.ID, p, want)
		}
		if want := experiments.SlotBucket(experiments.SHA256Bucket(weighted.Name(), u.ID, experiments.WeightSlots), []float64{1, 1}); w != want {
			t.Fatalf("user %s: the flag WithWeights(1, 1) gives %d, want the slot's %d", u.ID, w, want)
		}
		if p != w {
			differ++
		}
	}
	// Two independent fair splits disagree for about half the users.
	if differ < 400 || differ > 600 {
		t.Errorf("%d of 1000 users differ between the schemes, want about 500", differ)
	}
}

func TestCustomHashersGiveTheSlot(t *testing.T) {
	w := []float64{70, 30}
	flag := experiments.NewFlagSet().NewFlag("weights", "edx", experiments.WithWeights(w...))
	t.Run("ok, EdXHasher is asked for WeightSlots buckets", func(t *testing.T) {
		x, _ := weightedRuntime(t, experiments.Config{Hasher: experiments.EdXHasher}, flag)
		for i := range 500 {
			u := experiments.User{ID: strconv.Itoa(i), Username: "user" + strconv.Itoa(i)}
			got := flag.Bucket(x.NewContext(context.Background(), u), "")
			if want := experiments.SlotBucket(experiments.EdXBucket(flag.Name(), u.Username, experiments.WeightSlots), w); got != want {
				t.Fatalf("user %s: bucket %d, want %d", u.Username, got, want)
			}
		}
	})
	t.Run("ok, a custom Hasher answers a slot", func(t *testing.T) {
		var asked int
		x, _ := weightedRuntime(t, experiments.Config{Hasher: func(group string, u experiments.User, buckets int) int {
			asked = buckets
			return 6999 // the last slot of control under 70/30
		}}, flag)
		if got := flag.Bucket(x.NewContext(context.Background(), experiments.User{ID: "1"}), ""); got != 0 || asked != experiments.WeightSlots {
			t.Errorf("bucket %d with %d buckets asked, want 0 with %d", got, asked, experiments.WeightSlots)
		}
	})
	t.Run("nok, a Hasher answering outside the slots gives control with an error", func(t *testing.T) {
		x, _ := weightedRuntime(t, experiments.Config{Hasher: func(string, experiments.User, int) int { return experiments.WeightSlots }}, flag)
		if d := flag.Decide(x.NewContext(context.Background(), experiments.User{ID: "1"}), ""); d.Bucket != 0 || d.Reason != experiments.ReasonError || d.Err == nil {
			t.Errorf("decision %+v, want control with an error", d)
		}
	})
}

func TestNewFlagPanicsOnBadWeights(t *testing.T) {
	tests := []struct {
		name    string
		opts    []experiments.FlagOption
		wantMsg []string
	}{
		{"nok, fewer weights than buckets", []experiments.FlagOption{experiments.WithBuckets(3), experiments.WithWeights(90, 10)},
			[]string{"weights.bad", "WithWeights(90/10)", "2 weights for 3 buckets"}},
		{"nok, more weights than buckets", []experiments.FlagOption{experiments.WithWeights(50, 25, 25)},
			[]string{"weights.bad", "3 weights for 2 buckets"}},
		{"nok, no weights at all", []experiments.FlagOption{experiments.WithWeights()},
			[]string{"weights.bad", "0 weights for 2 buckets"}},
		{"nok, a negative weight", []experiments.FlagOption{experiments.WithWeights(90, -10)},
			[]string{"weights.bad", "weight 1 is -10"}},
		{"nok, a NaN weight", []experiments.FlagOption{experiments.WithWeights(math.NaN(), 1)},
			[]string{"weights.bad", "weight 0 is NaN"}},
		{"nok, an infinite weight", []experiments.FlagOption{experiments.WithWeights(1, math.Inf(1))},
			[]string{"weights.bad", "weight 1 is +Inf"}},
		{"nok, every weight 0", []experiments.FlagOption{experiments.WithWeights(0, 0)},
			[]string{"weights.bad", "sum is 0"}},
		{"nok, a sum that overflows", []experiments.FlagOption{experiments.WithWeights(math.MaxFloat64, math.MaxFloat64)},
			[]string{"weights.bad", "sum is +Inf"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				p := recover()
				msg, _ := p.(string)
				for _, want := range tt.wantMsg {
					if !strings.Contains(msg, want) {
						t.Errorf("panic %v, want it to contain %q", p, want)
					}
				}
			}()
			experiments.NewFlagSet().NewFlag("weights", "bad", tt.opts...)
		})
	}
	t.Run("ok, WithWeights keeps no alias of the caller's slice", func(t *testing.T) {
		w := []float64{90, 10}
		f := experiments.NewFlagSet().NewFlag("weights", "alias", experiments.WithWeights(w...))
		w[0] = -1
		if got := f.Weights(); !reflect.DeepEqual(got, []float64{90, 10}) {
			t.Errorf("Weights() = %v, want [90 10]", got)
		}
	})
}

func TestStoredWeightsOverrideTheFlags(t *testing.T) {
	ctx := context.Background()
	flag := experiments.NewFlagSet().NewFlag("weights", "stored", experiments.WithWeights(50, 50))
	x, store := weightedRuntime(t, experiments.Config{}, flag)
	decide := func(id string) experiments.Decision {
		return flag.Decide(x.NewContext(ctx, experiments.User{ID: id}), "")
	}
	users := make([]string, 200)
	for i := range users {
		users[i] = strconv.Itoa(i)
	}

	t.Run("ok, stored weights 0/1 put every hashed user in bucket 1", func(t *testing.T) {
		if err := store.SetExperimentMeta(ctx, flag.Name(), experiments.ExperimentMeta{Weights: []float64{0, 1}}); err != nil {
			t.Fatal(err)
		}
		for _, id := range users {
			if d := decide(id); d.Bucket != 1 || d.Reason != experiments.ReasonHashed || d.Err != nil {
				t.Fatalf("user %s: decision %+v, want bucket 1 hashed", id, d)
			}
		}
		snap, _ := store.Snapshot(ctx)
		if w, err := flag.WeightsIn(snap); err != nil || !reflect.DeepEqual(w, []float64{0, 1}) {
			t.Errorf("WeightsIn = %v, %v; want [0 1]", w, err)
		}
	})
	t.Run("ok, removing them gives the flag's own weights back", func(t *testing.T) {
		if err := store.SetExperimentMeta(ctx, flag.Name(), experiments.ExperimentMeta{}); err != nil {
			t.Fatal(err)
		}
		for _, id := range users {
			want := experiments.SlotBucket(experiments.SHA256Bucket(flag.Name(), id, experiments.WeightSlots), []float64{50, 50})
			if d := decide(id); d.Bucket != want || d.Err != nil {
				t.Fatalf("user %s: decision %+v, want bucket %d", id, d, want)
			}
		}
	})
	t.Run("nok, stored weights of another count: the flag's own, with ErrInvalid in Decision.Err", func(t *testing.T) {
		if err := store.SetExperimentMeta(ctx, flag.Name(), experiments.ExperimentMeta{Weights: []float64{0, 0, 1}}); err != nil {
			t.Fatal(err)
		}
		for _, id := range users {
			want := experiments.SlotBucket(experiments.SHA256Bucket(flag.Name(), id, experiments.WeightSlots), []float64{50, 50})
			d := decide(id)
			if d.Bucket != want || d.Reason != experiments.ReasonHashed || !errors.Is(d.Err, experiments.ErrInvalid) ||
				!strings.Contains(d.Err.Error(), "0/0/1") || !strings.Contains(d.Err.Error(), "3 weights for 2 buckets") {
				t.Fatalf("user %s: decision %+v, want bucket %d hashed with the mismatch", id, d, want)
			}
		}
		snap, _ := store.Snapshot(ctx)
		if w, err := flag.WeightsIn(snap); !errors.Is(err, experiments.ErrInvalid) || !reflect.DeepEqual(w, []float64{50, 50}) {
			t.Errorf("WeightsIn = %v, %v; want [50 50] and ErrInvalid", w, err)
		}
	})
	t.Run("ok, a flag without WithWeights takes stored weights too", func(t *testing.T) {
		plain := experiments.NewFlagSet().NewFlag("weights", "plain")
		_ = store.SetFlag(ctx, plain.Name(), experiments.On())
		if err := store.SetExperimentMeta(ctx, plain.Name(), experiments.ExperimentMeta{Weights: []float64{1, 0}}); err != nil {
			t.Fatal(err)
		}
		for _, id := range users {
			if d := plain.Decide(x.NewContext(ctx, experiments.User{ID: id}), ""); d.Bucket != 0 || d.Reason != experiments.ReasonHashed {
				t.Fatalf("user %s: decision %+v, want control hashed", id, d)
			}
		}
	})
	t.Run("ok, a bucket flag still forces a bucket of weight 0", func(t *testing.T) {
		_ = store.SetExperimentMeta(ctx, flag.Name(), experiments.ExperimentMeta{Weights: []float64{1, 0}})
		_ = store.SetFlag(ctx, flag.BucketFlag(1), experiments.Rule{Users: []string{"ann"}})
		if d := flag.Decide(x.NewContext(ctx, experiments.User{ID: "7", Username: "ann"}), ""); d.Bucket != 1 || d.Reason != experiments.ReasonForced {
			t.Errorf("decision %+v, want bucket 1 forced", d)
		}
	})
	t.Run("nok, the store refuses bad weights", func(t *testing.T) {
		for _, w := range [][]float64{{1}, {-1, 2}, {0, 0}, {math.NaN(), 1}, {}} {
			err := store.SetExperimentMeta(ctx, flag.Name(), experiments.ExperimentMeta{Weights: w})
			if !errors.Is(err, experiments.ErrInvalid) || !strings.Contains(err.Error(), flag.Name()) {
				t.Errorf("weights %v: err = %v, want ErrInvalid naming the flag", w, err)
			}
		}
	})
}

func TestStickyBucketsKeepUsersWhenWeightsChange(t *testing.T) {
	ctx := context.Background()
	flag := experiments.NewFlagSet().NewFlag("weights", "sticky", experiments.WithWeights(50, 50), experiments.WithStickyBuckets(true))
	x, store := weightedRuntime(t, experiments.Config{}, flag)
	first := map[string]int{}
	for i := range 300 {
		id := strconv.Itoa(i)
		d := flag.Decide(x.NewContext(ctx, experiments.User{ID: id}), "")
		want := experiments.SlotBucket(experiments.SHA256Bucket(flag.Name(), id, experiments.WeightSlots), []float64{50, 50})
		if d.Bucket != want || d.Reason != experiments.ReasonHashed {
			t.Fatalf("user %s: first decision %+v, want bucket %d hashed", id, d, want)
		}
		first[id] = d.Bucket
	}
	if err := store.SetExperimentMeta(ctx, flag.Name(), experiments.ExperimentMeta{Weights: []float64{1, 0}}); err != nil {
		t.Fatal(err)
	}
	for id, b := range first {
		if d := flag.Decide(x.NewContext(ctx, experiments.User{ID: id}), ""); d.Bucket != b || d.Reason != experiments.ReasonSticky {
			t.Errorf("user %s: after new weights %+v, want remembered bucket %d", id, d, b)
		}
	}
	for i := 1000; i < 1100; i++ {
		if d := flag.Decide(x.NewContext(ctx, experiments.User{ID: strconv.Itoa(i)}), ""); d.Bucket != 0 || d.Reason != experiments.ReasonHashed {
			t.Errorf("new user %d: %+v, want control hashed under 1/0", i, d)
		}
	}
}

func TestParseAndFormatWeights(t *testing.T) {
	tests := []struct {
		name, in string
		want     []float64
		wantErr  string
	}{
		{"ok, slashes", "90/10", []float64{90, 10}, ""},
		{"ok, commas and spaces", "50, 25 ,25", []float64{50, 25, 25}, ""},
		{"ok, fractions", "33.3/33.3/33.4", []float64{33.3, 33.3, 33.4}, ""},
		{"nok, empty", " ", nil, "none"},
		{"nok, not a number", "90/ten", nil, `weight 1 "ten"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := experiments.ParseWeights(tt.in)
			if tt.wantErr != "" {
				if !errors.Is(err, experiments.ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("err = %v, want ErrInvalid with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseWeights(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
			if back, _ := experiments.ParseWeights(experiments.FormatWeights(got)); !reflect.DeepEqual(back, got) {
				t.Errorf("FormatWeights(%v) = %q does not read back", got, experiments.FormatWeights(got))
			}
		})
	}
}

func TestSlotSplit(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want []float64
	}{
		{"ok, 90/10", []float64{90, 10}, []float64{9000, 1000}},
		{"ok, thirds round to slots", []float64{1, 1, 1}, []float64{3333, 3334, 3333}},
		{"ok, a zero weight owns no slot", []float64{1, 0, 1}, []float64{5000, 0, 5000}},
		{"ok, nil is an even split", nil, nil},
		{"nok, refused weights give nil", []float64{-1, 2}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := experiments.SlotSplit(tt.in); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("SlotSplit(%v) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}
