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

// report reports *d, a decision for the request of st, to
// Config.OnDecision. decide calls it before each of its returns with
// request state; IsExperimentOn is not observed. Without
// Config.OnDecision it costs a load and a comparison: d is a pointer,
// so that decide returns its result without copying it through a
// temporary.
func (st *reqState) report(ctx context.Context, f *ExperimentFlag, courseKey string, q ask, d *Decision) {
	if st.x.onDecision != nil && q != askMainFlag {
		st.x.observe(ctx, f, courseKey, *d)
	}
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
