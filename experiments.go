package experiments

import (
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/gorilla/sessions"
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
	// Hasher assigns users to buckets, to Rule.Percent shares and to
	// layers. Optional. Default: nil, SHA256Hasher's buckets, computed
	// without building the group string (passing SHA256Hasher gives the
	// same buckets, at the cost of that string).
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
	// Optional. Default: nil, decisions are not observed (which costs a
	// comparison per decision).
	OnDecision DecisionFunc
}

// Experiments is the runtime that decides buckets: the store, tracker and
// session settings of Config. Make one with New at start-up, install its
// Middleware (or Handler), and call flags' Bucket from handlers. It is safe
// for concurrent use.
type Experiments struct {
	store       Store
	enrollments Enrollments
	assignments Assignments // sticky.go
	tracker     Tracker
	recorder    Recorder
	sessions    sessions.Store
	sessionName string
	sessionOpts sessions.Options
	anonCookie  string // Config.AnonymousCookie
	hasher      Hasher // nil: SHA256Hasher's buckets, computed without building the group
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
		site: cfg.Site, dimensions: slices.Sorted(slices.Values(cfg.Dimensions)), now: cfg.Now, log: cfg.Logger, observer: observer{onDecision: cfg.OnDecision},
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
