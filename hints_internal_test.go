package experiments

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/abkit/experiments/internal/syncbuf"
)

// A flag decided without the middleware gives control, and says why once
// in the process's log. The test swaps slog's default logger, so it does
// not run in parallel.
func TestNoRequestStateIsLoggedOnceWithAHint(t *testing.T) {
	var logs syncbuf.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	t.Cleanup(func() { slog.SetDefault(prev) })
	prevHinted := noRequestHinted.Swap(false)
	t.Cleanup(func() { noRequestHinted.Store(prevHinted) })

	f := NewFlagSet().NewFlag("hint_test", "no_request")
	for range 3 {
		if d := f.Decide(context.Background(), ""); d.Bucket != 0 || d.Reason != ReasonNoRequest {
			t.Fatalf("Decide without request state = %+v, want control, no_request", d)
		}
		if f.IsExperimentOn(context.Background(), "") {
			t.Fatal("IsExperimentOn without request state = true")
		}
	}
	out := logs.String()
	if n := strings.Count(out, "without request state"); n != 1 {
		t.Fatalf("the hint was logged %d times, want once:\n%s", n, out)
	}
	for _, want := range []string{"level=WARN", "Experiments.Middleware", "Experiments.Handler", "NewContext", "flag=hint_test.no_request"} {
		if !strings.Contains(out, want) {
			t.Errorf("the hint %q does not say %q", out, want)
		}
	}
}

// New without a Store works on an empty MemStore, and warns that every
// flag is off; with a Store it says nothing.
func TestNewWithoutAStoreLogsAHint(t *testing.T) {
	var logs syncbuf.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	x := New(Config{Logger: log})
	if _, ok := x.store.(*MemStore); !ok {
		t.Fatalf("store %T, want the default MemStore", x.store)
	}
	if _, ok := x.enrollments.(*MemStore); !ok {
		t.Errorf("enrollments %T, want the default MemStore's", x.enrollments)
	}
	out := logs.String()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "Config.Store is nil") || strings.Count(out, "\n") != 1 {
		t.Errorf("New(Config{}) logged %q, want one warning that Config.Store is nil", out)
	}
	logs = syncbuf.Buffer{}
	New(Config{Store: NewMemStore(), Logger: log})
	if out := logs.String(); out != "" {
		t.Errorf("New with a Store logged %q, want nothing", out)
	}
}
