package experiments_test

import (
	"strings"
	"testing"

	"github.com/abkit/experiments"
)

// panicOf returns what fn panicked with, or nil.
func panicOf(fn func()) (p any) {
	defer func() { p = recover() }()
	fn()
	return nil
}

func TestNewFlagPanicsOnMistakes(t *testing.T) {
	tests := []struct {
		name string
		opts []experiments.FlagOption
		ns   string
		want string // in the panic's message
	}{
		{"nok, one bucket is control alone", []experiments.FlagOption{experiments.WithBuckets(1)}, "flag_test", "WithBuckets(1): want 2 to 1024"},
		{"nok, no bucket", []experiments.FlagOption{experiments.WithBuckets(0)}, "flag_test", "WithBuckets(0): want 2 to 1024"},
		{"nok, too many buckets", []experiments.FlagOption{experiments.WithBuckets(1025)}, "flag_test", "WithBuckets(1025): want 2 to 1024"},
		{"nok, negative experiment ID", []experiments.FlagOption{experiments.WithExperimentID(-1)}, "flag_test", "WithExperimentID(-1)"},
		{"nok, a namespace with a dot", nil, "flag.test", `namespace "flag.test"`},
		{"nok, an empty namespace", nil, "", `namespace ""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := panicOf(func() { experiments.NewFlagSet().NewFlag(tt.ns, "mistake", tt.opts...) })
			if msg, _ := p.(string); !strings.Contains(msg, tt.want) {
				t.Errorf("NewFlag panicked with %v, want a message with %q", p, tt.want)
			}
		})
	}
	t.Run("ok, two buckets", func(t *testing.T) {
		if f := experiments.NewFlagSet().NewFlag("flag_test", "two", experiments.WithBuckets(2)); f.Buckets() != 2 {
			t.Errorf("Buckets() = %d, want 2", f.Buckets())
		}
	})
}

// NewFlag declares in DefaultFlagSet: a second declaration of a name
// panics, like the standard flag package's, and says where the first is.
func TestNewFlagPanicsOnARedefinedName(t *testing.T) {
	// upgradeButton of example_test.go is course_experience.upgrade_button.
	p := panicOf(func() { experiments.NewFlag("course_experience", "upgrade_button", experiments.WithBuckets(3)) })
	msg, _ := p.(string)
	if !strings.Contains(msg, "flag redefined: course_experience.upgrade_button") || !strings.Contains(msg, "example_test.go:") {
		t.Errorf("NewFlag of a declared name panicked with %v, want \"flag redefined\" and where the first was declared", p)
	}
	if got := experiments.DefaultFlagSet.Lookup("course_experience.upgrade_button"); got != upgradeButton {
		t.Errorf("DefaultFlagSet.Lookup = %p, want the first declaration %p", got, upgradeButton)
	}
}

func TestFlagSet(t *testing.T) {
	s := experiments.NewFlagSet()
	a := s.NewFlag("flagset_test", "a")
	b := s.NewFlag("flagset_test", "b", experiments.WithBuckets(3))
	if p := panicOf(func() { s.NewFlag("flagset_test", "a") }); p == nil {
		t.Error("a second flagset_test.a in one FlagSet: no panic")
	}
	if p := panicOf(func() { s.NewFlag("flagset_test", "1bad!") }); p == nil {
		t.Error("an invalid name: no panic")
	}
	if got := s.All(); len(got) != 2 || got[0] != a || got[1] != b {
		t.Errorf("All() = %v, want [a b] in the order declared", got)
	}
	if s.Lookup("flagset_test.b") != b || s.Lookup("flagset_test.c") != nil {
		t.Error("Lookup does not find b, or finds a flag never declared")
	}
	// Another set, and DefaultFlagSet, are unaffected.
	if other := experiments.NewFlagSet().NewFlag("flagset_test", "a"); other == a {
		t.Error("a second FlagSet returned the first one's flag")
	}
	if experiments.DefaultFlagSet.Lookup("flagset_test.a") != nil {
		t.Error("a FlagSet's flag is in DefaultFlagSet")
	}
	// All returns a copy.
	s.All()[0] = nil
	if s.All()[0] != a {
		t.Error("changing All's slice changed the set")
	}
}
