package segment

import (
	"fmt"
	"log/slog"

	"github.com/segmentio/analytics-go/v3"
)

// callback is the analytics.Callback of a Tracker's clients: analytics-go
// calls it once for every event it was given, Success when Segment
// accepted its batch, Failure when it gave it up (after its last attempt,
// on Close, or without an attempt: too big, too many requests in
// flight). It counts the outcome for Stats.
type callback struct{ t *Tracker }

var _ analytics.Callback = callback{}

func (c callback) Success(analytics.Message) { c.t.counts.Wrote(1) }

func (c callback) Failure(m analytics.Message, err error) {
	t := c.t
	if tr, ok := m.(analytics.Track); ok && t.attempts.givenUp(tr.MessageId) {
		t.counts.FailedBatches.Add(1)
	}
	t.counts.GaveUp(1, err)
}

// logger is the analytics.Logger of a Tracker's clients: it passes
// analytics-go's logs to the slog.Logger of WithLogger, Logf (with
// Verbose off, only an answer of Segment other than 2xx) at level Warn,
// Errorf (a failed attempt, events given up) at level Error.
type logger struct{ l *slog.Logger }

var _ analytics.Logger = logger{}

func (l logger) Logf(format string, args ...any) {
	l.l.Warn("segment: " + fmt.Sprintf(format, args...))
}

func (l logger) Errorf(format string, args ...any) {
	l.l.Error("segment: " + fmt.Sprintf(format, args...))
}
