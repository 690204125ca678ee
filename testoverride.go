package experiments

import (
	"context"
	"fmt"
	"slices"
)

// processOverride is one Override call still in effect.
type processOverride struct {
	id     uint64
	active bool
	bucket int
}

// ctxOverride is one WithOverride call, linked to the ones of outer
// contexts.
type ctxOverride struct {
	flag   *ExperimentFlag
	active bool
	bucket int
	next   *ctxOverride
}

// resolved is the override that applies to a call.
type resolved struct {
	active bool
	bucket int
}

// decision is the override's decision, or for IsExperimentOn whether it
// is active.
func (o resolved) decision(f *ExperimentFlag, q ask) Decision {
	if q == askMainFlag {
		return mainFlagOn(o.active)
	}
	if !o.active {
		return Decision{Reason: ReasonOverride}
	}
	if o.bucket < 0 || o.bucket >= f.buckets {
		return Decision{Reason: ReasonError, Err: fmt.Errorf("%s: %w: override bucket %d: want 0 to %d", f.full, ErrInvalid, o.bucket, f.buckets-1)}
	}
	return Decision{Bucket: o.bucket, Reason: ReasonOverride}
}

// Override pins the flag for the whole process until restore is called:
// active=false gives bucket 0 and IsExperimentOn false; active=true gives
// bucket and IsExperimentOn true. No event is emitted and the store is not
// read. Overrides nest: the latest one still in effect wins, and restore
// functions may be called in any order (each once; more calls do nothing).
// A WithOverride in the context beats it.
//
//	t.Cleanup(flag.Override(true, 1))
//
// Override panics when active and bucket is not in [0, Buckets()). It is
// meant for tests; under t.Parallel use WithOverride.
func (f *ExperimentFlag) Override(active bool, bucket int) (restore func()) {
	if !active {
		bucket = 0
	}
	if bucket < 0 || bucket >= f.buckets {
		panic(fmt.Sprintf("experiments: %s.Override(true, %d): bucket must be 0 to %d", f.full, bucket, f.buckets-1))
	}
	f.overrideMu.Lock()
	defer f.overrideMu.Unlock()
	f.overrideID++
	id := f.overrideID
	var stack []processOverride
	if p := f.overrides.Load(); p != nil {
		stack = slices.Clone(*p)
	}
	stack = append(stack, processOverride{id: id, active: active, bucket: bucket})
	f.overrides.Store(&stack)
	return func() { f.restore(id) }
}

func (f *ExperimentFlag) restore(id uint64) {
	f.overrideMu.Lock()
	defer f.overrideMu.Unlock()
	p := f.overrides.Load()
	if p == nil {
		return
	}
	stack := slices.DeleteFunc(slices.Clone(*p), func(o processOverride) bool { return o.id == id })
	if len(stack) == 0 {
		f.overrides.Store(nil)
		return
	}
	f.overrides.Store(&stack)
}

// WithOverride returns a context in which the flag is pinned like
// Override, for calls with that context (or one derived from it) only:
// safe under t.Parallel, and usable in a request (say, a staff preview of
// a variant). It works with or without request state, and before or after
// NewContext. A bucket outside [0, Buckets()) makes decisions give control
// with an error, rather than panic.
func (f *ExperimentFlag) WithOverride(ctx context.Context, active bool, bucket int) context.Context {
	if !active {
		bucket = 0
	}
	parent := scopeOf(ctx)
	o := &overrideCtx{Context: ctx}
	o.scope.ovr = &ctxOverride{flag: f, active: active, bucket: bucket}
	if parent != nil {
		o.scope.st = parent.st
		o.scope.ovr.next = parent.ovr
	}
	return o
}

// override returns the override in effect for f: the innermost WithOverride
// for f in the context, else the latest process-wide Override.
func (f *ExperimentFlag) override(sc *scope) (resolved, bool) {
	if sc != nil {
		for o := sc.ovr; o != nil; o = o.next {
			if o.flag == f {
				return resolved{o.active, o.bucket}, true
			}
		}
	}
	if p := f.overrides.Load(); p != nil {
		top := (*p)[len(*p)-1]
		return resolved{top.active, top.bucket}, true
	}
	return resolved{}, false
}

// overrideCtx carries WithOverride's scope.
type overrideCtx struct {
	context.Context
	scope scope
}

func (o *overrideCtx) Value(key any) any {
	if _, ok := key.(scopeKey); ok {
		return &o.scope
	}
	return o.Context.Value(key)
}
