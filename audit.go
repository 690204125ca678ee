package experiments

import (
	"context"
	"encoding/json"
	"strings"
	"time"
)

type actorKey struct{}

// WithActor returns a context whose writes stores record as made by
// actor, in their audit history (Change.Actor). Without it, MemStore
// records "" and sqlstore the database user.
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

// ActorFrom returns the actor of WithActor, or "".
func ActorFrom(ctx context.Context) string {
	a, _ := ctx.Value(actorKey{}).(string)
	return a
}

// Change is one audited write to a store's configuration.
type Change struct {
	// ID orders changes: a later change has a larger ID.
	ID int64 `json:"id"`
	// At is when the change was made.
	At time.Time `json:"at"`
	// Actor is who made it (WithActor).
	Actor string `json:"actor"`
	// Entity is what changed: "flag", "course_override", "org_override",
	// "value", "goal", "meta" or (sqlstore only) "enrollment".
	Entity string `json:"entity"`
	// Key names the entity: the flag or goal name; "<flag> <course key>"
	// or "<flag> <org>" for an override; "<experiment ID> <key>" for a
	// value; the main flag's name for meta.
	Key string `json:"key"`
	// Old and New are the value before and after, as JSON: a Rule, a
	// State's String ("on", "off"), a value's string, a Goal or an
	// ExperimentMeta. nil means absent (created or deleted).
	Old json.RawMessage `json:"old"`
	New json.RawMessage `json:"new"`
}

// HistoryQuery selects the changes of one experiment.
type HistoryQuery struct {
	// Flag is the experiment's main flag, "namespace.name". The history
	// holds the changes to it, to its bucket flags ("namespace.name.i"),
	// to their course and org overrides, and to its meta.
	Flag string
	// ExperimentID and HasExperimentID add the changes to the
	// experiment's values (its enrollment window), for a flag declared
	// WithExperimentID.
	ExperimentID    int
	HasExperimentID bool
	// Limit is the most changes returned, newest first. Optional.
	// Default: 100.
	Limit int
}

// Auditor is a store that keeps the history of its configuration.
// MemStore and sqlstore.Store implement it.
type Auditor interface {
	// History returns the changes q selects, newest first.
	History(ctx context.Context, q HistoryQuery) ([]Change, error)
}

// DefaultHistoryLimit is HistoryQuery.Limit's default.
const DefaultHistoryLimit = 100

// Matches reports whether c belongs to the history q selects.
func (q HistoryQuery) Matches(c Change) bool {
	switch c.Entity {
	case "flag", "meta":
		return q.ownFlag(c.Key, c.Entity == "flag")
	case "course_override", "org_override":
		flag, _, ok := strings.Cut(c.Key, " ")
		return ok && q.ownFlag(flag, true)
	case "value":
		id, _, ok := strings.Cut(c.Key, " ")
		return ok && q.HasExperimentID && id == itoa(q.ExperimentID)
	}
	return false
}

// ownFlag reports whether name is q.Flag or, when buckets, one of its
// bucket flags.
func (q HistoryQuery) ownFlag(name string, buckets bool) bool {
	if name == q.Flag {
		return true
	}
	parent, _, ok := bucketFlag(name)
	return buckets && ok && parent == q.Flag
}
