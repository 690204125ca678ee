package experiments_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/abkit/experiments"
)

// A flag WithBucketingAttribute hashes the attribute's value: every user
// of one company gets the company's bucket.
func TestBucketingAttribute(t *testing.T) {
	ctx := context.Background()
	flags := experiments.NewFlagSet()
	company := flags.NewFlag("bucketing_test", "company", experiments.WithBuckets(5), experiments.WithBucketingAttribute("company"))
	unaware := flags.NewFlag("bucketing_test", "unaware", experiments.WithBuckets(5), experiments.WithBucketingAttribute("company"),
		experiments.WithCourseAwareBucketing(false))
	store := experiments.NewMemStore()
	for _, f := range []*experiments.ExperimentFlag{company, unaware} {
		mustE2E(t, store.SetFlag(ctx, f.Name(), experiments.On()))
	}
	events := &eventLog{}
	x := experiments.New(experiments.Config{Store: store, Tracker: events.tracker()})
	const course = "course-v1:edX+DemoX+2026"
	decide := func(f *experiments.ExperimentFlag, attrs map[string]any, course string) experiments.Decision {
		return f.Decide(x.NewContext(ctx, experiments.User{ID: "u1", Username: "ann", Attributes: attrs}), course)
	}

	t.Run("ok, users of one company share its bucket", func(t *testing.T) {
		want := experiments.SHA256Bucket(company.Name()+"."+course, "acme", 5)
		for _, id := range []string{"1", "2", "3", "40", "500"} {
			d := company.Decide(x.NewContext(ctx, experiments.User{ID: id, Attributes: map[string]any{"company": "acme"}}), course)
			wantDecision(t, d, want, experiments.ReasonHashed)
		}
	})
	keys := []struct {
		name  string
		value any
		key   string
	}{
		{"ok, a string as it is", "acme", "acme"},
		{"ok, an int in decimal", 42, "42"},
		{"ok, a uint8 like an int", uint8(42), "42"},
		{"ok, an int64 like an int", int64(-7), "-7"},
		{"ok, a float in its shortest form", 1.5, "1.5"},
		{"ok, a whole float64 without a point", float64(42), "42"},
		{"ok, a float32 in its own shortest form", float32(0.1), "0.1"},
		{"ok, a bool", true, "true"},
	}
	for _, k := range keys {
		t.Run(k.name, func(t *testing.T) {
			wantDecision(t, decide(company, map[string]any{"company": k.value}, course),
				experiments.SHA256Bucket(company.Name()+"."+course, k.key, 5), experiments.ReasonHashed)
			wantDecision(t, decide(unaware, map[string]any{"company": k.value}, course),
				experiments.SHA256Bucket(unaware.Name(), k.key, 5), experiments.ReasonHashed)
		})
	}
	before := len(events.all())
	for _, tt := range []struct {
		name  string
		attrs map[string]any
	}{
		{"nok, no attributes", nil},
		{"nok, another attribute only", map[string]any{"team": "acme"}},
		{"nok, an empty string", map[string]any{"company": ""}},
		{"nok, a slice", map[string]any{"company": []string{"acme"}}},
		{"nok, nil", map[string]any{"company": nil}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := decide(company, tt.attrs, course)
			wantDecision(t, d, 0, experiments.ReasonNoBucketingID)
			if d.Tracked || d.Err != nil {
				t.Errorf("decision %+v: want it untracked and without error", d)
			}
		})
	}
	if got := len(events.all()); got != before {
		t.Errorf("%d events for users without a bucketing ID, want none", got-before)
	}
	t.Run("ok, the event is the user's", func(t *testing.T) {
		all := events.all()
		if len(all) == 0 || all[0].UserID != "1" || all[0].AnonymousID != "" {
			t.Errorf("first event %+v, want user 1's", all[0])
		}
	})
	t.Run("ok, a bucket flag forces users without the attribute too", func(t *testing.T) {
		mustE2E(t, store.SetFlag(ctx, company.BucketFlag(3), experiments.Rule{Users: []string{"ann"}}))
		defer store.DeleteFlag(ctx, company.BucketFlag(3))
		wantDecision(t, decide(company, nil, course), 3, experiments.ReasonForced)
	})
	t.Run("ok, a custom Hasher sees the attribute as ID and Username", func(t *testing.T) {
		edx := experiments.New(experiments.Config{Store: store, Hasher: experiments.EdXHasher})
		d := company.Decide(edx.NewContext(ctx, experiments.User{ID: "u1", Username: "ann", Attributes: map[string]any{"company": "acme"}}), course)
		wantDecision(t, d, experiments.EdXBucket(company.Name()+"."+course, "acme", 5), experiments.ReasonHashed)
	})
	t.Run("ok, sticky buckets are kept per user", func(t *testing.T) {
		sticky := flags.NewFlag("bucketing_test", "sticky", experiments.WithBucketingAttribute("company"), experiments.WithStickyBuckets(true))
		mustE2E(t, store.SetFlag(ctx, sticky.Name(), experiments.On()))
		d := decide(sticky, map[string]any{"company": "acme"}, "")
		wantDecision(t, d, experiments.SHA256Bucket(sticky.Name(), "acme", 2), experiments.ReasonHashed)
		b, ok, err := store.Assignment(ctx, "u1", sticky.AssignmentKey(""))
		if err != nil || !ok || b != d.Bucket {
			t.Errorf("assignment of u1: %d, %v, %v; want %d kept for the user", b, ok, err, d.Bucket)
		}
	})
	t.Run("nok, an empty attribute name panics", func(t *testing.T) {
		if p := panicOf(func() { flags.NewFlag("bucketing_test", "empty", experiments.WithBucketingAttribute("")) }); p == nil {
			t.Error("WithBucketingAttribute(\"\"): no panic")
		}
	})
}

