package experiments_test

import (
	"errors"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/abkit/experiments"
)

// More seeds are in testdata/fuzz/<FuzzName>/.

func FuzzParseDate(f *testing.F) {
	for _, s := range []string{
		"2012-01-06", "2012-01-06 10:30", "2012-01-06T10:30", "2012-01-06 10:30:15",
		"2012-01-06T10:30:15.123456", "2012-01-06T10:00:00Z", "2012-01-06T10:00:00+05:00",
		"2012-01-06T10:00:00+0500", "2012-01-06T10:00:00+05", "2012-01-06 10:00:00 UTC",
		"2012-01-06T10:00:00,5Z", "0000-01-01", "9999-12-31T23:59:59.999999999-23:59",
		"not-a-date", "", "2012-13-01", "06/01/2012", "2012-01-06X", " 2012-01-06 ",
		"2012-01-06 GMT+5", "2012-01-06T24:00:00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := experiments.ParseDate(s)
		if err != nil {
			return
		}
		if got.Location() != time.UTC {
			t.Fatalf("ParseDate(%q) = %v in %v, want UTC", s, got, got.Location())
		}
		formatted := got.Format("2006-01-02T15:04:05.999999999")
		again, err := experiments.ParseDate(formatted)
		if err != nil {
			t.Fatalf("ParseDate(%q) = %v, but ParseDate(%q) fails: %v", s, got, formatted, err)
		}
		if !again.Equal(got) || again.Location() != time.UTC {
			t.Fatalf("ParseDate(%q) = %v, but ParseDate(%q) = %v", s, got, formatted, again)
		}
	})
}

func FuzzCourseOrg(f *testing.F) {
	for _, s := range []string{
		"course-v1:ORG+C+R", "ORG/C/R", "ccx-v1:ORG+C+R+ccx@3", "", "foo", "course-v1:ORG",
		"a/b", "a/b/c/d", "library-v1:ORG+LIB", "course-v1:+C+R", "/b/c", "course-v1:edX+DemoX+Demo_Course",
		"block-v1:ORG+C+R+type@html+block@x", "course-v1:ORG++", ":", "+/:",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		org := experiments.CourseOrg(key)
		if org == "" {
			return
		}
		if !strings.Contains(key, org) {
			t.Fatalf("CourseOrg(%q) = %q, not a part of the key", key, org)
		}
		if strings.ContainsAny(org, "+/") {
			t.Fatalf("CourseOrg(%q) = %q, which contains a separator", key, org)
		}
		// ':' may appear in an org, as in edX's opaque keys
		// ([\w\-~.:]), but only after the key's own "course-v1:" or "ccx-v1:".
		if !orgRE.MatchString(org) {
			t.Fatalf("CourseOrg(%q) = %q, not made of letters, digits and _-~.:", key, org)
		}
		if !strings.HasPrefix(key, "course-v1:"+org+"+") && !strings.HasPrefix(key, "ccx-v1:"+org+"+") && !strings.HasPrefix(key, org+"/") {
			t.Fatalf("CourseOrg(%q) = %q, not the key's first part", key, org)
		}
	})
}

var orgRE = regexp.MustCompile(`^[A-Za-z0-9_~.:-]+$`)

// fuzzBucket checks the range of a bucket function and compares it with
// its reference.
func fuzzBucket(t *testing.T, name string, fn, ref func(group, key string, buckets int) int, group, key string, n int) {
	got := fn(group, key, n)
	if n < 1 {
		if got != 0 {
			t.Fatalf("%s(%q, %q, %d) = %d, want 0", name, group, key, n, got)
		}
	} else if got < 0 || got >= n {
		t.Fatalf("%s(%q, %q, %d) = %d, out of range", name, group, key, n, got)
	}
	if want := ref(group, key, n); got != want {
		t.Fatalf("%s(%q, %q, %d) = %d, reference %d", name, group, key, n, got, want)
	}
	// The same input with a bucket count in 1..10000.
	m := n % 10000
	if m < 0 {
		m = -m
	}
	m++
	if got := fn(group, key, m); got < 0 || got >= m {
		t.Fatalf("%s(%q, %q, %d) = %d, out of range", name, group, key, m, got)
	}
}

