package experiments_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	_ "github.com/lib/pq"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/internal/pgtest"
	"github.com/abkit/experiments/internal/syncbuf"
)

// Every ```go block of README.md runs in TestREADME. The line before a
// block names what runs it:
//
//	<!-- readme-test: NAME -->
//
// A block that is a program (package main) is built and run by the
// readmePrograms check of that name. Any other block goes into the
// program testdata/readme/NAME.go, at its line "//readme:block K" for the
// K-th block of README.md that names NAME (its leading import
// declaration, if any, at "//readme:imports K"); the program checks what
// the block did and exits non-zero when it is wrong. It runs with
// SESSION_KEY (a fresh key), PORT (free on loopback) and
// SEGMENT_WRITE_KEY set; one whose source mentions DATABASE_URL gets a
// PostgreSQL database of its own there.

// readmeBlock is a ```go block of README.md.
type readmeBlock struct {
	name string // of its readme-test line
	line int    // where it starts in README.md
	code string
}

var readmeTestLine = regexp.MustCompile(`^<!-- readme-test: ([a-z0-9-]+) -->$`)

// readmeBlocks returns README.md's ```go blocks.
func readmeBlocks(t *testing.T) []readmeBlock {
	t.Helper()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var blocks []readmeBlock
	var cur *readmeBlock
	indent := "" // of the block's fence: a block in a list item is indented
	prev := ""
	sc := bufio.NewScanner(bytes.NewReader(readme))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimLeft(line, " ")
		switch {
		case cur != nil && line == indent+"```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.code += strings.TrimPrefix(line, indent) + "\n"
		case trimmed == "```go":
			cur = &readmeBlock{line: n}
			indent = line[:len(line)-len(trimmed)]
			if m := readmeTestLine.FindStringSubmatch(strings.TrimLeft(prev, " ")); m != nil {
				cur.name = m[1]
			} else {
				t.Errorf("README.md:%d: a ```go block without a <!-- readme-test: NAME --> line before it", n)
			}
		}
		prev = line
	}
	if len(blocks) == 0 {
		t.Fatal("README.md has no ```go block")
	}
	return blocks
}

// readmePrograms check the README's complete programs, built at bin.
var readmePrograms = map[string]func(t *testing.T, bin string){
	"quickstart-echo":    checkQuickStart("new upgrade button", "old upgrade button"),
	"quickstart-nethttp": checkQuickStart("bucket 1", "bucket 0"),
}

func TestREADME(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs programs with the go command")
	}
	blocks := readmeBlocks(t)
	root, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	byName := map[string][]readmeBlock{}
	for _, b := range blocks {
		if b.name == "" {
			continue
		}
		if _, ok := byName[b.name]; !ok {
			names = append(names, b.name)
		}
		byName[b.name] = append(byName[b.name], b)
	}
	harnesses, err := filepath.Glob(filepath.Join("testdata", "readme", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range harnesses {
		if name := strings.TrimSuffix(filepath.Base(h), ".go"); byName[name] == nil {
			t.Errorf("%s: no README block names %q", h, name)
		}
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			bs := byName[name]
			var src string
			check := readmePrograms[name]
			if strings.HasPrefix(bs[0].code, "package main\n") {
				if check == nil || len(bs) != 1 {
					t.Fatalf("README.md:%d: a program needs a readmePrograms check of its own, %q has none", bs[0].line, name)
				}
				src = bs[0].code
			} else {
				src = fillHarness(t, name, bs)
			}
			bin := buildREADMEProgram(t, root, name, src)
			if check != nil {
				check(t, bin)
				return
			}
			cmd := exec.Command(bin)
			_, port, _ := net.SplitHostPort(pgtest.UnusedAddr(t))
			cmd.Env = append(os.Environ(), "SEGMENT_WRITE_KEY=readme-test", "SESSION_KEY="+newSessionKey(), "PORT="+port)
			if strings.Contains(src, "DATABASE_URL") {
				cmd.Env = append(cmd.Env, "DATABASE_URL="+readmeDatabase(t))
			}
			runREADMEProgram(t, cmd, fmt.Sprintf("README.md:%d", bs[0].line))
		})
	}
}

// fillHarness puts the blocks into testdata/readme/name.go.
func fillHarness(t *testing.T, name string, bs []readmeBlock) string {
	t.Helper()
	path := filepath.Join("testdata", "readme", name+".go")
	harness, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("README.md:%d: %v", bs[0].line, err)
	}
	src := string(harness)
	importDecl := regexp.MustCompile(`(?s)^import \(.*?\n\)\n`)
	for i, b := range bs {
		code := b.code
		imports := importDecl.FindString(code)
		code = strings.TrimPrefix(code[len(imports):], "\n")
		for _, part := range []struct{ marker, code string }{
			{fmt.Sprintf("//readme:imports %d\n", i+1), imports},
			{fmt.Sprintf("//readme:block %d\n", i+1), code},
		} {
			if part.code == "" {
				continue
			}
			n := strings.Count(src, part.marker)
			if n != 1 {
				t.Fatalf("README.md:%d: %s has %d lines %q, want 1", b.line, path, n, strings.TrimSpace(part.marker))
			}
			// Indent the block as its marker is.
			at := strings.Index(src, part.marker)
			indent := src[strings.LastIndexByte(src[:at], '\n')+1 : at]
			lines := strings.SplitAfter(strings.TrimSuffix(part.code, "\n"), "\n")
			src = src[:at] + strings.Join(lines, indent) + "\n" + src[at+len(part.marker):]
		}
	}
	if left := regexp.MustCompile(`//readme:block \d+`).FindString(src); left != "" {
		t.Fatalf("%s: %q has no README block naming %q", path, left, name)
	}
	return src
}

