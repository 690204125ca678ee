package experiments_test

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/abkit/experiments"
	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"
	"github.com/labstack/echo/v4"
)

// The middleware reads its marks from a gorilla session whose content it
// does not control: a cookie from the browser, or whatever a server-side
// store hands back. These targets feed it arbitrary cookies, arbitrary
// payloads behind a valid signature, and values of any type under the
// session keys it uses ("experiments.user", "tracked.<experiment>",
// "exposed.<experiment>"). Whatever the session holds, a decision never
// panics, the user gets their hashed bucket without error, the request
// gets its response, and a cookie written back always decodes.
// More seeds are in testdata/fuzz/<FuzzName>/.

var sessionFlag = experiments.NewFlag("fuzz", "session")

const (
	sessionCourse     = "course-v1:edX+DemoX+2026"
	sessionExperiment = "fuzz.session." + sessionCourse // the marks' suffix
	sessionUser       = "1"
	sessionUserKey    = "experiments.user"
	trackedKey        = "tracked." + sessionExperiment
	exposedKey        = "exposed." + sessionExperiment
)

var sessionHashKey = []byte("0123456789abcdef0123456789abcdef")

// sessionRig is an Experiments with the flag on for everyone, counting
// the events and exposures it sends.
type sessionRig struct {
	x                 *experiments.Experiments
	events, exposures atomic.Int64
}

type recorderFunc func(experiments.Exposure) error

func (f recorderFunc) RecordExposure(_ context.Context, e experiments.Exposure) error { return f(e) }
func (recorderFunc) RecordConversion(context.Context, experiments.Conversion) error   { return nil }

func newSessionRig(t *testing.T, store sessions.Store) *sessionRig {
	t.Helper()
	ms := experiments.NewMemStore()
	if err := ms.SetFlag(context.Background(), sessionFlag.Name(), experiments.On()); err != nil {
		t.Fatal(err)
	}
	rig := &sessionRig{}
	rig.x = experiments.New(experiments.Config{
		Store: ms,
		Tracker: experiments.TrackerFunc(func(context.Context, experiments.Event) error {
			rig.events.Add(1)
			return nil
		}),
		Recorder: recorderFunc(func(experiments.Exposure) error { rig.exposures.Add(1); return nil }),
		Sessions: store,
		Logger:   unitLogger(),
	})
	return rig
}

// echoHandler serves GET / with the middleware: the handler decides, keeps
// the decision in *d and writes the bucket.
func (rig *sessionRig) echoHandler(d *experiments.Decision) http.Handler {
	e := echo.New()
	e.Use(rig.x.Middleware(experiments.MiddlewareConfig{
		User: func(echo.Context) experiments.User { return experiments.User{ID: sessionUser} },
	}))
	e.GET("/", func(c echo.Context) error {
		*d = sessionFlag.Decide(c.Request().Context(), sessionCourse)
		return c.String(http.StatusOK, fmt.Sprintf("bucket %d", d.Bucket))
	})
	return e
}

// netHTTPHandler is echoHandler with Experiments.Handler.
func (rig *sessionRig) netHTTPHandler(d *experiments.Decision) http.Handler {
	return rig.x.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		*d = sessionFlag.Decide(r.Context(), sessionCourse)
		fmt.Fprintf(w, "bucket %d", d.Bucket)
	}), func(*http.Request) experiments.User { return experiments.User{ID: sessionUser} })
}

// serveSession sends GET / with the raw Cookie header (if any) and checks
// what holds for any session: a 200 with the user's hashed bucket, no
// decision error.
func serveSession(t *testing.T, h http.Handler, d *experiments.Decision, cookieHeader string) *http.Response {
	t.Helper()
	return serveSessionPanicking(t, h, d, cookieHeader, false)
}

