// Package queuestats counts what a bounded queue written in batches in
// the background did with its rows, as experiments.QueueStats reports
// them. sqlstore's tracker and recorder and segment's Tracker count with
// it, so their Stats mean the same.
package queuestats

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/abkit/experiments"
)

// Counters are a queue's counters. Every row offered ends up in exactly
// one of Queued, Written and Dropped. Code that counts a batch's outcome
// changes its counters in the reverse of the order Stats reads them
// (Queued, Written, Dropped, Batches, FailedBatches, Retries), so that a
// Stats that sees the rows sees their batch too: Batches or FailedBatches
// first, then Wrote or GaveUp. The zero value is ready; it is safe for
// concurrent use.
type Counters struct {
	// Queued counts the rows accepted and not yet written or given up. An
	// owner adds 1 before handing a row over, since its writer may be done
	// with it first, and takes it back with Unqueue if the handing over
	// fails.
	Queued atomic.Int64
	// Batches counts the batches written, FailedBatches those given up,
	// Retries the attempts at a batch after a failed one.
	Batches, FailedBatches, Retries atomic.Uint64

	written, dropped atomic.Uint64
	lost             atomic.Uint64 // the part of dropped given up after being queued
	lostAtClose      atomic.Uint64 // lost when the owner began to close
	lostReported     uint64        // lost when TakeLost last ran, under errMu

	errMu   sync.Mutex
	lastErr error // of the last rows given up
}

// Stats returns the counters.
func (c *Counters) Stats() experiments.QueueStats {
	return experiments.QueueStats{
		Queued:        int(max(c.Queued.Load(), 0)),
		Written:       c.written.Load(),
		Dropped:       c.dropped.Load(),
		Batches:       c.Batches.Load(),
		FailedBatches: c.FailedBatches.Load(),
		Retries:       c.Retries.Load(),
	}
}

// Drop counts a row refused before it was queued.
func (c *Counters) Drop() { c.dropped.Add(1) }

// Unqueue counts a row added to Queued and then refused as dropped.
func (c *Counters) Unqueue() {
	c.Queued.Add(-1)
	c.dropped.Add(1)
}

// Wrote counts n queued rows written.
func (c *Counters) Wrote(n int) {
	c.written.Add(uint64(n))
	c.Queued.Add(-int64(n))
}

// GaveUp counts n queued rows given up because of err, which LastError
// returns from then on.
func (c *Counters) GaveUp(n int, err error) {
	c.errMu.Lock()
	c.lastErr = err
	c.errMu.Unlock()
	c.lost.Add(uint64(n))
	c.dropped.Add(uint64(n))
	c.Queued.Add(-int64(n))
}

// LastError returns the error of the last rows given up, or nil.
func (c *Counters) LastError() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.lastErr
}

// TakeLost returns how many queued rows were given up since its last
// call (or since the start) and why, and counts them as reported. A flush
// reports with it once its rows are written or given up: a row given up
// before the flush began (a writer may be that quick) is still reported,
// and by one flush only.
func (c *Counters) TakeLost() (uint64, error) {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	now := c.lost.Load()
	n := now - c.lostReported
	c.lostReported = now
	return n, c.lastErr
}

// Closing notes that the owner begins to close: AwaitClosed reports the
// rows given up from then on. Call it once, before the owner stops its
// writers.
func (c *Counters) Closing() { c.lostAtClose.Store(c.lost.Load()) }

// AwaitClosed waits for done, closed by the owner when its writers have
// returned. If ctx ends first, it cancels the writers' context work with
// ctx's error and still waits for done (the cancel makes that quick). It
// returns how many rows were given up since Closing and why: work's
// cause if it was cancelled (by this call or a concurrent one, so that
// every call reports the same outcome), else LastError.
func (c *Counters) AwaitClosed(ctx, work context.Context, cancel context.CancelCauseFunc, done <-chan struct{}) (lost uint64, cause error) {
	select {
	case <-done:
	case <-ctx.Done():
		cancel(ctx.Err())
		<-done
	}
	lost = c.lost.Load() - c.lostAtClose.Load()
	if lost == 0 {
		return 0, nil
	}
	if cause = context.Cause(work); cause == nil {
		cause = c.LastError()
	}
	return lost, cause
}
