package admin

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/results"
)

// Status values of an Experiment.
const (
	StatusOff      = "off"      // the main flag is not set, or off for everyone
	StatusOn       = "on"       // the main flag is on for everyone
	StatusTargeted = "targeted" // the main flag is on for some users
	StatusWinner   = "winner"   // a winner is forced on everyone
)

// Experiment is one experiment as the API lists it.
type Experiment struct {
	// Flag is the main flag, "namespace.name".
	Flag string `json:"flag"`
	// Registered is true for a flag of Config.Flags.
	Registered bool `json:"registered"`
	// Buckets is the number of buckets, control included.
	Buckets int `json:"buckets"`
	// Weights are the shares decisions give the buckets (see
	// experiments.ExperimentFlag.WeightsIn): the store's weights when
	// set and fitting, else the flag's WithWeights; nil for equal shares
	// by the modulo.
	Weights []float64 `json:"weights"`
	// ExperimentID is the flag's experiment ID (WithExperimentID), which
	// keys its enrollment window; nil when it has none or is not
	// registered.
	ExperimentID *int `json:"experiment_id"`
	// Status is StatusOff, StatusOn, StatusTargeted or StatusWinner.
	Status string `json:"status"`
	// Rule is the main flag's rule; nil when it is not set.
	Rule *experiments.Rule `json:"rule"`
	// Archived is true once the experiment is archived.
	Archived bool `json:"archived"`
	// Winner is the bucket forced on everyone, or nil.
	Winner *int `json:"winner"`
	// Notes are the experiment's notes.
	Notes string `json:"notes"`
	// Participants holds the participants per bucket, all courses
	// together; Total is their sum.
	Participants []int64 `json:"participants"`
	Total        int64   `json:"total_participants"`
}

// Detail is one experiment with its whole configuration.
type Detail struct {
	Experiment
	// CourseAware is false for a flag bucketed the same in every course.
	CourseAware bool `json:"course_aware"`
	// BucketFlags holds the rule of each bucket flag 0..Buckets-1 (and of
	// any set beyond), nil when not set.
	BucketFlags []BucketFlag `json:"bucket_flags"`
	// CourseOverrides and OrgOverrides are the overrides of the main flag
	// and of its bucket flags.
	CourseOverrides []Override `json:"course_overrides"`
	OrgOverrides    []Override `json:"org_overrides"`
	// FlagWeights are the flag's WithWeights, nil without (or when the
	// flag is not registered); StoredWeights are the store's
	// (ExperimentMeta.Weights), which replace them, nil when unset.
	FlagWeights   []float64 `json:"flag_weights"`
	StoredWeights []float64 `json:"stored_weights"`
	// WeightsError says why StoredWeights are not used (another count
	// than the flag's buckets); "" when they are, or are unset.
	WeightsError string `json:"weights_error,omitempty"`
	// Window is the enrollment window; nil without an experiment ID.
	Window *Window `json:"window"`
	// Courses are the courses (and "" for none) with participants.
	Courses []CourseParticipants `json:"courses"`
}

// BucketFlag is the flag that forces one bucket.
type BucketFlag struct {
	Bucket int               `json:"bucket"`
	Flag   string            `json:"flag"`
	Rule   *experiments.Rule `json:"rule"`
}

// Override is a course or org override of the main flag or a bucket flag.
type Override struct {
	Flag  string `json:"flag"`
	Key   string `json:"key"`   // the course key or org
	State string `json:"state"` // "on" or "off"
}

// Window is an experiment's enrollment window: the stored values of
// enrollment_start and enrollment_end ("" when unset), and why one does
// not parse.
type Window struct {
	Start string `json:"start"`
	End   string `json:"end"`
	Error string `json:"error,omitempty"`
}

// CourseParticipants is the participants of the experiment in one course.
type CourseParticipants struct {
	CourseKey    string  `json:"course_key"`
	Participants []int64 `json:"participants"`
	Total        int64   `json:"total_participants"`
}

