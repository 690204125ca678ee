// Package admin is a staff dashboard for package experiments: a JSON API
// and server-rendered HTML pages to see experiments and their results,
// and to control them (turn on or off, target, override per course or
// org, set the enrollment window, force a winner, archive, delete, keep
// notes), with every change written to the store's audit history under
// the acting user's name.
//
// It mounts on net/http or on an echo group:
//
//	dash, err := admin.New("/admin", admin.Config{
//		Store:     store, // *experiments.MemStore or *sqlstore.Store
//		Flags:     []*experiments.ExperimentFlag{upgradeButton, newOutline},
//		Authorize: func(r *http.Request) (string, admin.Permission) {
//			u := currentUser(r)
//			if u.Staff {
//				return u.Username, admin.Change
//			}
//			return u.Username, admin.Deny
//		},
//	})
//	mux.Handle("/admin/", dash) // net/http
//	dash.Register(e.Group("/admin")) // echo
//
// Security: Authorize decides every request, and New refuses a Config
// without it;
// state-changing requests must be same-origin (http.CrossOriginProtection)
// and carry the CSRF token of the dashboard's cookie (a form field or the
// X-CSRF-Token header); pages are html/template-escaped and sent with a
// Content-Security-Policy that allows no script. The pages need no
// JavaScript and no build step: templates and the style sheet are
// embedded.
package admin

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/results"
)

// Permission is what a request may do in the dashboard.
type Permission int

const (
	// Deny refuses everything: 401 for a request without an actor
	// (nobody signed in), 403 otherwise.
	Deny Permission = iota
	// View allows reading pages, the API's GET endpoints and results.
	View
	// Change allows View and every action.
	Change
)

// String returns "deny", "view" or "change".
func (p Permission) String() string {
	switch p {
	case Deny:
		return "deny"
	case View:
		return "view"
	case Change:
		return "change"
	}
	return fmt.Sprintf("Permission(%d)", int(p))
}

// Store is what the dashboard needs of a store: decisions' configuration,
// its writes and its history. experiments.MemStore and sqlstore.Store
// implement it.
type Store interface {
	experiments.Store
	experiments.Auditor
	experiments.Writer
}

// Config configures the dashboard.
type Config struct {
	// Store holds the experiments' configuration. Required.
	Store Store
	// Flags are the app's experiment flags. The dashboard lists them even
	// before they are set in the store, and takes from them the number of
	// buckets, the experiment ID (for the enrollment window) and whether
	// bucketing is course-aware. Experiments found only in the store or
	// in results have as many buckets as their bucket flags or
	// participants show, at least 2. Optional.
	Flags []*experiments.ExperimentFlag
	// Authorize returns who makes the request (the actor that the audit
	// history names) and what they may do. An empty actor means nobody is
	// signed in: the request is refused with 401, whatever the
	// permission. Required: New fails without it (a dashboard that
	// refuses everyone is a mistake, not a default); to refuse everyone
	// on purpose, return "" and Deny.
	Authorize func(r *http.Request) (actor string, p Permission)
	// Results is where the results come from. Optional. Default: Store
	// when it is a results.Source (sqlstore.Store), else
	// results.NewLive(Store) when Store keeps its recordings in memory
	// (experiments.MemStore), else none: pages show no results.
	Results results.Source
	// SecureCookie marks the CSRF cookie Secure (HTTPS only). Optional.
	// Default: false.
	SecureCookie bool
	// TrustedOrigins are other origins allowed to make state-changing
	// requests, such as "https://admin.example.com" in front of a proxy
	// (see http.CrossOriginProtection.AddTrustedOrigin). Optional.
	TrustedOrigins []string
	// Logger receives failures of the store and results. Optional.
	// Default: slog.Default().
	Logger *slog.Logger
}