// serveSessionPanicking is serveSession that also accepts control with
// ReasonError when decoding the session panicked, if panicOK: gob panics
// on some payloads (a map key of an unhashable type), gorilla does not
// recover, and a session store that panics gives control, like any
// failure of a decision.
func serveSessionPanicking(t *testing.T, h http.Handler, d *experiments.Decision, cookieHeader string, panicOK bool) *http.Response {
	t.Helper()
	*d = experiments.Decision{Reason: "handler not reached"}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	if cookieHeader != "" {
		req.Header["Cookie"] = []string{cookieHeader}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	resp := rec.Result()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("Cookie %q: status %d, want 200", cookieHeader, resp.StatusCode)
	}
	if panicOK && d.Reason == experiments.ReasonError && d.Bucket == 0 && d.Err != nil && strings.Contains(d.Err.Error(), "panic: ") {
		return resp
	}
	want := experiments.SHA256Bucket(sessionExperiment, sessionUser, sessionFlag.Buckets())
	if d.Reason != experiments.ReasonHashed || d.Bucket != want || d.Err != nil {
		t.Fatalf("Cookie %q: decision %+v, want bucket %d, hashed, no error", cookieHeader, *d, want)
	}
	return resp
}

// sessionCookie returns the experiments cookie of resp, if any.
func sessionCookie(resp *http.Response) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == "experiments" {
			return c
		}
	}
	return nil
}

// checkWrittenBack checks that the session cookie written in resp, if
// any, decodes with the store's codecs into the user and both marks, and
// that sending it back decides without tracking or writing again.
func checkWrittenBack(t *testing.T, store *sessions.CookieStore, h http.Handler, d *experiments.Decision, rig *sessionRig, resp *http.Response) map[any]any {
	t.Helper()
	c := sessionCookie(resp)
	if c == nil {
		return nil
	}
	values := map[any]any{}
	if err := securecookie.DecodeMulti("experiments", c.Value, &values, store.Codecs...); err != nil {
		t.Fatalf("the session cookie written does not decode: %v", err)
	}
	_, tracked := values[trackedKey]
	_, exposed := values[exposedKey]
	if values[sessionUserKey] != sessionUser || !tracked || !exposed {
		t.Fatalf("the session written holds %v, want the user and both marks", values)
	}
	events, exposures := rig.events.Load(), rig.exposures.Load()
	again := serveSession(t, h, d, "experiments="+c.Value)
	if d.Tracked || rig.events.Load() != events || rig.exposures.Load() != exposures || sessionCookie(again) != nil {
		t.Fatalf("the session written back tracked again (decision %+v) or was written again", *d)
	}
	return values
}

func FuzzSessionCookie(f *testing.F) {
	store := sessions.NewCookieStore(sessionHashKey)
	good, err := securecookie.EncodeMulti("experiments",
		map[any]any{sessionUserKey: sessionUser, trackedKey: true, exposedKey: true}, store.Codecs...)
	if err != nil {
		f.Fatal(err)
	}
	other, err := securecookie.EncodeMulti("experiments", map[any]any{sessionUserKey: "2", trackedKey: true}, store.Codecs...)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		"", "experiments=", "experiments=garbage", "experiments=" + good, "experiments=" + other,
		"experiments=" + good[:len(good)/2], "experiments=" + good + "A", "experiments=" + strings.ToUpper(good),
		"a=b; experiments=" + good + "; experiments=x", "experiments=x; experiments=" + good,
		"experiments=\"" + good + "\"", "experiments=" + strings.Repeat("A", 5000), "experiments=%00%ff",
		"experiments=\x00\xff\n", ";;;=;", "experiments=MTY|bad|mac",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		rig := newSessionRig(t, store)
		var d experiments.Decision
		for _, h := range []http.Handler{rig.echoHandler(&d), rig.netHTTPHandler(&d)} {
			resp := serveSession(t, h, &d, header)
			checkWrittenBack(t, store, h, &d, rig, resp)
		}
	})
}

// rawSerializer hands securecookie the payload as it is, so that a
// payload signed with the store's key reaches the store's gob decoder.
type rawSerializer struct{}

func (rawSerializer) Serialize(src any) ([]byte, error) {
	b, ok := src.([]byte)
	if !ok {
		return nil, errors.New("rawSerializer: want []byte")
	}
	return b, nil
}

