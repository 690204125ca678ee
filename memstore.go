package experiments

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// MemStore is the embedded Store, Enrollments and Assignments: flags,
// overrides, experiment values, enrollments and sticky buckets in memory,
// for apps without a database, demos and tests. Reads take no lock: every
// write builds a new Snapshot and swaps it in atomically. The zero value is
// not usable; call NewMemStore. It is safe for concurrent use.
type MemStore struct {
	mu      sync.Mutex // serializes writers
	data    SnapshotData
	snap    atomic.Pointer[Snapshot]
	history []Change // oldest first, at most maxHistory; under mu
	lastID  int64
	now     func() time.Time

	enrollments sync.Map // enrollmentKey → time.Time
	assignments sync.Map // assignmentKey → int: read and saved without a lock

	exposed     sync.Map   // exposureKey → time.Time of the kept exposure: read without a lock
	recMu       sync.Mutex // exposures and conversions
	exposures   []Exposure
	conversions []Conversion
}

type enrollmentKey struct{ user, course string }

var (
	_ Store       = (*MemStore)(nil)
	_ Enrollments = (*MemStore)(nil)
	_ Recorder    = (*MemStore)(nil)
	_ Auditor     = (*MemStore)(nil)
	_ Assignments = (*MemStore)(nil)
	_ Writer      = (*MemStore)(nil)
)

// maxHistory is how many changes a MemStore keeps for History.
const maxHistory = 10000

// NewMemStore returns an empty MemStore: every flag is off.
func NewMemStore() *MemStore {
	s := &MemStore{now: time.Now}
	s.snap.Store(NewSnapshot(SnapshotData{}))
	return s
}

// Snapshot returns the current configuration. It never fails.
func (s *MemStore) Snapshot(context.Context) (*Snapshot, error) { return s.snap.Load(), nil }

// SetFlag creates or replaces the rule of flag name, a main flag
// ("ns.name") or a bucket flag ("ns.name.1").
func (s *MemStore) SetFlag(ctx context.Context, name string, r Rule) error {
	if err := ValidateFlagName(name); err != nil {
		return err
	}
	if err := r.Validate(); err != nil {
		return fmt.Errorf("flag %s: %w", name, err)
	}
	s.update(ctx, "flag", name, func(d *SnapshotData) (old, new any) {
		old = present(d.Flags, name)
		d.Flags = with(d.Flags, name, r.clone(), false)
		return old, r
	})
	return nil
}

// DeleteFlag removes the rule of flag name, which is then off. Its course
// and org overrides stay. Deleting a flag that is not set is not an error.
func (s *MemStore) DeleteFlag(ctx context.Context, name string) error {
	if err := ValidateFlagName(name); err != nil {
		return err
	}
	s.update(ctx, "flag", name, func(d *SnapshotData) (old, new any) {
		old = present(d.Flags, name)
		d.Flags = with(d.Flags, name, Rule{}, true)
		return old, nil
	})
	return nil
}

// SetCourseOverride forces flag name on or off in one course; Unset
// removes the override.
func (s *MemStore) SetCourseOverride(ctx context.Context, name, courseKey string, st State) error {
	if err := ValidateCourseOverride(name, courseKey, st); err != nil {
		return err
	}
	s.update(ctx, "course_override", name+" "+courseKey, func(d *SnapshotData) (old, new any) {
		old = stateValue(d.CourseOverrides[name][courseKey])
		d.CourseOverrides = withState(d.CourseOverrides, name, courseKey, st)
		return old, stateValue(st)
	})
	return nil
}

// SetOrgOverride forces flag name on or off in every course of an org;
// Unset removes the override. A course override beats it.
func (s *MemStore) SetOrgOverride(ctx context.Context, name, org string, st State) error {
	if err := ValidateOrgOverride(name, org, st); err != nil {
		return err
	}
	s.update(ctx, "org_override", name+" "+org, func(d *SnapshotData) (old, new any) {
		old = stateValue(d.OrgOverrides[name][org])
		d.OrgOverrides = withState(d.OrgOverrides, name, org, st)
		return old, stateValue(st)
	})
	return nil
}

