package experiments_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/abkit/experiments"
	"github.com/gorilla/sessions"
	"github.com/labstack/echo/v4"
)

var robustFlag = experiments.NewFlag("robust", "main")

func robustStore(t *testing.T) *experiments.MemStore {
	t.Helper()
	s := experiments.NewMemStore()
	if err := s.SetFlag(context.Background(), robustFlag.Name(), experiments.On()); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestACourseKeyLongerThan255BytesGivesControl(t *testing.T) {
	x := experiments.New(experiments.Config{Store: robustStore(t)})
	ctx := x.NewContext(context.Background(), experiments.User{ID: "1"})
	d := robustFlag.Decide(ctx, strings.Repeat("k", 256))
	if d.Bucket != 0 || d.Reason != experiments.ReasonError || !errors.Is(d.Err, experiments.ErrInvalid) {
		t.Errorf("Decide(256-byte course key) = %+v; want control, ReasonError, ErrInvalid", d)
	}
	if d := robustFlag.Decide(ctx, strings.Repeat("k", 255)); d.Reason != experiments.ReasonHashed {
		t.Errorf("Decide(255-byte course key) = %+v; want hashed", d)
	}
}

type panickingStore struct{}

func (panickingStore) Snapshot(context.Context) (*experiments.Snapshot, error) { panic("store bug") }

func TestAPanickingStoreGivesControl(t *testing.T) {
	x := experiments.New(experiments.Config{Store: panickingStore{}})
	ctx := x.NewContext(context.Background(), experiments.User{ID: "1"})
	d := robustFlag.Decide(ctx, "")
	if d.Bucket != 0 || d.Reason != experiments.ReasonError || d.Err == nil || !strings.Contains(d.Err.Error(), "store bug") {
		t.Errorf("Decide with a panicking store = %+v; want control, ReasonError, the panic in Err", d)
	}
	if d := robustFlag.Decide(ctx, ""); d.Reason != experiments.ReasonCached || d.Bucket != 0 {
		t.Errorf("second Decide = %+v; want cached control", d)
	}
}

// A handler that decides and flushes before writing (server-sent events)
// still sends the session cookie, with echo as with net/http.
func TestSessionCookieSentWhenTheHandlerFlushesFirst(t *testing.T) {
	x := experiments.New(experiments.Config{
		Store:    robustStore(t),
		Tracker:  experiments.TrackerFunc(func(context.Context, experiments.Event) error { return nil }),
		Sessions: sessions.NewCookieStore([]byte("0123456789abcdef0123456789abcdef")),
	})
	user := experiments.User{ID: "1"}
	e := echo.New()
	e.Use(x.Middleware(experiments.MiddlewareConfig{User: func(echo.Context) experiments.User { return user }}))
	e.GET("/", func(c echo.Context) error {
		robustFlag.Bucket(c.Request().Context(), "")
		c.Response().Header().Set("Content-Type", "text/event-stream")
		c.Response().Flush()
		_, err := c.Response().Write([]byte("data: hi\n\n"))
		return err
	})
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		robustFlag.Bucket(r.Context(), "")
		http.NewResponseController(w).Flush()
		w.Write([]byte("data: hi\n\n"))
	})
	for name, h := range map[string]http.Handler{
		"echo":     e,
		"net/http": x.Handler(mux, func(*http.Request) experiments.User { return user }),
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(h)
			defer srv.Close()
			resp, err := srv.Client().Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if !strings.Contains(strings.Join(resp.Header.Values("Set-Cookie"), ";"), "experiments=") {
				t.Errorf("no session cookie on a flushed response: %q", resp.Header.Values("Set-Cookie"))
			}
		})
	}
}

// The app's own values in a session it shares with the experiments
// survive, also when another user signs in.
func TestASharedSessionKeepsTheAppsValues(t *testing.T) {
	cookies := sessions.NewCookieStore([]byte("0123456789abcdef0123456789abcdef"))
	x := experiments.New(experiments.Config{
		Store:       robustStore(t),
		Tracker:     experiments.TrackerFunc(func(context.Context, experiments.Event) error { return nil }),
		Sessions:    cookies,
		SessionName: "app",
	})
	var cookie *http.Cookie
	for _, id := range []string{"1", "2"} {
		h := x.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s, _ := cookies.Get(r, "app")
			if id == "1" {
				s.Values["cart"] = "3 items"
			} else if s.Values["cart"] != "3 items" {
				t.Errorf("user %s: the app's cart is %v, want kept", id, s.Values["cart"])
			}
			robustFlag.Bucket(r.Context(), "")
		}), func(*http.Request) experiments.User { return experiments.User{ID: id} })
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		if cookie != nil {
			req.AddCookie(cookie)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		cookies := rec.Result().Cookies()
		if len(cookies) != 1 {
			t.Fatalf("user %s: cookies %v, want the session", id, cookies)
		}
		cookie = cookies[0]
	}
}

// A site that adds a Recorder later still records returning users, whose
// sessions already hold the event's mark.
func TestExposureMarksAreApartFromEventMarks(t *testing.T) {
	cookies := sessions.NewCookieStore([]byte("0123456789abcdef0123456789abcdef"))
	store := robustStore(t)
	tracker := experiments.TrackerFunc(func(context.Context, experiments.Event) error { return nil })
	serve := func(x *experiments.Experiments, cookie *http.Cookie) []*http.Cookie {
		h := x.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			robustFlag.Bucket(r.Context(), "")
		}), func(*http.Request) experiments.User { return experiments.User{ID: "1"} })
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		if cookie != nil {
			req.AddCookie(cookie)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Result().Cookies()
	}
	before := experiments.New(experiments.Config{Store: store, Tracker: tracker, Sessions: cookies})
	first := serve(before, nil)
	if len(first) != 1 {
		t.Fatalf("cookies %v, want the session", first)
	}
	after := experiments.New(experiments.Config{Store: store, Tracker: tracker, Sessions: cookies, Recorder: store})
	serve(after, first[0])
	if got := store.Exposures(); len(got) != 1 {
		t.Errorf("exposures %+v, want the returning user's", got)
	}
}
