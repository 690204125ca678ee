package experiments

import (
	"bufio"
	"net"
	"net/http"

	"github.com/gorilla/sessions"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// MiddlewareConfig configures Experiments.Middleware.
type MiddlewareConfig struct {
	// Skipper defines a function to skip the middleware: requests it
	// skips have no request state, so flags give control.
	// Optional. Default: nil, no request is skipped.
	Skipper middleware.Skipper
	// User returns the request's user.
	// Optional. Default: nil, every request is anonymous.
	User func(c echo.Context) User
}

// Middleware returns echo middleware that gives each request its state:
// the user, the request cache and, with Config.Sessions, the session of
// tracked experiments, saved before the response is committed.
func (x *Experiments) Middleware(mc MiddlewareConfig) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if mc.Skipper != nil && mc.Skipper(c) {
				return next(c)
			}
			var u User
			if mc.User != nil {
				u = mc.User(c)
			}
			r := c.Request()
			st := x.newState(r.Context(), u)
			r = r.WithContext(st)
			c.SetRequest(r)
			if !x.keepsState() {
				return next(c)
			}
			// Wrapping the writer, rather than Response.Before, also catches
			// a Flush before any write (server-sent events).
			res := c.Response()
			res.Writer = st.withSession(r, res.Writer)
			err := next(c)
			// Nothing written yet (or an error for echo to render): the
			// headers are still open.
			st.sess.save()
			return err
		}
	}
}

// Handler wraps next (net/http, chi, gorilla/mux) so that each request
// gets its state, like Middleware does for echo. user returns the
// request's user; nil makes every request anonymous.
func (x *Experiments) Handler(next http.Handler, user func(*http.Request) User) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var u User
		if user != nil {
			u = user(r)
		}
		st := x.newState(r.Context(), u)
		r = r.WithContext(st)
		if !x.keepsState() {
			next.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(st.withSession(r, w), r)
		st.sess.save()
	})
}

// keepsState reports whether requests keep state in cookies (the
// session, the anonymous ID): their writer is wrapped to set them.
func (x *Experiments) keepsState() bool { return x.sessions != nil || x.anonCookie != "" }

// withSession gives st a session state for request r (whose context is
// st) and its response writer w, and returns the writer that saves the
// session before the response is committed.
func (st *reqState) withSession(r *http.Request, w http.ResponseWriter) http.ResponseWriter {
	sessions.GetRegistry(r) // handlers that read sessions share ours
	st.sess = &sessionState{st: st, r: r, w: w}
	st.sess.writer = saveWriter{ResponseWriter: w, ss: st.sess}
	return &st.sess.writer
}

// saveWriter saves the session before the response is committed.
type saveWriter struct {
	http.ResponseWriter
	ss        *sessionState
	committed bool
}

func (w *saveWriter) commit() {
	if !w.committed {
		w.committed = true
		w.ss.save()
	}
}

func (w *saveWriter) WriteHeader(code int) {
	if code >= 200 || code == http.StatusSwitchingProtocols {
		w.commit()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *saveWriter) Write(b []byte) (int, error) {
	w.commit()
	return w.ResponseWriter.Write(b)
}

// Flush commits the response and flushes it, when the wrapped writer can.
func (w *saveWriter) Flush() {
	w.commit()
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack hands the connection over, when the wrapped writer can.
func (w *saveWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.commit()
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// Unwrap returns the wrapped writer, for http.ResponseController.
func (w *saveWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
