package segment

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
)

// transport is the http.RoundTripper analytics-go posts the batches with
// (analytics.Config.Transport). It wraps the configured one for two
// things analytics-go does not do: cancel the requests when Close gives
// up (analytics-go's requests have no context), and count batches and
// retries for Stats. It tells the attempts at one batch by the batch's
// messageId, which analytics-go sets once and sends on each attempt. It
// passes every response on as it came, whatever its status.
type transport struct {
	base http.RoundTripper
	t    *Tracker
}

func (tr *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	t := tr.t
	b := readBatch(req)
	if t.attempts.retry(b.ID) {
		t.counts.Retries.Add(1)
	}
	if t.ctx.Err() != nil { // Close gave up: do not start a request
		if req.Body != nil {
			req.Body.Close()
		}
		t.attempts.failed(b)
		return nil, fmt.Errorf("segment: not sent: %w", context.Cause(t.ctx))
	}
	ctx, cancel := context.WithCancelCause(req.Context())
	stop := context.AfterFunc(t.ctx, func() { cancel(context.Cause(t.ctx)) })
	resp, err := tr.base.RoundTrip(req.WithContext(ctx))
	if err != nil {
		stop()
		cancel(nil)
		t.attempts.failed(b)
		return nil, err
	}
	if resp.StatusCode < 300 { // as analytics-go tells success
		t.counts.Batches.Add(1)
		t.attempts.sent(b.ID)
	} else {
		t.attempts.failed(b)
	}
	// The body is read after RoundTrip returns: keep the request's
	// context until it is closed.
	resp.Body = &releasingBody{ReadCloser: resp.Body, release: func() { stop(); cancel(nil) }}
	return resp, nil
}

// releasingBody calls release when the body is closed.
type releasingBody struct {
	io.ReadCloser
	once    sync.Once
	release func()
}

func (b *releasingBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.release)
	return err
}

// batchIDs are the messageIds of a batch request: the batch's and its
// events'.
type batchIDs struct {
	ID     string `json:"messageId"`
	Events []struct {
		ID string `json:"messageId"`
	} `json:"batch"`
}

// readBatch returns the IDs in req's body, read through req.GetBody so
// that req is untouched; none when there is no such body.
func readBatch(req *http.Request) batchIDs {
	var b batchIDs
	if req.GetBody == nil {
		return b
	}
	body, err := req.GetBody()
	if err != nil {
		return b
	}
	defer body.Close()
	_ = json.NewDecoder(body).Decode(&b) // what it decoded, if anything
	return b
}

// attempts follows the batches that failed an attempt until they are
// sent or given up, to count Stats' Retries and FailedBatches: it holds
// only those, so it stays small. It is safe for concurrent use.
type attempts struct {
	mu        sync.Mutex
	failing   map[string]*failingBatch // by the batch's messageId
	byMessage map[string]*failingBatch // the same, by their events' messageIds
}

// failingBatch is a batch whose last attempt failed.
type failingBatch struct {
	id      string
	events  []string // messageIds
	left    int      // events not reported given up yet
	counted bool     // an event was reported given up: the batch was counted
}

// retry reports whether an attempt at batch id failed before.
func (a *attempts) retry(id string) bool {
	if id == "" {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.failing[id]
	return ok
}

// failed records that an attempt at b failed.
func (a *attempts) failed(b batchIDs) {
	if b.ID == "" {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.failing[b.ID]; ok {
		return
	}
	fb := &failingBatch{id: b.ID, events: make([]string, 0, len(b.Events))}
	for _, e := range b.Events {
		if e.ID != "" {
			fb.events = append(fb.events, e.ID)
			a.byMessage[e.ID] = fb
		}
	}
	fb.left = len(fb.events)
	a.failing[b.ID] = fb
}

// sent forgets batch id: Segment accepted it.
func (a *attempts) sent(id string) {
	if id == "" {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	fb, ok := a.failing[id]
	if !ok {
		return
	}
	delete(a.failing, id)
	for _, e := range fb.events {
		delete(a.byMessage, e)
	}
}

// givenUp forgets the event of messageId msgID, which analytics-go gave
// up, and reports whether it is the first event of its batch reported so:
// then the batch is to count as failed. It is false for an event given up
// without an attempt (too big, or too many requests in flight).
func (a *attempts) givenUp(msgID string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	fb, ok := a.byMessage[msgID]
	if !ok {
		return false
	}
	delete(a.byMessage, msgID)
	first := !fb.counted
	fb.counted = true
	if fb.left--; fb.left == 0 {
		delete(a.failing, fb.id)
	}
	return first
}
