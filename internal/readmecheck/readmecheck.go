// Package readmecheck is what the programs that run README.md's code
// (testdata/readme, driven by readme_test.go) share: checks that end the
// program with a message and exit status 1 when they fail.
package readmecheck

import (
	"fmt"
	"os"

	"github.com/abkit/experiments"
)

// Failf prints the message to stderr and exits with status 1.
func Failf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "readme check: "+format+"\n", args...)
	os.Exit(1)
}

// Must fails when err is not nil.
func Must(err error) {
	if err != nil {
		Failf("%v", err)
	}
}

// Decision fails unless d gave bucket for reason, without error.
func Decision(what string, d experiments.Decision, bucket int, reason experiments.Reason) {
	if d.Bucket != bucket || d.Reason != reason || d.Err != nil {
		Failf("%s: decision %+v, want bucket %d (%s) without error", what, d, bucket, reason)
	}
}
