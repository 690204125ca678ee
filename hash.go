package experiments

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// Hasher assigns a user to one of buckets buckets of a bucketing group.
// group is the flag's full name, plus "." and the course key when the flag
// is course-aware and a course is given. A Hasher must be deterministic and
// return a value in [0, buckets); it is called concurrently.
type Hasher func(group string, u User, buckets int) int

// SHA256Hasher is SHA256Bucket(group, u.ID, buckets): the buckets of the
// default, a nil Config.Hasher, which computes them without building the
// group string. Buckets depend on the user's ID, so renaming a user does
// not move them.
var SHA256Hasher Hasher = sha256Hasher

// EdXHasher is EdXBucket(group, u.Username, buckets): the same buckets as
// Open edX's stable_bucketing_hash_group, for apps that migrate running
// experiments from edX or must agree with its analytics.
var EdXHasher Hasher = edxHasher

func sha256Hasher(group string, u User, buckets int) int { return SHA256Bucket(group, u.ID, buckets) }
func edxHasher(group string, u User, buckets int) int    { return EdXBucket(group, u.Username, buckets) }

// The one rule that joins a group and a course key: group + "." +
// course, or group alone for no course. Hashing groups, Assignments'
// experiments and session marks are all joined so (joinGroup), and
// sha256Bucket3 writes the same bytes into its buffer.

// joinGroup returns group joined with course.
func joinGroup(group, course string) string {
	if course == "" {
		return group
	}
	return group + "." + course
}

// hashCourse returns the course part of the flag's hashing group for
// courseKey: courseKey for a course-aware flag, else "" (one bucket for
// every course).
func (f *ExperimentFlag) hashCourse(courseKey string) string {
	if f.courseAware {
		return courseKey
	}
	return ""
}

// hashed is the decision of the hash (step 12 of decide): the bucket the
// hash gives u (hashUser) in the flag's group; with weights w, the bucket
// whose range holds u's slot (weights.go). A custom Hasher that fails
// gives control.
func (f *ExperimentFlag) hashed(st *reqState, courseKey string, u *User, w *slotWeights) Decision {
	n := f.buckets
	if w != nil {
		n = WeightSlots
	}
	b, err := st.x.hash(f.full, f.hashCourse(courseKey), u, n)
	if err != nil {
		return Decision{Reason: ReasonError, Err: fmt.Errorf("%s: %w", f.full, err)}
	}
	if w != nil {
		b = w.bucket(b)
	}
	return Decision{Bucket: b, Reason: ReasonHashed}
}

// hash buckets u in group joined with course. Without Config.Hasher it
// hashes like SHA256Hasher, without building the joined string; a custom
// Hasher that panics or answers outside [0, buckets) gives an error.
func (x *Experiments) hash(group, course string, u *User, buckets int) (int, error) {
	if x.hasher == nil {
		return sha256Bucket3(group, course, u.ID, buckets), nil
	}
	return x.customHash(joinGroup(group, course), u, buckets)
}

func (x *Experiments) customHash(group string, u *User, buckets int) (b int, err error) {
	defer func() {
		if p := recover(); p != nil {
			b, err = 0, fmt.Errorf("hasher panicked on group %q: %v", group, p)
		}
	}()
	b = x.hasher(group, *u, buckets)
	if b < 0 || b >= buckets {
		return 0, fmt.Errorf("hasher returned %d for group %q and %d buckets", b, group, buckets)
	}
	return b, nil
}

// stackHash is the input size hashed without a heap allocation.
const stackHash = 256

// SHA256Bucket returns the bucket in [0, buckets) of key in group:
// the big-endian uint32 of the first four bytes of
// sha256(group ‖ 0x00 ‖ key), modulo buckets. The zero byte keeps
// ("a", ".b") and ("a.b", "") apart. It returns 0 when buckets < 1 and
// does not allocate when len(group)+len(key) < 256.
func SHA256Bucket(group, key string, buckets int) int {
	return sha256Bucket3(group, "", key, buckets)
}

// sha256Bucket3 is SHA256Bucket(joinGroup(group, course), key, buckets)
// without building the joined string.
func sha256Bucket3(group, course, key string, buckets int) int {
	if buckets < 1 {
		return 0
	}
	sep := 0
	if course != "" {
		sep = 1
	}
	n := len(group) + sep + len(course) + 1 + len(key)
	var d [sha256.Size]byte
	if n <= stackHash {
		var buf [stackHash]byte
		fill(buf[:n], group, course, key)
		d = sha256.Sum256(buf[:n])
	} else {
		buf := make([]byte, n)
		fill(buf, group, course, key)
		d = sha256.Sum256(buf)
	}
	return int(uint64(binary.BigEndian.Uint32(d[:4])) % uint64(buckets))
}

// fill writes joinGroup(group, course) + 0x00 + key into b, which has
// exactly the right length.
func fill(b []byte, group, course, key string) {
	i := copy(b, group)
	if course != "" {
		b[i] = '.'
		i++
		i += copy(b[i:], course)
	}
	b[i] = 0
	copy(b[i+1:], key)
}

// EdXBucket returns the bucket Open edX's stable_bucketing_hash_group gives
// key in group: the 32 hex digits of md5(group + key) become one bit each
// (1 for a digit of 8 or more), most significant first, and the resulting
// uint32 is taken modulo buckets. It returns 0 when buckets < 1.
func EdXBucket(group, key string, buckets int) int {
	if buckets < 1 {
		return 0
	}
	var sum [md5.Size]byte
	if n := len(group) + len(key); n <= stackHash {
		var buf [stackHash]byte
		copy(buf[copy(buf[:], group):], key)
		sum = md5.Sum(buf[:n])
	} else {
		sum = md5.Sum([]byte(group + key))
	}
	// A hex digit is 8 or more exactly when its top bit is set.
	var v uint32
	for _, b := range sum {
		v = v<<2 | uint32(b>>7)<<1 | uint32(b>>3&1)
	}
	return int(uint64(v) % uint64(buckets))
}
