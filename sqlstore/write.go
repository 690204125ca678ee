package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/abkit/experiments"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// tables are the store's tables, quoted and qualified by schema.
type tables struct {
	version, flags, courseOverrides, orgOverrides, values, enrollments, audit, events string
	goals, exposures, conversions, meta                                               string
}

func newTables(schema string) tables {
	q := func(name string) string { return pq.QuoteIdentifier(schema) + "." + pq.QuoteIdentifier(name) }
	return tables{
		version: q("experiments_version"), flags: q("experiments_flags"),
		courseOverrides: q("experiments_course_overrides"), orgOverrides: q("experiments_org_overrides"),
		values: q("experiments_values"), enrollments: q("experiments_enrollments"),
		audit: q("experiments_audit"), events: q("experiments_events"),
		goals: q("experiments_goals"), exposures: q("experiments_exposures"), conversions: q("experiments_conversions"),
		meta: q("experiments_meta"),
	}
}

// maxSchema is the longest schema name: its NOTIFY channel,
// "experiments:" + schema, must fit PostgreSQL's 63-byte identifiers.
const maxSchema = 63 - len(channelPrefix)

// channelPrefix starts the NOTIFY channel of a schema.
const channelPrefix = "experiments:"

// checkSchema refuses a schema name PostgreSQL would truncate or that
// holds what an identifier should not.
func checkSchema(schema string) error {
	if schema == "" || len(schema) > maxSchema || !utf8.ValidString(schema) {
		return fmt.Errorf("sqlstore: %w: schema %q: want 1 to %d bytes of UTF-8", experiments.ErrInvalid, schema, maxSchema)
	}
	for _, r := range schema {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("sqlstore: %w: schema %q: control character %U", experiments.ErrInvalid, schema, r)
		}
	}
	return nil
}

// WithActor is experiments.WithActor: it returns a context whose writes
// are recorded as made by actor (updated_by and the audit row). Without
// it, writes are recorded as made by the database user.
func WithActor(ctx context.Context, actor string) context.Context {
	return experiments.WithActor(ctx, actor)
}

// actorOf is the actor of experiments.WithActor, or "" for the database
// user.
func actorOf(ctx context.Context) string { return experiments.ActorFrom(ctx) }

// SetFlag creates or replaces the rule of flag name.
func (s *Store) SetFlag(ctx context.Context, name string, r experiments.Rule) error {
	if err := experiments.ValidateFlagName(name); err != nil {
		return err
	}
	if err := r.Validate(); err != nil {
		return fmt.Errorf("flag %s: %w", name, err)
	}
	return s.setJSON(ctx, "flag", s.flagsTable(), name, r)
}

// DeleteFlag removes the rule of flag name, which is then off. Its course
// and org overrides stay. Deleting a flag that is not set is not an error.
func (s *Store) DeleteFlag(ctx context.Context, name string) error {
	if err := experiments.ValidateFlagName(name); err != nil {
		return err
	}
	return s.deleteJSON(ctx, "flag", s.flagsTable(), name)
}

// SetGoal creates or replaces a goal.
func (s *Store) SetGoal(ctx context.Context, g experiments.Goal) error {
	if err := g.Validate(); err != nil {
		return err
	}
	return s.setJSON(ctx, "goal", s.goalsTable(), g.Name, g)
}

// DeleteGoal removes a goal; its conversions stay. Deleting a goal that
// is not set is not an error.
func (s *Store) DeleteGoal(ctx context.Context, name string) error {
	if err := experiments.ValidateGoalName(name); err != nil {
		return err
	}
	return s.deleteJSON(ctx, "goal", s.goalsTable(), name)
}

// SetExperimentMeta sets the notes, archived state and winner of the
// experiment whose main flag is flag; the zero ExperimentMeta removes
// them. m is checked with m.Validate(flag): the error wraps
// experiments.ErrInvalid. The write is audited with entity "meta".
func (s *Store) SetExperimentMeta(ctx context.Context, flag string, m experiments.ExperimentMeta) error {
	if err := m.Validate(flag); err != nil {
		return err
	}
	if m.IsZero() {
		return s.deleteJSON(ctx, "meta", s.metaTable(), flag)
	}
	return s.setJSON(ctx, "meta", s.metaTable(), flag, m)
}