// An anonymous visitor of a flag WithAnonymous is bucketed by the ID of
// Config.AnonymousCookie across the requests of a browser, and tracked
// once per session with that ID; other flags still give control.
func TestE2EAnonymousVisitors(t *testing.T) {
	flags := experiments.NewFlagSet()
	anon := flags.NewFlag("e2e", "anonymous", experiments.WithAnonymous(true))
	plain := flags.NewFlag("e2e", "signed_in_only")
	const cookie = "exp_anon"
	idPattern := regexp.MustCompile(`^[0-9a-f]{32}$`)
	forEachServer(t, func(t *testing.T, kind serverKind) {
		a := newApp(t, kind, func(c *experiments.Config) { c.AnonymousCookie = cookie })
		for _, f := range []*experiments.ExperimentFlag{anon, plain} {
			ruleFor(f.Name(), experiments.On())(t, a.store)
		}
		visitor := experiments.User{}
		first := a.newBrowser(t)

		r := first.get(t, pathBody, visitor, decide(anon, e2eCourse))
		id := cookieValue(r, cookie)
		if !idPattern.MatchString(id) {
			t.Fatalf("anonymous cookie %q, want 32 hex digits; Set-Cookie %q", id, r.header.Values("Set-Cookie"))
		}
		want := experiments.SHA256Bucket(anon.Name()+"."+e2eCourse, id, 2)
		d := r.one(t)
		wantDecision(t, d, want, experiments.ReasonHashed)
		if !d.Tracked {
			t.Error("the first decision for the visitor was not tracked")
		}
		r.wantSessionCookie(t)
		c := r.cookies[slices.IndexFunc(r.cookies, func(c *http.Cookie) bool { return c.Name == cookie })]
		if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.MaxAge != 30*86400 {
			t.Errorf("anonymous cookie %q: want the session cookie's options", c.String())
		}
		events := a.wantEvents(t, 1)
		if e := events[0]; e.UserID != "" || e.AnonymousID != id || e.Bucket != want {
			t.Errorf("event %+v: want no user ID, anonymous ID %s, bucket %d", e, id, want)
		}

		r = first.get(t, pathBody, visitor, decide(anon, e2eCourse))
		wantDecision(t, r.one(t), want, experiments.ReasonHashed)
		if r.one(t).Tracked {
			t.Error("the same visitor and session was tracked again")
		}
		r.wantNoSetCookie(t)
		a.wantEvents(t, 1)

		r = first.get(t, pathBody, visitor, decide(plain, e2eCourse))
		wantDecision(t, r.one(t), 0, experiments.ReasonAnonymous)
		r.wantNoSetCookie(t)

		second := a.newBrowser(t)
		r = second.get(t, pathBody, visitor, decide(plain, e2eCourse))
		wantDecision(t, r.one(t), 0, experiments.ReasonAnonymous)
		if cookieValue(r, cookie) != "" {
			t.Error("a request that decides no WithAnonymous flag set the anonymous cookie")
		}
		r = second.get(t, pathBody, visitor, decide(anon, e2eCourse))
		other := cookieValue(r, cookie)
		if !idPattern.MatchString(other) || other == id {
			t.Errorf("second browser's anonymous ID %q: want a new one", other)
		}
		if !r.one(t).Tracked {
			t.Error("a new visitor was not tracked")
		}
		a.wantEvents(t, 2)

		// Signing in: the user's own ID decides from then on.
		user := experiments.User{ID: "learner-7"}
		r = first.get(t, pathBody, user, decide(anon, e2eCourse))
		wantDecision(t, r.one(t), experiments.SHA256Bucket(anon.Name()+"."+e2eCourse, user.ID, 2), experiments.ReasonHashed)
		if e := a.wantEvents(t, 3)[2]; e.UserID != user.ID || e.AnonymousID != "" {
			t.Errorf("event %+v: want the signed-in user's, without anonymous ID", e)
		}
	})
}

