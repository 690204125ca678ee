package experiments

import (
	"fmt"
	"slices"
)

// ValueType says how a goal's values are summed up in results, as in
// manhattan: counted, summed, averaged per conversion or per participant.
type ValueType int

const (
	// ValueCount counts conversions; values are ignored.
	ValueCount ValueType = iota
	// ValueSum sums the values (revenue, minutes watched).
	ValueSum
	// ValueAverage divides the sum of the values by the conversions (for a
	// Once goal, by the participants who converted).
	ValueAverage
	// ValuePerParticipant divides the sum of the values by the
	// participants, converted or not.
	ValuePerParticipant
)

// String returns "count", "sum", "average" or "per-participant".
func (v ValueType) String() string {
	switch v {
	case ValueCount:
		return "count"
	case ValueSum:
		return "sum"
	case ValueAverage:
		return "average"
	case ValuePerParticipant:
		return "per-participant"
	}
	return "ValueType(" + itoa(int(v)) + ")"
}

// MarshalText encodes v as its String, for JSON.
func (v ValueType) MarshalText() ([]byte, error) {
	if v < ValueCount || v > ValuePerParticipant {
		return nil, fmt.Errorf("%w: value type %d", ErrInvalid, int(v))
	}
	return []byte(v.String()), nil
}

// UnmarshalText decodes "count", "sum", "average" or "per-participant".
func (v *ValueType) UnmarshalText(b []byte) error {
	for t := ValueCount; t <= ValuePerParticipant; t++ {
		if string(b) == t.String() {
			*v = t
			return nil
		}
	}
	return fmt.Errorf("%w: value type %q: want count, sum, average or per-participant", ErrInvalid, b)
}

// Goal is something users reach that experiments are judged by. Declare
// goals in the store (SetGoal); Convert records that the request's user
// reached one. A conversion counts for every experiment the user was
// exposed to before it.
type Goal struct {
	// Name identifies the goal: 1 to 255 ASCII letters, digits, '_', '-'
	// and '.'.
	Name string `json:"name"`
	// Once makes the goal binary, like gae_bingo's conversions: a user
	// converts at most once per experiment, however often they reach it.
	// Otherwise every conversion counts.
	Once bool `json:"once,omitempty"`
	// Value says how the conversions' values are summed up.
	Value ValueType `json:"value,omitempty"`
	// Include makes the goal complex: a user reaches it when they have
	// reached every goal of Include and none of Exclude. A complex goal is
	// binary and has no value; Convert refuses it (its goals are
	// converted instead).
	Include []string `json:"include,omitempty"`
	// Exclude lists the goals that keep a user from a complex goal.
	Exclude []string `json:"exclude,omitempty"`
}

// Complex reports whether g is reached through other goals.
func (g Goal) Complex() bool { return len(g.Include) > 0 }

// Validate reports the first field of g that a store would refuse, as an
// error wrapping ErrInvalid.
func (g Goal) Validate() error {
	if err := ValidateGoalName(g.Name); err != nil {
		return err
	}
	if g.Value < ValueCount || g.Value > ValuePerParticipant {
		return fmt.Errorf("%w: goal %s: value type %d: want ValueCount, ValueSum, ValueAverage or ValuePerParticipant", ErrInvalid, g.Name, int(g.Value))
	}
	if len(g.Exclude) > 0 && !g.Complex() {
		return fmt.Errorf("%w: goal %s: exclude without include", ErrInvalid, g.Name)
	}
	if g.Complex() && g.Value != ValueCount {
		return fmt.Errorf("%w: goal %s: a complex goal has no value (value type %s)", ErrInvalid, g.Name, g.Value)
	}
	for field, names := range map[string][]string{"include": g.Include, "exclude": g.Exclude} {
		for i, n := range names {
			if err := ValidateGoalName(n); err != nil {
				return fmt.Errorf("goal %s %s[%d]: %w", g.Name, field, i, err)
			}
			if n == g.Name {
				return fmt.Errorf("%w: goal %s %s[%d]: the goal itself", ErrInvalid, g.Name, field, i)
			}
		}
	}
	for _, n := range g.Include {
		if slices.Contains(g.Exclude, n) {
			return fmt.Errorf("%w: goal %s: %s is both included and excluded", ErrInvalid, g.Name, n)
		}
	}
	return nil
}

func (g Goal) clone() Goal {
	g.Include = slices.Clone(g.Include)
	g.Exclude = slices.Clone(g.Exclude)
	return g
}

// ValidateGoalName checks a goal name: 1 to 255 ASCII letters, digits,
// '_', '-' and '.'. The error wraps ErrInvalid.
func ValidateGoalName(name string) error {
	if name == "" || len(name) > maxNameLen {
		return fmt.Errorf("%w: goal name %.40q: want 1 to %d bytes", ErrInvalid, name, maxNameLen)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !nameByte(c) && c != '.' {
			return fmt.Errorf("%w: goal name %q: character %q is not allowed (letters, digits, '_', '-', '.')", ErrInvalid, name, c)
		}
	}
	return nil
}
