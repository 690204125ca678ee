package experiments

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"
)

// ErrSessions is wrapped by Config.Validate's error when Config.Sessions,
// SessionName or SessionOptions could not keep a session: the event would
// be sent again on every request.
var ErrSessions = errors.New("sessions cannot be saved")

// Validate checks what would otherwise fail in every request, silently
// (each save logs a warning and the event is sent again): that
// Config.Sessions can encode a session, that SessionName and
// AnonymousCookie can name cookies, and that SessionOptions keep them. A
// session store without a key fails it: sessions.NewCookieStore(nil), or
// a key read from an unset environment variable. The store is checked
// without I/O: a sessions.CookieStore or FilesystemStore encodes a trial
// value with its codecs; other stores are taken as they are. The error
// wraps ErrSessions. It also checks Config.Dimensions (an error wrapping
// ErrInvalid that names the entry).
//
// New panics with the error, so that the mistake shows at start-up; call
// Validate first to handle it as an error instead.
func (c Config) Validate() error {
	if err := validateDimensionNames(c.Dimensions); err != nil {
		return err
	}
	if c.Sessions == nil && c.AnonymousCookie == "" {
		return nil
	}
	name := c.SessionName
	if name == "" {
		name = defaultSessionName
	}
	if !validCookieName(name) {
		return fmt.Errorf("%w: SessionName %q: not a cookie name (letters, digits and !#$%%&'*+-.^_`|~)", ErrSessions, name)
	}
	if a := c.AnonymousCookie; a != "" && (!validCookieName(a) || a == name) {
		return fmt.Errorf("%w: AnonymousCookie %q: not a cookie name, or SessionName's", ErrSessions, a)
	}
	if o := c.SessionOptions; o != nil {
		if o.MaxAge < 0 {
			return fmt.Errorf("%w: SessionOptions.MaxAge %d: a negative MaxAge deletes the cookie at every save", ErrSessions, o.MaxAge)
		}
		if o.SameSite == http.SameSiteNoneMode && !o.Secure {
			return fmt.Errorf("%w: SessionOptions: SameSite=None without Secure: browsers refuse the cookie", ErrSessions)
		}
	}
	if c.Sessions == nil {
		return nil
	}
	var codecs []securecookie.Codec
	switch s := c.Sessions.(type) {
	case *sessions.CookieStore:
		codecs = s.Codecs
	case *sessions.FilesystemStore:
		codecs = s.Codecs
	default:
		return nil
	}
	trial := map[any]any{sessionUserKey: "1", markPrefix + "check": true}
	if _, err := securecookie.EncodeMulti(name, trial, codecs...); err != nil {
		return fmt.Errorf("%w: Config.Sessions (%T) cannot encode a session: %w (give it a key of 32 or 64 random bytes: see ParseSessionKeys)", ErrSessions, c.Sessions, err)
	}
	return nil
}

// validCookieName reports whether s is a cookie name net/http sends: an
// HTTP token.
func validCookieName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// ParseSessionKeys reads the keys of a session cookie from s, as an
// environment variable holds them: one or more keys separated by commas
// or spaces, each 32 or 64 random bytes in base64 (standard or URL
// alphabet, padded or not) or in hex. Generate one with
//
//	openssl rand -base64 32
//
// It returns them as the key pairs of sessions.NewCookieStore: the first
// key signs new cookies, and every key is accepted in cookies it reads,
// so that a key is rotated by putting the new one first and dropping the
// old one once its cookies have expired:
//
//	keys, err := experiments.ParseSessionKeys(os.Getenv("SESSION_KEY")) // "NEW" or "NEW,OLD"
//	if err != nil {
//		log.Fatalf("SESSION_KEY: %v", err)
//	}
//	cookies := sessions.NewCookieStore(keys...)
//
// Cookies are signed (HMAC-SHA256), not encrypted: the session holds
// which experiments the user was tracked in. Errors wrap ErrInvalid and
// say which key is wrong, never what it holds.
func ParseSessionKeys(s string) ([][]byte, error) {
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' })
	if len(fields) == 0 {
		return nil, fmt.Errorf("%w: session key: empty; generate one with: openssl rand -base64 32", ErrInvalid)
	}
	pairs := make([][]byte, 0, 2*len(fields))
	for i, f := range fields {
		key, ok := decodeKey(f)
		if !ok {
			return nil, fmt.Errorf("%w: session key %d of %d: neither base64 nor hex", ErrInvalid, i+1, len(fields))
		}
		if len(key) != 32 && len(key) != 64 {
			return nil, fmt.Errorf("%w: session key %d of %d: %d bytes, want 32 or 64 (openssl rand -base64 32)", ErrInvalid, i+1, len(fields), len(key))
		}
		pairs = append(pairs, key, nil) // hash key; no block key
	}
	return pairs, nil
}

// decodeKey decodes a key in hex or in one of the base64 encodings.
func decodeKey(s string) ([]byte, bool) {
	if len(s)%2 == 0 {
		if b, err := hex.DecodeString(s); err == nil {
			return b, true
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, true
		}
	}
	return nil, false
}