// Admin is the dashboard, an http.Handler for every path under its
// prefix. It is safe for concurrent use.
type Admin struct {
	prefix    string
	store     Store
	flags     map[string]*experiments.ExperimentFlag
	authorize func(*http.Request) (string, Permission)
	results   results.Source
	secure    bool
	log       *slog.Logger
	mux       *http.ServeMux
	cop       *http.CrossOriginProtection
}

// CSRF: the token lives in a cookie and must come back with every
// state-changing request, in the form field or the header.
const (
	csrfCookie = "experiments_admin_csrf"
	csrfField  = "csrf_token"
	csrfHeader = "X-CSRF-Token"
)

// maxBody bounds the body of an action.
const maxBody = 64 << 10

// New returns the dashboard served under prefix ("/admin": pages at
// /admin/, the API at /admin/api/). The prefix starts with '/' and does
// not end with one; mount the dashboard so that it receives the full
// path, prefix included. New fails when Store or Authorize is nil, the
// prefix is malformed, two Flags share a name or a trusted origin is
// malformed.
func New(prefix string, cfg Config) (*Admin, error) {
	if cfg.Store == nil {
		return nil, errors.New("admin: Config.Store is nil")
	}
	if cfg.Authorize == nil {
		return nil, errors.New("admin: Config.Authorize is nil: set it to say who may view and change experiments")
	}
	if !strings.HasPrefix(prefix, "/") || strings.HasSuffix(prefix, "/") || strings.ContainsAny(prefix, "{}?#% ") {
		return nil, fmt.Errorf("admin: prefix %q: want a path such as \"/admin\", without a trailing slash", prefix)
	}
	a := &Admin{
		prefix:    prefix,
		store:     cfg.Store,
		flags:     make(map[string]*experiments.ExperimentFlag, len(cfg.Flags)),
		authorize: cfg.Authorize,
		results:   cfg.Results,
		secure:    cfg.SecureCookie,
		log:       cfg.Logger,
		cop:       http.NewCrossOriginProtection(),
	}
	for _, f := range cfg.Flags {
		if f == nil {
			return nil, errors.New("admin: Config.Flags holds nil")
		}
		if a.flags[f.Name()] != nil {
			return nil, fmt.Errorf("admin: Config.Flags holds %s twice", f.Name())
		}
		a.flags[f.Name()] = f
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.results == nil {
		switch s := cfg.Store.(type) {
		case results.Source:
			a.results = s
		case results.Recording:
			a.results = results.NewLive(s)
		}
	}
	for _, o := range cfg.TrustedOrigins {
		if err := a.cop.AddTrustedOrigin(o); err != nil {
			return nil, fmt.Errorf("admin: trusted origin: %w", err)
		}
	}
	a.cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.fail(w, r, http.StatusForbidden, "cross-origin request refused")
	}))
	a.routes()
	return a, nil
}

// Register mounts the dashboard on g, an echo group whose prefix is the
// dashboard's ("/admin"): g := e.Group("/admin"). The group's
// middleware runs first, so Authorize can read what it put in the
// request's context.
func (a *Admin) Register(g *echo.Group) {
	h := echo.WrapHandler(a)
	g.Any("", h)
	g.Any("/*", h)
}

// ServeHTTP serves the pages and the API.
func (a *Admin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	a.mux.ServeHTTP(w, r)
}

