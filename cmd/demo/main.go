// Command demo is a small echo site that shows package experiments at
// work: log in as one of five seeded users, open a course, and see which
// bucket of two experiments you are in, why, and the "user bucketed"
// events your visits sent. The course page's Upgrade button converts the
// goal "upgrade"; the staff dashboard (package admin) at /admin shows the
// results, with two weeks of simulated history, and lets staff (carol)
// control the experiments. It needs no setup: flags live in a MemStore
// seeded at start-up and the cookie keys are random per run. With -dsn,
// they live in PostgreSQL instead (package sqlstore), seeded when absent.
//
//	go run ./cmd/demo [-addr 127.0.0.1:8080] [-dsn postgres://…]
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"embed"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	mathrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/sessions"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/admin"
	"github.com/abkit/experiments/sqlstore"
)

// The demo's experiments, declared once like Open edX's flags.
var (
	upgradeButton = experiments.NewFlag("course_experience", "upgrade_button")
	newOutline    = experiments.NewFlag("course_experience", "new_outline",
		experiments.WithBuckets(3), experiments.WithExperimentID(outlineExperiment))
)

// outlineExperiment is the experiment whose values bound new_outline's
// enrollment window.
const outlineExperiment = 1

// Session (cookie) names: the demo's login and the experiments' marks.
const (
	loginSession       = "demo-login"
	experimentsSession = "experiments"
)

// maxEvents is how many events the /events page keeps.
const maxEvents = 20

// upgradeGoal is the goal that the course page's Upgrade button converts.
const upgradeGoal = "upgrade"

// dashboardPrefix is where the staff dashboard is mounted.
const dashboardPrefix = "/admin"

// users are the accounts the login form offers. IDs are fixed, so a user
// keeps their buckets across restarts.
var users = []experiments.User{
	{ID: "1", Username: "alice"},
	{ID: "2", Username: "bob"},
	{ID: "3", Username: "carol", Staff: true},
	{ID: "4", Username: "dave"},
	{ID: "5", Username: "erin"},
}

type course struct {
	Key, Title string
	Sections   []string
}

var courses = []course{
	{"course-v1:DemoX+Intro+2026", "Introduction to A/B testing", []string{"Welcome", "Hypotheses", "Buckets and hashing", "Reading results"}},
	{"course-v1:DemoX+Advanced+2026", "Advanced experimentation", []string{"Sequential tests", "Bandits", "Guardrail metrics"}},
	{"course-v1:OtherU+Stats+2026", "Statistics for product teams", []string{"Distributions", "Confidence intervals", "Power", "Pitfalls"}},
}

//go:embed templates.html
var templateFS embed.FS