// SetExperimentValue sets a key of an experiment's values, such as
// EnrollmentStart; an empty value removes the key. A date that does not
// parse is stored: decisions for the experiment then give control with
// ErrBadWindow, as in edX.
func (s *MemStore) SetExperimentValue(ctx context.Context, experimentID int, key, value string) error {
	if err := ValidateExperimentValue(experimentID, key, value); err != nil {
		return err
	}
	s.update(ctx, "value", itoa(experimentID)+" "+key, func(d *SnapshotData) (old, new any) {
		if v, ok := d.ExperimentValues[experimentID][key]; ok {
			old = v
		}
		if value != "" {
			new = value
		}
		values := with(d.ExperimentValues[experimentID], key, value, value == "")
		if values == nil {
			values = make(map[string]string) // the experiment stays, without values
		}
		d.ExperimentValues = with(d.ExperimentValues, experimentID, values, false)
		return old, new
	})
	return nil
}

// SetEnrollment records that userID enrolled in courseKey at created,
// truncated to the microsecond as PostgreSQL keeps it.
func (s *MemStore) SetEnrollment(_ context.Context, userID, courseKey string, created time.Time) error {
	if err := ValidateEnrollment(userID, courseKey); err != nil {
		return err
	}
	s.enrollments.Store(enrollmentKey{userID, courseKey}, created.Truncate(time.Microsecond))
	return nil
}

// Enrollment returns when userID enrolled in courseKey.
func (s *MemStore) Enrollment(_ context.Context, userID, courseKey string) (time.Time, bool, error) {
	v, ok := s.enrollments.Load(enrollmentKey{userID, courseKey})
	if !ok {
		return time.Time{}, false, nil
	}
	return v.(time.Time), true, nil
}

// update applies change to a copy of the data, publishes its snapshot
// and records the change of entity key in the history: change returns
// the value before and after (nil: absent). change must clone any map it
// modifies: the old snapshot still uses them.
func (s *MemStore) update(ctx context.Context, entity, key string, change func(*SnapshotData) (old, new any)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.data
	old, new := change(&d)
	s.data = d
	s.snap.Store(NewSnapshot(d))
	s.lastID++
	if len(s.history) == maxHistory {
		s.history = slices.Delete(s.history, 0, maxHistory/10)
	}
	s.history = append(s.history, Change{ID: s.lastID, At: s.now().UTC(), Actor: ActorFrom(ctx),
		Entity: entity, Key: key, Old: rawJSON(old), New: rawJSON(new)})
}

// present returns m[k], or nil when k is absent.
func present[K comparable, V any](m map[K]V, k K) any {
	if v, ok := m[k]; ok {
		return v
	}
	return nil
}

// stateValue is an override's value in the history: "on", "off", or nil
// for none.
func stateValue(st State) any {
	if st == Unset {
		return nil
	}
	return st.String()
}

// rawJSON encodes a value of the history; nil stays nil.
func rawJSON(v any) json.RawMessage {
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("experiments: history value %T: %v", v, err)) // validated values always encode
	}
	return b
}

// SetExperimentMeta sets the notes, archived state and winner of the
// experiment whose main flag is flag; the zero ExperimentMeta removes
// them.
func (s *MemStore) SetExperimentMeta(ctx context.Context, flag string, m ExperimentMeta) error {
	if err := m.Validate(flag); err != nil {
		return err
	}
	m = m.clone()
	s.update(ctx, "meta", flag, func(d *SnapshotData) (old, new any) {
		old = present(d.Meta, flag)
		d.Meta = with(d.Meta, flag, m, m.IsZero())
		if !m.IsZero() {
			new = m
		}
		return old, new
	})
	return nil
}

