package experiments

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Keys of an experiment's values that bound its enrollment window.
const (
	EnrollmentStart = "enrollment_start"
	EnrollmentEnd   = "enrollment_end"
)

// window is the compiled enrollment window of one experiment:
// start <= enrolled < end, either bound optional.
type window struct {
	start, end       time.Time
	hasStart, hasEnd bool
	err              error // a bound that does not parse
}

// newWindow returns the window of an experiment's values, or nil when
// neither bound is set (an empty value is unset, as in edX).
func newWindow(id int, values map[string]string) *window {
	start, end := values[EnrollmentStart], values[EnrollmentEnd]
	if start == "" && end == "" {
		return nil
	}
	w := &window{}
	var err error
	if start != "" {
		if w.start, err = ParseDate(start); err != nil {
			w.err = fmt.Errorf("experiment %d: %s %q: %w", id, EnrollmentStart, start, err)
			return w
		}
		w.hasStart = true
	}
	if end != "" {
		if w.end, err = ParseDate(end); err != nil {
			w.err = fmt.Errorf("experiment %d: %s %q: %w", id, EnrollmentEnd, end, err)
			return w
		}
		w.hasEnd = true
	}
	return w
}

// contains reports start <= t < end.
func (w *window) contains(t time.Time) bool {
	return (!w.hasStart || !t.Before(w.start)) && (!w.hasEnd || t.Before(w.end))
}

// dateLayouts are the forms ParseDate accepts, before an optional zone:
// each date form ("1" and "2" take one or two digits) with each time form.
var dateLayouts = func() []string {
	var layouts []string
	for _, date := range []string{"2006-1-2", "2006/1/2", "20060102"} {
		for _, clock := range []string{"", "T15", " 15", "T15:04", " 15:04", "T15:04:05", " 15:04:05"} {
			layouts = append(layouts, date+clock)
		}
	}
	return append(layouts, "Jan 2 2006", "Jan 2, 2006", "January 2 2006", "January 2, 2006", "2 Jan 2006", "2 January 2006")
}()

// zoneLayouts are the zone suffixes ParseDate accepts (and drops).
var zoneLayouts = []string{"", "Z07:00", "Z0700", "Z07", " Z07:00", " Z0700", " Z07", " MST"}

// ParseDate parses an enrollment bound the way Open edX reads it: the
// date and wall-clock time are taken as UTC and any zone in the value is
// dropped ("2012-01-06T10:00:00+05:00" is 10:00 UTC). It accepts the forms
// edX's dateutil reads in practice: a date as "2006-01-02" (or "2006-1-2",
// "2006/01/02", "20060102"), optionally followed by 'T' or a space and
// "15", "15:04" or "15:04:05" (seconds may have a fraction), so RFC 3339
// too, each with or without a zone ("Z", "+07:00", "+0700", "+07",
// " UTC"); and "Jan 2 2006", "January 2, 2006", "2 Jan 2006". Anything
// else is an error.
func ParseDate(s string) (time.Time, error) {
	v := strings.TrimSpace(s)
	if len(v) < len("20060102") || len(v) > 64 {
		return time.Time{}, errBadDate
	}
	for _, d := range dateLayouts {
		for _, z := range zoneLayouts {
			if t, err := time.Parse(d+z, v); err == nil {
				return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC), nil
			}
		}
	}
	return time.Time{}, errBadDate
}

var errBadDate = errors.New(`not a date: want "2006-01-02", "2006-01-02 15:04[:05[.frac]]", RFC 3339 or "Jan 2 2006"`)

// outsideWindow returns the decision of step 7 of decide, for a course
// and a flag WithExperimentID, when the user is outside the enrollment
// window of the flag's experiment (or the window or the enrollment
// cannot be read); out is false inside, and when the experiment has no
// window. st.mu is held.
func (f *ExperimentFlag) outsideWindow(ctx context.Context, st *reqState, snap *Snapshot, courseKey string) (d Decision, out bool) {
	w := snap.windows[f.experimentID]
	if w == nil {
		return Decision{}, false
	}
	if w.err != nil {
		return Decision{Reason: ReasonBadWindow, Err: fmt.Errorf("%s: %w: %w", f.full, ErrBadWindow, w.err)}, true
	}
	at, err := st.enrolled(ctx, courseKey)
	if err != nil {
		return Decision{Reason: ReasonError, Err: fmt.Errorf("%s: %w", f.full, err)}, true
	}
	if !w.contains(at) {
		return Decision{Reason: ReasonOutsideWindow}, true
	}
	return Decision{}, false
}

// enrolled returns when the request's user enrolled in courseKey, or now
// when they are not enrolled, looking it up once per request and course.
// It is called with st.mu held.
func (st *reqState) enrolled(ctx context.Context, courseKey string) (time.Time, error) {
	rare := st.rareState()
	for _, e := range rare.enrollments {
		if e.course == courseKey {
			return e.at, e.err
		}
	}
	x := st.x
	var at time.Time
	var err error
	if x.enrollments == nil {
		err = errNoEnrollments
	} else {
		var found bool
		at, found, err = x.enrollments.Enrollment(ctx, st.user.ID, courseKey)
		if err != nil {
			err = fmt.Errorf("enrollment of user %q in %q: %w", st.user.ID, courseKey, err)
		} else if !found {
			at = x.now()
		}
	}
	rare.enrollments = append(rare.enrollments, enrollment{course: courseKey, at: at, err: err})
	return at, err
}

type enrollment struct {
	course string
	at     time.Time
	err    error
}

var errNoEnrollments = errors.New("enrollment window set but Config.Enrollments is nil and the Store has no enrollments")