// jsonTable is a configuration table of setJSON and deleteJSON: one row
// per key, with the value as JSON.
type jsonTable struct {
	name  string // quoted and qualified by schema
	key   string // the text primary key column
	value string // the jsonb column
}

func (s *Store) flagsTable() jsonTable { return jsonTable{s.t.flags, "name", "rule"} }
func (s *Store) goalsTable() jsonTable { return jsonTable{s.t.goals, "name", "goal"} }
func (s *Store) metaTable() jsonTable  { return jsonTable{s.t.meta, "flag", "meta"} }

// setJSON creates or replaces the row key of t with v as JSON.
func (s *Store) setJSON(ctx context.Context, entity string, t jsonTable, key string, v any) error {
	value, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.write(ctx, entity, key, true, func(tx *sqlx.Tx, actor string) ([]byte, []byte, error) {
		old, err := oldJSON(ctx, tx, "SELECT "+t.value+" FROM "+t.name+" WHERE "+t.key+" = $1", key)
		if err != nil {
			return nil, nil, err
		}
		_, err = tx.ExecContext(ctx, "INSERT INTO "+t.name+" ("+t.key+", "+t.value+", updated_by) VALUES ($1, $2, $3) "+
			"ON CONFLICT ("+t.key+") DO UPDATE SET "+t.value+" = excluded."+t.value+", updated_at = now(), updated_by = excluded.updated_by",
			key, value, actor)
		return old, value, err
	})
}

// deleteJSON removes the row key of t.
func (s *Store) deleteJSON(ctx context.Context, entity string, t jsonTable, key string) error {
	return s.write(ctx, entity, key, true, func(tx *sqlx.Tx, _ string) ([]byte, []byte, error) {
		old, err := oldJSON(ctx, tx, "DELETE FROM "+t.name+" WHERE "+t.key+" = $1 RETURNING "+t.value, key)
		return old, nil, err
	})
}

// SetCourseOverride forces flag name on or off in one course; Unset
// removes the override.
func (s *Store) SetCourseOverride(ctx context.Context, name, courseKey string, st experiments.State) error {
	if err := experiments.ValidateCourseOverride(name, courseKey, st); err != nil {
		return err
	}
	return s.setOverride(ctx, "course_override", s.t.courseOverrides, "course_key", name, courseKey, st)
}

// SetOrgOverride forces flag name on or off in every course of an org;
// Unset removes the override.
func (s *Store) SetOrgOverride(ctx context.Context, name, org string, st experiments.State) error {
	if err := experiments.ValidateOrgOverride(name, org, st); err != nil {
		return err
	}
	return s.setOverride(ctx, "org_override", s.t.orgOverrides, "org", name, org, st)
}

func (s *Store) setOverride(ctx context.Context, entity, table, column, name, key string, st experiments.State) error {
	return s.write(ctx, entity, name+" "+key, true, func(tx *sqlx.Tx, actor string) ([]byte, []byte, error) {
		var old sql.NullInt16
		err := tx.GetContext(ctx, &old, "DELETE FROM "+table+" WHERE flag = $1 AND "+column+" = $2 RETURNING state", name, key)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, nil, err
		}
		if st != experiments.Unset {
			_, err = tx.ExecContext(ctx, "INSERT INTO "+table+" (flag, "+column+", state, updated_by) VALUES ($1, $2, $3, $4)",
				name, key, int(st), actor)
			if err != nil {
				return nil, nil, err
			}
		}
		return stateJSON(old), stateJSON(sql.NullInt16{Int16: int16(st), Valid: st != experiments.Unset}), nil
	})
}

