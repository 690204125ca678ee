package experiments

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
)

// DecisionFunc observes decisions (Config.OnDecision): metrics, traces,
// debugging. It is called once per Bucket, IsEnabled, Decide and
// DecideUntracked call that has request state, cached decisions included
// (Reason ReasonCached), so that the calls it sees add up to the calls
// made. Calls without request state (ReasonNoRequest) have no
// Experiments, and are not observed.
//
// It is called synchronously, after the decision and outside the
// request's lock, before Bucket returns, from every request at once: it
// must be safe for concurrent use and fast (count, do no I/O), and must
// not decide flags itself. ctx is the context Bucket was given. A panic
// in it is recovered, and the first one is logged: the decision stands.
type DecisionFunc func(ctx context.Context, f *ExperimentFlag, courseKey string, d Decision)

// observer is the part of Experiments that reports decisions.
type observer struct {
	onDecision DecisionFunc // Config.OnDecision; nil: decisions are not observed
	panicked   atomic.Bool  // onDecision panicked (and that was logged)
}

// observing is set for good once an Experiments with Config.OnDecision
// is made in the process; ExperimentFlag.observed then decides with
// decideObserved rather than decide. Finding out whether the request's
// Experiments observes takes a context lookup, and a wrapper around
// decideIn that is not inlined costs cached decisions a third of their
// time (a Decision does not fit in registers: it is copied through
// memory), so processes without OnDecision pay for neither: decide stays
// small enough to be inlined (its cost is at the budget: check with
// go build -gcflags=-m after changing it), and calls decideIn directly.
// Benchmarks run after a test that made such an Experiments measure the
// observed path: benchmark with -run '^$'.
var observing atomic.Bool

// newObserver returns the observer of Config.OnDecision fn.
func newObserver(fn DecisionFunc) observer {
	if fn != nil {
		observing.Store(true)
	}
	return observer{onDecision: fn}
}

// observed is decide, reported to Config.OnDecision: see observing.
func (f *ExperimentFlag) observed(ctx context.Context, courseKey string, q ask) Decision {
	do := (*ExperimentFlag).decide
	if observing.Load() {
		do = (*ExperimentFlag).decideObserved
	}
	return do(f, ctx, courseKey, q)
}

// decideObserved is decide, reported to the request's Config.OnDecision
// if it has one.
func (f *ExperimentFlag) decideObserved(ctx context.Context, courseKey string, q ask) Decision {
	d := f.decide(ctx, courseKey, q)
	if sc := scopeOf(ctx); sc != nil && sc.st != nil && sc.st.x.onDecision != nil {
		sc.st.x.observe(ctx, f, courseKey, d)
	}
	return d
}

// observe calls Config.OnDecision, recovering from its panics.
func (x *Experiments) observe(ctx context.Context, f *ExperimentFlag, courseKey string, d Decision) {
	defer func() {
		if p := recover(); p != nil && !x.panicked.Swap(true) {
			x.log.LogAttrs(ctx, slog.LevelError, "experiments: Config.OnDecision panicked; the decision stands, later panics are not logged",
				slog.String("flag", f.full), slog.String("course", courseKey), slog.Any("panic", fmt.Sprint(p)))
		}
	}()
	x.onDecision(ctx, f, courseKey, d)
}