func (rawSerializer) Deserialize([]byte, any) error { return errors.New("rawSerializer: encode only") }

func gobPayload(f *testing.F, values map[any]any) []byte {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(values); err != nil {
		f.Fatal(err)
	}
	return buf.Bytes()
}

func FuzzSessionPayload(f *testing.F) {
	store := sessions.NewCookieStore(sessionHashKey)
	signer := securecookie.New(sessionHashKey, nil).SetSerializer(rawSerializer{})
	for _, values := range []map[any]any{
		{},
		{sessionUserKey: sessionUser, trackedKey: true, exposedKey: true},
		{sessionUserKey: "2", trackedKey: true, "cart": "3 items"},
		{sessionUserKey: 1, trackedKey: 1, exposedKey: "yes"},
		{sessionUserKey: []byte(sessionUser), int64(7): []string{"x"}, 3.5: []int{1}},
		{sessionUserKey: []any{sessionUser}, trackedKey: false},
	} {
		f.Add(gobPayload(f, values))
	}
	f.Add([]byte{})
	f.Add([]byte("not gob at all"))
	f.Fuzz(func(t *testing.T, payload []byte) {
		value, err := signer.Encode("experiments", payload)
		if err != nil {
			return // longer than a cookie may be
		}
		rig := newSessionRig(t, store)
		var d experiments.Decision
		for _, h := range []http.Handler{rig.echoHandler(&d), rig.netHTTPHandler(&d)} {
			resp := serveSessionPanicking(t, h, &d, "experiments="+value, true)
			checkWrittenBack(t, store, h, &d, rig, resp)
		}
	})
}

// valueStore is a server-side sessions.Store whose sessions hold the
// values it is given, as they are: any type, gob-encodable or not.
type valueStore struct{ values map[any]any }

func (s *valueStore) Get(r *http.Request, name string) (*sessions.Session, error) {
	return sessions.GetRegistry(r).Get(s, name)
}

func (s *valueStore) New(_ *http.Request, name string) (*sessions.Session, error) {
	sess := sessions.NewSession(s, name)
	sess.Values = maps.Clone(s.values)
	sess.IsNew = s.values == nil
	return sess, nil
}

func (s *valueStore) Save(*http.Request, http.ResponseWriter, *sessions.Session) error { return nil }

type weirdStruct struct{ A string }

// weirdValue returns a value of the type kind picks, and false for none.
func weirdValue(kind uint8, s string, n int64) (any, bool) {
	switch kind % 16 {
	case 0:
		return nil, false
	case 1:
		return sessionUser, true
	case 2:
		return s, true
	case 3:
		return n, true
	case 4:
		return int(n), true
	case 5:
		return []byte(s), true
	case 6:
		return []string{s}, true
	case 7:
		return map[string]any{s: n}, true
	case 8:
		return nil, true // present, but nil
	case 9:
		if n == 0 {
			return 0.0, true
		}
		return float64(n) / 0, true // ±Inf
	case 10:
		return n%2 == 0, true
	case 11:
		return []any{s, n}, true
	case 12:
		return weirdStruct{s}, true // not registered with gob
	case 13:
		return &s, true
	case 14:
		return func() {}, true
	default:
		return make(chan int), true
	}
}

// weirdKey returns a session key of the type kind picks.
func weirdKey(kind uint8, s string, n int64) any {
	switch kind % 8 {
	case 0:
		return s
	case 1:
		return n
	case 2:
		return "tracked." + s
	case 3:
		return "exposed." + s
	case 4:
		return weirdStruct{s}
	case 5:
		return [2]int64{n, n}
	case 6:
		return n%2 == 0
	default:
		return int(n)
	}
}

