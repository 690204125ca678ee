package experiments_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/abkit/experiments"
	"github.com/gorilla/sessions"
	"github.com/labstack/echo/v4"
)

// Security guarantees, over real HTTP where a browser is involved.

var securityFlag = experiments.NewFlag("security", "cookie")

// cookieSite is a site (echo and net/http) whose pages decide the
// security flag, on for everyone, counting the events sent.
type cookieSite struct {
	x      *experiments.Experiments
	events atomic.Int64
}

func newCookieSite(t *testing.T, opts *sessions.Options) *cookieSite {
	t.Helper()
	store := experiments.NewMemStore()
	if err := store.SetFlag(context.Background(), securityFlag.Name(), experiments.On()); err != nil {
		t.Fatal(err)
	}
	site := &cookieSite{}
	site.x = experiments.New(experiments.Config{
		Store: store,
		Tracker: experiments.TrackerFunc(func(context.Context, experiments.Event) error {
			site.events.Add(1)
			return nil
		}),
		Sessions:       sessions.NewCookieStore([]byte("0123456789abcdef0123456789abcdef")),
		SessionOptions: opts,
		Logger:         unitLogger(),
	})
	return site
}

func (s *cookieSite) handlers() map[string]http.Handler {
	user := func() experiments.User { return experiments.User{ID: "7"} }
	e := echo.New()
	e.Use(s.x.Middleware(experiments.MiddlewareConfig{User: func(echo.Context) experiments.User { return user() }}))
	e.GET("/*", func(c echo.Context) error {
		return c.String(http.StatusOK, strings.Repeat("x", securityFlag.Bucket(c.Request().Context(), "course-v1:edX+DemoX+2026")))
	})
	mux := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("x", securityFlag.Bucket(r.Context(), "course-v1:edX+DemoX+2026")))
	})
	return map[string]http.Handler{
		"echo":     e,
		"net/http": s.x.Handler(mux, func(*http.Request) experiments.User { return user() }),
	}
}

// browse requests path with client and returns the response's
// Set-Cookie headers, as sent.
func browse(t *testing.T, client *http.Client, url string) []string {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return resp.Header.Values("Set-Cookie")
}

// checkCookieAttributes checks the one Set-Cookie header of the session
// and its attributes, as the browser reads them.
func checkCookieAttributes(t *testing.T, headers []string, secure bool) {
	t.Helper()
	if len(headers) != 1 || !strings.HasPrefix(headers[0], "experiments=") {
		t.Fatalf("Set-Cookie %q, want the experiments session alone", headers)
	}
	c, err := http.ParseSetCookie(headers[0])
	if err != nil {
		t.Fatalf("Set-Cookie %q: %v", headers[0], err)
	}
	if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Secure != secure || c.Value == "" {
		t.Errorf("Set-Cookie %q: want a value, HttpOnly, SameSite=Lax, Path=/, Secure %v", headers[0], secure)
	}
	for _, attr := range []string{"; HttpOnly", "; SameSite=Lax", "; Path=/"} {
		if !strings.Contains(headers[0], attr) {
			t.Errorf("Set-Cookie %q: no %q", headers[0], attr)
		}
	}
	if strings.Contains(headers[0], "; Secure") != secure {
		t.Errorf("Set-Cookie %q: Secure attribute present = %v, want %v", headers[0], !secure, secure)
	}
}

func TestTheSessionCookieIsHttpOnlySameSiteLaxAndSiteWideByDefault(t *testing.T) {
	site := newCookieSite(t, nil)
	for name, h := range site.handlers() {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(h)
			defer srv.Close()
			jar, _ := cookiejar.New(nil)
			client := &http.Client{Jar: jar}
			site.events.Store(0)
			checkCookieAttributes(t, browse(t, client, srv.URL+"/courses/course-v1:edX+DemoX+2026/info"), false)
			// Path=/: the browser sends it back on any page, which then
			// neither tracks nor writes the cookie again.
			if again := browse(t, client, srv.URL+"/dashboard"); len(again) != 0 || site.events.Load() != 1 {
				t.Errorf("second page: Set-Cookie %q and %d events; want none and 1", again, site.events.Load())
			}
		})
	}
}

