package experiments

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

var (
	// ErrInvalid is wrapped by every error about bad input: a flag name,
	// course key, rule field, state or value that a store refuses.
	ErrInvalid = errors.New("invalid")
	// ErrBadWindow is wrapped by Decision.Err when an experiment's
	// enrollment_start or enrollment_end value does not parse as a date.
	ErrBadWindow = errors.New("bad enrollment window")
	// ErrTracker is wrapped by Decision.Err when the Tracker failed or
	// panicked. The bucket is kept: only the event was lost.
	ErrTracker = errors.New("tracker failed")
	// ErrRecorder is wrapped by Decision.Err when the Recorder failed to
	// record the exposure. The bucket is kept, and the session not marked.
	ErrRecorder = errors.New("recorder failed")
)

// MaxExperimentID is the largest experiment ID (a PostgreSQL integer).
const MaxExperimentID = 1<<31 - 1

// Limits on what stores accept, in bytes.
const (
	maxNameLen  = 255  // flag names, course keys, orgs, usernames, groups, value keys
	maxValueLen = 4096 // experiment values
)

// ValidateFlagName checks a full flag name as stores accept it: two or
// more dot-separated parts of ASCII letters, digits, '_' and '-', at most
// 255 bytes in all ("course_experience.upgrade", "course_experience.upgrade.1").
// The error wraps ErrInvalid.
func ValidateFlagName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: flag name is empty", ErrInvalid)
	}
	if len(name) > maxNameLen {
		return fmt.Errorf("%w: flag name %.40q…: longer than %d bytes", ErrInvalid, name, maxNameLen)
	}
	parts, start := 0, 0
	for i := 0; i <= len(name); i++ {
		if i == len(name) || name[i] == '.' {
			if i == start {
				return fmt.Errorf("%w: flag name %q: empty part", ErrInvalid, name)
			}
			parts++
			start = i + 1
			continue
		}
		if !nameByte(name[i]) {
			return fmt.Errorf("%w: flag name %q: character %q is not allowed (letters, digits, '_', '-', '.')", ErrInvalid, name, name[i])
		}
	}
	if parts < 2 {
		return fmt.Errorf("%w: flag name %q: want namespace.name", ErrInvalid, name)
	}
	return nil
}

// validPart reports whether s is a valid namespace or short flag name.
func validPart(s string) bool {
	if s == "" || len(s) > 100 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !nameByte(s[i]) {
			return false
		}
	}
	return true
}

func nameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}

// checkText checks a free-form identifier (course key, org, username,
// group, value): non-empty, valid UTF-8, no control characters, at most
// max bytes. field names it in the error.
func checkText(field, s string, max int) error {
	if s == "" {
		return fmt.Errorf("%w: %s is empty", ErrInvalid, field)
	}
	if len(s) > max {
		return fmt.Errorf("%w: %s %.40q…: longer than %d bytes", ErrInvalid, field, s, max)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s %q: not valid UTF-8", ErrInvalid, field, s)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || 0x80 <= r && r < 0xa0 {
			return fmt.Errorf("%w: %s %q: control character %U", ErrInvalid, field, s, r)
		}
	}
	return nil
}

// checkCourseKey checks the course key of a decision: "" (no course) or
// text that stores accept (checkText), without allocating when it is
// printable ASCII.
func checkCourseKey(k string) error {
	if !printableASCII(k) {
		return checkText("course key", k, maxNameLen)
	}
	return nil
}

// printableASCII reports whether every byte of s is in 0x20–0x7e. It
// tests 8 bytes at a time (a first decision checks its course key, 20 to
// 40 bytes). In a word w, the lowest byte out of range gets no borrow or
// carry from the bytes below it, so it sets its top bit in w - 0x20…20
// (a byte below 0x20), in w + 0x01…01 (0x7f) or in w (0x80 and above);
// bytes in range set none.
func printableASCII(s string) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for len(s) >= 8 {
		b := s[:8]
		w := uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
			uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
		if ((w-0x20*ones)|w|(w+ones))&highs != 0 {
			return false
		}
		s = s[8:]
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}

// ValidateCourseOverride checks the arguments of SetCourseOverride as
// stores accept them. The error wraps ErrInvalid and names the field.
func ValidateCourseOverride(name, courseKey string, s State) error {
	return checkOverride(name, "course key", courseKey, s)
}

// ValidateOrgOverride checks the arguments of SetOrgOverride: the org is
// made of the characters CourseOrg can return.
func ValidateOrgOverride(name, org string, s State) error {
	if err := checkOverride(name, "org", org, s); err != nil {
		return err
	}
	if !keyPart(org) {
		return fmt.Errorf("%w: flag %s: org %q: want letters, digits and \"_-~.:\" as in course keys", ErrInvalid, name, org)
	}
	return nil
}

func checkOverride(name, field, key string, s State) error {
	if err := ValidateFlagName(name); err != nil {
		return err
	}
	if err := checkText(field, key, maxNameLen); err != nil {
		return fmt.Errorf("flag %s: %w", name, err)
	}
	if err := s.validate(); err != nil {
		return fmt.Errorf("flag %s %s %q: %w", name, field, key, err)
	}
	return nil
}

// ValidateExperimentValue checks the arguments of SetExperimentValue: an
// ID from 0 to MaxExperimentID, a key of at most 255 bytes and a value of
// at most 4096 (empty: remove the key), without control characters.
func ValidateExperimentValue(experimentID int, key, value string) error {
	if experimentID < 0 || experimentID > MaxExperimentID {
		return fmt.Errorf("%w: experiment ID %d: want 0 to %d", ErrInvalid, experimentID, MaxExperimentID)
	}
	if err := checkText("experiment value key", key, maxNameLen); err != nil {
		return fmt.Errorf("experiment %d: %w", experimentID, err)
	}
	if value == "" {
		return nil
	}
	if err := checkText("experiment value", value, maxValueLen); err != nil {
		return fmt.Errorf("experiment %d %s: %w", experimentID, key, err)
	}
	return nil
}

// ValidateEnrollment checks the arguments of SetEnrollment.
func ValidateEnrollment(userID, courseKey string) error {
	if err := checkText("user ID", userID, maxNameLen); err != nil {
		return err
	}
	return checkText("course key", courseKey, maxNameLen)
}

func itoa(i int) string { return strconv.Itoa(i) }
