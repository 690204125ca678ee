package experiments

import (
	"encoding/json"
	"fmt"
	"iter"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"
)

// Limits on the dimensions of an exposure (Config.Dimensions,
// Exposure.Dimensions), so that exposures stay small: at most
// MaxDimensions names of at most MaxDimensionNameLen bytes, values of at
// most MaxDimensionValueLen bytes.
const (
	MaxDimensions        = 8
	MaxDimensionNameLen  = 64
	MaxDimensionValueLen = 64
)

// DimensionSite is the dimension name that records Config.Site rather
// than a user attribute: Config{Site: "learn.example", Dimensions:
// []string{DimensionSite}} gives every exposure site=learn.example.
const DimensionSite = "site"

// Dimensions are the dimensions of an exposure: a few name → value
// pairs (a browser family, a site, a plan) that results break
// participants down by. A Dimensions is immutable and comparable with
// ==, so that Exposure stays comparable; the zero value has none.
// NewDimensions and UnmarshalJSON make one, checking the limits, so
// every Dimensions holds at most MaxDimensions pairs with names that
// ValidateDimensionName accepts and values of 1 to MaxDimensionValueLen
// bytes of UTF-8 without NUL. It marshals to a JSON object.
type Dimensions struct {
	// enc is "name\x00value\x00" per pair, by ascending name.
	enc string
}

// NewDimensions returns the dimensions of m, which it does not keep. An
// error wraps ErrInvalid and names the dimension: too many, a bad name,
// or a value that is empty, longer than MaxDimensionValueLen bytes, not
// UTF-8 or holds a NUL byte.
func NewDimensions(m map[string]string) (Dimensions, error) {
	if len(m) > MaxDimensions {
		return Dimensions{}, fmt.Errorf("%w: %d dimensions: want at most %d", ErrInvalid, len(m), MaxDimensions)
	}
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(m)) {
		if err := ValidateDimensionName(name); err != nil {
			return Dimensions{}, err
		}
		v := m[name]
		if !validDimensionValue(v) {
			return Dimensions{}, fmt.Errorf("%w: dimension %s value %.70q: want 1 to %d bytes of UTF-8 without NUL",
				ErrInvalid, name, v, MaxDimensionValueLen)
		}
		b.WriteString(name)
		b.WriteByte(0)
		b.WriteString(v)
		b.WriteByte(0)
	}
	return Dimensions{enc: b.String()}, nil
}

// Get returns the value of dimension name, and whether there is one.
func (d Dimensions) Get(name string) (string, bool) {
	for n, v := range d.All() {
		if n == name {
			return v, true
		}
	}
	return "", false
}

// Len returns the number of dimensions.
func (d Dimensions) Len() int { return strings.Count(d.enc, "\x00") / 2 }

// All yields the dimensions by ascending name.
func (d Dimensions) All() iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		s := d.enc
		for s != "" {
			name, rest, _ := strings.Cut(s, "\x00")
			value, rest, _ := strings.Cut(rest, "\x00")
			if !yield(name, value) {
				return
			}
			s = rest
		}
	}
}

// Map returns the dimensions as a new map; nil when there are none.
func (d Dimensions) Map() map[string]string {
	if d.enc == "" {
		return nil
	}
	m := make(map[string]string, d.Len())
	for n, v := range d.All() {
		m[n] = v
	}
	return m
}

// String returns the dimensions as "name=value name=value", by name
// (values quoted when they hold a space, '=' or a quote); "" when none.
func (d Dimensions) String() string {
	var b strings.Builder
	for n, v := range d.All() {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		if strings.ContainsAny(v, " =\"") || v != strings.TrimSpace(v) {
			v = fmt.Sprintf("%q", v)
		}
		b.WriteString(n + "=" + v)
	}
	return b.String()
}

// MarshalJSON encodes d as a JSON object of strings, {} when empty.
func (d Dimensions) MarshalJSON() ([]byte, error) {
	m := d.Map()
	if m == nil {
		return []byte("{}"), nil
	}
	return json.Marshal(m)
}

// UnmarshalJSON decodes a JSON object of strings (or null, for none),
// checked as NewDimensions checks a map.
func (d *Dimensions) UnmarshalJSON(b []byte) error {
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("%w: dimensions: %w", ErrInvalid, err)
	}
	nd, err := NewDimensions(m)
	if err != nil {
		return err
	}
	*d = nd
	return nil
}

// ValidateDimensionName checks a dimension name: 1 to
// MaxDimensionNameLen ASCII letters, digits, '_', '-' and '.'. The error
// wraps ErrInvalid.
func ValidateDimensionName(name string) error {
	if name == "" || len(name) > MaxDimensionNameLen {
		return fmt.Errorf("%w: dimension name %.40q: want 1 to %d bytes", ErrInvalid, name, MaxDimensionNameLen)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !nameByte(c) && c != '.' {
			return fmt.Errorf("%w: dimension name %q: character %q is not allowed (letters, digits, '_', '-', '.')", ErrInvalid, name, c)
		}
	}
	return nil
}

// validDimensionValue reports whether v can be recorded: 1 to
// MaxDimensionValueLen bytes of UTF-8 without NUL.
func validDimensionValue(v string) bool {
	return v != "" && len(v) <= MaxDimensionValueLen && utf8.ValidString(v) && !strings.ContainsRune(v, 0)
}

// validateDimensionNames checks Config.Dimensions.
func validateDimensionNames(names []string) error {
	if len(names) > MaxDimensions {
		return fmt.Errorf("%w: Config.Dimensions: %d names: want at most %d", ErrInvalid, len(names), MaxDimensions)
	}
	for i, n := range names {
		if err := ValidateDimensionName(n); err != nil {
			return fmt.Errorf("Config.Dimensions[%d]: %w", i, err)
		}
		if slices.Index(names, n) < i {
			return fmt.Errorf("%w: Config.Dimensions[%d] %q: given twice", ErrInvalid, i, n)
		}
	}
	return nil
}

// dimensionsOf returns the dimensions of an exposure of u: for each name
// of x.dimensions (Config.Dimensions, sorted), Config.Site for
// DimensionSite, else u's attribute as a string (a string as it is, a
// bool as "true" or "false", a number in Go's shortest form). Absent,
// empty, too long or non-UTF-8 values are left out. It allocates the
// encoding only, and nothing when no value is left.
func (x *Experiments) dimensionsOf(u *User) Dimensions {
	var buf [256]byte
	b := buf[:0]
	for _, name := range x.dimensions {
		var v string
		if name == DimensionSite {
			v = x.site
		} else if a, ok := u.Attributes[name]; ok {
			v, _ = bucketingKey(a)
		}
		if !validDimensionValue(v) {
			continue
		}
		b = append(append(append(append(b, name...), 0), v...), 0)
	}
	if len(b) == 0 {
		return Dimensions{}
	}
	return Dimensions{enc: string(b)}
}
