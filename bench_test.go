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
func BenchmarkBucketFirst(b *testing.B) { benchFirst(b, benchFlag) }

// benchFirst times f's first decision in a request, for a different user
// each time.
func benchFirst(b *testing.B, f *experiments.ExperimentFlag) {
	x, users := benchRuntime(b, experiments.Config{})
	bg := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		ctx := x.NewContext(bg, users[i%len(users)])
		f.Bucket(ctx, benchCourse)
		i++
	}
}

// BenchmarkBucketFirstWeighted is BenchmarkBucketFirst for a flag
// WithWeights(90, 10): the hash into WeightSlots slots and the search of
// the slot's range replace the modulo.
func BenchmarkBucketFirstWeighted(b *testing.B) { benchFirst(b, benchWeighted) }

// benchAudienceFlag is on for an audience of three conditions.
var benchAudienceFlag = experiments.NewFlag("bench", "audience")

// benchAudience is the audience of benchAudienceFlag: country in a list,
// app_version semver >= 2.3.0, age >= 18.
var benchAudience = []experiments.Condition{
	{Attribute: "country", Op: experiments.In, Values: []string{"US", "CA", "GB", "DE", "FR"}},
	{Attribute: "app_version", Op: experiments.SemverGreaterOrEqual, Values: []string{"2.3.0"}},
	{Attribute: "age", Op: experiments.GreaterOrEqual, Values: []string{"18"}},
}

// benchAudienceRuntime is benchRuntime with benchAudienceFlag on for
// everyone in benchAudience, and users who are all in it, each with an
// Attributes map of their own.
func benchAudienceRuntime(tb testing.TB) (*experiments.Experiments, []experiments.User) {
	tb.Helper()
	_, users := benchRuntime(tb, experiments.Config{})
	store := experiments.NewMemStore()
	r := experiments.On()
	r.Conditions = benchAudience
	if err := store.SetFlag(context.Background(), benchAudienceFlag.Name(), r); err != nil {
		tb.Fatal(err)
	}
	countries := []string{"US", "CA", "GB", "DE", "FR"}
	versions := []string{"2.3.0", "2.4.1", "3.0.0", "2.10.0-beta.2"}
	attrs := make([]map[string]any, 8)
	for i := range attrs {
		attrs[i] = map[string]any{
			"country":     countries[i%len(countries)],
			"app_version": versions[i%len(versions)],
			"age":         18 + i,
			"plan":        "free",
		}
	}
	for i := range users {
		users[i].Attributes = attrs[i%len(attrs)]
	}
	return experiments.New(experiments.Config{Store: store}), users
}

// BenchmarkBucketFirstAudience is BenchmarkBucketFirst for a flag with a
// three-condition audience that every user passes: the cost of the
// audience on the first decision.
func BenchmarkBucketFirstAudience(b *testing.B) {
	x, users := benchAudienceRuntime(b)
	bg := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		ctx := x.NewContext(bg, users[i%len(users)])
		if benchAudienceFlag.Decide(ctx, benchCourse).Reason != experiments.ReasonHashed {
			b.Fatal("a user of the audience was not hashed")
		}
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
