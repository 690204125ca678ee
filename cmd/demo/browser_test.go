package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/internal/syncbuf"
)

// screenshotsEnv names a directory that receives a copy of the browser
// test's screenshots, to regenerate the README's.
const screenshotsEnv = "EXPERIMENTS_SCREENSHOTS"

// browserTimeout bounds each run of the browser test, browser included.
const browserTimeout = 60 * time.Second

// The browser's viewport. Screenshots take the whole page, at least this
// high: low, so that short pages have little empty space below.
const viewportWidth, viewportHeight = 1280, 600

// chromiumEnv names the Chromium (or Chrome) for the browser test to
// drive, instead of looking for one. A path that is not there means no
// browser: the test skips.
const chromiumEnv = "EXPERIMENTS_CHROMIUM"

// chromium returns the path of a Chromium (or Chrome) to drive:
// $EXPERIMENTS_CHROMIUM when set, else /usr/bin/chromium, else chromium,
// chromium-browser or google-chrome in PATH. Without one it returns ""
// and says where it looked.
func chromium() (path, looked string) {
	if exe := os.Getenv(chromiumEnv); exe != "" {
		if _, err := os.Stat(exe); err != nil {
			return "", chromiumEnv + "=" + exe + ": " + err.Error()
		}
		return exe, ""
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium", ""
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path, ""
		}
	}
	return "", "looked for /usr/bin/chromium, and for chromium, chromium-browser and google-chrome in PATH"
}

// browserSkipped is why TestBrowser skipped, for TestMain to report; ""
// when it ran (or was not run).
var browserSkipped string

// TestMain reports a skipped browser test where CI shows it (see
// reportSkip).
func TestMain(m *testing.M) {
	code := m.Run()
	if browserSkipped != "" {
		reportSkip(browserSkipped)
	}
	os.Exit(code)
}

// reportSkip writes "cmd/demo: browser test skipped: <why>" on a line of
// its own. go test shows a passing package's output only with -v (or
// -json), so without -v the line goes to the stderr of the go command
// that runs this test binary (Linux: /proc/<parent>/fd/2), which is what
// a terminal or a CI log shows of `go test ./...`. Otherwise (-v, or
// the binary run by something else) it goes to the test's stderr.
func reportSkip(why string) {
	line := "cmd/demo: browser test skipped: " + why + "\n"
	if !testing.Verbose() {
		if w := goCommandStderr(); w != nil {
			_, err := w.WriteString(line)
			w.Close()
			if err == nil {
				return
			}
		}
	}
	fmt.Fprint(os.Stderr, line)
}

// goCommandStderr opens, for appending, the stderr of this process's
// parent when it is the go command; nil otherwise. It opens a pipe, a
// terminal or a file the go command appends to, not a file it writes
// at its own offset: its next writes would overwrite the line.
func goCommandStderr() *os.File {
	if runtime.GOOS != "linux" {
		return nil
	}
	parent := "/proc/" + strconv.Itoa(os.Getppid())
	if exe, err := os.Readlink(parent + "/exe"); err != nil || filepath.Base(exe) != "go" {
		return nil
	}
	fi, err := os.Stat(parent + "/fd/2")
	if err != nil {
		return nil
	}
	if fi.Mode().IsRegular() && !appends(parent+"/fdinfo/2") {
		return nil
	}
	f, err := os.OpenFile(parent+"/fd/2", os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return nil
	}
	return f
}

// appends reports whether the file descriptor of the fdinfo file at
// path has O_APPEND.
func appends(path string) bool {
	info, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	m := regexp.MustCompile(`(?m)^flags:\s*([0-7]+)$`).FindSubmatch(info)
	if m == nil {
		return false
	}
	flags, err := strconv.ParseUint(string(m[1]), 8, 64)
	return err == nil && flags&uint64(syscall.O_APPEND) != 0
}