// state is what one request reads: the configuration and the
// participation, read once.
type state struct {
	snap     experiments.SnapshotData
	snapshot *experiments.Snapshot   // the one snap comes from, for WeightsIn
	parts    []results.Participation // nil without a Counter
}

// load reads the store's configuration and the participants.
func (a *Admin) load(ctx context.Context) (*state, error) {
	snap, err := a.store.Snapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the store: %w", err)
	}
	if snap == nil {
		return nil, fmt.Errorf("reading the store: no snapshot")
	}
	st := &state{snap: snap.Data(), snapshot: snap}
	if c, ok := a.results.(results.Counter); ok {
		if st.parts, err = c.Participants(ctx); err != nil {
			// Configuration stays usable without results.
			a.log.Warn("admin: counting participants failed", "err", err)
		}
	}
	return st, nil
}

// names returns every experiment the dashboard knows: registered flags,
// main flags of the store (a bucket flag counts for its main flag),
// flags with overrides or meta, and flags with participants; sorted.
func (a *Admin) names(st *state) []string {
	seen := make(map[string]bool)
	add := func(name string) {
		if main, _, ok := experiments.SplitBucketFlag(name); ok {
			name = main
		}
		seen[name] = true
	}
	for name := range a.flags {
		add(name)
	}
	for name := range st.snap.Flags {
		add(name)
	}
	for name := range st.snap.CourseOverrides {
		add(name)
	}
	for name := range st.snap.OrgOverrides {
		add(name)
	}
	for name := range st.snap.Meta {
		add(name)
	}
	for _, p := range st.parts {
		add(p.Flag)
	}
	names := make([]string, 0, len(seen))
	for name := range seen {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// known reports whether the dashboard knows experiment flag.
func (a *Admin) known(st *state, flag string) bool {
	_, found := slices.BinarySearch(a.names(st), flag)
	return found
}

// experiment builds the summary of experiment flag.
func (a *Admin) experiment(st *state, flag string) Experiment {
	x := Experiment{Flag: flag, Status: StatusOff}
	buckets := 2
	if f := a.flags[flag]; f != nil {
		x.Registered = true
		buckets = f.Buckets()
		if id, ok := f.ExperimentID(); ok {
			x.ExperimentID = &id
		}
	} else {
		for name := range st.snap.Flags {
			if main, i, ok := experiments.SplitBucketFlag(name); ok && main == flag {
				buckets = max(buckets, i+1)
			}
		}
	}
	if r, ok := st.snap.Flags[flag]; ok {
		x.Rule = &r
		x.Status = ruleStatus(r)
	}
	meta := st.snap.Meta[flag]
	x.Archived, x.Notes = meta.Archived, meta.Notes
	if meta.Winner != nil {
		b := meta.Winner.Bucket
		x.Winner, x.Status = &b, StatusWinner
	}
	for _, p := range st.parts {
		if p.Flag != flag {
			continue
		}
		if !x.Registered {
			buckets = max(buckets, len(p.Buckets))
		}
		for i, n := range p.Buckets {
			if i >= len(x.Participants) {
				x.Participants = append(x.Participants, make([]int64, i+1-len(x.Participants))...)
			}
			x.Participants[i] += n
			x.Total += n
		}
	}
	x.Buckets = buckets
	x.Weights, _ = a.weights(st, flag)
	if len(x.Participants) < buckets {
		x.Participants = append(x.Participants, make([]int64, buckets-len(x.Participants))...)
	}
	return x
}

// weights returns the weights decisions use for experiment flag, and why
// the store's are not used: as WeightsIn says for a registered flag; for
// another, the store's.
func (a *Admin) weights(st *state, flag string) ([]float64, error) {
	if f := a.flags[flag]; f != nil {
		return f.WeightsIn(st.snapshot)
	}
	return slices.Clone(st.snap.Meta[flag].Weights), nil
}

// resultWeights returns the expected split of x for results.Query: the
// slots its weights give each bucket, nil for equal shares (or weights
// that do not fit its buckets).
func resultWeights(x Experiment) []float64 {
	if len(x.Weights) != x.Buckets {
		return nil
	}
	return experiments.SlotSplit(x.Weights)
}

// ruleStatus is the status a main flag's rule gives.
func ruleStatus(r experiments.Rule) string {
	switch {
	case r.Everyone != nil && *r.Everyone:
		return StatusOn
	case r.Everyone != nil || !r.Authenticated && !r.Staff && !r.Superusers && len(r.Users) == 0 && len(r.Groups) == 0 && r.Percent == 0:
		return StatusOff
	}
	return StatusTargeted
}

// detail builds the whole view of experiment flag.
func (a *Admin) detail(st *state, flag string) Detail {
	d := Detail{Experiment: a.experiment(st, flag), CourseAware: true}
	if f := a.flags[flag]; f != nil {
		d.CourseAware = f.CourseAware()
		d.FlagWeights = f.Weights()
	}
	d.StoredWeights = slices.Clone(st.snap.Meta[flag].Weights)
	if _, err := a.weights(st, flag); err != nil {
		d.WeightsError = err.Error()
	}
	own := func(name string) bool {
		main, _, ok := experiments.SplitBucketFlag(name)
		return name == flag || ok && main == flag
	}
	n := d.Buckets
	for name := range st.snap.Flags {
		if main, i, ok := experiments.SplitBucketFlag(name); ok && main == flag {
			n = max(n, i+1)
		}
	}
	for i := range n {
		b := BucketFlag{Bucket: i, Flag: flag + "." + strconv.Itoa(i)}
		if r, ok := st.snap.Flags[b.Flag]; ok {
			b.Rule = &r
		}
		if i < d.Buckets || b.Rule != nil {
			d.BucketFlags = append(d.BucketFlags, b)
		}
	}
	overrides := func(m map[string]map[string]experiments.State) []Override {
		out := []Override{}
		for name, keys := range m {
			if !own(name) {
				continue
			}
			for key, s := range keys {
				out = append(out, Override{Flag: name, Key: key, State: s.String()})
			}
		}
		slices.SortFunc(out, func(x, y Override) int {
			return cmp.Or(compareFlags(x.Flag, y.Flag), strings.Compare(x.Key, y.Key))
		})
		return out
	}
	d.CourseOverrides = overrides(st.snap.CourseOverrides)
	d.OrgOverrides = overrides(st.snap.OrgOverrides)
	if d.ExperimentID != nil {
		values := st.snap.ExperimentValues[*d.ExperimentID]
		d.Window = &Window{Start: values[experiments.EnrollmentStart], End: values[experiments.EnrollmentEnd]}
		if err := checkWindow(d.Window.Start, d.Window.End); err != nil {
			d.Window.Error = err.Error()
		}
	}
	d.Courses = []CourseParticipants{}
	for _, p := range st.parts {
		if p.Flag == flag {
			c := CourseParticipants{CourseKey: p.CourseKey, Participants: p.Buckets, Total: p.Total()}
			d.Courses = append(d.Courses, c)
		}
	}
	return d
}

// compareFlags orders a main flag before its bucket flags, and bucket
// flags by number.
func compareFlags(x, y string) int {
	_, i, xb := experiments.SplitBucketFlag(x)
	_, j, yb := experiments.SplitBucketFlag(y)
	switch {
	case xb && yb:
		return cmp.Compare(i, j)
	case xb != yb:
		if xb {
			return 1
		}
		return -1
	}
	return strings.Compare(x, y)
}

// checkWindow reports a bound that does not parse, or a start that is
// not before the end.
func checkWindow(start, end string) error {
	var s, e time.Time
	var err error
	if start != "" {
		if s, err = experiments.ParseDate(start); err != nil {
			return fmt.Errorf("%s %q: %w", experiments.EnrollmentStart, start, err)
		}
	}
	if end != "" {
		if e, err = experiments.ParseDate(end); err != nil {
			return fmt.Errorf("%s %q: %w", experiments.EnrollmentEnd, end, err)
		}
	}
	if start != "" && end != "" && !s.Before(e) {
		return fmt.Errorf("%s %q is not before %s %q: nobody would take part", experiments.EnrollmentStart, start, experiments.EnrollmentEnd, end)
	}
	return nil
}
