package experiments

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/gorilla/sessions"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// Config configures an Experiments runtime. Every field is optional.
type Config struct {
	// Store holds flags, overrides and experiment values.
	// Optional. Default: an empty MemStore (every flag off), which New
	// logs a warning about: a MemStore of your own is the way to run on
	// memory.
	Store Store
	// Enrollments tells when users enrolled, for enrollment windows.
	// Optional. Default: Store, if it implements Enrollments.
	Enrollments Enrollments
	// Tracker receives the "user bucketed" events.
	// Optional. Default: events are dropped.
	Tracker Tracker
	// Assignments remembers the bucket each user was first given in the
	// experiments of flags made WithStickyBuckets (see Assignments).
	// Optional. Default: Store, if it implements Assignments (MemStore and
	// sqlstore.Store do); else nil, and WithStickyBuckets has no effect.
	Assignments Assignments
	// Recorder keeps exposures (first bucketings) and conversions, for
	// results; usually the Store (MemStore and sqlstore.Store are
	// Recorders). Optional. Default: nil, nothing is recorded and Convert
	// fails with ErrNoRecorder.
	Recorder Recorder
	// Sessions keeps which experiments a user was already tracked in, so
	// that the event is sent once per session.
	// Optional. Default: nil, the event is sent once per request.
	Sessions sessions.Store
	// SessionName is the name of the session (its cookie, for a
	// CookieStore). Optional. Default: "experiments".
	SessionName string
	// AnonymousCookie names the cookie that gives anonymous visitors a
	// stable random ID, so that flags made WithAnonymous can bucket them.
	// The cookie is set, with SessionOptions' options, on the first
	// response that decides such a flag for a visitor without one, and
	// never otherwise. Optional. Default: "", anonymous visitors have no
	// ID and every flag gives them control.
	AnonymousCookie string
	// SessionOptions are the options of the session's cookie.
	// Optional. Default: Path "/", MaxAge 30 days, HttpOnly,
	// SameSite=Lax, Secure false (set it true behind HTTPS).
	SessionOptions *sessions.Options
	// Hasher assigns users to buckets and to Rule.Percent shares.
	// Optional. Default: SHA256Hasher.
	Hasher Hasher
	// Site is copied into events (edX's site domain), and into
	// exposures as the dimension "site" when Dimensions names it
	// (DimensionSite).
	// Optional. Default: "".
	Site string
	// Dimensions names the user attributes (User.Attributes) copied, as
	// strings, into each recorded exposure (Exposure.Dimensions), so that
	// results can be broken down by them (results.Query.Dimension): a
	// browser family, a plan, a country. The name DimensionSite records
	// Site instead of an attribute. At most MaxDimensions names, each 1
	// to MaxDimensionNameLen ASCII letters, digits, '_', '-' and '.', none
	// twice (Validate; New panics otherwise). A value is a string as it
	// is, a bool "true" or "false", a number in Go's shortest form; an
	// absent or empty value, one of another type, or one longer than
	// MaxDimensionValueLen bytes or not UTF-8 is left out of the exposure.
	// Only the exposure, recorded once per user and experiment, carries
	// them: decisions that record nothing cost nothing more. The slice is
	// copied. Optional. Default: nil, exposures have no dimensions.
	Dimensions []string
	// Now is the clock for events and for "not enrolled: enrolled now".
	// Optional. Default: time.Now.
	Now func() time.Time
	// Logger receives failures (at most one per request and experiment).
	// Optional. Default: slog.Default().
	Logger *slog.Logger
	// OnDecision observes every decision made with request state, cached
	// ones included (see DecisionFunc), e.g. prommetrics' ObserveDecision.
	// Optional. Default: nil, decisions are not observed (and that costs
	// nothing).
	OnDecision DecisionFunc
}

