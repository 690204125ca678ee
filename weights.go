package experiments

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// WeightSlots is the number of slots a weighted flag hashes users into,
// as Optimizely's bucketer does (its MAX_TRAFFIC_VALUE): a user's slot is
// the Hasher's answer for WeightSlots buckets, SHA256Bucket(group, u.ID,
// WeightSlots) by default, and each bucket owns a contiguous range of
// slots, in bucket order, sized by its weight. A weight's share is thus
// rounded to 0.01%.
const WeightSlots = 10000

// WithWeights gives the buckets unequal shares of the users hashed, one
// weight per bucket, control first: WithWeights(90, 10) puts about 90% of
// users in control and 10% in bucket 1, WithWeights(50, 25, 25) splits
// three buckets. Weights are relative ({90, 10} is {9, 1}); a weight of 0
// closes its bucket to hashed users (bucket flags still force it).
// Optional. Default: equal shares, bucket = hash mod buckets.
//
// A flag with WithWeights hashes into WeightSlots slots and gives bucket i
// the slots from the sum of the weights before it to the sum including
// it, rounded to slots. Changing the weights thus moves only the users
// whose slot changes range: from 50/50 to 60/40, the tenth of users in
// slots 5000 to 5999 move from bucket 1 to control, and nobody else.
// This is another scheme than the modulo of a flag without weights, so
// WithWeights(50, 50) buckets users differently from no WithWeights at
// all: adding weights to a running experiment moves about half its users
// (WithStickyBuckets keeps those already bucketed).
//
// A custom Config.Hasher is called with WeightSlots buckets and its answer
// is the slot, so EdXHasher gives EdXBucket(group, u.Username,
// WeightSlots). The store's ExperimentMeta.Weights, when set, replace
// these weights at run time (see WeightsIn). NewFlag panics unless there
// is one weight per bucket, each finite and 0 or more, with a positive
// finite sum.
func WithWeights(w ...float64) FlagOption {
	w = slices.Clone(w)
	return func(f *ExperimentFlag) { f.weights, f.hasWeights = w, true }
}

// Weights returns a copy of the flag's WithWeights, or nil when it has
// none (equal shares by the modulo). The store may override them: see
// WeightsIn.
func (f *ExperimentFlag) Weights() []float64 { return slices.Clone(f.weights) }

// WeightsIn returns the weights decisions use for the flag under snap: the
// store's ExperimentMeta.Weights when they hold one weight per bucket,
// else the flag's WithWeights (nil when it has none: equal shares by the
// modulo). Stored weights of another count (the flag's buckets changed in
// a deploy) are not used: decisions bucket by the flag's own weights and
// report, in Decision.Err, the error WeightsIn returns with them, which
// wraps ErrInvalid and names the flag, the weights and the counts.
func (f *ExperimentFlag) WeightsIn(snap *Snapshot) ([]float64, error) {
	var sw *slotWeights
	if snap != nil {
		sw = snap.entry(f).weights
	}
	w, err := f.slotWeightsIn(sw)
	if w == nil {
		return nil, err
	}
	return slices.Clone(w.weights), err
}

// ValidateWeights checks w as the weights of a flag with buckets buckets
// (any count from 2 to 1024 when buckets is 0): one weight per bucket,
// each finite and 0 or more, with a finite sum above 0. The error wraps
// ErrInvalid and names the weight and its value.
func ValidateWeights(w []float64, buckets int) error {
	switch {
	case buckets > 0 && len(w) != buckets:
		return fmt.Errorf("%w: weights %s: %d weights for %d buckets", ErrInvalid, FormatWeights(w), len(w), buckets)
	case len(w) < 2 || len(w) > maxBucketFlag:
		return fmt.Errorf("%w: weights %s: %d weights: want 2 to %d", ErrInvalid, FormatWeights(w), len(w), maxBucketFlag)
	}
	sum := 0.0
	for i, v := range w {
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return fmt.Errorf("%w: weight %d is %v: want a finite number, 0 or more", ErrInvalid, i, v)
		}
		sum += v
	}
	if !(sum > 0) || math.IsInf(sum, 0) {
		return fmt.Errorf("%w: weights %s: their sum is %v: want a finite number above 0", ErrInvalid, FormatWeights(w), sum)
	}
	return nil
}