// A cookie that holds no ID the package makes is replaced, and no
// exposure is recorded for anonymous visitors.
func TestE2EAnonymousCookieReplacedAndNoExposure(t *testing.T) {
	anon := experiments.NewFlagSet().NewFlag("e2e", "anonymous_bad_cookie", experiments.WithAnonymous(true))
	var rec *experiments.MemStore
	a := newApp(t, netHTTPServer, func(c *experiments.Config) {
		c.AnonymousCookie = "exp_anon"
		rec = c.Store.(*experiments.MemStore)
		c.Recorder = rec
	})
	ruleFor(anon.Name(), experiments.On())(t, a.store)
	b := a.newBrowser(t)
	for _, bad := range []string{"not-hex", strings.Repeat("A", 32), strings.Repeat("a", 31)} {
		b.client.Jar.SetCookies(mustURL(t, a.srv.URL), []*http.Cookie{{Name: "exp_anon", Value: bad, Path: "/"}})
		r := b.get(t, pathBody, experiments.User{}, decide(anon, ""))
		if got := cookieValue(r, "exp_anon"); got == bad || len(got) != 32 {
			t.Errorf("cookie %q: replaced by %q, want a new ID", bad, got)
		}
	}
	if got := rec.Exposures(); len(got) != 0 {
		t.Errorf("exposures %+v of anonymous visitors, want none", got)
	}
	a.wantEvents(t, 3)
}

// Outside HTTP there is no anonymous ID: WithAnonymous flags give control.
func TestAnonymousWithoutHTTP(t *testing.T) {
	anon := experiments.NewFlagSet().NewFlag("anon_test", "no_http", experiments.WithAnonymous(true))
	store := experiments.NewMemStore()
	mustE2E(t, store.SetFlag(t.Context(), anon.Name(), experiments.On()))
	x := experiments.New(experiments.Config{Store: store, AnonymousCookie: "exp_anon"})
	wantDecision(t, anon.Decide(x.NewContext(t.Context(), experiments.User{}), ""), 0, experiments.ReasonAnonymous)
}

// cookieValue returns the value r sets for the cookie name, or "".
func cookieValue(r e2eReply, name string) string {
	for _, c := range r.cookies {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// mustURL parses s.
func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
