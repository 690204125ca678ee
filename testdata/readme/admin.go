// README "Staff dashboard": the dashboard on an echo group, for staff.
package main

import (
	"net/http"
	"net/http/httptest"

	"github.com/labstack/echo/v4"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/admin"
	"github.com/abkit/experiments/internal/readmecheck"
)

var (
	upgradeButton = experiments.NewFlag("course_experience", "upgrade_button")
	newOutline    = experiments.NewFlag("course_experience", "new_outline")
)

func main() { readmecheck.Must(run()) }

// currentUser stands for the app's login: staff with an X-Staff header.
func currentUser(r *http.Request) experiments.User {
	if r.Header.Get("X-Staff") != "" {
		return experiments.User{ID: "1", Username: "carol", Staff: true}
	}
	return experiments.User{}
}

func run() error {
	store := experiments.NewMemStore()
	e := echo.New()

	//readme:block 1

	for _, tt := range []struct {
		staff bool
		want  int
	}{{true, http.StatusOK}, {false, http.StatusUnauthorized}} {
		req := httptest.NewRequest(http.MethodGet, "/admin/", nil)
		if tt.staff {
			req.Header.Set("X-Staff", "1")
		}
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		if rec.Code != tt.want {
			readmecheck.Failf("GET /admin/ (staff %v): %d, want %d", tt.staff, rec.Code, tt.want)
		}
	}
	return nil
}
