package admin_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/admin"
)

// checkout is an experiment, declared once at package level.
var checkout = experiments.NewFlag("shop", "checkout")

// The dashboard on net/http, with staff allowed to change experiments
// and everyone else refused. currentUser stands for the app's own login.
func Example() {
	store := experiments.NewMemStore()
	currentUser := func(r *http.Request) experiments.User {
		if r.Header.Get("Authorization") == "Bearer staff-token" { // your session lookup here
			return experiments.User{ID: "1", Username: "carol", Staff: true}
		}
		return experiments.User{}
	}

	dash, err := admin.New("/admin", admin.Config{
		Store: store,
		Flags: []*experiments.ExperimentFlag{checkout},
		Authorize: func(r *http.Request) (string, admin.Permission) {
			u := currentUser(r)
			if u.Staff {
				return u.Username, admin.Change
			}
			return u.Username, admin.Deny // "" (nobody signed in) gives 401
		},
	})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/admin/", dash)

	for _, auth := range []string{"", "Bearer staff-token"} {
		req := httptest.NewRequest("GET", "/admin/api/experiments", nil)
		req.Header.Set("Authorization", auth)
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, req)
		fmt.Println(w.Code)
	}
	// Output:
	// 401
	// 200
}