// Experiments is the runtime that decides buckets: the store, tracker and
// session settings of Config. Make one with New at start-up, install its
// Middleware (or Handler), and call flags' Bucket from handlers. It is safe
// for concurrent use.
type Experiments struct {
	store       Store
	enrollments Enrollments
	assignments Assignments // assignments.go
	tracker     Tracker
	recorder    Recorder
	sessions    sessions.Store
	sessionName string
	sessionOpts sessions.Options
	anonCookie  string // Config.AnonymousCookie
	hasher      Hasher
	sha256      bool // hasher is SHA256Hasher: hash without building the group
	site        string
	dimensions  []string // Config.Dimensions
	now         func() time.Time
	log         *slog.Logger
	counters
	observer // observe.go
}

// defaultSessionName is Config.SessionName's default.
const defaultSessionName = "experiments"

// New returns an Experiments for cfg, with the defaults of Config filled
// in. It panics when cfg.Validate fails (a session store without a key,
// say): such a runtime would send the event again on every request, and
// New runs at start-up, where the mistake should show. It logs a warning
// when cfg.Store is nil.
func New(cfg Config) *Experiments {
	if err := cfg.Validate(); err != nil {
		panic("experiments.New: " + err.Error())
	}
	x := &Experiments{
		store: cfg.Store, enrollments: cfg.Enrollments, tracker: cfg.Tracker, recorder: cfg.Recorder,
		sessions: cfg.Sessions, sessionName: cfg.SessionName, anonCookie: cfg.AnonymousCookie, hasher: cfg.Hasher,
		site: cfg.Site, dimensions: slices.Sorted(slices.Values(cfg.Dimensions)), now: cfg.Now, log: cfg.Logger, observer: newObserver(cfg.OnDecision),
		sessionOpts: sessions.Options{Path: "/", MaxAge: 30 * 86400, HttpOnly: true, SameSite: http.SameSiteLaxMode},
	}
	if x.store == nil {
		x.store = NewMemStore()
	}
	if x.enrollments == nil {
		x.enrollments, _ = x.store.(Enrollments)
	}
	x.assignments = cfg.Assignments
	if x.assignments == nil {
		x.assignments, _ = x.store.(Assignments)
	}
	if x.sessionName == "" {
		x.sessionName = defaultSessionName
	}
	if cfg.SessionOptions != nil {
		x.sessionOpts = *cfg.SessionOptions
	}
	if x.hasher == nil {
		x.hasher = SHA256Hasher
	}
	x.sha256 = isSHA256Hasher(x.hasher)
	if x.now == nil {
		x.now = time.Now
	}
	if x.log == nil {
		x.log = slog.Default()
	}
	if cfg.Store == nil {
		x.hintNoStore()
	}
	return x
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

// User is the person a request decides for. The app fills it from its own
// authentication (MiddlewareConfig.User, Handler's user func, NewContext).
// Groups is read, not copied: do not change it during the request.
type User struct {
	ID           string   // "" = anonymous: always bucket 0, never tracked
	Username     string   // for Rule.Users and EdXHasher
	Staff        bool     // for Rule.Staff; copied into events
	Superuser    bool     // for Rule.Superusers
	Groups       []string // for Rule.Groups
	Masquerading bool     // staff viewing as this user: bucketed as them, never tracked
	// Attributes are the app's own facts about the user, for audiences
	// and bucketing IDs: string keys; values string, bool or a number
	// (any int, uint or float type). A value of another type counts as
	// absent. The map is read, never changed, and may be shared between
	// requests.
	Attributes map[string]any
}

// MiddlewareConfig configures Experiments.Middleware.
type MiddlewareConfig struct {
	// Skipper defines a function to skip the middleware: requests it
	// skips have no request state, so flags give control.
	// Optional. Default: nil, no request is skipped.
	Skipper middleware.Skipper
	// User returns the request's user.
	// Optional. Default: nil, every request is anonymous.
	User func(c echo.Context) User
}

// Middleware returns echo middleware that gives each request its state:
// the user, the request cache and, with Config.Sessions, the session of
// tracked experiments, saved before the response is committed.
func (x *Experiments) Middleware(mc MiddlewareConfig) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if mc.Skipper != nil && mc.Skipper(c) {
				return next(c)
			}
			var u User
			if mc.User != nil {
				u = mc.User(c)
			}
			r := c.Request()
			st := x.newState(r.Context(), u)
			r = r.WithContext(st)
			c.SetRequest(r)
			if !x.keepsState() {
				return next(c)
			}
			// Wrapping the writer, rather than Response.Before, also catches
			// a Flush before any write (server-sent events).
			res := c.Response()
			res.Writer = st.withSession(r, res.Writer)
			err := next(c)
			// Nothing written yet (or an error for echo to render): the
			// headers are still open.
			st.sess.save()
			return err
		}
	}
}

