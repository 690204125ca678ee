// README "Bucketing IDs and anonymous visitors": a visitor is bucketed
// by the anonymous cookie, an account by its company.
package main

import (
	"context"
	"net/http"
	"net/http/httptest"

	"github.com/gorilla/sessions"
	"github.com/labstack/echo/v4"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/internal/readmecheck"
)

// Account is the app's signed-in user.
type Account struct{ ID, CompanyID string }

func main() {
	ctx := context.Background()
	keys, err := experiments.ParseSessionKeys("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
	readmecheck.Must(err)
	store := experiments.NewMemStore()
	e := echo.New()
	e.Use(func(next echo.HandlerFunc) echo.HandlerFunc { // the app's login
		return func(c echo.Context) error {
			if id := c.Request().Header.Get("X-Account"); id != "" {
				c.Set("account", &Account{ID: id, CompanyID: "acme"})
			}
			return next(c)
		}
	})

	//readme:block 1

	readmecheck.Must(store.SetFlag(ctx, landing.Name(), experiments.On()))
	readmecheck.Must(store.SetFlag(ctx, seats.Name(), experiments.On()))
	var got []experiments.Decision
	e.GET("/", func(c echo.Context) error {
		got = append(got, landing.Decide(c.Request().Context(), ""), seats.Decide(c.Request().Context(), ""))
		return c.String(http.StatusOK, "ok")
	})
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	var visitor string
	for _, c := range rec.Result().Cookies() {
		if c.Name == "experiments_visitor" {
			visitor = c.Value
		}
	}
	if len(visitor) != 32 {
		readmecheck.Failf("no anonymous ID in %q", rec.Header().Values("Set-Cookie"))
	}
	readmecheck.Decision("the visitor's landing page", got[0], experiments.SHA256Bucket(landing.Name(), visitor, 2), experiments.ReasonHashed)
	readmecheck.Decision("the visitor's seat pricing", got[1], 0, experiments.ReasonAnonymous)

	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("X-Account", "7")
	e.ServeHTTP(httptest.NewRecorder(), req)
	readmecheck.Decision("account 7's seat pricing", got[3], experiments.SHA256Bucket(seats.Name(), "acme", 2), experiments.ReasonHashed)
}