// TestBrowser drives headless Chromium through the demo, on each store:
// alice visits a second course; staff carol reads new_outline's results
// per course and in all courses, then forces bucket 1 in the dashboard;
// then learner alice sees bucket 1 on a course page. It saves
// screenshots of the pages (admin-list.png and admin-experiment.png are
// the README's) as test artifacts (go test -artifacts), and copies them
// into $EXPERIMENTS_SCREENSHOTS when it is set: the MemStore run's as
// they are, the PostgreSQL run's prefixed "postgres-". Without Chromium
// it skips, and TestMain says so.
func TestBrowser(t *testing.T) {
	exe, looked := chromium()
	if exe == "" {
		browserSkipped = "chromium not found: " + looked + "; install it (Debian: apt-get install chromium) to run it"
		t.Skip(browserSkipped)
	}
	for _, name := range []string{"memory", "postgres"} {
		t.Run(name, func(t *testing.T) { testBrowser(t, exe) })
	}
}

// Without Chromium, `go test ./...` (no -v) shows that the browser test
// skipped, on a line of its own, besides the package's ok line.
func TestBrowserSkipIsReportedWithoutVerbose(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the package's tests again")
	}
	if runtime.GOOS != "linux" {
		t.Skip("the line reaches the go command through /proc, on Linux only")
	}
	if os.Getenv(chromiumEnv) != "" {
		t.Skip(chromiumEnv + " is set: this is the inner run")
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command in PATH")
	}
	cmd := exec.CommandContext(t.Context(), goCmd, "test", "-count=1", "-run=^TestBrowser$", "github.com/abkit/experiments/cmd/demo")
	cmd.Env = append(os.Environ(), chromiumEnv+"="+filepath.Join(t.TempDir(), "no-chromium"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go test: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`(?m)^cmd/demo: browser test skipped: chromium not found: ` + chromiumEnv + `=.*no-chromium: .*$`).Match(out) {
		t.Errorf("go test's output does not say the browser test skipped:\n%s", out)
	}
	if !regexp.MustCompile(`(?m)^ok  \tgithub.com/abkit/experiments/cmd/demo\t`).Match(out) {
		t.Errorf("go test's output lacks the package's ok line:\n%s", out)
	}
}

func TestChromiumIsTakenFromTheEnvironment(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "chromium")
	t.Setenv(chromiumEnv, missing)
	if exe, looked := chromium(); exe != "" || !strings.Contains(looked, chromiumEnv+"="+missing) {
		t.Errorf("%s=%s: chromium() = %q, %q; want none, naming the variable and path", chromiumEnv, missing, exe, looked)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(chromiumEnv, self)
	if exe, _ := chromium(); exe != self {
		t.Errorf("%s=%s: chromium() = %q", chromiumEnv, self, exe)
	}
}

