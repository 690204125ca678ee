package experiments_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/abkit/experiments"
)

// slowEnrollments answers only when the caller's context ends, like a
// database that hangs.
type slowEnrollments struct{ calls chan struct{} }

func (s slowEnrollments) Enrollment(ctx context.Context, _, _ string) (time.Time, bool, error) {
	s.calls <- struct{}{}
	<-ctx.Done()
	return time.Time{}, false, ctx.Err()
}

// panickingEnrollments is a lookup with a bug.
type panickingEnrollments struct{}

func (panickingEnrollments) Enrollment(context.Context, string, string) (time.Time, bool, error) {
	panic("enrollment lookup bug")
}

var windowedFlag = experiments.NewFlag("robust", "windowed", experiments.WithExperimentID(77))

// faultApp is an echo app whose requests have a 100 ms deadline (as
// with a timeout middleware) and whose handler answers with the decision
// of windowedFlag in a course.
func faultApp(t *testing.T, cfg experiments.Config) *httptest.Server {
	t.Helper()
	store := experiments.NewMemStore()
	ctx := context.Background()
	if err := errors.Join(store.SetFlag(ctx, windowedFlag.Name(), experiments.On()),
		store.SetExperimentValue(ctx, 77, experiments.EnrollmentStart, "2020-01-01")); err != nil {
		t.Fatal(err)
	}
	cfg.Store = store
	cfg.Logger = slog.New(slog.DiscardHandler)
	x := experiments.New(cfg)
	e := echo.New()
	e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			ctx, cancel := context.WithTimeout(c.Request().Context(), 100*time.Millisecond)
			defer cancel()
			c.SetRequest(c.Request().WithContext(ctx))
			return next(c)
		}
	})
	e.Use(x.Middleware(experiments.MiddlewareConfig{User: func(echo.Context) experiments.User {
		return experiments.User{ID: "1", Username: "one"}
	}}))
	e.GET("/", func(c echo.Context) error {
		d := windowedFlag.Decide(c.Request().Context(), "course-v1:X+Y+Z")
		c.Response().Header().Set("X-Reason", string(d.Reason))
		if d.Err != nil {
			c.Response().Header().Set("X-Err", d.Err.Error())
		}
		return c.String(http.StatusOK, strconv.Itoa(d.Bucket))
	})
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// An enrollment lookup that hangs past the request's deadline: the
// request is answered with control soon after the deadline, not when the
// lookup would end.
func TestASlowEnrollmentLookupGivesControlAtTheDeadline(t *testing.T) {
	calls := make(chan struct{}, 10)
	srv := faultApp(t, experiments.Config{Enrollments: slowEnrollments{calls}})
	start := time.Now()
	resp, body := get(t, srv.URL)
	took := time.Since(start)
	if resp.StatusCode != http.StatusOK || body != "0" || resp.Header.Get("X-Reason") != string(experiments.ReasonError) {
		t.Fatalf("answer %d %q, reason %q (%s); want 200, control, error", resp.StatusCode, body, resp.Header.Get("X-Reason"), resp.Header.Get("X-Err"))
	}
	if len(calls) != 1 {
		t.Errorf("%d lookups, want 1", len(calls))
	}
	if took > time.Second {
		t.Errorf("answered after %v: the decision waited past the 100 ms deadline", took)
	}
	t.Logf("control after %v: %s", took, resp.Header.Get("X-Err"))
}

// A lookup or tracker that panics: the request is answered, with control
// where the decision could not be made and the bucket where it could.
func TestPanicsInUserCodeNeverEscapeTheMiddleware(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    experiments.Config
		bucket string
		reason experiments.Reason
	}{
		{"nok, enrollment lookup panics: control", experiments.Config{Enrollments: panickingEnrollments{}}, "0", experiments.ReasonError},
		{"nok, tracker panics: the bucket stands", experiments.Config{
			Enrollments: experiments.NewMemStore(),
			Tracker:     experiments.TrackerFunc(func(context.Context, experiments.Event) error { panic("tracker bug") }),
		}, strconv.Itoa(experiments.SHA256Bucket(windowedFlag.Name()+".course-v1:X+Y+Z", "1", 2)), experiments.ReasonHashed},
		{"nok, recorder panics: the bucket stands", experiments.Config{
			Enrollments: experiments.NewMemStore(),
			Recorder:    panickingRecorder{},
		}, strconv.Itoa(experiments.SHA256Bucket(windowedFlag.Name()+".course-v1:X+Y+Z", "1", 2)), experiments.ReasonHashed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := faultApp(t, tc.cfg)
			resp, body := get(t, srv.URL)
			if resp.StatusCode != http.StatusOK || body != tc.bucket || resp.Header.Get("X-Reason") != string(tc.reason) || resp.Header.Get("X-Err") == "" {
				t.Errorf("answer %d %q, reason %q, err %q; want 200, %s, %s, an error", resp.StatusCode, body,
					resp.Header.Get("X-Reason"), resp.Header.Get("X-Err"), tc.bucket, tc.reason)
			}
		})
	}
}

type panickingRecorder struct{}

func (panickingRecorder) RecordExposure(context.Context, experiments.Exposure) error {
	panic("recorder bug")
}

func (panickingRecorder) RecordConversion(context.Context, experiments.Conversion) error {
	panic("recorder bug")
}
