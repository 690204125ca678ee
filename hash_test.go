package experiments_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/abkit/experiments"
)

// update regenerates testdata/buckets.golden. A change of hash moves live
// users between buckets: only regenerate on purpose.
var updateGolden = flag.Bool("update", false, "regenerate testdata/buckets.golden")

const goldenBuckets = "testdata/buckets.golden"

// refSHA256Bucket is SHA256Bucket written the obvious way.
func refSHA256Bucket(group, key string, buckets int) int {
	if buckets < 1 {
		return 0
	}
	d := sha256.Sum256([]byte(group + "\x00" + key))
	return int(uint64(binary.BigEndian.Uint32(d[:4])) % uint64(buckets))
}

// refEdXBucket is Open edX's stable_bucketing_hash_group, literally:
//
//	hash_str = md5(group_name + username).hexdigest()
//	int(re.sub('[8-9a-f]', '1', re.sub('[0-7]', '0', hash_str)), 2) % group_count
func refEdXBucket(group, key string, buckets int) int {
	if buckets < 1 {
		return 0
	}
	sum := md5.Sum([]byte(group + key))
	bits := strings.Map(func(r rune) rune {
		if r >= '8' {
			return '1'
		}
		return '0'
	}, hex.EncodeToString(sum[:]))
	v, err := strconv.ParseUint(bits, 2, 64)
	if err != nil {
		panic(err)
	}
	return int(v % uint64(buckets))
}

var bucketFuncs = map[string]func(group, key string, buckets int) int{
	"sha256": experiments.SHA256Bucket,
	"edx":    experiments.EdXBucket,
}

var refBucketFuncs = map[string]func(group, key string, buckets int) int{
	"sha256": refSHA256Bucket,
	"edx":    refEdXBucket,
}

func TestSHA256BucketVectors(t *testing.T) {
	cases := []struct {
		name       string
		group, key string
		buckets    int
		want       int
	}{
		{"ok, experiments.test alice in 2", "experiments.test", "alice", 2, 1},
		{"ok, exp.unaware learner1 in 3", "exp.unaware", "learner1", 3, 0},
		{"ok, a.b 0 in 100", "a.b", "0", 100, 39},
		{"ok, empty group and key in 10", "", "", 10, 4},
		{"ok, one bucket is always 0", "experiments.test", "alice", 1, 0},
		{"nok, zero buckets give 0", "experiments.test", "alice", 0, 0},
		{"nok, negative buckets give 0", "experiments.test", "alice", -3, 0},
		{"nok, MinInt buckets give 0", "experiments.test", "alice", math.MinInt, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := experiments.SHA256Bucket(c.group, c.key, c.buckets); got != c.want {
				t.Errorf("SHA256Bucket(%q, %q, %d) = %d, want %d", c.group, c.key, c.buckets, got, c.want)
			}
		})
	}
}

func TestSHA256BucketSeparatesGroupAndKey(t *testing.T) {
	// ("a", ".b") and ("a.b", "") hash different bytes thanks to the 0x00.
	a := sha256.Sum256([]byte("a\x00.b"))
	b := sha256.Sum256([]byte("a.b\x00"))
	if a == b {
		t.Fatal("test vectors collide")
	}
	const n = 1 << 30
	ga, gb := experiments.SHA256Bucket("a", ".b", n), experiments.SHA256Bucket("a.b", "", n)
	if ga == gb {
		t.Errorf("SHA256Bucket(a, .b) == SHA256Bucket(a.b, \"\") == %d: the separator is missing", ga)
	}
	if want := refSHA256Bucket("a", ".b", n); ga != want {
		t.Errorf("SHA256Bucket(a, .b, 2^30) = %d, want %d", ga, want)
	}
}

