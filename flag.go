package experiments

import (
	"fmt"
	"sync"
	"sync/atomic"
)

// ExperimentFlag is an experiment gated by a main flag, with a bucket per
// variant (bucket 0 is control). Declare flags once, as package-level
// values, and ask for a user's bucket in handlers:
//
//	var upgrade = experiments.NewFlag("course_experience", "upgrade_button", experiments.WithBuckets(3))
//
//	bucket := upgrade.Bucket(c.Request().Context(), courseKey)
//
// An ExperimentFlag is safe for concurrent use. It is not bound to a
// store: the request state made by Experiments' middleware (or NewContext)
// carries the store, user and request cache.
type ExperimentFlag struct {
	namespace, name string
	full            string // namespace.name
	id              int    // the ID of full, for Snapshot.entry
	buckets         int
	experimentID    int
	hasExperimentID bool
	courseAware     bool
	sticky          bool         // WithStickyBuckets (sticky.go)
	weights         []float64    // WithWeights (weights.go); nil without
	hasWeights      bool         // WithWeights was given, even empty
	slots           *slotWeights // weights compiled; nil: bucket = hash mod buckets
	anonymous       bool         // WithAnonymous (bucketing.go)
	bucketingAttr   string       // WithBucketingAttribute (bucketing.go); "" hashes the user ID
	badAttr         bool         // WithBucketingAttribute("")

	layer                *Layer  // InLayer (layer.go)
	layerFrom, layerTo   float64 // InLayer's range, in percent
	layerStart, layerEnd int     // the range in slots, set when the flag joins the layer

	overrideMu sync.Mutex
	overrides  atomic.Pointer[[]processOverride] // top of stack last; nil when none
	overrideID uint64
}

// FlagOption configures an ExperimentFlag in NewFlag.
type FlagOption func(*ExperimentFlag)

// WithBuckets sets the number of buckets, control included. Optional.
// Default: 2 (control and one variant). NewFlag panics when n < 2 (a
// single bucket would be control alone: no experiment) or n > 1024.
func WithBuckets(n int) FlagOption { return func(f *ExperimentFlag) { f.buckets = n } }

// WithExperimentID links the flag to an experiment's values, whose
// enrollment_start and enrollment_end keys then bound, for calls with a
// course, which enrollments take part. Optional. Default: no window.
func WithExperimentID(id int) FlagOption {
	return func(f *ExperimentFlag) { f.experimentID, f.hasExperimentID = id, true }
}

// WithCourseAwareBucketing says whether the course key is part of the
// hashing group, so that a user can land in different buckets in
// different courses (true), or in the same bucket everywhere (false).
// Optional. Default: true. Calls without a course hash as if false.
func WithCourseAwareBucketing(on bool) FlagOption {
	return func(f *ExperimentFlag) { f.courseAware = on }
}

// NewFlag declares the experiment "namespace.name", whose bucket flags are
// "namespace.name.0" to "namespace.name.<buckets-1>". namespace and name
// are 1 to 100 ASCII letters, digits, '_' or '-'. NewFlag panics on an
// invalid name, buckets outside 2 to 1024, an experiment ID outside 0
// to MaxExperimentID, or a name already declared (in DefaultFlagSet, see
// FlagSet), or weights WithWeights documents as refused: flags are
// package-level values, so the mistake shows at start-up.
func NewFlag(namespace, name string, opts ...FlagOption) *ExperimentFlag {
	return DefaultFlagSet.declare(newFlag(namespace, name, opts), caller(2))
}

// newFlag returns the flag NewFlag declares, validated.
func newFlag(namespace, name string, opts []FlagOption) *ExperimentFlag {
	f := &ExperimentFlag{namespace: namespace, name: name, full: namespace + "." + name, buckets: 2, courseAware: true}
	for _, o := range opts {
		o(f)
	}
	switch {
	case !validPart(namespace):
		panic(fmt.Sprintf("experiments.NewFlag: namespace %q: want 1 to 100 letters, digits, '_' or '-'", namespace))
	case !validPart(name):
		panic(fmt.Sprintf("experiments.NewFlag: name %q: want 1 to 100 letters, digits, '_' or '-'", name))
	case f.buckets < 2 || f.buckets > maxBucketFlag:
		panic(fmt.Sprintf("experiments.NewFlag %s: WithBuckets(%d): want 2 to %d", f.full, f.buckets, maxBucketFlag))
	case f.hasExperimentID && (f.experimentID < 0 || f.experimentID > MaxExperimentID):
		panic(fmt.Sprintf("experiments.NewFlag %s: WithExperimentID(%d): want 0 to %d", f.full, f.experimentID, MaxExperimentID))
	case f.badAttr:
		panic(fmt.Sprintf("experiments.NewFlag %s: WithBucketingAttribute(\"\"): want an attribute name", f.full))
	}
	if f.hasWeights {
		if err := ValidateWeights(f.weights, f.buckets); err != nil {
			panic(fmt.Sprintf("experiments.NewFlag %s: WithWeights(%s): %v", f.full, FormatWeights(f.weights), err))
		}
		f.slots = newSlotWeights(f.weights)
	}
	f.id = flagID(f.full)
	return f
}

// Name returns the flag's full name, "namespace.name".
func (f *ExperimentFlag) Name() string { return f.full }

// Namespace returns the flag's namespace, the event's AppLabel.
func (f *ExperimentFlag) Namespace() string { return f.namespace }

// ShortName returns the flag's name without its namespace, the event's
// Experiment.
func (f *ExperimentFlag) ShortName() string { return f.name }

// Buckets returns the number of buckets, control included.
func (f *ExperimentFlag) Buckets() int { return f.buckets }

// ExperimentID returns the ID of WithExperimentID, and whether the flag
// has one.
func (f *ExperimentFlag) ExperimentID() (id int, ok bool) { return f.experimentID, f.hasExperimentID }

// CourseAware reports whether the course key is part of the hashing
// group (WithCourseAwareBucketing).
func (f *ExperimentFlag) CourseAware() bool { return f.courseAware }
