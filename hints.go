package experiments

import (
	"context"
	"log/slog"
	"sync/atomic"
)

// Mistakes of set-up that leave every flag at control work, as the
// fail-safe rule wants, but silently: these hints say so, once.

// noRequestHinted is set once hintNoRequest has logged.
var noRequestHinted atomic.Bool

// hintNoRequest logs, once per process to slog.Default(), that f was
// decided without request state: the middleware is missing from the
// route, or a handler passed a context that is not the request's. There
// is no Experiments (and so no Config.Logger) to log to.
func hintNoRequest(ctx context.Context, f *ExperimentFlag) {
	if noRequestHinted.Load() || noRequestHinted.Swap(true) {
		return
	}
	slog.Default().LogAttrs(ctx, slog.LevelWarn,
		"experiments: a flag was decided without request state, so it gives control: install Experiments.Middleware (echo) or Experiments.Handler (net/http) on the route and pass the request's context, or use Experiments.NewContext outside HTTP; logged once",
		slog.String("flag", f.full))
}

// hintNoStore logs that New was given no Store.
func (x *Experiments) hintNoStore() {
	x.log.LogAttrs(context.Background(), slog.LevelWarn,
		"experiments: Config.Store is nil, so flags live in an empty MemStore and every flag is off until set in it: pass the MemStore or sqlstore.Store you set flags in")
}