func TestEdXBucketVectors(t *testing.T) {
	cases := []struct {
		name       string
		group, key string
		buckets    int
		want       int
	}{
		{"ok, experiments.test alice in 2", "experiments.test", "alice", 2, 0},
		{"ok, exp.unaware learner1 in 3", "exp.unaware", "learner1", 3, 2},
		{"ok, one bucket is always 0", "exp.unaware", "learner1", 1, 0},
		{"nok, zero buckets give 0", "exp.unaware", "learner1", 0, 0},
		{"nok, negative buckets give 0", "exp.unaware", "learner1", -1, 0},
		{"nok, MinInt buckets give 0", "exp.unaware", "learner1", math.MinInt, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := experiments.EdXBucket(c.group, c.key, c.buckets); got != c.want {
				t.Errorf("EdXBucket(%q, %q, %d) = %d, want %d", c.group, c.key, c.buckets, got, c.want)
			}
		})
	}
}

func TestHashers(t *testing.T) {
	alice := experiments.User{ID: "alice", Username: "learner1"}
	renamed := experiments.User{ID: "alice", Username: "someone-else"}
	cases := []struct {
		name   string
		hasher experiments.Hasher
		group  string
		u      experiments.User
		n      int
		want   int
	}{
		{"ok, SHA256Hasher hashes the ID", experiments.SHA256Hasher, "experiments.test", alice, 2, experiments.SHA256Bucket("experiments.test", "alice", 2)},
		{"ok, SHA256Hasher ignores the username", experiments.SHA256Hasher, "experiments.test", renamed, 2, experiments.SHA256Bucket("experiments.test", "alice", 2)},
		{"ok, SHA256Hasher with 100 buckets", experiments.SHA256Hasher, "a.b", experiments.User{ID: "0"}, 100, 39},
		{"ok, EdXHasher hashes the username", experiments.EdXHasher, "exp.unaware", alice, 3, 2},
		{"ok, EdXHasher ignores the ID", experiments.EdXHasher, "exp.unaware", experiments.User{ID: "other", Username: "learner1"}, 3, 2},
		{"ok, EdXHasher with another username", experiments.EdXHasher, "exp.unaware", renamed, 3, experiments.EdXBucket("exp.unaware", "someone-else", 3)},
		{"nok, SHA256Hasher with 0 buckets gives 0", experiments.SHA256Hasher, "experiments.test", alice, 0, 0},
		{"nok, EdXHasher with 0 buckets gives 0", experiments.EdXHasher, "exp.unaware", alice, 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.hasher(c.group, c.u, c.n); got != c.want {
				t.Errorf("hasher(%q, %+v, %d) = %d, want %d", c.group, c.u, c.n, got, c.want)
			}
		})
	}
}

// TestFlagHashingGroup checks that a flag hashes the group of API.md:
// the full name, plus "." + courseKey when course-aware and a course is given.
func TestFlagHashingGroup(t *testing.T) {
	const course = "course-v1:edX+DemoX+2026"
	aware := experiments.NewFlagSet().NewFlag("bucket_test", "aware", experiments.WithBuckets(7))
	unaware := experiments.NewFlagSet().NewFlag("bucket_test", "unaware", experiments.WithBuckets(7), experiments.WithCourseAwareBucketing(false))
	store := experiments.NewMemStore()
	for _, f := range []*experiments.ExperimentFlag{aware, unaware} {
		if err := store.SetFlag(context.Background(), f.Name(), experiments.On()); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name   string
		hasher experiments.Hasher
		ref    func(group, key string, buckets int) int
		key    func(experiments.User) string
	}{
		{"ok, default hasher is SHA256 of the ID", nil, refSHA256Bucket, func(u experiments.User) string { return u.ID }},
		{"ok, explicit SHA256Hasher", experiments.SHA256Hasher, refSHA256Bucket, func(u experiments.User) string { return u.ID }},
		{"ok, EdXHasher is MD5 of the username", experiments.EdXHasher, refEdXBucket, func(u experiments.User) string { return u.Username }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x := experiments.New(experiments.Config{Store: store, Hasher: c.hasher, Logger: unitLogger()})
			for i := range 200 {
				u := experiments.User{ID: strconv.Itoa(5000 + i), Username: "user" + strconv.Itoa(i)}
				checks := []struct {
					f      *experiments.ExperimentFlag
					course string
					group  string
				}{
					{aware, course, aware.Name() + "." + course},
					{aware, "", aware.Name()},
					{unaware, course, unaware.Name()},
					{unaware, "", unaware.Name()},
				}
				for _, ch := range checks {
					ctx := x.NewContext(context.Background(), u)
					d := ch.f.Decide(ctx, ch.course)
					if d.Reason != experiments.ReasonHashed {
						t.Fatalf("%s %q: reason %q, want %q", ch.f.Name(), ch.course, d.Reason, experiments.ReasonHashed)
					}
					if want := c.ref(ch.group, c.key(u), 7); d.Bucket != want {
						t.Fatalf("%s %q user %+v: bucket %d, want %d (group %q)", ch.f.Name(), ch.course, u, d.Bucket, want, ch.group)
					}
				}
			}
		})
	}
}

func TestBucketsAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	randString := func() string {
		var n int
		switch rng.IntN(4) {
		case 0:
			n = 0
		case 1:
			n = rng.IntN(16)
		case 2:
			n = rng.IntN(300)
		default:
			n = 200 + rng.IntN(400)
		}
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		return string(b)
	}
	for name, fn := range bucketFuncs {
		ref := refBucketFuncs[name]
		t.Run("ok, "+name+" equals the reference on random inputs", func(t *testing.T) {
			for range 3000 {
				group, key := randString(), randString()
				n := 1 + rng.IntN(10000)
				switch rng.IntN(10) {
				case 0:
					n = -rng.IntN(5)
				case 1:
					n = 1 + rng.IntN(math.MaxInt32)
				}
				if got, want := fn(group, key, n), ref(group, key, n); got != want {
					t.Fatalf("%s(%q, %q, %d) = %d, reference %d", name, group, key, n, got, want)
				}
			}
		})
	}
}

func TestBucketAllocations(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts are meaningless under -short coverage runs")
	}
	// Variables, not constants, so that the compiler cannot fold the calls.
	group := strings.Repeat("g", 128)
	cases := []struct {
		name       string
		fn         func(group, key string, buckets int) int
		group, key string
	}{
		{"ok, SHA256Bucket of a short input", experiments.SHA256Bucket, "experiments.test.course-v1:edX+DemoX+2026", "100042"},
		{"ok, SHA256Bucket of empty strings", experiments.SHA256Bucket, "", ""},
		{"ok, SHA256Bucket of 255 bytes", experiments.SHA256Bucket, group, strings.Repeat("k", 127)},
		{"ok, EdXBucket of a short input", experiments.EdXBucket, "experiments.test.course-v1:edX+DemoX+2026", "learner1"},
		{"ok, EdXBucket of empty strings", experiments.EdXBucket, "", ""},
		{"ok, EdXBucket of 255 bytes", experiments.EdXBucket, group, strings.Repeat("k", 127)},
	}
	var sink int
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := testing.AllocsPerRun(100, func() { sink += c.fn(c.group, c.key, 7) }); got != 0 {
				t.Errorf("allocs = %v, want 0", got)
			}
		})
	}
	_ = sink
}

// goldenPairs are the (group, key) pairs of the golden file, each hashed
// into every bucket count of goldenBucketCounts by both hashers.
func goldenPairs() [][2]string {
	long := func(s string, n int) string { return strings.Repeat(s, n/len(s)+1)[:n] }
	return [][2]string{
		{"", ""},
		{"experiments.test", "alice"},
		{"exp.unaware", "learner1"},
		{"a.b", "0"},
		{"a", ".b"},
		{"a.b", ""},
		{"", "alice"},
		{"course_experience.upgrade_button.course-v1:edX+DemoX+2026", "100042"},
		{"course_experience.upgrade_button", "user42"},
		{"ünïcødé.flag", "josé"},
		{"实验.按钮.course-v1:学校+课程+2026", "用户🙂"},
		{"percent:experiments.test", "12345"},
		{long("long.group.", 300), "alice"},
		{"experiments.test", long("long-key-", 300)},
		{long("g", 200), long("k", 200)},
		{long("g", 128), long("k", 127)}, // 256 bytes with the separator: the last on the stack
		{long("g", 128), long("k", 128)},
	}
}

