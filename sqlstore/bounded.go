package sqlstore

import (
	"context"
	"time"
)

// maxLookups bounds the queries of one kind (enrollment lookups; sticky
// bucket reads and saves) running at once, so that queries abandoned on a
// hung database cannot take the whole pool.
const maxLookups = 8

// bounds holds what bounded needs to run the queries of one kind: each
// within timeout, at most maxLookups at once.
type bounds struct {
	timeout  time.Duration // 0: only the caller's context bounds a query
	inflight chan struct{} // a slot per query running, abandoned ones included
	busy     error         // the error of a query that found no slot before its deadline
}

func newBounds(timeout time.Duration, busy error) bounds {
	return bounds{timeout: timeout, inflight: make(chan struct{}, maxLookups), busy: busy}
}

// bounded runs query in the background, within b's timeout, and returns
// at the deadline even if the database does not answer: lib/pq cancels a
// query by asking the server and waiting for its answer, so a hung server
// or a dropped network would hold the call past ctx. An abandoned query
// ends in the background, holding its connection and its slot until then;
// with every slot taken, calls wait for one until their deadline rather
// than pile up, then fail with b.busy.
func bounded[T any](ctx context.Context, b *bounds, query func(context.Context) (T, error)) (T, error) {
	var zero T
	parent := ctx
	if b.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, b.timeout)
		defer cancel()
	}
	select {
	case b.inflight <- struct{}{}:
	case <-ctx.Done():
		if err := parent.Err(); err != nil {
			return zero, err // the caller gave up, not the queries
		}
		return zero, b.busy
	}
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		defer func() { <-b.inflight }()
		v, err := query(ctx)
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}
