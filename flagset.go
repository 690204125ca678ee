package experiments

import (
	"fmt"
	"runtime"
	"sync"
)

// FlagSet is a set of experiment flags in which each full name
// ("namespace.name") is declared once. NewFlag declares in DefaultFlagSet,
// as the standard flag package's functions declare in flag.CommandLine:
// two declarations of one name would be two experiments sharing one main
// flag, its bucket flags and its events, perhaps with different bucket
// counts, so the second panics at start-up.
//
// Tests that declare a flag again on purpose (a flag with more buckets, as
// after a deploy) declare it in a FlagSet of their own:
//
//	v2 := experiments.NewFlagSet().NewFlag("course_experience", "upgrade_button", experiments.WithBuckets(3))
//
// A FlagSet is safe for concurrent use.
type FlagSet struct {
	mu    sync.Mutex
	flags map[string]declared
	order []*ExperimentFlag
}

// declared is a flag of a FlagSet and where it was declared.
type declared struct {
	flag  *ExperimentFlag
	where string // file:line of the call to NewFlag, or "" if unknown
}

// DefaultFlagSet is the set that NewFlag declares flags in.
var DefaultFlagSet = NewFlagSet()

// NewFlagSet returns an empty FlagSet.
func NewFlagSet() *FlagSet { return &FlagSet{flags: make(map[string]declared)} }

// NewFlag is the package's NewFlag, declaring in s. It panics, as NewFlag
// does, on an invalid flag, and when s already has a flag of the same
// full name; the message names where that one was declared.
func (s *FlagSet) NewFlag(namespace, name string, opts ...FlagOption) *ExperimentFlag {
	return s.declare(newFlag(namespace, name, opts), caller(2))
}

// Lookup returns the flag of s named "namespace.name", or nil.
func (s *FlagSet) Lookup(name string) *ExperimentFlag {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flags[name].flag
}

// All returns the flags of s in the order they were declared.
func (s *FlagSet) All() []*ExperimentFlag {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*ExperimentFlag(nil), s.order...)
}

// declare adds f, declared at where, to s.
func (s *FlagSet) declare(f *ExperimentFlag, where string) *ExperimentFlag {
	s.mu.Lock()
	defer s.mu.Unlock()
	if first, ok := s.flags[f.full]; ok {
		at := ""
		if first.where != "" {
			at = " (first declared at " + first.where + ")"
		}
		panic(fmt.Sprintf("experiments.NewFlag: flag redefined: %s%s", f.full, at))
	}
	if f.layer != nil {
		if err := f.layer.join(f); err != nil {
			panic(fmt.Sprintf("experiments.NewFlag %s: %v", f.full, err))
		}
	}
	s.flags[f.full] = declared{flag: f, where: where}
	s.order = append(s.order, f)
	return f
}

// caller returns "file:line" of the function skip frames above caller's
// caller, or "".
func caller(skip int) string {
	_, file, line, ok := runtime.Caller(skip)
	if !ok {
		return ""
	}
	return file + ":" + itoa(line)
}
