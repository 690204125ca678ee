package experiments

import (
	"strings"
	"testing"
)

// printableASCIIByBytes is printableASCII one byte at a time.
func printableASCIIByBytes(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// Every byte value at every position of strings of 0 to 24 bytes, among
// the bytes at the edges of the range (where a borrow or carry would
// show), gives the byte-by-byte answer.
func TestPrintableASCIIEveryByteEveryPosition(t *testing.T) {
	for _, fill := range []byte{0x20, 0x21, 0x7e, 0x7d, 'a'} {
		for n := range 25 {
			if !printableASCII(strings.Repeat(string(fill), n)) {
				t.Fatalf("%d bytes %#x: refused", n, fill)
			}
			for pos := range n {
				b := []byte(strings.Repeat(string(fill), n))
				for v := range 256 {
					b[pos] = byte(v)
					if got, want := printableASCII(string(b)), printableASCIIByBytes(string(b)); got != want {
						t.Fatalf("%q: %v, want %v", b, got, want)
					}
				}
			}
		}
	}
}

func FuzzPrintableASCII(f *testing.F) {
	f.Add("course-v1:edX+DemoX+2026")
	f.Add("course-v1:edX+DemoX+2026\x7f")
	f.Add("\x1f~~~~~~~~~~~~~~~")
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := printableASCII(s), printableASCIIByBytes(s); got != want {
			t.Fatalf("printableASCII(%q) = %v, want %v", s, got, want)
		}
	})
}

// BenchmarkCheckCourseKey checks a course key of 24 bytes, as every
// first decision with a course does.
func BenchmarkCheckCourseKey(b *testing.B) {
	b.Run("words", func(b *testing.B) {
		for b.Loop() {
			if checkCourseKey("course-v1:edX+DemoX+2026") != nil {
				b.Fatal("refused")
			}
		}
	})
	b.Run("bytes", func(b *testing.B) {
		for b.Loop() {
			if !printableASCIIByBytes("course-v1:edX+DemoX+2026") {
				b.Fatal("refused")
			}
		}
	})
}