var goldenBucketCounts = []int{1, 2, 3, 7, 100, 10000}

type goldenVector struct {
	hasher     string
	group, key string
	buckets    int
	want       int
}

func (v goldenVector) String() string {
	return fmt.Sprintf("%s %s %s %d %d", v.hasher, strconv.Quote(v.group), strconv.Quote(v.key), v.buckets, v.want)
}

func parseGoldenLine(line string) (goldenVector, error) {
	var v goldenVector
	hasher, rest, ok := strings.Cut(line, " ")
	if !ok {
		return v, fmt.Errorf("no fields after the hasher")
	}
	v.hasher = hasher
	var err error
	for _, dst := range []*string{&v.group, &v.key} {
		q, err := strconv.QuotedPrefix(rest)
		if err != nil {
			return v, fmt.Errorf("quoted string: %w", err)
		}
		if *dst, err = strconv.Unquote(q); err != nil {
			return v, err
		}
		rest = strings.TrimPrefix(rest[len(q):], " ")
	}
	var n1, n2 string
	if n1, n2, ok = strings.Cut(rest, " "); !ok {
		return v, fmt.Errorf("want buckets and result, got %q", rest)
	}
	if v.buckets, err = strconv.Atoi(n1); err != nil {
		return v, err
	}
	if v.want, err = strconv.Atoi(n2); err != nil {
		return v, err
	}
	return v, nil
}

func TestGoldenBuckets(t *testing.T) {
	if *updateGolden {
		var buf bytes.Buffer
		buf.WriteString("# Bucket vectors of SHA256Bucket and EdXBucket: hasher \"group\" \"key\" buckets result.\n")
		buf.WriteString("# A change here moves live users between buckets. Regenerate with: go test -run TestGoldenBuckets -update\n")
		for _, hasher := range []string{"sha256", "edx"} {
			for _, p := range goldenPairs() {
				for _, n := range goldenBucketCounts {
					v := goldenVector{hasher: hasher, group: p[0], key: p[1], buckets: n}
					v.want = bucketFuncs[hasher](v.group, v.key, n)
					buf.WriteString(v.String() + "\n")
				}
			}
		}
		if err := os.MkdirAll(filepath.Dir(goldenBuckets), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenBuckets, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", goldenBuckets)
	}

	count := 0
	seen := map[string]bool{}
	eachGoldenLine(t, goldenBuckets, func(lineNo int, line string) {
		v, err := parseGoldenLine(line)
		if err != nil {
			t.Fatalf("%s:%d: %v", goldenBuckets, lineNo, err)
		}
		fn, ok := bucketFuncs[v.hasher]
		if !ok {
			t.Fatalf("%s:%d: unknown hasher %q", goldenBuckets, lineNo, v.hasher)
		}
		count++
		seen[v.hasher] = true
		if got := fn(v.group, v.key, v.buckets); got != v.want {
			t.Errorf("%s:%d: %s(%.40q, %.40q, %d) = %d, golden %d", goldenBuckets, lineNo, v.hasher, v.group, v.key, v.buckets, got, v.want)
		}
		if ref := refBucketFuncs[v.hasher](v.group, v.key, v.buckets); ref != v.want {
			t.Errorf("%s:%d: reference %s gives %d, golden %d", goldenBuckets, lineNo, v.hasher, ref, v.want)
		}
	})
	if count < 200 || !seen["sha256"] || !seen["edx"] {
		t.Errorf("%s has %d vectors (hashers %v), want at least 200 of both hashers", goldenBuckets, count, seen)
	}
}

// eachGoldenLine calls fn with each line of the golden file path but
// blank lines and comments ("#"), numbered from 1.
func eachGoldenLine(t *testing.T, path string, fn func(lineNo int, line string)) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for lineNo := 1; sc.Scan(); lineNo++ {
		if line := sc.Text(); line != "" && !strings.HasPrefix(line, "#") {
			fn(lineNo, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
}