func testBrowser(t *testing.T, exe string) {
	ctx, cancel := context.WithTimeout(t.Context(), browserTimeout)
	defer cancel()
	base, store := serveDemo(t, ctx)
	b := startBrowser(t, ctx, exe, base)

	// Learner alice visits a second course: new_outline has participants
	// in two courses, the simulated ones and hers.
	b.login("alice")
	b.open("/courses/"+advanced, http.StatusOK)
	if f, ok := store.(interface{ Flush(context.Context) error }); ok { // sqlstore batches exposures
		if err := f.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}

	// Staff carol forces a winner in the dashboard.
	b.login("carol")
	b.screenshot("home.png")
	b.click("#dashboard")
	list := b.text("main")
	for _, f := range []*experiments.ExperimentFlag{upgradeButton, newOutline} {
		if !strings.Contains(list, f.Name()) {
			t.Errorf("list page lacks %s:\n%s", f.Name(), list)
		}
	}
	b.screenshot("admin-list.png")

	b.click(`a[href="experiments/` + newOutline.Name() + `"]`)
	if got := b.text("h1"); !strings.HasPrefix(got, newOutline.Name()) {
		t.Fatalf("experiment page: heading %q, want %s", got, newOutline.Name())
	}
	// The simulated history gives results: a report and charts.
	if n := runAction(b, "counting the charts' lines", chromedp.Evaluate[int](`document.querySelectorAll("figure.chart polyline").length`)); n < 2*newOutline.Buckets() {
		t.Errorf("experiment page: %d chart lines, want at least %d (participants and conversion rate, a line per bucket)", n, 2*newOutline.Buckets())
	}
	if got := b.text("table.results"); !strings.Contains(got, "control") {
		t.Errorf("experiment page: results table %q", got)
	}
	b.screenshot("admin-experiment.png")

	// The page opens on the course with the most participants; the course
	// links lead to each course's results, and "All courses" to all of
	// them, alice once.
	if got := b.currentCourse(); got != demoX {
		t.Errorf("the experiment page opens on %q, want %s, the course with the most participants", got, demoX)
	}
	for _, c := range []struct {
		key          string
		participants int
	}{{advanced, 1}, {demoX, simUsers}} {
		b.click(`a.course[data-course="` + c.key + `"]`)
		if got := b.currentCourse(); got != c.key {
			t.Errorf("after clicking the link of %s: the current course is %q", c.key, got)
		}
		if got := b.participants(); got != c.participants {
			t.Errorf("after clicking the link of %s: %d participants in the results, want %d", c.key, got, c.participants)
		}
	}
	b.click("a.all-courses")
	if got := b.currentCourse(); got != "all" {
		t.Errorf("after clicking All courses: the current course is %q", got)
	}
	if got := b.participants(); got != simUsers+1 {
		t.Errorf("all courses: %d participants in the results, want %d", got, simUsers+1)
	}
	b.screenshot("admin-all-courses.png")

	b.click("#winner-1")
	if got, want := b.text("p.done"), "Done: winner forced on everyone."; got != want {
		t.Errorf("after forcing bucket 1: message %q, want %q", got, want)
	}
	if got, want := b.text("h1 .status"), "winner: bucket 1"; got != want {
		t.Errorf("after forcing bucket 1: status %q, want %q", got, want)
	}
	b.screenshot("admin-winner.png")

	// Learner alice, who hashes into control there, now gets bucket 1.
	course := otherU
	if hashed := experiments.SHA256Bucket(newOutline.Name()+"."+course, "1", newOutline.Buckets()); hashed == 1 {
		t.Fatalf("alice hashes into bucket 1 in %s already: pick another course", course)
	}
	b.logout()
	b.open("/admin/", http.StatusUnauthorized)
	b.login("alice")
	b.open("/admin/", http.StatusForbidden)
	if got := b.text("p.error"); got != "you may not use the experiments dashboard" {
		t.Errorf("alice on the dashboard: %q", got)
	}
	b.screenshot("admin-forbidden.png")
	b.open("/courses/"+course, http.StatusOK)
	section := `section[data-flag="` + newOutline.Name() + `"]`
	if got := b.attr(section, "data-bucket"); got != "1" {
		t.Errorf("alice in %s: new_outline bucket %s, want 1", course, got)
	}
	if got := b.attr(section, "data-reason"); got != string(experiments.ReasonForced) {
		t.Errorf("alice in %s: new_outline reason %s, want %s", course, got, experiments.ReasonForced)
	}
	b.screenshot("course.png")
}

// serveDemo serves the demo on 127.0.0.1 with the store the test's name
// asks for, until the test ends, and returns its URL and the store.
func serveDemo(t *testing.T, ctx context.Context) (string, demoStore) {
	t.Helper()
	store := newTestStore(t)
	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srvCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	served := make(chan error, 1)
	logger := slog.New(slog.NewTextHandler(t.Output(), nil))
	go func() { served <- serve(srvCtx, ln, store, true, logger, t.Output()) }()
	t.Cleanup(func() { // before the store closes
		stop()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String(), store
}

// browser is a headless Chromium tab on the demo.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string
	out  *syncbuf.Buffer // the browser's output, shown when a step fails
}

// startBrowser starts Chromium with a fresh profile, stopped when the
// test ends or ctx is done, and opens a tab on the demo at base.
func startBrowser(t *testing.T, ctx context.Context, exe, base string) *browser {
	t.Helper()
	b := &browser{t: t, base: base, out: new(syncbuf.Buffer)}
	dir := t.TempDir() // the profile, and Chromium's temporary files, removed at the end
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(exe),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("hide-scrollbars", true), // screenshots as wide as the viewport
		chromedp.UserDataDir(filepath.Join(dir, "profile")),
		chromedp.Env("TMPDIR="+dir),
		chromedp.WindowSize(viewportWidth, viewportHeight),
		chromedp.CombinedOutput(b.out),
	)
	var cancelTab context.CancelFunc
	b.ctx, cancelTab = chromedp.NewContext(allocCtx)
	t.Cleanup(func() { // the browser has exited when these return
		cancelTab()
		cancelAlloc()
	})
	b.do("starting Chromium", chromedp.EmulateViewport(viewportWidth, viewportHeight))
	return b
}

