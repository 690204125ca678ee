package experiments

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strconv"
)

// WithBucketingAttribute makes the flag hash on the user's attribute
// name (User.Attributes) rather than on the user ID, as Optimizely's
// bucketing ID does: every user with the same value, the members of one
// company say, gets the same bucket. A string is hashed as it is, a bool
// as "true" or "false", a number in Go's shortest form (42, 1.5); a user
// without the attribute, or with an empty string or a value of another
// type, gets control with ReasonNoBucketingID and is not tracked. Only
// the hash changes: events, exposures and sticky buckets stay the
// user's, Rule.Percent still counts users, and a custom Config.Hasher
// sees a User whose ID and Username are the attribute's value.
// Optional. Default: the user ID. NewFlag panics on an empty name.
func WithBucketingAttribute(name string) FlagOption {
	return func(f *ExperimentFlag) { f.bucketingAttr, f.badAttr = name, name == "" }
}

// WithAnonymous lets the flag bucket anonymous visitors (User.ID "") by
// the anonymous ID that the middleware gives them when
// Config.AnonymousCookie is set. Their events carry the ID as
// Event.AnonymousID (UserID is ""), once per session like anyone's;
// no exposure is recorded for them (results count signed-in users), no
// sticky bucket is kept, and rules see an anonymous user: On(), Off()
// and course or org overrides decide for them, the other fields of a
// Rule do not. Without an anonymous ID (no Config.AnonymousCookie,
// NewContext, or the response already committed when the first ID
// would be given) they get control, as for flags without it.
// Optional. Default: false, anonymous visitors get control.
func WithAnonymous(on bool) FlagOption { return func(f *ExperimentFlag) { f.anonymous = on } }

// BucketingAttribute returns the attribute of WithBucketingAttribute, or
// "" when the flag hashes the user ID.
func (f *ExperimentFlag) BucketingAttribute() string { return f.bucketingAttr }

// Anonymous reports whether the flag buckets anonymous visitors
// (WithAnonymous).
func (f *ExperimentFlag) Anonymous() bool { return f.anonymous }

// bucketingKey returns an attribute's value as a hashing key.
func bucketingKey(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, v != ""
	case bool:
		return strconv.FormatBool(v), true
	case int:
		return strconv.FormatInt(int64(v), 10), true
	case int8:
		return strconv.FormatInt(int64(v), 10), true
	case int16:
		return strconv.FormatInt(int64(v), 10), true
	case int32:
		return strconv.FormatInt(int64(v), 10), true
	case int64:
		return strconv.FormatInt(v, 10), true
	case uint:
		return strconv.FormatUint(uint64(v), 10), true
	case uint8:
		return strconv.FormatUint(uint64(v), 10), true
	case uint16:
		return strconv.FormatUint(uint64(v), 10), true
	case uint32:
		return strconv.FormatUint(uint64(v), 10), true
	case uint64:
		return strconv.FormatUint(v, 10), true
	case float32:
		return strconv.FormatFloat(float64(v), 'g', -1, 32), true
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64), true
	}
	return "", false
}

// hashUser returns the user the hash sees (step 9 of decide): the
// request's user, or, for a flag WithBucketingAttribute or an anonymous
// visitor, a copy in buf whose ID and Username are the attribute's value
// or the anonymous ID. ok is false for a user without the attribute.
// st.mu is held.
func (f *ExperimentFlag) hashUser(st *reqState, buf *User) (u *User, ok bool) {
	var key string
	switch {
	case f.bucketingAttr != "":
		if key, ok = bucketingKey(st.user.Attributes[f.bucketingAttr]); !ok {
			return nil, false
		}
	case st.user.ID == "":
		key = st.sess.anonID // step 5 has checked that there is one
	default:
		return &st.user, true
	}
	*buf = st.user
	buf.ID, buf.Username = key, key
	return buf, true
}

// anonymousLen is the length of an anonymous ID: 16 random bytes in hex.
const anonymousLen = 32

// anonymousID returns the request's anonymous ID: the one its
// Config.AnonymousCookie holds, else a new one, set in that cookie when
// the response is committed; "" without the cookie's name, outside HTTP,
// or when the response is committed before a new ID could be set.
// st.mu is held.
func (st *reqState) anonymousID() string {
	ss := st.sess
	if ss == nil || st.x.anonCookie == "" {
		return ""
	}
	if ss.anonRead {
		return ss.anonID
	}
	ss.anonRead = true
	if c, err := ss.r.Cookie(st.x.anonCookie); err == nil && validAnonymousID(c.Value) {
		ss.anonID = c.Value
		return ss.anonID
	}
	if ss.committed {
		return ""
	}
	var b [anonymousLen / 2]byte
	rand.Read(b[:])
	ss.anonID, ss.anonNew = hex.EncodeToString(b[:]), true
	return ss.anonID
}

// validAnonymousID reports whether s is an ID anonymousID makes: 32
// lowercase hex digits. Anything else in the cookie is replaced.
func validAnonymousID(s string) bool {
	if len(s) != anonymousLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// setAnonymousCookie sets the cookie of a new anonymous ID, with the
// session cookie's options. st.mu is held, the response not committed.
func (ss *sessionState) setAnonymousCookie() {
	if !ss.anonNew {
		return
	}
	ss.anonNew = false
	o := ss.st.x.sessionOpts
	http.SetCookie(ss.w, &http.Cookie{
		Name: ss.st.x.anonCookie, Value: ss.anonID,
		Path: o.Path, Domain: o.Domain, MaxAge: o.MaxAge,
		Secure: o.Secure, HttpOnly: o.HttpOnly, SameSite: o.SameSite, Partitioned: o.Partitioned,
	})
}
