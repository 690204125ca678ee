package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/abkit/experiments/internal/pgtest"
	"github.com/abkit/experiments/results"
)

// The README's command-line examples (its Results section's
// "go run ./cmd/experiments …" lines) run on the demo's data, and the
// -json one prints what its comment says: the course's experiments,
// every goal, one JSON array. Its JSON error and what it says of
// an empty -course are what the command prints.
func TestREADMECommandLineOnTheDemoData(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/experiments with the go command")
	}
	s := postgresStore(t)
	if err := seed(t.Context(), s, time.Now()); err != nil {
		t.Fatal(err)
	}
	snap, err := s.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "experiments")
	if out, err := exec.Command("go", "build", "-o", bin, "../experiments").CombinedOutput(); err != nil {
		t.Fatalf("building cmd/experiments: %v\n%s", err, out)
	}

	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := regexp.MustCompile(`(?m)^go run \./cmd/experiments\b(.*)$`).FindAllStringSubmatch(string(readme), -1)
	if len(lines) < 3 {
		t.Fatalf("README.md has %d cmd/experiments examples, want the listing and two reports", len(lines))
	}
	var sawJSON bool
	for _, l := range lines {
		args := shellWords(t, l[1])
		t.Run("experiments "+strings.Join(args, " "), func(t *testing.T) {
			cmd := exec.Command(bin, append(args, "-schema", s.Schema())...)
			cmd.Env = append(os.Environ(), "EXPERIMENTS_DSN="+pgtest.DSN())
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil || stderr.Len() > 0 || stdout.Len() == 0 {
				t.Fatalf("%v, stderr:\n%s\nstdout:\n%s", err, stderr.String(), stdout.String())
			}
			if !strings.Contains(l[1], "-json") {
				return
			}
			sawJSON = true
			i := strings.Index(strings.Join(args, " "), "-course ")
			if i < 0 {
				t.Fatal("the -json example names no course")
			}
			course := strings.Fields(strings.Join(args, " ")[i:])[1]
			var reports []results.Report
			if err := json.Unmarshal(stdout.Bytes(), &reports); err != nil {
				t.Fatalf("not one JSON array of reports: %v\n%s", err, stdout.String())
			}
			want := map[string]bool{}
			for _, f := range []string{upgradeButton.Name(), newOutline.Name()} {
				for g := range snap.Data().Goals {
					want[f+" "+g] = true
				}
			}
			for _, r := range reports {
				if r.Experiment.CourseKey != course || !want[r.Experiment.Flag+" "+r.Goal.Name] {
					t.Errorf("report of %s, goal %s: not one of the course's experiments and goals", r.Experiment, r.Goal.Name)
				}
				delete(want, r.Experiment.Flag+" "+r.Goal.Name)
			}
			if len(want) > 0 {
				t.Errorf("reports missing: %v", want)
			}
		})
	}
	if !sawJSON {
		t.Error("README.md has no -json example")
	}

	// The README's error examples: a JSON error, and -course ''.
	run := func(args ...string) (string, int) {
		cmd := exec.Command(bin, append(args, "-schema", s.Schema())...)
		cmd.Env = append(os.Environ(), "EXPERIMENTS_DSN="+pgtest.DSN())
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		return stderr.String(), code
	}
	jsonErr := regexp.MustCompile(`(?m)^\{"error":.*\}$`).FindString(string(readme))
	if jsonErr == "" {
		t.Fatal("README.md has no JSON error example")
	}
	if got, code := run("report", "-goal", "enrolled", "-json"); strings.TrimSpace(got) != jsonErr || code != 2 {
		t.Errorf("report -goal enrolled -json: exit %d, stderr %q; the README shows %q", code, got, jsonErr)
	}
	const noCourse = "no experiment has exposures in no course"
	if !strings.Contains(string(readme), noCourse) {
		t.Fatalf("README.md no longer says %q of -course ''", noCourse)
	}
	if got, code := run("report", "-course", ""); !strings.Contains(got, noCourse) || code != 2 {
		t.Errorf("report -course '': exit %d, stderr %q; the README says %q", code, got, noCourse)
	}
}

// shellWords splits the arguments of a README command line as sh would,
// for words, single quotes and a trailing # comment.
func shellWords(t *testing.T, line string) []string {
	t.Helper()
	var words []string
	var w strings.Builder
	inWord, quoted := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quoted && c == '\'':
			quoted = false
		case quoted:
			w.WriteByte(c)
		case c == '\'':
			quoted, inWord = true, true
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		case c == '#' && !inWord:
			return words
		case c == '"' || c == '\\' || c == '$':
			t.Fatalf("README command %q: the test splits words and single quotes only", line)
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	if quoted {
		t.Fatalf("README command %q: unclosed quote", line)
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}
