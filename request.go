package experiments

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/gorilla/sessions"
)

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
	if st.firstFailure(f, courseKey) {
		st.x.logFailure(ctx, f, courseKey, d)
	}
}

// firstFailure reports whether no failure of f in courseKey was logged in
// the request yet, and notes that one now is. st.mu is held.
func (st *reqState) firstFailure(f *ExperimentFlag, courseKey string) bool {
	rare := st.rareState()
	for _, e := range rare.failed {
		if e.flag == f && e.course == courseKey {
			return false
		}
	}
	rare.failed = append(rare.failed, cacheEntry{flag: f, course: courseKey})
	return true
}

// logFailure logs the failure of decision d.
func (x *Experiments) logFailure(ctx context.Context, f *ExperimentFlag, courseKey string, d Decision) {
	x.log.LogAttrs(ctx, slog.LevelError, "experiments: decision failed",
		slog.String("flag", f.full), slog.String("course", courseKey),
		slog.Int("bucket", d.Bucket), slog.String("reason", string(d.Reason)), slog.Any("err", d.Err))
}

// mark adds key to the session, if there is one. st.mu is held.
func (st *reqState) mark(ctx context.Context, sess *sessions.Session, key string) {
	if sess == nil {
		return
	}
	sess.Values[key] = true
	st.sess.dirty = true
	if st.sess.committed {
		st.x.log.LogAttrs(ctx, slog.LevelWarn, "experiments: bucketed after the response was committed; the session mark is lost",
			slog.String("mark", key))
	}
}

// session returns the request's session, reading it on first use; nil
// without Config.Sessions or outside HTTP. st.mu is held.
func (st *reqState) session() *sessions.Session {
	ss := st.sess
	if ss == nil || st.x.sessions == nil {
		return nil
	}
	if ss.read {
		return ss.sess
	}
	ss.read = true
	x := st.x
	sess, err := x.sessions.Get(ss.r, x.sessionName)
	if err != nil {
		// A cookie that no longer decodes (rotated keys, tampering) gives a
		// new session: the user may be tracked again, nothing worse.
		x.log.LogAttrs(st, slog.LevelWarn, "experiments: reading the session failed; starting a new one",
			slog.String("session", x.sessionName), slog.Any("err", err))
	}
	if sess == nil {
		return nil
	}
	// The marks belong to one user: another user signing in on the same
	// browser starts with none. Other values of the session are left alone.
	if sess.Values == nil {
		sess.Values = make(map[any]any)
	}
	owner := st.user.ID
	if owner == "" {
		// An anonymous visitor's marks are their anonymous ID's: a new
		// ID in the same session starts afresh.
		owner = "anonymous " + ss.anonID
	}
	if sess.Values[sessionUserKey] != owner {
		for k := range sess.Values {
			if s, ok := k.(string); ok && (strings.HasPrefix(s, markPrefix) || strings.HasPrefix(s, exposedPrefix)) {
				delete(sess.Values, k)
				ss.dirty = true
			}
		}
		sess.Values[sessionUserKey] = owner // saved with the first mark
	}
	ss.sess = sess
	return sess
}

const (
	// sessionUserKey holds the ID of the user the session's marks belong to.
	sessionUserKey = "experiments.user"
	// markPrefix starts the key of a mark: "tracked.<experiment>", as in edX.
	markPrefix = "tracked."
	// exposedPrefix starts the key of an exposure's mark, kept apart from
	// the event's so that a Recorder added later still sees returning users.
	exposedPrefix = "exposed."
)
