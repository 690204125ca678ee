package experiments

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"
)

// Exposure is the first bucketing of a user into an experiment (a flag,
// and a course when given). Results count it as a participant.
type Exposure struct {
	Flag      string // the flag's full name, "namespace.name"
	CourseKey string // "" when none
	UserID    string
	Bucket    int
	Time      time.Time
	// Dimensions are the values of Config.Dimensions for the user at the
	// exposure (absent values left out). Results break participants
	// down by them; stores keep those of the exposure they keep (the
	// earliest).
	Dimensions Dimensions
}

// MaxConversionValue bounds the magnitude of a conversion's value, so
// that sums of squares over millions of participants stay finite.
const MaxConversionValue = 1e15

// ValidateConversionValue checks a conversion's value: finite, at most
// MaxConversionValue in magnitude. The error wraps ErrInvalid.
func ValidateConversionValue(v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > MaxConversionValue {
		return fmt.Errorf("%w: conversion value %v: want a finite number of at most %g in magnitude", ErrInvalid, v, float64(MaxConversionValue))
	}
	return nil
}

// Conversion is a user reaching a goal.
type Conversion struct {
	Goal   string
	UserID string
	Value  float64 // 0 for goals without a value
	Time   time.Time
}

// Recorder keeps exposures and conversions for results. A store keeps an
// exposure once per user and experiment (the first), and every
// conversion. Calls come from requests: a recorder that does I/O queues.
// MemStore implements it; so does sqlstore.Store.
type Recorder interface {
	RecordExposure(ctx context.Context, e Exposure) error
	RecordConversion(ctx context.Context, c Conversion) error
}

var (
	// ErrUnknownGoal is wrapped by Convert's error for a goal the store
	// does not have.
	ErrUnknownGoal = errors.New("unknown goal")
	// ErrNoRequest is Convert's error for a context without request state.
	ErrNoRequest = errors.New("no request state in the context (Experiments.Middleware, Handler or NewContext)")
	// ErrNoRecorder is Convert's error when Config.Recorder is nil and the
	// store records nothing.
	ErrNoRecorder = errors.New("no Recorder: set Config.Recorder or use a store that records")
)

// Convert records that the request's user reached goal. It is
// ConvertValue with value 0, for goals that count.
func Convert(ctx context.Context, goal string) error { return ConvertValue(ctx, goal, 0) }

// ConvertValue records that the request's user reached goal, worth value
// (a price, minutes watched). Conversions of anonymous and masquerading
// users are ignored (nil error) and counted in Stats. A goal the store
// does not have gives an error wrapping ErrUnknownGoal; a complex goal or
// a value that is not finite or beyond MaxConversionValue, ErrInvalid.
func ConvertValue(ctx context.Context, goal string, value float64) error {
	sc := scopeOf(ctx)
	if sc == nil || sc.st == nil {
		return fmt.Errorf("experiments: convert %s: %w", goal, ErrNoRequest)
	}
	st := sc.st
	x := st.x
	if st.user.ID == "" || st.user.Masquerading {
		x.ignored.Add(1)
		return nil
	}
	if err := ValidateConversionValue(value); err != nil {
		return fmt.Errorf("experiments: convert %s: %w", goal, err)
	}
	if x.recorder == nil {
		return fmt.Errorf("experiments: convert %s: %w", goal, ErrNoRecorder)
	}
	snap, err := snapshot(ctx, x.store)
	if err != nil {
		return fmt.Errorf("experiments: convert %s: %w", goal, err)
	}
	g, ok := snap.data.Goals[goal]
	if !ok {
		return fmt.Errorf("experiments: convert %q: %w", goal, ErrUnknownGoal)
	}
	if g.Complex() {
		return fmt.Errorf("experiments: convert %s: %w: a complex goal is reached through its included goals", goal, ErrInvalid)
	}
	c := Conversion{Goal: goal, UserID: st.user.ID, Value: value, Time: x.now()}
	if err := safeCall(func() error { return x.recorder.RecordConversion(ctx, c) }); err != nil {
		return fmt.Errorf("experiments: convert %s: %w", goal, err)
	}
	x.converted.Add(1)
	return nil
}

// Stats are an Experiments' counters since New.
type Stats struct {
	Conversions        uint64 // recorded
	IgnoredConversions uint64 // of anonymous or masquerading users
}

// Stats returns the counters.
func (x *Experiments) Stats() Stats {
	return Stats{Conversions: x.converted.Load(), IgnoredConversions: x.ignored.Load()}
}

// counters are the Experiments' Stats.
type counters struct {
	converted, ignored atomic.Uint64
}