func TestTheSessionCookieIsSecureWhenConfigured(t *testing.T) {
	site := newCookieSite(t, &sessions.Options{
		Path: "/", MaxAge: 86400, HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode,
	})
	for name, h := range site.handlers() {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewTLSServer(h)
			defer srv.Close()
			client := srv.Client()
			client.Jar, _ = cookiejar.New(nil)
			site.events.Store(0)
			checkCookieAttributes(t, browse(t, client, srv.URL+"/courses/course-v1:edX+DemoX+2026/info"), true)
			if again := browse(t, client, srv.URL+"/dashboard"); len(again) != 0 || site.events.Load() != 1 {
				t.Errorf("second page over HTTPS: Set-Cookie %q and %d events; want none and 1", again, site.events.Load())
			}
		})
	}
}

// A course key that no store would accept (a control character, a NUL,
// bytes that are not UTF-8) is no course: Bucket gives control with an
// error wrapping ErrInvalid, sends no event, records no exposure and
// marks no session, rather than hashing it into a bucket and writing it
// into session marks, events and exposures. (Longer than 255 bytes:
// TestACourseKeyLongerThan255BytesGivesControl.)
func TestBucketGivesControlForACourseKeyWithControlCharactersOrInvalidUTF8(t *testing.T) {
	var events, exposures atomic.Int64
	x := experiments.New(experiments.Config{
		Store:    robustStore(t),
		Tracker:  experiments.TrackerFunc(func(context.Context, experiments.Event) error { events.Add(1); return nil }),
		Recorder: recorderFunc(func(experiments.Exposure) error { exposures.Add(1); return nil }),
		Logger:   unitLogger(),
	})
	for _, c := range []struct{ name, key string }{
		{"nok, a NUL byte", "course-v1:edX+DemoX+2026\x00"},
		{"nok, a newline", "course-v1:edX+DemoX+2026\nSet-Cookie: x=y"},
		{"nok, a tab", "course-v1:edX+Demo\tX+2026"},
		{"nok, DEL", "course-v1:edX+DemoX+2026\x7f"},
		{"nok, a C1 control character", "course-v1:edX+DemoX+2026\u0085"},
		{"nok, an escape sequence", "\x1b[31mcourse\x1b[0m"},
		{"nok, bytes that are not UTF-8", "course-v1:edX+\xff\xfe+2026"},
		{"nok, a truncated UTF-8 sequence", "course-v1:edX+Gr\xc3"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := x.NewContext(context.Background(), experiments.User{ID: "1"})
			d := robustFlag.Decide(ctx, c.key)
			if d.Bucket != 0 || d.Reason != experiments.ReasonError || !errors.Is(d.Err, experiments.ErrInvalid) || d.Tracked {
				t.Errorf("Decide(%q) = %+v; want control, ReasonError, ErrInvalid, not tracked", c.key, d)
			}
			if b := robustFlag.Bucket(ctx, c.key); b != 0 {
				t.Errorf("Bucket(%q) = %d, want 0", c.key, b)
			}
			if events.Load() != 0 || exposures.Load() != 0 {
				t.Errorf("%d events and %d exposures sent for course key %q, want none", events.Load(), exposures.Load(), c.key)
			}
		})
	}
	for _, key := range []string{"", "course-v1:edX+DemoX+2026", "Kurs/Größe/ß", "course-v1:李+🙂+2026", "trailing space "} {
		t.Run("ok, "+key+" is hashed", func(t *testing.T) {
			ctx := x.NewContext(context.Background(), experiments.User{ID: "1"})
			if d := robustFlag.Decide(ctx, key); d.Reason != experiments.ReasonHashed || d.Err != nil {
				t.Errorf("Decide(%q) = %+v; want hashed", key, d)
			}
		})
	}
}