var pages = template.Must(template.ParseFS(templateFS, "templates.html"))

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on")
	dsn := flag.String("dsn", "", "PostgreSQL connection string (default: flags in memory)")
	withExperiments := flag.Bool("experiments", true, "install the experiments middleware (false: every page shows control, for load-test baselines)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, *addr, *dsn, *withExperiments, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// run serves the demo on addr until ctx is done, then shuts down
// gracefully. Flags live in memory, or in PostgreSQL at dsn. Logs and
// events go to out. withExperiments false leaves the experiments
// middleware out (see newApp).
func run(ctx context.Context, addr, dsn string, withExperiments bool, out io.Writer) error {
	logger := slog.New(slog.NewTextHandler(out, nil))
	var store demoStore = experiments.NewMemStore()
	if dsn != "" {
		s, err := sqlstore.OpenWith(ctx, dsn, sqlstore.WithLogger(logger))
		if err != nil {
			return err
		}
		defer s.Close() // writes what the recorder queued
		store = s
	}
	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return serve(ctx, ln, store, withExperiments, logger, out)
}

// serve seeds store and serves the demo on ln until ctx is done, then
// shuts down gracefully. It closes ln. It prints the address it serves
// on to out ("demo: listening on http://…"); logs go to logger.
func serve(ctx context.Context, ln net.Listener, store demoStore, withExperiments bool, logger *slog.Logger, out io.Writer) error {
	app, err := newApp(ctx, store, withExperiments, logger)
	if err != nil {
		ln.Close()
		return err
	}
	fmt.Fprintf(out, "demo: listening on http://%s\n", ln.Addr())
	srv := &http.Server{
		Handler:           app,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	logger.Info("demo: shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}

// demo holds what the handlers share.
type demo struct {
	cookies *sessions.CookieStore // the login session and the experiments' marks
	events  *eventLog
	log     *slog.Logger
}

// demoStore is what the demo needs of a store: decisions, the writes of
// the seed, recording exposures and conversions, and what the dashboard
// needs. MemStore and sqlstore.Store have all of it.
type demoStore interface {
	admin.Store
	experiments.Recorder
	SetGoal(ctx context.Context, g experiments.Goal) error
	SetEnrollment(ctx context.Context, userID, courseKey string, created time.Time) error
}

var (
	_ demoStore = (*experiments.MemStore)(nil)
	_ demoStore = (*sqlstore.Store)(nil)
)

// newApp seeds store, unless it has the demo's flags already, and returns
// the demo's echo site, with the staff dashboard under /admin. Without
// withExperiments the experiments middleware is not installed: requests
// carry no request state, so every flag gives control (ReasonNoRequest)
// and nothing is tracked; the load test uses it as its baseline.
func newApp(ctx context.Context, store demoStore, withExperiments bool, logger *slog.Logger) (*echo.Echo, error) {
	if err := seed(ctx, store, time.Now()); err != nil {
		return nil, fmt.Errorf("seeding flags: %w", err)
	}
	// Random keys: nothing to configure, and a restart logs everyone out.
	cookies := sessions.NewCookieStore(randomKey(), randomKey())
	cookies.Options = &sessions.Options{Path: "/", MaxAge: 30 * 86400, HttpOnly: true, SameSite: http.SameSiteLaxMode}
	d := &demo{cookies: cookies, events: &eventLog{log: logger}, log: logger}

	x := experiments.New(experiments.Config{
		Store:       store,
		Tracker:     d.events,
		Recorder:    store,
		Sessions:    cookies,
		SessionName: experimentsSession,
		Site:        "demo.local",
		Logger:      logger,
	})
	dash, err := admin.New(dashboardPrefix, admin.Config{
		Store:     store,
		Flags:     []*experiments.ExperimentFlag{upgradeButton, newOutline},
		Authorize: d.authorize,
		Logger:    logger,
	})
	if err != nil {
		return nil, err
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.Use(middleware.Recover())
	if withExperiments {
		e.Use(x.Middleware(experiments.MiddlewareConfig{User: d.user}))
	}
	e.GET("/", d.home)
	e.POST("/login", d.login)
	e.POST("/logout", d.logout)
	e.GET("/courses/:courseKey", d.course)
	e.POST("/courses/:courseKey/upgrade", d.upgrade)
	e.GET("/events", d.eventsPage)
	dash.Register(e.Group(dashboardPrefix))
	return e, nil
}

// seed sets up the flags: upgrade_button on for everyone but org OtherU;
// new_outline on for signed-in users who enrolled in the last 30 days (or
// are not enrolled), staff forced into bucket 2; dave enrolled in DemoX
// before the window opened; the goal "upgrade"; and two weeks of
// simulated history (simulateHistory). A store that has upgrade_button
// already is left as it is, so that changes made to a PostgreSQL demo
// survive restarts.
func seed(ctx context.Context, s demoStore, now time.Time) error {
	snap, err := s.Snapshot(ctx)
	if err != nil {
		return err
	}
	if _, ok := snap.Data().Flags[upgradeButton.Name()]; ok {
		return nil
	}
	ctx = experiments.WithActor(ctx, "demo seed") // who the dashboard's history names
	err = errors.Join(
		s.SetFlag(ctx, upgradeButton.Name(), experiments.On()),
		s.SetOrgOverride(ctx, upgradeButton.Name(), "OtherU", experiments.ForceOff),
		s.SetFlag(ctx, newOutline.Name(), experiments.Rule{Authenticated: true}),
		s.SetFlag(ctx, newOutline.Name()+".2", experiments.Rule{Staff: true}),
		s.SetExperimentValue(ctx, outlineExperiment, experiments.EnrollmentStart,
			now.AddDate(0, 0, -30).UTC().Format(time.DateOnly)),
		s.SetEnrollment(ctx, "4", courses[0].Key, now.AddDate(0, 0, -60)),
		s.SetGoal(ctx, experiments.Goal{Name: upgradeGoal, Once: true}),
	)
	if err != nil {
		return err
	}
	return simulateHistory(ctx, s, now)
}

// Simulated history: simUsers learners, "sim-1" to "sim-400" (the demo's
// users are "1" to "5"), each exposed to both experiments in the first
// course at a random time of the simDays days before now, in the bucket
// that hashing gives them, and converting to "upgrade" with a chance
// that depends on both buckets: upgradeRate by upgrade_button bucket,
// plus outlineLift by new_outline bucket.
const (
	simUsers = 400
	simDays  = 14
	// simSeed seeds the simulation; with it, the sample's rates come out
	// close to the rates below (some seeds give a control that beats
	// every variant by chance: realistic, but a confusing demo).
	simSeed = 2030
)

var (
	upgradeRate = [...]float64{0.09, 0.16}     // control, "Upgrade now"
	outlineLift = [...]float64{0, 0.04, -0.02} // classic, cards, collapsible
)

// simulateHistory records the simulated history: the same users, buckets
// and conversions on every start (a fixed seed); times relative to now.
// A store that batches its records (sqlstore) is flushed, so that the
// dashboard shows them at once.
func simulateHistory(ctx context.Context, s demoStore, now time.Time) error {
	rng := mathrand.New(mathrand.NewPCG(simSeed, simDays))
	course := courses[0].Key
	var errs []error
	record := func(err error) {
		if err != nil && len(errs) < 3 { // a broken store fails every record: keep a few
			errs = append(errs, err)
		}
	}
	for i := range simUsers {
		user := "sim-" + strconv.Itoa(i+1)
		exposed := now.Add(-time.Duration(rng.Int64N(int64(simDays * 24 * time.Hour))))
		up := experiments.SHA256Bucket(upgradeButton.Name()+"."+course, user, upgradeButton.Buckets())
		outline := experiments.SHA256Bucket(newOutline.Name()+"."+course, user, newOutline.Buckets())
		record(s.RecordExposure(ctx, experiments.Exposure{Flag: upgradeButton.Name(), CourseKey: course, UserID: user, Bucket: up, Time: exposed}))
		record(s.RecordExposure(ctx, experiments.Exposure{Flag: newOutline.Name(), CourseKey: course, UserID: user, Bucket: outline, Time: exposed}))
		if rng.Float64() < upgradeRate[up]+outlineLift[outline] {
			// Within two days of the first visit, and not in the future.
			converted := exposed.Add(time.Duration(rng.Int64N(int64(48 * time.Hour))))
			if converted.After(now) {
				converted = now
			}
			record(s.RecordConversion(ctx, experiments.Conversion{Goal: upgradeGoal, UserID: user, Time: converted}))
		}
	}
	if f, ok := s.(interface{ Flush(context.Context) error }); ok {
		record(f.Flush(ctx))
	}
	if len(errs) > 0 {
		return fmt.Errorf("simulated history: %w", errors.Join(errs...))
	}
	return nil
}

func randomKey() []byte {
	k := make([]byte, 32)
	rand.Read(k) // never fails since Go 1.24
	return k
}

// user is the experiments' MiddlewareConfig.User: the user of the login
// session, or anonymous.
func (d *demo) user(c echo.Context) experiments.User { return d.userOf(c.Request()) }

// userOf returns the user of r's login session, or anonymous. Gorilla's
// registry decodes the session once per request, however often it is
// asked.
func (d *demo) userOf(r *http.Request) experiments.User {
	sess, err := d.cookies.Get(r, loginSession)
	if err != nil {
		return experiments.User{} // no valid cookie (e.g. from before a restart)
	}
	name, _ := sess.Values["username"].(string)
	u, _ := userNamed(name)
	return u
}

// authorize is the dashboard's Authorize: staff may change experiments;
// other signed-in users are refused (403) and visitors who are not
// signed in are asked to (401).
func (d *demo) authorize(r *http.Request) (string, admin.Permission) {
	u := d.userOf(r)
	switch {
	case u.ID == "":
		return "", admin.Deny
	case u.Staff:
		return u.Username, admin.Change
	}
	return u.Username, admin.Deny
}

func userNamed(name string) (experiments.User, bool) {
	i := slices.IndexFunc(users, func(u experiments.User) bool { return u.Username == name })
	if i < 0 {
		return experiments.User{}, false
	}
	return users[i], true
}

func (d *demo) login(c echo.Context) error {
	u, ok := userNamed(c.FormValue("username"))
	if !ok {
		return echo.NewHTTPError(http.StatusBadRequest, "unknown user")
	}
	return d.setLogin(c, u.Username)
}

func (d *demo) logout(c echo.Context) error { return d.setLogin(c, "") }

// setLogin stores username in the login session ("" deletes it) and, as
// Django does on login and logout, drops the experiments session, so the
// next user of this browser is tracked afresh.
func (d *demo) setLogin(c echo.Context, username string) error {
	sess, _ := d.cookies.Get(c.Request(), loginSession) // a bad cookie gives a new session
	if username == "" {
		sess.Options.MaxAge = -1
	} else {
		sess.Values["username"] = username
	}
	if err := sess.Save(c.Request(), c.Response()); err != nil {
		return err
	}
	http.SetCookie(c.Response(), &http.Cookie{Name: experimentsSession, Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	return c.Redirect(http.StatusSeeOther, "/")
}

// page is what every page shows.
type page struct {
	Title   string
	User    experiments.User
	Users   []experiments.User
	Courses []course
}

func (d *demo) page(c echo.Context, title string) page {
	return page{Title: title, User: d.user(c), Users: users, Courses: courses}
}

func (d *demo) home(c echo.Context) error {
	return render(c, "home", d.page(c, "Home"))
}

// flagView is one experiment's decision as the course page shows it.
type flagView struct {
	Flag *experiments.ExperimentFlag
	experiments.Decision
	On bool // IsExperimentOn
}

func decide(ctx context.Context, f *experiments.ExperimentFlag, courseKey string) flagView {
	return flagView{Flag: f, Decision: f.Decide(ctx, courseKey), On: f.IsExperimentOn(ctx, courseKey)}
}

// upgradeMessages are what the course page says after the Upgrade
// button, by the redirect's "upgrade" parameter: fixed texts, nothing a
// link could make it say.
var upgradeMessages = map[string]string{
	"recorded":  "Thanks! Your upgrade is recorded: a conversion of the goal “" + upgradeGoal + "”.",
	"anonymous": "Log in to upgrade: conversions of anonymous visitors are not recorded.",
	"failed":    "Your upgrade could not be recorded; see the demo's log.",
}

func (d *demo) course(c echo.Context) error {
	crs, ok := courseOf(c)
	if !ok {
		return echo.NewHTTPError(http.StatusNotFound, "no such course")
	}
	ctx := c.Request().Context()
	return render(c, "course", struct {
		page
		Course           course
		Org              string
		Upgrade, Outline flagView
		UpgradeMessage   string
	}{
		page:           d.page(c, crs.Title),
		Course:         crs,
		Org:            experiments.CourseOrg(crs.Key),
		Upgrade:        decide(ctx, upgradeButton, crs.Key),
		Outline:        decide(ctx, newOutline, crs.Key),
		UpgradeMessage: upgradeMessages[c.QueryParam("upgrade")],
	})
}

// upgrade is the course page's Upgrade button: it converts the goal
// "upgrade" for the signed-in user, and redirects back to the course.
func (d *demo) upgrade(c echo.Context) error {
	crs, ok := courseOf(c)
	if !ok {
		return echo.NewHTTPError(http.StatusNotFound, "no such course")
	}
	result := "recorded"
	if d.user(c).ID == "" {
		result = "anonymous"
	} else if err := experiments.Convert(c.Request().Context(), upgradeGoal); err != nil {
		d.log.Warn("demo: recording the upgrade failed", "course", crs.Key, "err", err)
		result = "failed"
	}
	return c.Redirect(http.StatusSeeOther, "/courses/"+url.PathEscape(crs.Key)+"?upgrade="+result)
}

// courseOf returns the course of the request's path.
func courseOf(c echo.Context) (course, bool) {
	key, err := url.PathUnescape(c.Param("courseKey"))
	i := slices.IndexFunc(courses, func(crs course) bool { return crs.Key == key })
	if err != nil || i < 0 {
		return course{}, false
	}
	return courses[i], true
}

func (d *demo) eventsPage(c echo.Context) error {
	return render(c, "events", struct {
		page
		Max    int
		Events []experiments.Event
	}{d.page(c, "Events"), maxEvents, d.events.recent()})
}

// render executes template name into a buffer first, so that a template
// error gives a clean 500 rather than half a page.
func render(c echo.Context, name string, data any) error {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, data); err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store") // pages differ per user
	return c.HTMLBlob(http.StatusOK, buf.Bytes())
}

// eventLog is the demo's Tracker: it logs each event and keeps the last
// maxEvents for the /events page. It is safe for concurrent use.
type eventLog struct {
	log    *slog.Logger
	mu     sync.Mutex
	events []experiments.Event // oldest first
}

// Track logs e and remembers it.
func (l *eventLog) Track(ctx context.Context, e experiments.Event) error {
	l.log.LogAttrs(ctx, slog.LevelInfo, "demo: "+e.Name,
		slog.String("user", e.UserID), slog.String("experiment", e.AppLabel+"."+e.Experiment),
		slog.String("course", e.CourseKey), slog.Int("bucket", e.Bucket), slog.Bool("staff", e.IsStaff))
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
	if len(l.events) > maxEvents {
		l.events = l.events[len(l.events)-maxEvents:]
	}
	return nil
}

// recent returns the remembered events, newest first.
func (l *eventLog) recent() []experiments.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	events := slices.Clone(l.events)
	slices.Reverse(events)
	return events
}