// SetExperimentValue sets a key of an experiment's values, such as
// experiments.EnrollmentStart; an empty value removes the key.
func (s *Store) SetExperimentValue(ctx context.Context, experimentID int, key, value string) error {
	if err := experiments.ValidateExperimentValue(experimentID, key, value); err != nil {
		return err
	}
	return s.write(ctx, "value", fmt.Sprintf("%d %s", experimentID, key), true, func(tx *sqlx.Tx, actor string) ([]byte, []byte, error) {
		old, err := oldJSON(ctx, tx, "DELETE FROM "+s.t.values+" WHERE experiment_id = $1 AND key = $2 RETURNING to_jsonb(value)", experimentID, key)
		if err != nil || value == "" {
			return old, nil, err
		}
		_, err = tx.ExecContext(ctx, "INSERT INTO "+s.t.values+" (experiment_id, key, value, updated_by) VALUES ($1, $2, $3, $4)",
			experimentID, key, value, actor)
		return old, jsonString(value), err
	})
}

// SetEnrollment records that userID enrolled in courseKey at created,
// truncated to the microsecond (PostgreSQL would round it).
func (s *Store) SetEnrollment(ctx context.Context, userID, courseKey string, created time.Time) error {
	if err := experiments.ValidateEnrollment(userID, courseKey); err != nil {
		return err
	}
	return s.write(ctx, "enrollment", userID+" "+courseKey, false, func(tx *sqlx.Tx, actor string) ([]byte, []byte, error) {
		old, err := oldJSON(ctx, tx, "SELECT to_jsonb(created) FROM "+s.t.enrollments+" WHERE user_id = $1 AND course_key = $2 FOR UPDATE", userID, courseKey)
		if err != nil {
			return nil, nil, err
		}
		_, err = tx.ExecContext(ctx, "INSERT INTO "+s.t.enrollments+" (user_id, course_key, created, updated_by) VALUES ($1, $2, $3, $4) "+
			"ON CONFLICT (user_id, course_key) DO UPDATE SET created = excluded.created, updated_at = now(), updated_by = excluded.updated_by",
			userID, courseKey, created.Truncate(time.Microsecond), actor)
		stamp, _ := json.Marshal(created.Truncate(time.Microsecond).UTC())
		return old, stamp, err
	})
}

// write runs one write in one transaction with its audit row. Writes that
// change the configuration (config) bump the version and notify every
// store, this one included, which reloads before write returns.
func (s *Store) write(ctx context.Context, entity, key string, config bool,
	change func(tx *sqlx.Tx, actor string) (old, new []byte, err error)) error {
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		// Bumping the version first also serializes configuration writes,
		// so each audit row's old value is the one it replaced.
		var actor string
		if config {
			var version int64
			row := tx.QueryRowxContext(ctx, "UPDATE "+s.t.version+" SET version = version + 1 RETURNING version, COALESCE(NULLIF($1, ''), session_user)", actorOf(ctx))
			if err := row.Scan(&version, &actor); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, "SELECT pg_notify($1, $2)", s.channel, fmt.Sprint(version)); err != nil {
				return err
			}
		} else if err := tx.GetContext(ctx, &actor, "SELECT COALESCE(NULLIF($1, ''), session_user)", actorOf(ctx)); err != nil {
			return err
		}
		old, new, err := change(tx, actor)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "INSERT INTO "+s.t.audit+" (actor, entity, key, old, new) VALUES ($1, $2, $3, $4, $5)",
			actor, entity, key, nullJSON(old), nullJSON(new))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlstore: %s %s: %w", entity, key, err)
	}
	if config {
		// Read your writes: the notification would come, but later.
		if err := s.reload(ctx); err != nil {
			s.log.Warn("sqlstore: reload after a write failed; the poll will retry", "err", err)
		}
	}
	return nil
}

func (s *Store) inTx(ctx context.Context, fn func(*sqlx.Tx) error) error {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// oldJSON runs a query returning at most one jsonb value; nil when none.
func oldJSON(ctx context.Context, tx *sqlx.Tx, query string, args ...any) ([]byte, error) {
	var b []byte
	err := tx.GetContext(ctx, &b, query, args...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return b, err
}

func stateJSON(s sql.NullInt16) []byte {
	if !s.Valid {
		return nil
	}
	return jsonString(experiments.State(s.Int16).String())
}

func jsonString(s string) []byte {
	b, _ := json.Marshal(s)
	return b
}

// nullJSON makes a missing value SQL NULL rather than an empty jsonb.
func nullJSON(b []byte) any {
	if b == nil {
		return nil
	}
	return string(b)
}