// Handler wraps next (net/http, chi, gorilla/mux) so that each request
// gets its state, like Middleware does for echo. user returns the
// request's user; nil makes every request anonymous.
func (x *Experiments) Handler(next http.Handler, user func(*http.Request) User) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var u User
		if user != nil {
			u = user(r)
		}
		st := x.newState(r.Context(), u)
		r = r.WithContext(st)
		if !x.keepsState() {
			next.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(st.withSession(r, w), r)
		st.sess.save()
	})
}

// keepsState reports whether requests keep state in cookies (the
// session, the anonymous ID): their writer is wrapped to set them.
func (x *Experiments) keepsState() bool { return x.sessions != nil || x.anonCookie != "" }

// NewContext returns a context with request state for user u, for code
// that decides outside HTTP: jobs, gRPC, tests, benchmarks. Decisions made
// with it are cached in it; events are sent once per context (there is no
// session). Overrides in parent (WithOverride) still apply.
func (x *Experiments) NewContext(parent context.Context, u User) context.Context {
	return x.newState(parent, u)
}

// scopeKey is the one context key of the package. Its value is a *scope.
type scopeKey struct{}

// scope is what a context carries: the request state, if any, and the
// WithOverride overrides in effect.
type scope struct {
	st  *reqState
	ovr *ctxOverride
}

func scopeOf(ctx context.Context) *scope {
	if ctx == nil {
		return nil
	}
	sc, _ := ctx.Value(scopeKey{}).(*scope)
	return sc
}

// reqState is a request's state. It is its own context (one allocation
// per request) and is safe for a handler's goroutines to share.
type reqState struct {
	context.Context
	scope scope
	x     *Experiments
	user  User

	mu     sync.Mutex
	cache  [4]cacheEntry // the first decisions, without allocating
	ncache int
	rare   *rareState    // made on first use
	sess   *sessionState // over HTTP only, with Config.Sessions or AnonymousCookie
}

// rareState is the part of a request's state that most requests never
// need, kept apart so that the state stays small.
type rareState struct {
	more        []cacheEntry // decisions past the first len(cache)
	enrollments []enrollment
	failed      []cacheEntry // experiments whose failure was logged
}

func (st *reqState) rareState() *rareState {
	if st.rare == nil {
		st.rare = new(rareState)
	}
	return st.rare
}

// sessionState is a request's session of tracking marks.
type sessionState struct {
	writer    saveWriter // the response writer, for net/http
	st        *reqState
	r         *http.Request
	w         http.ResponseWriter
	sess      *sessions.Session
	read      bool   // sess was read (or failed to be)
	dirty     bool   // sess has marks to save
	committed bool   // the response is committed: no more saving
	anonID    string // the anonymous ID (bucketing.go), once anonRead
	anonRead  bool   // the anonymous ID was looked for
	anonNew   bool   // anonID is new: its cookie is to be set
}

type cacheEntry struct {
	flag   *ExperimentFlag
	course string
	bucket int
}

func (x *Experiments) newState(parent context.Context, u User) *reqState {
	st := &reqState{Context: parent, x: x, user: u}
	st.scope.st = st
	if p := scopeOf(parent); p != nil {
		st.scope.ovr = p.ovr
	}
	return st
}

