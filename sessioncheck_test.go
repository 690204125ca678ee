package experiments_test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gorilla/sessions"

	"github.com/abkit/experiments"
)

// keyOf returns a 32-byte key made of b, in base64.
func keyOf(b byte) string {
	return base64.StdEncoding.EncodeToString([]byte(strings.Repeat(string(b), 32)))
}

func TestConfigValidate(t *testing.T) {
	key := []byte(strings.Repeat("k", 32))
	tests := []struct {
		name string
		cfg  experiments.Config
		want string // in the error; "" for none
	}{
		{"ok, no sessions", experiments.Config{}, ""},
		{"ok, a cookie store with a 32-byte key", experiments.Config{Sessions: sessions.NewCookieStore(key)}, ""},
		{"ok, a hash and a block key", experiments.Config{Sessions: sessions.NewCookieStore(key, key)}, ""},
		{"ok, a store that is not gorilla's own is taken as it is", experiments.Config{Sessions: nopSessions{}}, ""},
		{"ok, SameSite=None with Secure", experiments.Config{Sessions: sessions.NewCookieStore(key),
			SessionOptions: &sessions.Options{Path: "/", SameSite: http.SameSiteNoneMode, Secure: true}}, ""},
		{"nok, a cookie store without a key", experiments.Config{Sessions: sessions.NewCookieStore()}, "no codecs provided"},
		{"nok, a key from an unset variable", experiments.Config{Sessions: sessions.NewCookieStore([]byte(""))}, "hash key is not set"},
		{"nok, a block key of a length AES refuses", experiments.Config{Sessions: sessions.NewCookieStore(key, []byte("short"))}, "invalid key size"},
		{"nok, a filesystem store without a key", experiments.Config{Sessions: sessions.NewFilesystemStore(t.TempDir())}, "no codecs provided"},
		{"nok, a session name with a space", experiments.Config{Sessions: sessions.NewCookieStore(key), SessionName: "my session"}, `SessionName "my session"`},
		{"nok, a negative MaxAge", experiments.Config{Sessions: sessions.NewCookieStore(key), SessionOptions: &sessions.Options{MaxAge: -1}}, "MaxAge -1"},
		{"ok, an anonymous cookie without sessions", experiments.Config{AnonymousCookie: "exp_anon"}, ""},
		{"nok, an anonymous cookie name with a space", experiments.Config{AnonymousCookie: "exp anon"}, `AnonymousCookie "exp anon"`},
		{"nok, the anonymous cookie is the session's", experiments.Config{Sessions: sessions.NewCookieStore(key), AnonymousCookie: "experiments"}, `AnonymousCookie "experiments"`},
		{"nok, an anonymous cookie with a negative MaxAge", experiments.Config{AnonymousCookie: "exp_anon", SessionOptions: &sessions.Options{MaxAge: -1}}, "MaxAge -1"},
		{"nok, SameSite=None without Secure", experiments.Config{Sessions: sessions.NewCookieStore(key),
			SessionOptions: &sessions.Options{Path: "/", SameSite: http.SameSiteNoneMode}}, "SameSite=None without Secure"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, experiments.ErrSessions)):
				t.Errorf("Validate() = %v, want an ErrSessions saying %q", err, tt.want)
			}
		})
	}
}

// nopSessions is a session store of the app's own.
type nopSessions struct{}

func (nopSessions) Get(r *http.Request, name string) (*sessions.Session, error) {
	return sessions.NewSession(nopSessions{}, name), nil
}
func (nopSessions) New(r *http.Request, name string) (*sessions.Session, error) {
	return sessions.NewSession(nopSessions{}, name), nil
}
func (nopSessions) Save(*http.Request, http.ResponseWriter, *sessions.Session) error { return nil }

// An unset SESSION_KEY fails at start-up rather than in every request.
func TestNewPanicsOnSessionsThatCannotSave(t *testing.T) {
	p := panicOf(func() {
		experiments.New(experiments.Config{Sessions: sessions.NewCookieStore([]byte(""))})
	})
	msg, _ := p.(string)
	if !strings.HasPrefix(msg, "experiments.New: ") || !strings.Contains(msg, "hash key is not set") || !strings.Contains(msg, "ParseSessionKeys") {
		t.Errorf("New panicked with %v, want a message that names the missing key and ParseSessionKeys", p)
	}
}

