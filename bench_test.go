package experiments_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/abkit/experiments"
	"github.com/gorilla/sessions"
	"github.com/labstack/echo/v4"
)

const benchCourse = "course-v1:edX+DemoX+2026"

var benchFlag = experiments.NewFlag("bench", "upgrade")

// benchWeighted is benchFlag with unequal weights: the slot scheme.
var benchWeighted = experiments.NewFlag("bench", "weighted", experiments.WithWeights(90, 10))

// benchRuntime returns an Experiments for cfg on a warm MemStore with
// benchFlag and benchWeighted on for everyone, and users with distinct
// IDs.
func benchRuntime(tb testing.TB, cfg experiments.Config) (*experiments.Experiments, []experiments.User) {
	tb.Helper()
	store := experiments.NewMemStore()
	for _, f := range []*experiments.ExperimentFlag{benchFlag, benchWeighted} {
		if err := store.SetFlag(context.Background(), f.Name(), experiments.On()); err != nil {
			tb.Fatal(err)
		}
	}
	users := make([]experiments.User, 1024)
	for i := range users {
		users[i] = experiments.User{ID: strconv.Itoa(100000 + i), Username: "user" + strconv.Itoa(i)}
	}
	cfg.Store = store
	return experiments.New(cfg), users
}

// BenchmarkBucketFirst is the first decision in a request: fresh request
// state, warm store, two buckets, a course key, a different user each time.
func BenchmarkBucketFirst(b *testing.B) {
	x, users := benchRuntime(b, experiments.Config{})
	bg := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		ctx := x.NewContext(bg, users[i%len(users)])
		benchFlag.Bucket(ctx, benchCourse)
		i++
	}
}

// BenchmarkBucketFirstWeighted is BenchmarkBucketFirst for a flag
// WithWeights(90, 10): the hash into WeightSlots slots and the search of
// the slot's range replace the modulo.
func BenchmarkBucketFirstWeighted(b *testing.B) {
	x, users := benchRuntime(b, experiments.Config{})
	bg := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		ctx := x.NewContext(bg, users[i%len(users)])
		benchWeighted.Bucket(ctx, benchCourse)
		i++
	}
}

// BenchmarkBucketCached is a later call in the same request.
func BenchmarkBucketCached(b *testing.B) {
	x, users := benchRuntime(b, experiments.Config{})
	ctx := x.NewContext(context.Background(), users[0])
	benchFlag.Bucket(ctx, benchCourse)
	b.ReportAllocs()
	for b.Loop() {
		benchFlag.Bucket(ctx, benchCourse)
	}
}

// BenchmarkMiddlewareEcho is a whole echo request with one Bucket call,
// with the middleware and, for comparison, without it.
func BenchmarkMiddlewareEcho(b *testing.B) {
	x, users := benchRuntime(b, experiments.Config{})
	handler := func(c echo.Context) error {
		benchFlag.Bucket(c.Request().Context(), benchCourse)
		return c.NoContent(http.StatusNoContent)
	}
	user := func(echo.Context) experiments.User { return users[0] }
	tracked, _ := benchRuntime(b, experiments.Config{
		Tracker:  experiments.TrackerFunc(func(context.Context, experiments.Event) error { return nil }),
		Sessions: sessions.NewCookieStore([]byte("0123456789abcdef0123456789abcdef")),
	})
	for _, bc := range []struct {
		name string
		mw   []echo.MiddlewareFunc
	}{
		{"without", nil},
		{"with", []echo.MiddlewareFunc{x.Middleware(experiments.MiddlewareConfig{User: user})}},
		// The session is decoded to find the user already tracked: the
		// cookie codec's cost, paid on the first decision of a request.
		{"with-session-already-tracked", []echo.MiddlewareFunc{tracked.Middleware(experiments.MiddlewareConfig{User: user})}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e := echo.New()
			e.Use(bc.mw...)
			e.GET("/", handler)
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			first := httptest.NewRecorder()
			e.ServeHTTP(first, req)
			for _, c := range first.Result().Cookies() {
				req.AddCookie(c)
			}
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				e.ServeHTTP(w, req)
				if w.Header()["Set-Cookie"] != nil {
					b.Fatal("a request that tracked nothing new set a cookie")
				}
			}
		})
	}
}

func BenchmarkSHA256Bucket(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		experiments.SHA256Bucket("bench.upgrade."+benchCourse, "100042", 2)
	}
}

func BenchmarkEdXBucket(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		experiments.EdXBucket("bench.upgrade."+benchCourse, "user42", 2)
	}
}
