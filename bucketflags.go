package experiments

import (
	"strconv"
	"strings"
)

// Bucket flags force buckets: the flag "namespace.name.i", on for a user
// (by the same rules and overrides as any flag), puts them in bucket i
// of the experiment "namespace.name" (step 8 of decide), as Open edX's
// ExperimentWaffleFlag does. A snapshot links each to its main flag.

// maxBucketFlag bounds the index of a bucket flag "name.i" that a snapshot
// links to its main flag.
const maxBucketFlag = 1 << 10

// SplitBucketFlag splits the name of a bucket flag, "ns.name.i", into
// its main flag "ns.name" and i (0 to 1023, written without leading
// zeros). ok is false for any other name, a main flag's included.
func SplitBucketFlag(name string) (main string, i int, ok bool) {
	main, i, ok = bucketFlag(name)
	if ok && ValidateFlagName(main) != nil {
		return "", 0, false
	}
	return main, i, ok
}

// bucketFlag splits "ns.name.i" into "ns.name" and i.
func bucketFlag(name string) (parent string, i int, ok bool) {
	dot := strings.LastIndexByte(name, '.')
	if dot < 0 {
		return "", 0, false
	}
	digits := name[dot+1:]
	if digits == "" || len(digits) > 1 && digits[0] == '0' || strings.Trim(digits, "0123456789") != "" {
		return "", 0, false
	}
	i, err := strconv.Atoi(digits)
	if err != nil || i >= maxBucketFlag {
		return "", 0, false
	}
	return name[:dot], i, true
}

// BucketFlag returns the name of the flag that forces bucket i,
// "namespace.name.i".
func (f *ExperimentFlag) BucketFlag(i int) string { return f.full + "." + itoa(i) }

// linkBucketFlags links the bucket flags of flags to their main flags
// (compiledFlag.buckets).
func linkBucketFlags(flags map[string]*compiledFlag) {
	for name, c := range flags {
		parent, i, ok := bucketFlag(name)
		if !ok {
			continue
		}
		p := flags[parent]
		if p == nil {
			continue // main flag never set: off, its bucket flags do not matter
		}
		if len(p.buckets) <= i {
			p.buckets = append(p.buckets, make([]*compiledFlag, i+1-len(p.buckets))...)
		}
		p.buckets[i] = c
	}
}

// forced returns the bucket that a bucket flag forces on u in courseKey:
// the first i below buckets whose flag "name.i" is on (step 8 of
// decide). c is the main flag; nil has none.
func (c *compiledFlag) forced(x *Experiments, u *User, courseKey string, buckets int) (int, bool) {
	if c == nil {
		return 0, false
	}
	for i, b := range c.buckets[:min(len(c.buckets), buckets)] {
		if b != nil && b.on(x, u, courseKey) {
			return i, true
		}
	}
	return 0, false
}