func TestParseSessionKeys(t *testing.T) {
	k32 := strings.Repeat("a", 32)
	k64 := strings.Repeat("b", 64)
	tests := []struct {
		name string
		in   string
		want []string // the hash keys; nil for an error
		err  string
	}{
		{"ok, one base64 key", base64.StdEncoding.EncodeToString([]byte(k32)), []string{k32}, ""},
		{"ok, one unpadded URL base64 key", base64.RawURLEncoding.EncodeToString([]byte(k64)), []string{k64}, ""},
		{"ok, one hex key", hex.EncodeToString([]byte(k32)), []string{k32}, ""},
		{"ok, new and old, comma-separated", keyOf('n') + "," + keyOf('o'), []string{strings.Repeat("n", 32), strings.Repeat("o", 32)}, ""},
		{"ok, spaces around the keys", " " + keyOf('n') + " , " + keyOf('o') + "\n", []string{strings.Repeat("n", 32), strings.Repeat("o", 32)}, ""},
		{"nok, empty", "", nil, "session key: empty; generate one with: openssl rand -base64 32"},
		{"nok, only separators", " , ", nil, "session key: empty"},
		{"nok, a password, not a key", "p@ssw0rd!", nil, "session key 1 of 1: neither base64 nor hex"},
		{"nok, 16 bytes", base64.StdEncoding.EncodeToString([]byte(strings.Repeat("s", 16))), nil, "session key 1 of 1: 16 bytes, want 32 or 64"},
		{"nok, the old key is short", keyOf('n') + "," + hex.EncodeToString([]byte("short")), nil, "session key 2 of 2: 5 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pairs, err := experiments.ParseSessionKeys(tt.in)
			if tt.want == nil {
				if err == nil || !errors.Is(err, experiments.ErrInvalid) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseSessionKeys(%q) = %v, want an ErrInvalid saying %q", tt.in, err, tt.err)
				}
				if strings.Contains(err.Error(), "p@ssw0rd!") {
					t.Errorf("the error %q shows the key", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(pairs) != 2*len(tt.want) {
				t.Fatalf("%d keys, want %d pairs", len(pairs), len(tt.want))
			}
			for i, w := range tt.want {
				if string(pairs[2*i]) != w || pairs[2*i+1] != nil {
					t.Errorf("pair %d = %q, %q; want hash key %q and no block key", i, pairs[2*i], pairs[2*i+1], w)
				}
			}
		})
	}
}

// Rotating the key keeps the sessions signed with the old one: after a
// deploy with SESSION_KEY="NEW,OLD", a browser tracked under OLD is not
// tracked again; once OLD is dropped, its cookie no longer counts.
func TestSessionKeyRotationAcrossRequests(t *testing.T) {
	flag := experiments.NewFlagSet().NewFlag("rotation_test", "exp")
	store := experiments.NewMemStore()
	if err := store.SetFlag(t.Context(), flag.Name(), experiments.On()); err != nil {
		t.Fatal(err)
	}
	var events atomic.Int32
	var current atomic.Pointer[http.Handler]
	deploy := func(sessionKey string) {
		t.Helper()
		keys, err := experiments.ParseSessionKeys(sessionKey)
		if err != nil {
			t.Fatal(err)
		}
		x := experiments.New(experiments.Config{
			Store:    store,
			Sessions: sessions.NewCookieStore(keys...),
			Tracker: experiments.TrackerFunc(func(context.Context, experiments.Event) error {
				events.Add(1)
				return nil
			}),
		})
		h := x.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			flag.Bucket(r.Context(), r.URL.Query().Get("course"))
		}), func(*http.Request) experiments.User { return experiments.User{ID: "7"} })
		current.Store(&h)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*current.Load()).ServeHTTP(w, r) }))
	defer srv.Close()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Jar: jar}
	get := func(course string) {
		t.Helper()
		resp, err := client.Get(srv.URL + "?course=" + course)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	oldKey, newKey := keyOf('o'), keyOf('n')
	const a, b = "course-v1:edX+A+2026", "course-v1:edX+B+2026"
	steps := []struct {
		name, key, course string
		events            int32 // in all, after the request
	}{
		{"ok, the first request under the old key is tracked", oldKey, a, 1},
		{"ok, the same session under the old key is not", oldKey, a, 1},
		{"ok, the new key first, the old one still read: not tracked again", newKey + "," + oldKey, a, 1},
		{"ok, another course is tracked, and the cookie saved under the new key", newKey + "," + oldKey, b, 2},
		{"ok, the old key dropped: the re-signed cookie still counts", newKey, b, 2},
		{"ok, and still holds the marks made under the old key", newKey, a, 2},
		{"ok, an unknown key: the session is new, tracked again", keyOf('x'), a, 3},
	}
	for _, s := range steps {
		deploy(s.key)
		get(s.course)
		if got := events.Load(); got != s.events {
			t.Fatalf("%s: %d events, want %d", s.name, got, s.events)
		}
	}
}

// FuzzParseSessionKeys: any input gives keys of 32 or 64 bytes in pairs
// without a block key, or an ErrInvalid that does not show the input; and
// keys it returns parse again from their base64.
func FuzzParseSessionKeys(f *testing.F) {
	for _, s := range []string{"", ",", keyOf('a'), keyOf('a') + "," + keyOf('b'), hex.EncodeToString(make([]byte, 64)), "p@ss", "====", "a b\tc\nd"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		pairs, err := experiments.ParseSessionKeys(s)
		if err != nil {
			if !errors.Is(err, experiments.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			if len(s) >= 8 && strings.Contains(err.Error(), s) {
				t.Fatalf("error %q shows the input", err)
			}
			return
		}
		if len(pairs) == 0 || len(pairs)%2 != 0 {
			t.Fatalf("%d keys, want pairs", len(pairs))
		}
		var again []string
		for i := 0; i < len(pairs); i += 2 {
			if n := len(pairs[i]); (n != 32 && n != 64) || pairs[i+1] != nil {
				t.Fatalf("pair %d: a %d-byte hash key and block key %q", i/2, n, pairs[i+1])
			}
			again = append(again, base64.StdEncoding.EncodeToString(pairs[i]))
		}
		back, err := experiments.ParseSessionKeys(strings.Join(again, ","))
		if err != nil || len(back) != len(pairs) {
			t.Fatalf("the keys' own base64 does not parse back: %v", err)
		}
		for i := range back {
			if string(back[i]) != string(pairs[i]) {
				t.Fatalf("key %d changed on the way back", i)
			}
		}
	})
}
