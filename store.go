package experiments

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Store gives flags their configuration. Bucket calls Snapshot on every
// first decision in a request, so it must not do I/O: a store keeps the
// current Snapshot in memory and swaps it when the configuration changes.
// An error makes the decision fall back to control (Decision.Err).
// Both MemStore and sqlstore.Store implement it.
type Store interface {
	Snapshot(ctx context.Context) (*Snapshot, error)
}

// Writer changes what decisions read: flags and their rules, course and
// org overrides, experiment values and meta. MemStore and sqlstore.Store
// implement it, each write audited (Auditor) and published to decisions
// at once; the staff dashboard (package admin) and the stores'
// conformance suite (package storetest) write through it. Errors wrap
// ErrInvalid for input a store refuses.
type Writer interface {
	SetFlag(ctx context.Context, name string, r Rule) error
	DeleteFlag(ctx context.Context, name string) error
	SetCourseOverride(ctx context.Context, name, courseKey string, s State) error
	SetOrgOverride(ctx context.Context, name, org string, s State) error
	SetExperimentValue(ctx context.Context, experimentID int, key, value string) error
	SetExperimentMeta(ctx context.Context, flag string, m ExperimentMeta) error
}

// Enrollments tells when a user enrolled in a course, for flags with an
// enrollment window (WithExperimentID). A user who is not enrolled gives
// found=false and a nil error; err means the lookup failed.
type Enrollments interface {
	Enrollment(ctx context.Context, userID, courseKey string) (created time.Time, found bool, err error)
}

// snapshot returns the store's snapshot, treating a nil one as a failure.
func snapshot(ctx context.Context, s Store) (*Snapshot, error) {
	snap, err := s.Snapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if snap == nil {
		return nil, errors.New("store: no snapshot")
	}
	return snap, nil
}

// SnapshotData is the configuration a Snapshot is built from. Stores fill
// it from their own storage; every map may be nil.
type SnapshotData struct {
	Flags            map[string]Rule             // flag name → rule
	CourseOverrides  map[string]map[string]State // flag name → course key → state
	OrgOverrides     map[string]map[string]State // flag name → org → state
	ExperimentValues map[int]map[string]string   // experiment ID → key → value
	Goals            map[string]Goal             // goal name → goal
	Meta             map[string]ExperimentMeta   // main flag name → notes, archived, winner, weights
}

// Snapshot is an immutable, compiled view of a store's configuration.
// It is safe for concurrent use; stores replace it, never change it.
type Snapshot struct {
	data    SnapshotData
	flags   map[string]*compiledFlag
	windows map[int]*window
	weights map[string]*slotWeights // main flag → ExperimentMeta.Weights compiled (weights.go)
	byID    []flagEntry             // flags and weights by the ID of their name (flagID); see entry
}

// flagEntry is what a snapshot holds for one flag name.
type flagEntry struct {
	flag    *compiledFlag // nil: the store has no such flag
	weights *slotWeights  // nil: no stored weights
}

// entry returns the flag and stored weights of f in s. A decision finds
// them by the ID of f's name, an index, rather than by hashing the name
// twice. A name that had no ID when s was built is past the end of
// s.byID: its flag is looked up by name.
func (s *Snapshot) entry(f *ExperimentFlag) flagEntry {
	if f.id < len(s.byID) {
		return s.byID[f.id]
	}
	return flagEntry{s.flags[f.full], s.weights[f.full]}
}

// flagIDs numbers the full names of declared flags, from 0, in the order
// first declared; flags of the same name in different FlagSets share an
// ID. Only declarations add names, so a store's names that no flag has
// never grow it.
var flagIDs struct {
	sync.Mutex
	m map[string]int
}

// flagID returns the ID of the full name of a flag being declared,
// numbering the name if it is new.
func flagID(full string) int {
	flagIDs.Lock()
	defer flagIDs.Unlock()
	id, ok := flagIDs.m[full]
	if !ok {
		if flagIDs.m == nil {
			flagIDs.m = make(map[string]int)
		}
		id = len(flagIDs.m)
		flagIDs.m[full] = id
	}
	return id
}

// indexByID returns s's flags and weights by the ID of their names, for
// the names that have one, up to the highest such ID. Every ID below
// len(s.byID) existed when s was built, so an entry left empty there is
// a flag the store does not have.
func (s *Snapshot) indexByID() []flagEntry {
	flagIDs.Lock()
	defer flagIDs.Unlock()
	var byID []flagEntry
	at := func(name string) *flagEntry {
		id, ok := flagIDs.m[name]
		if !ok {
			return nil
		}
		if id >= len(byID) {
			byID = append(byID, make([]flagEntry, id+1-len(byID))...)
		}
		return &byID[id]
	}
	for name, c := range s.flags {
		if e := at(name); e != nil {
			e.flag = c
		}
	}
	for name, w := range s.weights {
		if e := at(name); e != nil {
			e.weights = w
		}
	}
	return byID
}

// NewSnapshot compiles d. The snapshot keeps d's maps: do not change them
// afterwards. Rules and values are not validated here (stores validate on
// write); a window value that does not parse is kept as an error that
// decisions report.
func NewSnapshot(d SnapshotData) *Snapshot {
	s := &Snapshot{data: d, flags: make(map[string]*compiledFlag), windows: make(map[int]*window)}
	get := func(name string) *compiledFlag {
		c := s.flags[name]
		if c == nil {
			c = &compiledFlag{}
			s.flags[name] = c
		}
		return c
	}
	for name, r := range d.Flags {
		*get(name) = compileRule(name, r)
	}
	for name, m := range d.CourseOverrides {
		if len(m) > 0 {
			get(name).courses = m
		}
	}
	for name, m := range d.OrgOverrides {
		if len(m) > 0 {
			get(name).orgs = m
		}
	}
	linkBucketFlags(s.flags)
	for name, m := range d.Meta {
		// Stores validate meta on write; weights that are still wrong
		// (a custom store) are left out rather than bucketing anyone.
		if m.Weights != nil && ValidateWeights(m.Weights, 0) == nil {
			if s.weights == nil {
				s.weights = make(map[string]*slotWeights)
			}
			s.weights[name] = newSlotWeights(m.Weights)
		}
	}
	for id, values := range d.ExperimentValues {
		if w := newWindow(id, values); w != nil {
			s.windows[id] = w
		}
	}
	s.byID = s.indexByID()
	return s
}

// Data returns the configuration the snapshot was built from. The maps
// are shared with the snapshot: treat them as read-only.
func (s *Snapshot) Data() SnapshotData { return s.data }
