package experiments

import (
	"fmt"
	"slices"
	"unicode/utf8"
)

// ExperimentMeta is what a store keeps about an experiment besides its
// flags: notes, whether it is archived, the winner forced on everyone,
// and the weights that replace the flag's WithWeights. Only Weights
// change decisions (a winner is forced through the flags; the meta keeps
// how to undo it). Set it with SetExperimentMeta; the zero value removes
// it.
type ExperimentMeta struct {
	// Notes are free text: the hypothesis, links, decisions.
	Notes string `json:"notes,omitempty"`
	// Archived takes the experiment off the list of live ones.
	Archived bool `json:"archived,omitempty"`
	// Winner, when set, is the bucket forced on everyone.
	Winner *Winner `json:"winner,omitempty"`
	// Weights, when set, replace the flag's WithWeights (or its equal
	// shares) at run time: one weight per bucket, control first, as
	// WithWeights takes them, and bucketed by WeightSlots slots the same
	// way. The store does not know the flag's number of buckets: weights
	// of another count are not used (see ExperimentFlag.WeightsIn).
	Weights []float64 `json:"weights,omitempty"`
}

// Winner is a bucket forced on everyone, and the rules it replaced.
type Winner struct {
	// Bucket is the winning bucket, 0 (control) to 1023.
	Bucket int `json:"bucket"`
	// Previous holds the rules of the main flag and of its bucket flags as
	// they were before the winner was forced, to restore them when it is
	// undone. A flag that was not set is absent.
	Previous map[string]Rule `json:"previous,omitempty"`
}

// MaxNotesLen is the longest ExperimentMeta.Notes, in bytes.
const MaxNotesLen = 10000

// IsZero reports whether m holds nothing.
func (m ExperimentMeta) IsZero() bool {
	return m.Notes == "" && !m.Archived && m.Winner == nil && m.Weights == nil
}

// Validate checks m as the meta of flag, as stores accept it: notes of at
// most MaxNotesLen bytes of UTF-8 without control characters other than
// tab and newline; a winner bucket from 0 to 1023 whose previous rules
// are valid rules of flag or its bucket flags; weights that
// ValidateWeights accepts for some number of buckets (2 to 1024). The
// error wraps ErrInvalid.
func (m ExperimentMeta) Validate(flag string) error {
	if err := ValidateFlagName(flag); err != nil {
		return err
	}
	if len(m.Notes) > MaxNotesLen {
		return fmt.Errorf("%w: experiment %s: notes are %d bytes: want at most %d", ErrInvalid, flag, len(m.Notes), MaxNotesLen)
	}
	if !utf8.ValidString(m.Notes) {
		return fmt.Errorf("%w: experiment %s: notes are not valid UTF-8", ErrInvalid, flag)
	}
	for _, r := range m.Notes {
		if r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0x7f || 0x80 <= r && r < 0xa0 {
			return fmt.Errorf("%w: experiment %s: notes hold control character %U", ErrInvalid, flag, r)
		}
	}
	if m.Weights != nil {
		if err := ValidateWeights(m.Weights, 0); err != nil {
			return fmt.Errorf("experiment %s: %w", flag, err)
		}
	}
	if m.Winner == nil {
		return nil
	}
	if m.Winner.Bucket < 0 || m.Winner.Bucket >= maxBucketFlag {
		return fmt.Errorf("%w: experiment %s: winner bucket %d: want 0 to %d", ErrInvalid, flag, m.Winner.Bucket, maxBucketFlag-1)
	}
	for name, r := range m.Winner.Previous {
		if parent, _, ok := bucketFlag(name); name != flag && !(ok && parent == flag) {
			return fmt.Errorf("%w: experiment %s: winner previous rule of %q: not the flag or one of its bucket flags", ErrInvalid, flag, name)
		}
		if err := r.Validate(); err != nil {
			return fmt.Errorf("experiment %s: winner previous rule of %s: %w", flag, name, err)
		}
	}
	return nil
}

func (m ExperimentMeta) clone() ExperimentMeta {
	m.Weights = slices.Clone(m.Weights)
	if m.Winner != nil {
		w := Winner{Bucket: m.Winner.Bucket, Previous: make(map[string]Rule, len(m.Winner.Previous))}
		for name, r := range m.Winner.Previous {
			w.Previous[name] = r.clone()
		}
		m.Winner = &w
	}
	return m
}
