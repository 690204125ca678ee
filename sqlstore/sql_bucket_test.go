package sqlstore_test

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/abkit/experiments"
	"github.com/lib/pq"
)

// sqlBucketCase is one call of experiments_bucket.
type sqlBucketCase struct {
	group, key string
	buckets    int
}

// sqlBuckets returns schema.experiments_bucket for every case, in a few
// round trips: the cases go in as arrays and come back in order.
func sqlBuckets(t *testing.T, schema string, cases []sqlBucketCase) []int {
	t.Helper()
	db := testDB(t)
	query := "SELECT " + pq.QuoteIdentifier(schema) + ".experiments_bucket(g, k, b) " +
		"FROM unnest($1::text[], $2::text[], $3::integer[]) WITH ORDINALITY AS u(g, k, b, i) ORDER BY i"
	const batch = 2500
	got := make([]int, 0, len(cases))
	for start := 0; start < len(cases); start += batch {
		part := cases[start:min(start+batch, len(cases))]
		groups := make([]string, len(part))
		keys := make([]string, len(part))
		buckets := make([]int64, len(part))
		for i, c := range part {
			groups[i], keys[i], buckets[i] = c.group, c.key, int64(c.buckets)
		}
		var rows []int
		if err := db.SelectContext(context.Background(), &rows, query,
			pq.Array(groups), pq.Array(keys), pq.Array(buckets)); err != nil {
			t.Fatal(err)
		}
		if len(rows) != len(part) {
			t.Fatalf("experiments_bucket returned %d rows for %d cases", len(rows), len(part))
		}
		got = append(got, rows...)
	}
	return got
}

// sqlBucketCounts are the bucket counts every string is tried with, from
// the usual to the edges of a PostgreSQL integer.
var sqlBucketCounts = []int{1, 2, 3, 7, 100, 10000, math.MaxInt32, 0, -1, -7, math.MinInt32}

// randomText returns a random valid UTF-8 string without NUL (which a
// PostgreSQL text cannot hold), drawn from one of several shapes.
func randomText(r *rand.Rand) string {
	var b strings.Builder
	switch r.IntN(10) {
	case 0:
		return ""
	case 1: // a short ASCII string, with the characters array literals escape
		const chars = `abcXYZ019 .,:;+/-_{}"\'()[]` + "\t\n\r\x01\x7f"
		for range 1 + r.IntN(20) {
			b.WriteByte(chars[r.IntN(len(chars))])
		}
	case 2: // words that mean something to SQL or to array literals
		words := []string{"NULL", "null", `"NULL"`, "{}", "{a,b}", `\N`, "''", " ", "course-v1:edX+DemoX+2026", "ORG/COURSE/RUN"}
		return words[r.IntN(len(words))]
	case 3: // long: past the 256-byte stack buffer, up to a few KB
		n := 257 + r.IntN(4000)
		for b.Len() < n {
			b.WriteRune(randomRune(r))
		}
	case 4: // emoji, with joiners and variation selectors
		emoji := []string{"😀", "🧪", "👩\u200d🔬", "🇫🇷", "❤\ufe0f", "🏳️\u200d🌈", "👍🏽"}
		for range 1 + r.IntN(6) {
			b.WriteString(emoji[r.IntN(len(emoji))])
		}
	case 5: // combining marks and scripts of 2- and 3-byte runes
		parts := []string{"é", "e\u0301", "ß", "ñ", "Ω", "д", "中文", "日本語", "한국어", "עברית", "العربية", "\u200b", "\ufeff"}
		for range 1 + r.IntN(8) {
			b.WriteString(parts[r.IntN(len(parts))])
		}
	default: // any code point but NUL and surrogates, short
		for range 1 + r.IntN(40) {
			b.WriteRune(randomRune(r))
		}
	}
	return b.String()
}

// randomRune returns a valid rune other than NUL, from every UTF-8 length.
func randomRune(r *rand.Rand) rune {
	for {
		var c rune
		switch r.IntN(4) {
		case 0:
			c = rune(r.IntN(0x80))
		case 1:
			c = rune(0x80 + r.IntN(0x800-0x80))
		case 2:
			c = rune(0x800 + r.IntN(0x10000-0x800))
		default:
			c = rune(0x10000 + r.IntN(utf8.MaxRune+1-0x10000))
		}
		if c != 0 && utf8.ValidRune(c) {
			return c
		}
	}
}

func TestSQLBucketMatchesSHA256Bucket(t *testing.T) {
	s := openStore(t)
	seed := rand.Uint64()
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	const n = 10000
	cases := make([]sqlBucketCase, 0, n+len(sqlBucketCounts)*4)
	// The edges of every bucket count, once each.
	for _, b := range sqlBucketCounts {
		cases = append(cases,
			sqlBucketCase{"", "", b},
			sqlBucketCase{"a", ".b", b},
			sqlBucketCase{"a.b", "", b},
			sqlBucketCase{strings.Repeat("g", 200), strings.Repeat("k", 56), b}, // 257 bytes hashed
		)
	}
	for len(cases) < cap(cases) {
		var b int
		switch r.IntN(4) {
		case 0:
			b = 1 + r.IntN(math.MaxInt32) // any positive integer
		default:
			b = sqlBucketCounts[r.IntN(len(sqlBucketCounts))]
		}
		cases = append(cases, sqlBucketCase{randomText(r), randomText(r), b})
	}
	for i, c := range cases {
		if !utf8.ValidString(c.group) || !utf8.ValidString(c.key) || strings.ContainsRune(c.group+c.key, 0) {
			t.Fatalf("case %d is not valid for a PostgreSQL text: %q, %q", i, c.group, c.key)
		}
	}

	got := sqlBuckets(t, s.Schema(), cases)
	mismatches := 0
	for i, c := range cases {
		if want := experiments.SHA256Bucket(c.group, c.key, c.buckets); got[i] != want {
			mismatches++
			if mismatches <= 10 {
				t.Errorf("experiments_bucket(%q, %q, %d) = %d, SHA256Bucket = %d", c.group, c.key, c.buckets, got[i], want)
			}
		}
	}
	if mismatches > 0 {
		t.Errorf("%d of %d cases differ (seed %d)", mismatches, len(cases), seed)
	}
}

func TestSQLBucketVectors(t *testing.T) {
	s := openStore(t)
	vectors := []struct {
		sqlBucketCase
		want int
	}{ // API.md
		{sqlBucketCase{"experiments.test", "alice", 2}, 1},
		{sqlBucketCase{"exp.unaware", "learner1", 3}, 0},
		{sqlBucketCase{"a.b", "0", 100}, 39},
		{sqlBucketCase{"", "", 10}, 4},
	}
	cases := make([]sqlBucketCase, len(vectors))
	for i, v := range vectors {
		cases[i] = v.sqlBucketCase
	}
	got := sqlBuckets(t, s.Schema(), cases)
	for i, v := range vectors {
		if goBucket := experiments.SHA256Bucket(v.group, v.key, v.buckets); got[i] != v.want || goBucket != v.want {
			t.Errorf("(%q, %q, %d): experiments_bucket %d, SHA256Bucket %d, want %d", v.group, v.key, v.buckets, got[i], goBucket, v.want)
		}
	}
}
