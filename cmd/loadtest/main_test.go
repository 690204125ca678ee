package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestLoadCountsRequestsAndErrors(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "login", Value: r.FormValue("username")})
	})
	mux.HandleFunc("GET /ok", func(w http.ResponseWriter, r *http.Request) {
		if c, err := r.Cookie("login"); err != nil || c.Value == "" {
			http.Error(w, "not signed in", http.StatusUnauthorized)
		}
	})
	mux.HandleFunc("GET /fail", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	res, err := load(srv.URL, "/ok", 4, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if res.requests == 0 || res.errors != 0 || len(res.latencies) != res.requests {
		t.Errorf("signed-in load: %d requests, %d errors, %d latencies; want some, none, one each", res.requests, res.errors, len(res.latencies))
	}
	res, err = load(srv.URL, "/fail", 2, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if res.errors != res.requests || res.errors == 0 || !strings.Contains(res.String(), "status 500") {
		t.Errorf("failing load: %d requests, %d errors: %s", res.requests, res.errors, res)
	}
}

func TestListeningFindsTheAddress(t *testing.T) {
	got, err := listening(strings.NewReader("time=… level=INFO msg=seeded\ndemo: listening on http://127.0.0.1:43210\n"))
	if err != nil || got != "http://127.0.0.1:43210" {
		t.Errorf("listening = %q, %v", got, err)
	}
	if _, err := listening(strings.NewReader("demo: address in use\n")); err == nil {
		t.Error("no error when the demo never listens")
	}
}