func FuzzSessionValues(f *testing.F) {
	f.Add(uint8(1), uint8(10), uint8(10), uint8(0), uint8(0), "cart", int64(3))           // tracked already
	f.Add(uint8(2), uint8(10), uint8(10), uint8(2), uint8(2), "2", int64(0))              // another user's marks
	f.Add(uint8(3), uint8(8), uint8(0), uint8(5), uint8(1), "", int64(1))                 // an int user, a nil mark
	f.Add(uint8(5), uint8(6), uint8(7), uint8(12), uint8(4), "1", int64(-1))              // []byte user, odd marks
	f.Add(uint8(14), uint8(15), uint8(13), uint8(14), uint8(5), "x", int64(1<<62))        // func, chan, pointer
	f.Add(uint8(1), uint8(0), uint8(9), uint8(11), uint8(2), sessionExperiment, int64(9)) // an extra key that is the mark
	f.Add(uint8(0), uint8(0), uint8(0), uint8(0), uint8(0), "", int64(0))                 // an empty session
	f.Fuzz(func(t *testing.T, userKind, trackedKind, exposedKind, extraKind, extraKeyKind uint8, s string, n int64) {
		values := map[any]any{}
		for _, kv := range []struct {
			key  any
			kind uint8
		}{
			{sessionUserKey, userKind}, {trackedKey, trackedKind}, {exposedKey, exposedKind},
			{weirdKey(extraKeyKind, s, n), extraKind},
		} {
			if v, ok := weirdValue(kv.kind, s, n); ok {
				values[kv.key] = v
			}
		}
		// A mark counts only in a session of the request's user: an event
		// (an exposure) is sent unless the session holds both the user's
		// ID, as a string, and the mark, whatever its value.
		want := func(values map[any]any) (event, exposure bool) {
			sameUser := values[sessionUserKey] == any(sessionUser)
			_, tracked := values[trackedKey]
			_, exposed := values[exposedKey]
			return !(sameUser && tracked), !(sameUser && exposed)
		}
		var wantEvent, wantExposure bool
		check := func(t *testing.T, rig *sessionRig, h http.Handler, d *experiments.Decision, header string) *http.Response {
			t.Helper()
			resp := serveSession(t, h, d, header)
			if d.Tracked != wantEvent || (rig.events.Load() == 1) != wantEvent || (rig.exposures.Load() == 1) != wantExposure {
				t.Fatalf("session %v: tracked %v, %d events, %d exposures; want an event %v, an exposure %v",
					values, d.Tracked, rig.events.Load(), rig.exposures.Load(), wantEvent, wantExposure)
			}
			rig.events.Store(0)
			rig.exposures.Store(0)
			return resp
		}

		// A server-side store hands the values over as they are.
		server := &valueStore{values: values}
		wantEvent, wantExposure = want(values)
		rig := newSessionRig(t, server)
		var d experiments.Decision
		for _, h := range []http.Handler{rig.echoHandler(&d), rig.netHTTPHandler(&d)} {
			check(t, rig, h, &d, "")
		}

		// A cookie store gets them through gob, when gob can encode them.
		store := sessions.NewCookieStore(sessionHashKey)
		cookie, err := securecookie.EncodeMulti("experiments", values, store.Codecs...)
		if err != nil {
			return
		}
		var sent map[any]any
		if err := securecookie.DecodeMulti("experiments", cookie, &sent, store.Codecs...); err != nil {
			t.Fatalf("values %v encode but do not decode: %v", values, err)
		}
		wantEvent, wantExposure = want(sent) // gob turns a *string into a string
		rig = newSessionRig(t, store)
		for _, h := range []http.Handler{rig.echoHandler(&d), rig.netHTTPHandler(&d)} {
			resp := check(t, rig, h, &d, "experiments="+cookie)
			written := checkWrittenBack(t, store, h, &d, rig, resp)
			if written == nil {
				if wantEvent || wantExposure {
					t.Fatalf("session %v: marks added but no cookie written", values)
				}
				continue
			}
			// Values that are not the package's are left alone.
			for k, v := range sent {
				if ks, ok := k.(string); ok && (ks == sessionUserKey || strings.HasPrefix(ks, "tracked.") || strings.HasPrefix(ks, "exposed.")) {
					continue
				}
				if w, ok := written[k]; !ok || !reflect.DeepEqual(w, v) {
					t.Fatalf("session %v: the app's value %v = %v became %v", sent, k, v, w)
				}
			}
		}
	})
}