// routes sets up the mux. Every route goes through guard.
func (a *Admin) routes() {
	a.mux = http.NewServeMux()
	p := a.prefix
	view := func(pattern string, h func(http.ResponseWriter, *http.Request, string)) {
		a.mux.Handle(pattern, a.guard(View, h))
	}
	change := func(pattern string, h func(http.ResponseWriter, *http.Request, string)) {
		a.mux.Handle(pattern, a.guard(Change, h))
	}
	a.mux.Handle("GET "+p+"/static/", http.StripPrefix(p+"/static/", http.FileServerFS(staticFS)))
	a.mux.Handle(p, http.RedirectHandler(p+"/", http.StatusMovedPermanently))
	view("GET "+p+"/{$}", a.listPage)
	view("GET "+p+"/experiments/{flag}", a.experimentPage)
	view("GET "+p+"/api/csrf", a.apiCSRF)
	view("GET "+p+"/api/experiments", a.apiList)
	view("GET "+p+"/api/experiments/{flag}", a.apiExperiment)
	view("GET "+p+"/api/experiments/{flag}/results", a.apiResults)
	view("GET "+p+"/api/experiments/{flag}/history", a.apiHistory)
	change("POST "+p+"/api/experiments/{flag}/{action}", a.act)
	a.mux.HandleFunc(p+"/", func(w http.ResponseWriter, r *http.Request) {
		a.fail(w, r, http.StatusNotFound, "no such page")
	})
}

// guard authorizes the request for need, sets up the CSRF token, and
// for a state-changing request checks its origin and token before h
// runs. h gets the actor.
func (a *Admin) guard(need Permission, h func(http.ResponseWriter, *http.Request, string)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		actor, p := a.authorize(r)
		switch {
		case actor == "":
			a.fail(w, r, http.StatusUnauthorized, "sign in to use the experiments dashboard")
			return
		case p < need:
			if need == Change && p >= View {
				a.fail(w, r, http.StatusForbidden, "you may view experiments but not change them")
			} else {
				a.fail(w, r, http.StatusForbidden, "you may not use the experiments dashboard")
			}
			return
		}
		token := a.csrfToken(w, r)
		if need == Change {
			if err := a.cop.Check(r); err != nil {
				a.fail(w, r, http.StatusForbidden, "cross-origin request refused")
				return
			}
			sent := r.Header.Get(csrfHeader)
			if sent == "" && isForm(r) {
				r.Body = http.MaxBytesReader(w, r.Body, maxBody)
				sent = r.PostFormValue(csrfField)
			}
			if token == "" || subtle.ConstantTimeCompare([]byte(sent), []byte(token)) != 1 {
				a.fail(w, r, http.StatusForbidden, "missing or wrong CSRF token: reload the page, or send the token of GET "+a.prefix+"/api/csrf in the "+csrfHeader+" header")
				return
			}
		}
		h(w, r.WithContext(context.WithValue(r.Context(), tokenKey{}, token)), actor)
	})
}

type tokenKey struct{}

// csrfToken returns the request's CSRF token, from its cookie, or a new
// one that it sets in a cookie. A state-changing request without the
// cookie gets "" (and fails).
func (a *Admin) csrfToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) == 43 {
		return c.Value
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return ""
	}
	b := make([]byte, 32)
	rand.Read(b) // never fails
	token := base64.RawURLEncoding.EncodeToString(b)
	http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: token, Path: a.prefix + "/",
		HttpOnly: true, Secure: a.secure, SameSite: http.SameSiteStrictMode})
	return token
}

// isForm reports whether r's body is an HTML form.
func isForm(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	return strings.HasPrefix(ct, "application/x-www-form-urlencoded") || strings.HasPrefix(ct, "multipart/form-data")
}

// isAPI reports whether r is for the JSON API rather than a page.
func (a *Admin) isAPI(r *http.Request) bool {
	return strings.HasPrefix(r.URL.Path, a.prefix+"/api/") && !isForm(r)
}

// apiError is the body of every API error.
type apiError struct {
	Status int    `json:"status"`
	Error  string `json:"error"`
}

// fail answers r with status and msg: a JSON error for the API, an HTML
// page otherwise.
func (a *Admin) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	if a.isAPI(r) {
		writeJSON(w, status, apiError{Status: status, Error: msg})
		return
	}
	a.render(w, r, status, "error", errorPage{Status: status, StatusText: http.StatusText(status), Message: msg})
}

// writeJSON writes v as JSON; encoding/json escapes <, > and &.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"status":500,"error":"encoding the response failed"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// now is the clock of the pages; tests do not depend on it.
var now = time.Now