func bucketSeeds(f *testing.F) {
	f.Add("experiments.test", "alice", 2)
	f.Add("exp.unaware", "learner1", 3)
	f.Add("a.b", "0", 100)
	f.Add("", "", 10)
	f.Add("", "", 0)
	f.Add("a", ".b", -1)
	f.Add("实验", "用户🙂", 10000)
	f.Add(strings.Repeat("g", 128), strings.Repeat("k", 127), 7)
	f.Add(strings.Repeat("g", 200), strings.Repeat("k", 200), 1)
	f.Add("a.b", "user", math.MaxInt)
	f.Add("a.b", "user", math.MinInt)
	f.Add("a.b", "user", 1<<32)
	f.Add("a.b", "user", 1<<32+1)
}

func FuzzSHA256Bucket(f *testing.F) {
	bucketSeeds(f)
	f.Fuzz(func(t *testing.T, group, key string, n int) {
		fuzzBucket(t, "SHA256Bucket", experiments.SHA256Bucket, refSHA256Bucket, group, key, n)
		// The Hasher that decisions use buckets by user ID.
		viaHasher := func(group, key string, n int) int {
			return experiments.SHA256Hasher(group, experiments.User{ID: key}, n)
		}
		fuzzBucket(t, "SHA256Hasher", viaHasher, refSHA256Bucket, group, key, n)
	})
}

func FuzzEdXBucket(f *testing.F) {
	bucketSeeds(f)
	f.Fuzz(func(t *testing.T, group, key string, n int) {
		fuzzBucket(t, "EdXBucket", experiments.EdXBucket, refEdXBucket, group, key, n)
		// The Hasher that decisions use buckets by username.
		viaHasher := func(group, key string, n int) int {
			return experiments.EdXHasher(group, experiments.User{Username: key}, n)
		}
		fuzzBucket(t, "EdXHasher", viaHasher, refEdXBucket, group, key, n)
	})
}

// FuzzValueTypeText checks ValueType's text form, which goals use in
// JSON: UnmarshalText accepts exactly the four names, leaves the value
// alone on error (wrapping ErrInvalid), and MarshalText gives back the
// bytes it accepted.
func FuzzValueTypeText(f *testing.F) {
	for _, s := range []string{"count", "sum", "average", "per-participant", "", "Sum", "sum ", "median", "0", "1", "\x00", "count\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v := experiments.ValueType(-7)
		if err := v.UnmarshalText(b); err != nil {
			if !errors.Is(err, experiments.ErrInvalid) || v != -7 {
				t.Fatalf("UnmarshalText(%q) = %v and set %d; want an error wrapping ErrInvalid, the value unchanged", b, err, v)
			}
			return
		}
		if v < experiments.ValueCount || v > experiments.ValuePerParticipant {
			t.Fatalf("UnmarshalText(%q) = %d, not a ValueType", b, v)
		}
		back, err := v.MarshalText()
		if err != nil || string(back) != string(b) || v.String() != string(b) {
			t.Fatalf("UnmarshalText(%q) = %d, which marshals as %q (%v)", b, v, back, err)
		}
	})
}

var flagNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+$`)

func FuzzValidateFlagName(f *testing.F) {
	for _, s := range []string{
		"course_experience.upgrade", "course_experience.upgrade.1", "a.b", "A-1.b_2.c-3",
		"", "noDot", "a..b", ".a", "a.", "a.b c", "a.b\n", "ä.b", "a.b\x00",
		"a." + strings.Repeat("b", 253), "a." + strings.Repeat("b", 254),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := experiments.ValidateFlagName(name)
		valid := flagNameRE.MatchString(name) && len(name) <= 255
		if err == nil && !valid {
			t.Fatalf("ValidateFlagName(%q) accepted a name outside %s or longer than 255 bytes", name, flagNameRE)
		}
		if err != nil && valid {
			t.Fatalf("ValidateFlagName(%q) = %v, want nil", name, err)
		}
		if err != nil && !errors.Is(err, experiments.ErrInvalid) {
			t.Fatalf("ValidateFlagName(%q) = %v, want it to wrap ErrInvalid", name, err)
		}
	})
}
