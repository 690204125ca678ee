package experiments

import (
	"fmt"
	"math"
	"slices"
	"sync"
)

// Layer keeps users out of two conflicting experiments, as GrowthBook's
// namespaces and Optimizely's mutually exclusive groups do. Each flag of
// the layer takes a range of it (InLayer); a user falls at one point of
// the layer, by a stable hash of the layer's name and the user, and only
// the flag whose range holds that point may bucket them. The other flags
// give that user control with ReasonOtherExperiment, untracked; so do
// all of them for a point no flag's range holds, the room left for
// experiments to come. Ranges are fixed, so adding an experiment in the
// free room moves nobody already in one.
//
// Declare a layer once, as a package-level value, before its flags:
//
//	var checkout = experiments.NewLayer("checkout")
//
//	var oneClick = experiments.NewFlag("shop", "one_click", experiments.InLayer(checkout, 0, 50))
//	var express = experiments.NewFlag("shop", "express", experiments.InLayer(checkout, 50, 100))
//
// A Layer is safe for concurrent use.
type Layer struct {
	name  string
	group string // hashing group: "layer:" + name

	mu     sync.Mutex
	ranges []layerRange // the flags' ranges, by start
}

// layerRange is a flag's part of a layer, in slots of layerSlots.
type layerRange struct {
	flag       string
	start, end int // [start, end)
	key        string
}

// layerSlots is the resolution of a layer: 0.01%.
const layerSlots = 10000

// NewLayer returns the layer name: 1 to 100 ASCII letters, digits, '_'
// or '-'. It panics on another name: layers are package-level values, so
// the mistake shows at start-up.
func NewLayer(name string) *Layer {
	if !validPart(name) {
		panic(fmt.Sprintf("experiments.NewLayer: name %q: want 1 to 100 letters, digits, '_' or '-'", name))
	}
	return &Layer{name: name, group: "layer:" + name}
}

// Name returns the layer's name.
func (l *Layer) Name() string { return l.name }

// InLayer puts the flag in layer l, on the range [from, to) of it, in
// percent (0 to 100, by steps of 0.01). NewFlag panics when the range is
// empty or outside 0 to 100, when it overlaps the range of another flag
// of the layer, and when the flags of the layer do not hash the same key
// (WithBucketingAttribute, WithAnonymous): exclusion needs one user to
// fall at one point for all of them.
func InLayer(l *Layer, from, to float64) FlagOption {
	return func(f *ExperimentFlag) { f.layer, f.layerFrom, f.layerTo = l, from, to }
}

// Layer returns the flag's layer (InLayer) and its range, in percent;
// nil when it has none.
func (f *ExperimentFlag) Layer() (l *Layer, from, to float64) {
	return f.layer, f.layerFrom, f.layerTo
}

// join adds f's range to l, or returns why it cannot.
func (l *Layer) join(f *ExperimentFlag) error {
	from, to := f.layerFrom, f.layerTo
	if math.IsNaN(from) || math.IsNaN(to) || from < 0 || to > 100 || from >= to {
		return fmt.Errorf("InLayer(%s, %v, %v): want 0 <= from < to <= 100", l.name, from, to)
	}
	r := layerRange{flag: f.full, start: int(math.Round(from * layerSlots / 100)), end: int(math.Round(to * layerSlots / 100)), key: f.hashKeyKind()}
	if r.start >= r.end {
		return fmt.Errorf("InLayer(%s, %v, %v): a range narrower than 0.01", l.name, from, to)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, o := range l.ranges {
		if o.key != r.key {
			return fmt.Errorf("InLayer(%s): hashes %s, but %s of the layer hashes %s", l.name, r.key, o.flag, o.key)
		}
		if r.start < o.end && o.start < r.end {
			return fmt.Errorf("InLayer(%s, %v, %v): overlaps %s", l.name, from, to, o.flag)
		}
	}
	f.layerStart, f.layerEnd = r.start, r.end
	l.ranges = append(l.ranges, r)
	slices.SortFunc(l.ranges, func(a, b layerRange) int { return a.start - b.start })
	return nil
}

// hashKeyKind says what the flag hashes, for a layer's check that its
// flags hash alike.
func (f *ExperimentFlag) hashKeyKind() string {
	switch {
	case f.bucketingAttr != "":
		return "the attribute " + f.bucketingAttr
	case f.anonymous:
		return "the user ID or anonymous ID"
	}
	return "the user ID"
}

// outsideLayer returns the decision of step 10 of decide, for a flag
// InLayer, when the point of the layer of u (hashUser) is outside the
// flag's range (or a custom Hasher fails on it); out is false for a user
// inside. st.mu is held.
func (f *ExperimentFlag) outsideLayer(st *reqState, u *User) (d Decision, out bool) {
	slot, err := st.x.hash(f.layer.group, "", u, layerSlots)
	if err != nil {
		return Decision{Reason: ReasonError, Err: fmt.Errorf("%s: layer %s: %w", f.full, f.layer.name, err)}, true
	}
	if slot < f.layerStart || slot >= f.layerEnd {
		return Decision{Reason: ReasonOtherExperiment}, true
	}
	return Decision{}, false
}