// FormatWeights writes w as "90/10", the form the dashboard shows and
// ParseWeights reads.
func FormatWeights(w []float64) string {
	parts := make([]string, len(w))
	for i, v := range w {
		parts[i] = strconv.FormatFloat(v, 'g', -1, 64)
	}
	return strings.Join(parts, "/")
}

// ParseWeights reads weights written "90/10", "90,10" or "90 10" (spaces
// around the separators are ignored). It checks only that each is a
// number: see ValidateWeights. The error wraps ErrInvalid and names the
// weight that does not parse.
func ParseWeights(s string) ([]float64, error) {
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == '/' || r == ',' || r == ' ' || r == '\t' })
	if len(fields) == 0 {
		return nil, fmt.Errorf("%w: weights %q: none", ErrInvalid, s)
	}
	w := make([]float64, len(fields))
	for i, f := range fields {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: weights %q: weight %d %q: not a number", ErrInvalid, s, i, f)
		}
		w[i] = v
	}
	return w, nil
}

// SlotSplit returns how many of the WeightSlots slots each bucket owns
// under w, as float64: the exact expected split of a weighted flag, for
// results.Query.Weights. It returns nil for nil w (equal shares) and for
// weights ValidateWeights refuses.
func SlotSplit(w []float64) []float64 {
	if w == nil || ValidateWeights(w, 0) != nil {
		return nil
	}
	ends := slotEnds(w)
	out := make([]float64, len(ends))
	start := 0
	for i, e := range ends {
		out[i] = float64(int(e) - start)
		start = int(e)
	}
	return out
}

// slotWeights are validated weights and the end of each bucket's range
// of slots: bucket i owns [ends[i-1], ends[i]).
type slotWeights struct {
	weights []float64
	ends    []uint16
}

// newSlotWeights compiles w, which ValidateWeights accepted.
func newSlotWeights(w []float64) *slotWeights {
	return &slotWeights{weights: slices.Clone(w), ends: slotEnds(w)}
}

// slotEnds returns the cumulative ends of the buckets' ranges: the sum of
// the weights up to and including bucket i, as a share of WeightSlots,
// rounded; the last is WeightSlots. Ends never decrease, so the ranges
// are contiguous and in bucket order.
func slotEnds(w []float64) []uint16 {
	total := 0.0
	for _, v := range w {
		total += v
	}
	ends := make([]uint16, len(w))
	cum := 0.0
	for i, v := range w {
		cum += v
		ends[i] = uint16(math.Round(min(cum/total, 1) * WeightSlots))
	}
	ends[len(ends)-1] = WeightSlots
	return ends
}

// bucket returns the bucket whose range holds slot, in [0, WeightSlots):
// the first whose end is above it.
func (w *slotWeights) bucket(slot int) int {
	lo, hi := 0, len(w.ends)-1
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if int(w.ends[mid]) > slot {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// slotWeightsIn returns the weights the flag buckets with, given the
// store's (nil when none): see WeightsIn. It does not allocate when the
// store's weights fit.
func (f *ExperimentFlag) slotWeightsIn(stored *slotWeights) (*slotWeights, error) {
	if stored == nil {
		return f.slots, nil
	}
	if len(stored.ends) == f.buckets {
		return stored, nil
	}
	return f.slots, fmt.Errorf("%s: %w: stored weights %s: %d weights for %d buckets; bucketing by the flag's own",
		f.full, ErrInvalid, FormatWeights(stored.weights), len(stored.weights), f.buckets)
}

// SlotBucket returns the bucket that weights w give the user in slot, for
// analysts and backfills: with the default hasher a user's slot is
// SHA256Bucket(group, userID, WeightSlots) (in SQL,
// experiments_bucket(group, user_id, 10000)), and SlotBucket(slot, w) is
// the bucket a flag WithWeights(w...) decides. It returns 0 when
// ValidateWeights refuses w or slot is outside [0, WeightSlots).
func SlotBucket(slot int, w []float64) int {
	if slot < 0 || slot >= WeightSlots || ValidateWeights(w, 0) != nil {
		return 0
	}
	return (&slotWeights{ends: slotEnds(w)}).bucket(slot)
}
