package queuestats

import (
	"context"
	"errors"
	"testing"

	"github.com/abkit/experiments"
)

// Every row offered ends in exactly one of Queued, Written and Dropped.
func TestCountersAccountForEveryRow(t *testing.T) {
	var c Counters
	c.Drop() // refused before queueing
	for range 10 {
		c.Queued.Add(1)
	}
	c.Unqueue() // queued, then refused
	c.Batches.Add(1)
	c.Wrote(5)
	c.FailedBatches.Add(1)
	c.GaveUp(3, errors.New("boom"))
	c.Retries.Add(2)
	want := experiments.QueueStats{Queued: 1, Written: 5, Dropped: 5, Batches: 1, FailedBatches: 1, Retries: 2}
	if got := c.Stats(); got != want {
		t.Errorf("Stats %+v, want %+v", got, want)
	}
	if n, err := c.TakeLost(); n != 3 || err == nil || err.Error() != "boom" || c.LastError() != err {
		t.Errorf("TakeLost %d, %v, LastError %v; want 3, boom", n, err, c.LastError())
	}
}

// AwaitClosed reports only what was given up after Closing, with the
// last error as the cause.
func TestAwaitClosedReportsWhatWasLostSinceClosing(t *testing.T) {
	var c Counters
	c.GaveUp(2, errors.New("before"))
	c.Closing()
	work, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	done := make(chan struct{})
	close(done)
	if lost, cause := c.AwaitClosed(context.Background(), work, cancel, done); lost != 0 || cause != nil {
		t.Errorf("nothing lost since Closing: got %d, %v", lost, cause)
	}
	c.GaveUp(4, errors.New("after"))
	if lost, cause := c.AwaitClosed(context.Background(), work, cancel, done); lost != 4 || cause == nil || cause.Error() != "after" {
		t.Errorf("got %d, %v; want 4, after", lost, cause)
	}
}

// When ctx ends first, AwaitClosed cancels the writers with ctx's error,
// still waits for them, and reports that error: to every caller, also
// one whose own ctx did not end.
func TestAwaitClosedCancelsWhenItsContextEnds(t *testing.T) {
	var c Counters
	c.Closing()
	work, cancel := context.WithCancelCause(context.Background())
	done := make(chan struct{})
	go func() { // a writer that gives its batch up once cancelled
		<-work.Done()
		c.GaveUp(7, context.Cause(work))
		close(done)
	}()
	ctx, stop := context.WithCancel(context.Background())
	stop()
	lost, cause := c.AwaitClosed(ctx, work, cancel, done)
	if lost != 7 || !errors.Is(cause, context.Canceled) {
		t.Errorf("got %d, %v; want 7, context.Canceled", lost, cause)
	}
	c.GaveUp(1, errors.New("later")) // LastError changes, the cause does not
	if _, cause := c.AwaitClosed(context.Background(), work, cancel, done); !errors.Is(cause, context.Canceled) {
		t.Errorf("second caller: cause %v, want context.Canceled", cause)
	}
}

// TakeLost reports each row given up once, to the first flush that asks,
// whenever it was given up.
func TestTakeLostReportsEachLossOnce(t *testing.T) {
	var c Counters
	if n, err := c.TakeLost(); n != 0 || err != nil {
		t.Errorf("nothing lost: got %d, %v", n, err)
	}
	c.GaveUp(2, errors.New("first"))
	c.GaveUp(1, errors.New("second"))
	if n, err := c.TakeLost(); n != 3 || err == nil || err.Error() != "second" {
		t.Errorf("got %d, %v; want 3, second", n, err)
	}
	if n, _ := c.TakeLost(); n != 0 {
		t.Errorf("taken again: %d, want 0", n)
	}
	c.GaveUp(4, errors.New("third"))
	if n, _ := c.TakeLost(); n != 4 {
		t.Errorf("after a new loss: %d, want 4", n)
	}
	if got := c.Stats().Dropped; got != 7 {
		t.Errorf("Dropped %d, want 7: TakeLost does not change the counters", got)
	}
}