// buildREADMEProgram builds src as a program of this module (with go
// build's -overlay: nothing is written to the source tree) and returns the
// binary's path.
func buildREADMEProgram(t *testing.T, root, name, src string) string {
	t.Helper()
	tmp := t.TempDir()
	file := filepath.Join(tmp, "main.go")
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	overlay, err := json.Marshal(map[string]any{"Replace": map[string]string{
		filepath.Join(root, "internal", "readmeprogram", "main.go"): file,
	}})
	if err != nil {
		t.Fatal(err)
	}
	overlayFile := filepath.Join(tmp, "overlay.json")
	if err := os.WriteFile(overlayFile, overlay, 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(tmp, name)
	cmd := exec.Command("go", "build", "-overlay", overlayFile, "-o", bin, "./internal/readmeprogram")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("README block %q does not build: %v\n%s\n--- the program:\n%s", name, err, out, numbered(src))
	}
	return bin
}

// runREADMEProgram runs cmd to its end, within a minute, and fails unless
// it exits 0.
func runREADMEProgram(t *testing.T, cmd *exec.Cmd, where string) {
	t.Helper()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: the block's program failed: %v\n%s", where, err, out.String())
		}
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("%s: the block's program still runs after a minute\n%s", where, out.String())
	}
}

// numbered returns src with line numbers, for build errors.
func numbered(src string) string {
	var b strings.Builder
	for i, line := range strings.Split(src, "\n") {
		fmt.Fprintf(&b, "%3d  %s\n", i+1, line)
	}
	return b.String()
}

// readmeDatabase creates a database for one program and returns its URL;
// it is dropped when the test ends.
func readmeDatabase(t *testing.T) string {
	t.Helper()
	db := pgtest.DB(t)
	suffix := make([]byte, 6)
	rand.Read(suffix)
	name := "readme_" + hex.EncodeToString(suffix)
	if _, err := db.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := db.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			t.Errorf("dropping database %s: %v", name, err)
		}
	})
	u, err := url.Parse(pgtest.DSN())
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// checkQuickStart checks a quick-start program: without SESSION_KEY it
// stops at once, saying how to make one; with one, account 42 (in bucket 1
// of course-v1:edX+DemoX+2026) gets on, anonymous visitors off, and a
// browser's session is tracked once.
func checkQuickStart(on, off string) func(t *testing.T, bin string) {
	return func(t *testing.T, bin string) {
		const course = "course-v1:edX+DemoX+2026"
		if b := experiments.SHA256Bucket("course_experience.upgrade_button."+course, "42", 2); b != 1 {
			t.Fatalf("account 42 is in bucket %d: the check needs an account in bucket 1", b)
		}

		noKey := exec.Command(bin)
		noKey.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "SESSION_KEY=") }), "ADDR=127.0.0.1:1")
		out, err := noKey.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "SESSION_KEY: ") || !strings.Contains(string(out), "openssl rand -base64 32") {
			t.Errorf("without SESSION_KEY: %v, output %q; want a failure that says how to make a key", err, out)
		}

		addr := pgtest.UnusedAddr(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		cmd := exec.CommandContext(ctx, bin)
		cmd.Env = append(os.Environ(), "ADDR="+addr, "SESSION_KEY="+newSessionKey())
		var logs syncbuf.Buffer
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cancel(); _ = cmd.Wait() }()
		waitListening(t, addr, &logs)

		jar, _ := cookiejar.New(nil)
		browser := &http.Client{Jar: jar, Timeout: 10 * time.Second}
		get := func(account string) string {
			t.Helper()
			req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/courses/"+course, nil)
			if account != "" {
				req.Header.Set("X-Account", account)
			}
			resp, err := browser.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET as %q: %d %s", account, resp.StatusCode, body)
			}
			return strings.TrimSpace(string(body))
		}
		if got := get(""); got != off {
			t.Errorf("anonymous: %q, want %q", got, off)
		}
		for i := range 2 {
			if got := get("42"); got != on {
				t.Errorf("account 42, request %d: %q, want %q", i+1, got, on)
			}
		}
		if n := strings.Count(logs.String(), experiments.EventUserBucketed); n != 1 {
			t.Errorf("%d events logged for two requests of one session, want 1:\n%s", n, logs.String())
		}
	}
}

// newSessionKey returns a SESSION_KEY: 32 random bytes in base64.
func newSessionKey() string {
	key := make([]byte, 32)
	rand.Read(key)
	return base64.StdEncoding.EncodeToString(key)
}

// waitListening waits until something accepts connections at addr.
func waitListening(t *testing.T, addr string, logs *syncbuf.Buffer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens at %s after 30 s: %v\n%s", addr, err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
