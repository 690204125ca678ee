// README "Goals, exposures and conversions": goals declared, conversions
// recorded by handlers behind the middleware.
package main

import (
	"context"
	"net/http"
	"net/http/httptest"

	"github.com/labstack/echo/v4"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/internal/readmecheck"
)

func main() {
	ctx := context.Background()
	store := experiments.NewMemStore()
	e := echo.New()

	//readme:block 1

	e.Use(x.Middleware(experiments.MiddlewareConfig{User: func(echo.Context) experiments.User { return experiments.User{ID: "42"} }}))
	for _, path := range []string{"/courses/course-v1:edX+DemoX+2026/enroll", "/purchase"} {
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, nil))
		if rec.Code != http.StatusNoContent {
			readmecheck.Failf("POST %s: %d %s", path, rec.Code, rec.Body)
		}
	}
	got := store.Conversions()
	if len(got) != 2 || got[0].Goal != "enrolled" || got[1].Goal != "purchase" || got[1].Value != 49 {
		readmecheck.Failf("conversions %+v, want enrolled, then purchase of 49", got)
	}
}
