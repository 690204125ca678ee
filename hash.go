package experiments

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"reflect"
)

// Hasher assigns a user to one of buckets buckets of a bucketing group.
// group is the flag's full name, plus "." and the course key when the flag
// is course-aware and a course is given. A Hasher must be deterministic and
// return a value in [0, buckets); it is called concurrently.
type Hasher func(group string, u User, buckets int) int

// SHA256Hasher is the default Hasher: SHA256Bucket(group, u.ID, buckets).
// Buckets depend on the user's ID, so renaming a user does not move them.
var SHA256Hasher Hasher = sha256Hasher

// EdXHasher is EdXBucket(group, u.Username, buckets): the same buckets as
// Open edX's stable_bucketing_hash_group, for apps that migrate running
// experiments from edX or must agree with its analytics.
var EdXHasher Hasher = edxHasher

func sha256Hasher(group string, u User, buckets int) int { return SHA256Bucket(group, u.ID, buckets) }
func edxHasher(group string, u User, buckets int) int    { return EdXBucket(group, u.Username, buckets) }

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

// sha256Bucket3 is SHA256Bucket(group+sep+course, key, buckets) without
// building the group string: sep is "" or ".".
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

// fill writes group [+ "." + course] + 0x00 + key into b, which has exactly
// the right length.
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

// isSHA256Hasher reports whether h is SHA256Hasher, so that the flag can
// hash its group without building the group string.
func isSHA256Hasher(h Hasher) bool {
	return reflect.ValueOf(h).Pointer() == reflect.ValueOf(Hasher(sha256Hasher)).Pointer()
}

// hash buckets u in group (+ "." + courseKey when courseKey is not empty).
// A custom Hasher that panics or answers outside [0, buckets) gives an
// error.
func (x *Experiments) hash(group, courseKey string, u *User, buckets int) (int, error) {
	if x.sha256 {
		return sha256Bucket3(group, courseKey, u.ID, buckets), nil
	}
	if courseKey != "" {
		group += "." + courseKey
	}
	return x.customHash(group, u, buckets)
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

// hashed is the decision of the hash (step 12 of decide): the bucket the
// hash gives the user, of the flag's group and, for a course-aware flag,
// the course; with weights w, the bucket whose range holds the user's
// slot (weights.go). A custom Hasher that fails gives control.
func (f *ExperimentFlag) hashed(st *reqState, courseKey string, w *slotWeights) Decision {
	hashCourse := ""
	if f.courseAware {
		hashCourse = courseKey
	}
	n := f.buckets
	if w != nil {
		n = WeightSlots
	}
	var buf User
	b, err := st.x.hash(f.full, hashCourse, f.hashUser(st, &buf), n)
	if err != nil {
		return Decision{Reason: ReasonError, Err: fmt.Errorf("%s: %w", f.full, err)}
	}
	if w != nil {
		b = w.bucket(b)
	}
	return Decision{Bucket: b, Reason: ReasonHashed}
}
