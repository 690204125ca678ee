package segment

import (
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/abkit/experiments"
	"github.com/segmentio/analytics-go/v3"
)

// trackOf returns the Segment track call of e: Open edX's segment.track
// call in ExperimentWaffleFlag.get_bucket, with e.UserID as userId, or,
// for an anonymous visitor (experiments.WithAnonymous), e.AnonymousID as
// anonymousId. analytics-go sets its
// type and messageId when it is queued. trackOf refuses, with an error
// wrapping experiments.ErrInvalid, what Segment or analytics-go would
// refuse or mangle: neither user ID nor anonymous ID, no name, strings that are not valid UTF-8
// (encoding/json would replace their bytes), a time whose year JSON cannot
// encode. e.Time must not be zero.
func trackOf(e experiments.Event) (analytics.Track, error) {
	switch {
	case e.UserID == "" && e.AnonymousID == "":
		return analytics.Track{}, fmt.Errorf("segment: %w: event %q: user ID and anonymous ID are empty (Segment requires userId or anonymousId)", experiments.ErrInvalid, e.Name)
	case e.Name == "":
		return analytics.Track{}, fmt.Errorf("segment: %w: event name is empty (Segment requires event)", experiments.ErrInvalid)
	}
	for _, f := range [...]struct{ name, s string }{
		{"name", e.Name}, {"user ID", e.UserID}, {"anonymous ID", e.AnonymousID}, {"site", e.Site}, {"app label", e.AppLabel},
		{"experiment", e.Experiment}, {"course key", e.CourseKey},
	} {
		if !utf8.ValidString(f.s) {
			return analytics.Track{}, fmt.Errorf("segment: %w: event %s %q: not valid UTF-8", experiments.ErrInvalid, f.name, f.s)
		}
	}
	at := e.Time.UTC().Truncate(time.Millisecond) // as Segment's libraries send it
	if y := at.Year(); y < 1 || y > 9999 {
		return analytics.Track{}, fmt.Errorf("segment: %w: event time %v: year outside 1–9999", experiments.ErrInvalid, e.Time)
	}
	var courseID any // JSON null without a course, as edX's None
	if e.CourseKey != "" {
		courseID = e.CourseKey
	}
	return analytics.Track{
		UserId:      e.UserID,
		AnonymousId: e.AnonymousID, // an anonymous visitor's (WithAnonymous); UserId is then ""
		Event:       e.Name,
		Timestamp:   at,
		Properties: analytics.Properties{
			"site":           e.Site,
			"app_label":      e.AppLabel,
			"experiment":     e.Experiment,
			"course_id":      courseID,
			"bucket":         e.Bucket,
			"is_staff":       e.IsStaff,
			"nonInteraction": 1,
		},
	}, nil
}