// Value returns the state's scope for the package's key.
func (st *reqState) Value(key any) any {
	if _, ok := key.(scopeKey); ok {
		return &st.scope
	}
	return st.Context.Value(key)
}

// cached returns the bucket decided earlier in the request. st.mu is held.
func (st *reqState) cached(f *ExperimentFlag, courseKey string) (int, bool) {
	for i := range st.cache[:st.ncache] {
		if e := &st.cache[i]; e.flag == f && e.course == courseKey {
			return e.bucket, true
		}
	}
	if st.rare != nil {
		for i := range st.rare.more {
			if e := &st.rare.more[i]; e.flag == f && e.course == courseKey {
				return e.bucket, true
			}
		}
	}
	return 0, false
}

// remember caches a decision. st.mu is held.
func (st *reqState) remember(f *ExperimentFlag, courseKey string, bucket int) {
	e := cacheEntry{flag: f, course: courseKey, bucket: bucket}
	if st.ncache < len(st.cache) {
		st.cache[st.ncache] = e
		st.ncache++
		return
	}
	rare := st.rareState()
	rare.more = append(rare.more, e)
}

// save writes the session when marks were added and the response is not
// committed yet. It runs once, when the response is about to be committed.
func (ss *sessionState) save() {
	st := ss.st
	st.mu.Lock()
	defer st.mu.Unlock()
	if ss.committed {
		return
	}
	ss.committed = true
	ss.setAnonymousCookie()
	if !ss.dirty || ss.sess == nil {
		return
	}
	ss.dirty = false
	opts := st.x.sessionOpts
	ss.sess.Options = &opts
	if err := st.x.sessions.Save(ss.r, ss.w, ss.sess); err != nil {
		st.x.log.LogAttrs(st, slog.LevelWarn, "experiments: saving the session failed",
			slog.String("session", st.x.sessionName), slog.Any("err", err))
	}
}

// logOnce logs the failure of a decision, at most once per request and
// experiment. st.mu is held.
func (st *reqState) logOnce(ctx context.Context, f *ExperimentFlag, courseKey string, d Decision) {
	rare := st.rareState()
	for _, e := range rare.failed {
		if e.flag == f && e.course == courseKey {
			return
		}
	}
	rare.failed = append(rare.failed, cacheEntry{flag: f, course: courseKey})
	st.x.log.LogAttrs(ctx, slog.LevelError, "experiments: decision failed",
		slog.String("flag", f.full), slog.String("course", courseKey),
		slog.Int("bucket", d.Bucket), slog.String("reason", string(d.Reason)), slog.Any("err", d.Err))
}

// withSession gives st a session state for request r (whose context is
// st) and its response writer w, and returns the writer that saves the
// session before the response is committed.
func (st *reqState) withSession(r *http.Request, w http.ResponseWriter) http.ResponseWriter {
	sessions.GetRegistry(r) // handlers that read sessions share ours
	st.sess = &sessionState{st: st, r: r, w: w}
	st.sess.writer = saveWriter{ResponseWriter: w, ss: st.sess}
	return &st.sess.writer
}

// saveWriter saves the session before the response is committed.
type saveWriter struct {
	http.ResponseWriter
	ss        *sessionState
	committed bool
}

func (w *saveWriter) commit() {
	if !w.committed {
		w.committed = true
		w.ss.save()
	}
}

func (w *saveWriter) WriteHeader(code int) {
	if code >= 200 || code == http.StatusSwitchingProtocols {
		w.commit()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *saveWriter) Write(b []byte) (int, error) {
	w.commit()
	return w.ResponseWriter.Write(b)
}

// Flush commits the response and flushes it, when the wrapped writer can.
func (w *saveWriter) Flush() {
	w.commit()
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack hands the connection over, when the wrapped writer can.
func (w *saveWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.commit()
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// Unwrap returns the wrapped writer, for http.ResponseController.
func (w *saveWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