// History returns the changes q selects, newest first, among the last
// 10,000 configuration changes (enrollments are not recorded).
func (s *MemStore) History(_ context.Context, q HistoryQuery) ([]Change, error) {
	if err := ValidateFlagName(q.Flag); err != nil {
		return nil, err
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultHistoryLimit
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Change
	for i := len(s.history) - 1; i >= 0 && len(out) < limit; i-- {
		if q.Matches(s.history[i]) {
			out = append(out, s.history[i])
		}
	}
	return out, nil
}

// withState returns a copy of m with m[name][key] set to st, or removed
// when st is Unset.
func withState(m map[string]map[string]State, name, key string, st State) map[string]map[string]State {
	inner := with(m[name], key, st, st == Unset)
	return with(m, name, inner, len(inner) == 0)
}

// with returns a copy of m with m[k] set to v, or without k when del:
// writers never change a map a published snapshot holds.
func with[K comparable, V any](m map[K]V, k K, v V, del bool) map[K]V {
	m = maps.Clone(m)
	if del {
		delete(m, k)
		return m
	}
	if m == nil {
		m = make(map[K]V)
	}
	m[k] = v
	return m
}

// SetGoal creates or replaces a goal.
func (s *MemStore) SetGoal(ctx context.Context, g Goal) error {
	if err := g.Validate(); err != nil {
		return err
	}
	s.update(ctx, "goal", g.Name, func(d *SnapshotData) (old, new any) {
		old = present(d.Goals, g.Name)
		d.Goals = with(d.Goals, g.Name, g.clone(), false)
		return old, g
	})
	return nil
}

// DeleteGoal removes a goal; its conversions stay. Deleting a goal that
// is not set is not an error.
func (s *MemStore) DeleteGoal(ctx context.Context, name string) error {
	if err := ValidateGoalName(name); err != nil {
		return err
	}
	s.update(ctx, "goal", name, func(d *SnapshotData) (old, new any) {
		old = present(d.Goals, name)
		d.Goals = with(d.Goals, name, Goal{}, true)
		return old, nil
	})
	return nil
}

// RecordExposure keeps the earliest exposure of a user to an experiment,
// as sqlstore does (two requests may record out of order). Memory grows
// with users × experiments (about 100 bytes each): use sqlstore for large
// audiences. The kept exposure's Dimensions are those it was recorded
// with.
func (s *MemStore) RecordExposure(_ context.Context, e Exposure) error {
	key := exposureKey{e.Flag, e.CourseKey, e.UserID}
	e.Time = e.Time.Truncate(time.Microsecond)
	if t, ok := s.exposed.Load(key); ok && !e.Time.Before(t.(time.Time)) {
		return nil // the common case: a user seen before, no lock
	}
	s.recMu.Lock()
	defer s.recMu.Unlock()
	t, ok := s.exposed.Load(key)
	switch {
	case !ok:
		s.exposures = append(s.exposures, e)
	case e.Time.Before(t.(time.Time)):
		i := slices.IndexFunc(s.exposures, func(x Exposure) bool {
			return x.Flag == e.Flag && x.CourseKey == e.CourseKey && x.UserID == e.UserID
		})
		s.exposures[i] = e
	default:
		return nil
	}
	s.exposed.Store(key, e.Time)
	return nil
}

// RecordConversion keeps c. Memory grows with conversions.
func (s *MemStore) RecordConversion(_ context.Context, c Conversion) error {
	if err := ValidateConversionValue(c.Value); err != nil {
		return err
	}
	c.Time = c.Time.Truncate(time.Microsecond)
	s.recMu.Lock()
	defer s.recMu.Unlock()
	s.conversions = append(s.conversions, c)
	return nil
}

// Exposures returns a copy of the exposures recorded, oldest first.
func (s *MemStore) Exposures() []Exposure {
	s.recMu.Lock()
	defer s.recMu.Unlock()
	return slices.Clone(s.exposures)
}

// Conversions returns a copy of the conversions recorded, oldest first.
func (s *MemStore) Conversions() []Conversion {
	s.recMu.Lock()
	defer s.recMu.Unlock()
	return slices.Clone(s.conversions)
}

type exposureKey struct{ flag, course, user string }

type assignmentKey struct{ user, experiment string }

// Assignment returns the bucket remembered for userID in experiment. It
// takes no lock and never fails.
func (s *MemStore) Assignment(_ context.Context, userID, experiment string) (int, bool, error) {
	v, ok := s.assignments.Load(assignmentKey{userID, experiment})
	if !ok {
		return 0, false, nil
	}
	return v.(int), true, nil
}

// SaveAssignment remembers bucket for userID in experiment, keeping the
// smaller bucket when one is already remembered (see Assignments). It
// takes no lock. Memory grows with users × sticky experiments (about 100
// bytes each): use sqlstore for large audiences.
func (s *MemStore) SaveAssignment(_ context.Context, userID, experiment string, bucket int) error {
	if err := ValidateAssignment(userID, experiment, bucket); err != nil {
		return err
	}
	key := assignmentKey{userID, experiment}
	for {
		old, loaded := s.assignments.LoadOrStore(key, bucket)
		if !loaded || old.(int) <= bucket {
			return nil
		}
		if s.assignments.CompareAndSwap(key, old, bucket) {
			return nil
		}
	}
}