// runAction runs a, failing the test if it fails.
func runAction[T any](b *browser, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, a)
	if err != nil {
		b.t.Fatalf("%s: %v\nChromium's output:\n%s", what, err, b.out)
	}
	return v
}

// do runs steps, failing the test if one fails.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	runAction(b, what, chromedp.Steps(steps...))
}

// open loads the page at path and checks its status.
func (b *browser) open(path string, status int) {
	b.t.Helper()
	resp := runAction(b, "opening "+path, chromedp.NavigateResponse(b.base+path))
	if resp.Status != int64(status) {
		b.t.Fatalf("GET %s: status %d, want %d", path, resp.Status, status)
	}
}

// click clicks the element css selects, waits for the page it leads to
// and checks it is 200.
func (b *browser) click(css string) {
	b.t.Helper()
	resp, err := chromedp.RunResponse(b.ctx, chromedp.Click(chromedp.CSS(css)))
	if err != nil {
		b.t.Fatalf("clicking %s: %v\nChromium's output:\n%s", css, err, b.out)
	}
	if resp.Status != http.StatusOK {
		b.t.Fatalf("clicking %s: status %d at %s", css, resp.Status, resp.URL)
	}
}

// text returns the visible text of the element css selects.
func (b *browser) text(css string) string {
	b.t.Helper()
	return strings.TrimSpace(runAction(b, "reading "+css, chromedp.Text(chromedp.CSS(css))))
}

// currentCourse returns the course of the experiment page's results:
// its key, "all" for all courses, "none" when no link is current.
func (b *browser) currentCourse() string {
	b.t.Helper()
	return runAction(b, "reading the current course", chromedp.Evaluate[string](`(() => {
		const a = document.querySelector("a.course.current, a.all-courses.current");
		if (!a) return "none";
		return a.classList.contains("all-courses") ? "all" : a.dataset.course;
	})()`))
}

// participants returns the participants of the experiment page's first
// results table (0 without one).
func (b *browser) participants() int {
	b.t.Helper()
	return runAction(b, "counting the participants", chromedp.Evaluate[int](`(() => {
		const table = document.querySelector("table.results");
		if (!table) return 0;
		return Array.from(table.querySelectorAll("tbody tr td:nth-child(2)")).reduce((n, td) => n + Number(td.textContent), 0);
	})()`))
}

// attr returns attribute name of the element css selects.
func (b *browser) attr(css, name string) string {
	b.t.Helper()
	a := runAction(b, "reading "+css, chromedp.AttributeValue(chromedp.CSS(css), name))
	if !a.Exists {
		b.t.Fatalf("%s has no attribute %s", css, name)
	}
	return a.Value
}

// login signs in as username through the home page's form.
func (b *browser) login(username string) {
	b.t.Helper()
	b.open("/", http.StatusOK)
	b.do("choosing "+username, chromedp.SetValue(chromedp.CSS("#login-user"), username))
	b.click("#login")
	// "signed in as alice, user ID 1", "signed in as carol (staff), …"
	if got := b.text("header .who"); !strings.HasPrefix(strings.ReplaceAll(got, ",", " "), "signed in as "+username+" ") {
		b.t.Fatalf("after logging in as %s: header says %q", username, got)
	}
}

// logout signs out through the home page's button.
func (b *browser) logout() {
	b.t.Helper()
	b.open("/", http.StatusOK)
	b.click("#logout")
	if got := b.text("header .who"); got != "anonymous" {
		b.t.Fatalf("after logging out: header says %q", got)
	}
}

// screenshot saves a PNG of the whole page as the test's artifact name,
// and copies it into $EXPERIMENTS_SCREENSHOTS when set (prefixed with the
// store's name, except for MemStore's).
func (b *browser) screenshot(name string) {
	b.t.Helper()
	png := runAction(b, "taking "+name, chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(b.t.ArtifactDir(), name), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	dir := os.Getenv(screenshotsEnv)
	if dir == "" {
		return
	}
	if !strings.HasSuffix(b.t.Name(), "/memory") {
		name = filepath.Base(b.t.Name()) + "-" + name
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}
