package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/abkit/experiments"
)

// maxHistoryLimit caps HistoryQuery.Limit.
const maxHistoryLimit = 1000

// historyBatch is the fewest audit rows History reads at a time.
const historyBatch = 100

// History returns the changes q selects, newest first, from the audit
// table: every configuration write (enrollments are not part of an
// experiment's history). q.Limit is capped at 1000. A bad q.Flag gives an
// error wrapping experiments.ErrInvalid.
func (s *Store) History(ctx context.Context, q experiments.HistoryQuery) ([]experiments.Change, error) {
	if err := experiments.ValidateFlagName(q.Flag); err != nil {
		return nil, err
	}
	limit := q.Limit
	switch {
	case limit <= 0:
		limit = experiments.DefaultHistoryLimit
	case limit > maxHistoryLimit:
		limit = maxHistoryLimit
	}
	// The SQL selects by prefix, which also takes in the rows of flags
	// that merely extend q.Flag ("ns.name.extra", an override's key that
	// holds a space): q.Matches keeps the right ones. It may drop a whole
	// batch, so read on, older rows first, until limit changes match.
	query := "SELECT id, at, actor, entity, key, old, new FROM " + s.t.audit + " WHERE id < $1 AND (" +
		"(entity IN ('flag', 'meta', 'course_override', 'org_override') AND " +
		"(key = $2 OR starts_with(key, $2 || '.') OR starts_with(key, $2 || ' '))) OR " +
		"($3 AND entity = 'value' AND starts_with(key, $4 || ' '))" +
		") ORDER BY id DESC LIMIT $5"
	batch := max(limit, historyBatch)
	var out []experiments.Change
	before := int64(math.MaxInt64)
	for {
		var rows []auditRow
		err := s.db.SelectContext(ctx, &rows, query, before, q.Flag, q.HasExperimentID, strconv.Itoa(q.ExperimentID), batch)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: history of %s: %w", q.Flag, err)
		}
		for _, r := range rows {
			if c := r.change(); q.Matches(c) {
				out = append(out, c)
				if len(out) == limit {
					return out, nil
				}
			}
		}
		if len(rows) < batch {
			return out, nil
		}
		before = rows[len(rows)-1].ID
	}
}

// auditRow is a row of the audit table.
type auditRow struct {
	ID     int64     `db:"id"`
	At     time.Time `db:"at"`
	Actor  string    `db:"actor"`
	Entity string    `db:"entity"`
	Key    string    `db:"key"`
	Old    []byte    `db:"old"` // nil for NULL
	New    []byte    `db:"new"`
}

func (r auditRow) change() experiments.Change {
	return experiments.Change{
		ID: r.ID, At: r.At.UTC(), Actor: r.Actor, Entity: r.Entity, Key: r.Key,
		Old: json.RawMessage(r.Old), New: json.RawMessage(r.New),
	}
}
