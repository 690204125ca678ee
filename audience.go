package experiments

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Op is the operator of a Condition: how the user's attribute is compared
// with the condition's values. Its JSON form is the string of the
// constant ("in", "semver_gte", …).
type Op string

// The operators of a Condition, with the number of values each takes.
// An attribute is present when User.Attributes has its key with a value
// of a supported type: a string, a bool, or a number (any int, uint or
// float type). Every operator but NotExists fails for an attribute that
// is not present.
const (
	// Equals (1 value) matches an attribute equal to the value: a string
	// attribute as text, exactly; a bool attribute when the value is
	// "true" or "false" and the same; a number attribute when the value
	// is a decimal number of the same value (18, int8(18) and 18.0 all
	// equal "18" and "18.0").
	Equals Op = "eq"
	// In (1 or more values) matches an attribute that Equals any of the
	// values.
	In Op = "in"
	// NotIn (1 or more values) matches a present attribute that Equals
	// none of the values. An absent attribute does not match.
	NotIn Op = "not_in"
	// Less, LessOrEqual, Greater and GreaterOrEqual (1 value, a decimal
	// number such as "18", "-2.5" or "1e3") compare a number attribute
	// with the value, as float64. A string or bool attribute never
	// matches, even "18": pass numbers as numbers.
	Less           Op = "lt"  // attribute < value
	LessOrEqual    Op = "lte" // attribute <= value
	Greater        Op = "gt"  // attribute > value
	GreaterOrEqual Op = "gte" // attribute >= value
	// SemverEqual, SemverLess, SemverLessOrEqual, SemverGreater and
	// SemverGreaterOrEqual (1 value, a semantic version) compare a string
	// attribute holding a semantic version with the value, by SemVer 2.0.0
	// precedence (semver.org, item 11): major, minor and patch
	// numerically, then a pre-release is lower than its release
	// ("2.3.0-rc.1" < "2.3.0"), pre-release identifiers compared one by
	// one (numeric ones numerically and lower than alphanumeric ones,
	// which compare in ASCII order; more identifiers is higher when the
	// others are equal), build metadata ignored ("1.0.0+a" equals
	// "1.0.0+b"). A version is MAJOR.MINOR.PATCH, all three required,
	// without leading zeros, optionally preceded by one lowercase "v"
	// ("v2.3.0" is 2.3.0, as in Go modules and git tags). An attribute
	// that is not such a version (or not a string) never matches.
	SemverEqual          Op = "semver_eq"  // attribute = value, as versions
	SemverLess           Op = "semver_lt"  // attribute < value, as versions
	SemverLessOrEqual    Op = "semver_lte" // attribute <= value, as versions
	SemverGreater        Op = "semver_gt"  // attribute > value, as versions
	SemverGreaterOrEqual Op = "semver_gte" // attribute >= value, as versions
	// Exists (no values) matches a present attribute, "" and false
	// included.
	Exists Op = "exists"
	// NotExists (no values) matches an attribute that is absent or of an
	// unsupported type.
	NotExists Op = "not_exists"
)

// Condition is one test of a Rule's audience on the user's Attributes:
// Attribute Op Values, such as {"country", In, ["US", "CA"]} or
// {"app_version", SemverGreaterOrEqual, ["2.3.0"]}. Values are strings in
// every case, numbers and versions written as text, so that a condition
// reads back from JSON as it was written. Its JSON form is
// {"attribute": "country", "op": "in", "values": ["US", "CA"]}.
type Condition struct {
	// Attribute is the key in User.Attributes: 1 to 255 bytes of text.
	Attribute string `json:"attribute"`
	// Op is how the attribute is compared; see the constants.
	Op Op `json:"op"`
	// Values are what the attribute is compared with: as many as the
	// operator takes, each 1 to 255 bytes of text.
	Values []string `json:"values,omitempty"`
}

// Limits of an audience.
const (
	maxConditions      = 32   // per rule
	maxConditionValues = 1000 // per condition
	// smallSet is the most values of In or NotIn compared one by one;
	// more are looked up in a map.
	smallSet = 8
)

// opArity is how many values each operator takes: exactly n, or at least
// 1 for -1.
var opArity = map[Op]int{
	Equals: 1, In: -1, NotIn: -1,
	Less: 1, LessOrEqual: 1, Greater: 1, GreaterOrEqual: 1,
	SemverEqual: 1, SemverLess: 1, SemverLessOrEqual: 1, SemverGreater: 1, SemverGreaterOrEqual: 1,
	Exists: 0, NotExists: 0,
}

// Validate reports what a store would refuse in c: an attribute that is
// not text, an unknown operator, the wrong number of values, a value
// that is not text, or, for the numeric and semver operators, a value
// that is not a decimal number or a semantic version. The error wraps
// ErrInvalid and names the field and value.
func (c Condition) Validate() error {
	if err := checkText("attribute", c.Attribute, maxNameLen); err != nil {
		return err
	}
	n, ok := opArity[c.Op]
	if !ok {
		return fmt.Errorf("%w: attribute %q: op %q: unknown (want eq, in, not_in, lt, lte, gt, gte, semver_eq, semver_lt, semver_lte, semver_gt, semver_gte, exists or not_exists)", ErrInvalid, c.Attribute, c.Op)
	}
	switch {
	case n == -1 && len(c.Values) == 0:
		return fmt.Errorf("%w: attribute %q op %s: no values: want 1 or more", ErrInvalid, c.Attribute, c.Op)
	case n == -1 && len(c.Values) > maxConditionValues:
		return fmt.Errorf("%w: attribute %q op %s: %d values: want at most %d", ErrInvalid, c.Attribute, c.Op, len(c.Values), maxConditionValues)
	case n >= 0 && len(c.Values) != n:
		return fmt.Errorf("%w: attribute %q op %s: %d values %q: want %d", ErrInvalid, c.Attribute, c.Op, len(c.Values), c.Values, n)
	}
	for i, v := range c.Values {
		field := "attribute " + strconv.Quote(c.Attribute) + " op " + string(c.Op) + " values[" + itoa(i) + "]"
		if err := checkText(field, v, maxNameLen); err != nil {
			return err
		}
		switch c.Op {
		case Less, LessOrEqual, Greater, GreaterOrEqual:
			if _, ok := parseDecimal(v); !ok {
				return fmt.Errorf("%w: %s %q: not a decimal number", ErrInvalid, field, v)
			}
		case SemverEqual, SemverLess, SemverLessOrEqual, SemverGreater, SemverGreaterOrEqual:
			if _, ok := parseSemver(v); !ok {
				return fmt.Errorf("%w: %s %q: not a semantic version (MAJOR.MINOR.PATCH, optional -pre-release and +build, optional leading v)", ErrInvalid, field, v)
			}
		}
	}
	return nil
}

// String returns c as it reads: `country in [US CA]`, `age >= 18`,
// `app_version >= 2.3.0 (semver)`, `plan exists`.
func (c Condition) String() string {
	sym := map[Op]string{
		Equals: "=", In: "in", NotIn: "not in", Less: "<", LessOrEqual: "<=", Greater: ">", GreaterOrEqual: ">=",
		SemverEqual: "=", SemverLess: "<", SemverLessOrEqual: "<=", SemverGreater: ">", SemverGreaterOrEqual: ">=",
		Exists: "exists", NotExists: "does not exist",
	}[c.Op]
	if sym == "" {
		sym = strconv.Quote(string(c.Op))
	}
	switch c.Op {
	case In, NotIn:
		return c.Attribute + " " + sym + " [" + strings.Join(c.Values, " ") + "]"
	case Exists, NotExists:
		return c.Attribute + " " + sym
	}
	s := c.Attribute + " " + sym + " " + strings.Join(c.Values, " ")
	if strings.HasPrefix(string(c.Op), "semver_") {
		s += " (semver)"
	}
	return s
}

// validateConditions checks a rule's conditions.
func validateConditions(cs []Condition) error {
	if len(cs) > maxConditions {
		return fmt.Errorf("%w: rule conditions: %d: want at most %d", ErrInvalid, len(cs), maxConditions)
	}
	for i, c := range cs {
		if err := c.Validate(); err != nil {
			return fmt.Errorf("rule conditions[%d]: %w", i, err)
		}
	}
	return nil
}

// cond is a Condition compiled for evaluation: its values parsed once,
// when the snapshot is built.
type cond struct {
	attr  string
	op    opKind
	never bool // the condition does not compile: it matches nobody

	// Equals, In, NotIn: the values as text (strs, or set when many),
	// those that are decimal numbers, and whether "true" and "false"
	// are among them.
	strs         []string
	set          map[string]struct{}
	nums         []float64
	isTrue, isFa bool

	num float64 // Less … GreaterOrEqual
	ver semver  // Semver…
}

// compileConditions compiles cs. A condition that does not validate
// compiles to one that matches nobody: stores validate on write, and a
// store that did not must not widen an audience.
func compileConditions(cs []Condition) []cond {
	if len(cs) == 0 {
		return nil
	}
	out := make([]cond, len(cs))
	for i, c := range cs {
		k := &out[i]
		k.attr, k.op = c.Attribute, opKinds[c.Op]
		if c.Validate() != nil {
			k.never = true
			continue
		}
		switch c.Op {
		case Equals, In, NotIn:
			if len(c.Values) > smallSet {
				k.set = set(c.Values)
			} else {
				k.strs = append([]string(nil), c.Values...)
			}
			for _, v := range c.Values {
				if n, ok := parseDecimal(v); ok {
					k.nums = append(k.nums, n)
				}
				k.isTrue = k.isTrue || v == "true"
				k.isFa = k.isFa || v == "false"
			}
		case Less, LessOrEqual, Greater, GreaterOrEqual:
			k.num, _ = parseDecimal(c.Values[0])
		case SemverEqual, SemverLess, SemverLessOrEqual, SemverGreater, SemverGreaterOrEqual:
			k.ver, _ = parseSemver(c.Values[0])
		}
	}
	return out
}

// opKind is an Op as a small integer, so that matching switches on a
// byte rather than comparing strings.
type opKind uint8

const (
	opEquals opKind = iota
	opIn
	opNotIn
	opLess
	opLessOrEqual
	opGreater
	opGreaterOrEqual
	opSemverEqual
	opSemverLess
	opSemverLessOrEqual
	opSemverGreater
	opSemverGreaterOrEqual
	opExists
	opNotExists
)

var opKinds = map[Op]opKind{
	Equals: opEquals, In: opIn, NotIn: opNotIn,
	Less: opLess, LessOrEqual: opLessOrEqual, Greater: opGreater, GreaterOrEqual: opGreaterOrEqual,
	SemverEqual: opSemverEqual, SemverLess: opSemverLess, SemverLessOrEqual: opSemverLessOrEqual,
	SemverGreater: opSemverGreater, SemverGreaterOrEqual: opSemverGreaterOrEqual,
	Exists: opExists, NotExists: opNotExists,
}

// inAudience reports whether attrs pass every condition of cs (none:
// true). It does not allocate.
func inAudience(cs []cond, attrs map[string]any) bool {
	for i := range cs {
		if !cs[i].match(attrs) {
			return false
		}
	}
	return true
}

// attrKind is the kind of an attribute's value.
type attrKind uint8

const (
	absent attrKind = iota
	kindString
	kindBool
	kindNumber
)

// attrValue reads v as an attribute value, with type switches that do
// not allocate.
func attrValue(v any) (k attrKind, s string, b bool, n float64) {
	switch v := v.(type) {
	case string:
		return kindString, v, false, 0
	case bool:
		return kindBool, "", v, 0
	case int:
		return kindNumber, "", false, float64(v)
	case int64:
		return kindNumber, "", false, float64(v)
	case float64:
		return kindNumber, "", false, v
	case int32:
		return kindNumber, "", false, float64(v)
	case int16:
		return kindNumber, "", false, float64(v)
	case int8:
		return kindNumber, "", false, float64(v)
	case uint:
		return kindNumber, "", false, float64(v)
	case uint64:
		return kindNumber, "", false, float64(v)
	case uint32:
		return kindNumber, "", false, float64(v)
	case uint16:
		return kindNumber, "", false, float64(v)
	case uint8:
		return kindNumber, "", false, float64(v)
	case float32:
		return kindNumber, "", false, float64(v)
	}
	return absent, "", false, 0
}

// match reports whether attrs pass c. Each operator asserts the type it
// compares first (a string, an int or a float64: one comparison of type
// words), and reads other types with attrValue only when that fails.
func (c *cond) match(attrs map[string]any) bool {
	if c.never {
		return false
	}
	v := attrs[c.attr]
	switch c.op {
	case opEquals, opIn:
		if s, ok := v.(string); ok {
			return c.equalsString(s)
		}
		return c.equals(attrValue(v))
	case opNotIn:
		if s, ok := v.(string); ok {
			return !c.equalsString(s)
		}
		k, s, b, n := attrValue(v)
		return k != absent && !c.equals(k, s, b, n)
	case opLess, opLessOrEqual, opGreater, opGreaterOrEqual:
		n, ok := number(v)
		switch {
		case !ok:
			return false
		case c.op == opLess:
			return n < c.num
		case c.op == opLessOrEqual:
			return n <= c.num
		case c.op == opGreater:
			return n > c.num
		}
		return n >= c.num
	case opExists, opNotExists:
		k, _, _, _ := attrValue(v)
		return (k != absent) == (c.op == opExists)
	}
	s, ok := v.(string)
	if !ok {
		return false
	}
	ver, ok := parseSemver(s)
	if !ok {
		return false
	}
	cmp := ver.compare(&c.ver)
	switch c.op {
	case opSemverEqual:
		return cmp == 0
	case opSemverLess:
		return cmp < 0
	case opSemverLessOrEqual:
		return cmp <= 0
	case opSemverGreater:
		return cmp > 0
	case opSemverGreaterOrEqual:
		return cmp >= 0
	}
	return false
}

// number reads v as a number attribute: an int or a float64 at once,
// the other number types through attrValue.
func number(v any) (float64, bool) {
	switch v := v.(type) {
	case int:
		return float64(v), true
	case float64:
		return v, true
	}
	k, _, _, n := attrValue(v)
	return n, k == kindNumber
}

// equalsString reports whether the string attribute s equals one of c's
// values.
func (c *cond) equalsString(s string) bool {
	if c.set != nil {
		_, ok := c.set[s]
		return ok
	}
	for _, v := range c.strs {
		// Length and first byte first: most values differ there, and
		// comparing them is inlined where == calls memequal. Values are
		// never empty (Validate), so v[0] is there.
		if len(v) == len(s) && v[0] == s[0] && v == s {
			return true
		}
	}
	return false
}

// equals reports whether the attribute, read by attrValue, equals one of
// c's values.
func (c *cond) equals(k attrKind, s string, b bool, n float64) bool {
	switch k {
	case kindString:
		return c.equalsString(s)
	case kindBool:
		return b && c.isTrue || !b && c.isFa
	case kindNumber:
		for _, v := range c.nums {
			if v == n {
				return true
			}
		}
	}
	return false
}

// parseDecimal parses a finite decimal number: an optional sign, digits
// with an optional fraction, and an optional exponent ("18", "-2.5",
// ".5", "1e3"); not hexadecimal, underscores, "Inf" or "NaN".
func parseDecimal(s string) (float64, bool) {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := 0
	for ; i < len(s) && '0' <= s[i] && s[i] <= '9'; i++ {
		digits++
	}
	if i < len(s) && s[i] == '.' {
		for i++; i < len(s) && '0' <= s[i] && s[i] <= '9'; i++ {
			digits++
		}
	}
	if digits == 0 {
		return 0, false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		exp := 0
		for ; i < len(s) && '0' <= s[i] && s[i] <= '9'; i++ {
			exp++
		}
		if exp == 0 {
			return 0, false
		}
	}
	if i != len(s) {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, false
	}
	return f, true
}

// semver is a parsed semantic version; pre is its pre-release ("" for
// none), a substring of the text it was parsed from.
type semver struct {
	major, minor, patch uint64
	pre                 string
}

// parseSemver parses a SemVer 2.0.0 version, with an optional leading
// "v", without allocating.
func parseSemver(s string) (v semver, ok bool) {
	s = strings.TrimPrefix(s, "v")
	var rest string
	if v.major, rest, ok = semverNumber(s); !ok || rest == "" || rest[0] != '.' {
		return semver{}, false
	}
	if v.minor, rest, ok = semverNumber(rest[1:]); !ok || rest == "" || rest[0] != '.' {
		return semver{}, false
	}
	if v.patch, rest, ok = semverNumber(rest[1:]); !ok {
		return semver{}, false
	}
	build := ""
	if plus := strings.IndexByte(rest, '+'); plus >= 0 {
		rest, build = rest[:plus], rest[plus+1:]
		if !semverIdents(build, false) {
			return semver{}, false
		}
	}
	if rest != "" {
		if rest[0] != '-' || !semverIdents(rest[1:], true) {
			return semver{}, false
		}
		v.pre = rest[1:]
	}
	return v, true
}

// semverNumber reads a numeric identifier at the start of s: digits,
// without a leading zero unless it is "0", that fit in a uint64.
func semverNumber(s string) (n uint64, rest string, ok bool) {
	i := 0
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		d := uint64(s[i] - '0')
		if n > (math.MaxUint64-d)/10 {
			return 0, "", false
		}
		n = n*10 + d
		i++
	}
	if i == 0 || i > 1 && s[0] == '0' {
		return 0, "", false
	}
	return n, s[i:], true
}

// semverIdents reports whether s is dot-separated identifiers, each one
// or more of [0-9A-Za-z-]; pre says they are pre-release identifiers,
// whose numeric ones have no leading zero. It reads s once.
func semverIdents(s string, pre bool) bool {
	start, numeric := 0, true // the identifier being read
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			n := i - start
			if n == 0 || pre && numeric && n > 1 && s[start] == '0' {
				return false // empty, or a number with a leading zero
			}
			start, numeric = i+1, true
			continue
		}
		switch c := s[i]; {
		case '0' <= c && c <= '9':
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', c == '-':
			numeric = false
		default:
			return false
		}
	}
	return true
}

// compare returns -1, 0 or +1 as v is lower than, equal to or higher
// than w by SemVer 2.0.0 precedence.
func (v *semver) compare(w *semver) int {
	switch {
	case v.major != w.major:
		return cmpUint(v.major, w.major)
	case v.minor != w.minor:
		return cmpUint(v.minor, w.minor)
	case v.patch != w.patch:
		return cmpUint(v.patch, w.patch)
	case v.pre == w.pre:
		return 0
	case v.pre == "":
		return 1 // a release is higher than its pre-releases
	case w.pre == "":
		return -1
	}
	a, b := v.pre, w.pre
	for {
		var x, y string
		x, a, _ = strings.Cut(a, ".")
		y, b, _ = strings.Cut(b, ".")
		if c := comparePreIdent(x, y); c != 0 {
			return c
		}
		switch {
		case a == "" && b == "":
			return 0
		case a == "":
			return -1 // fewer identifiers, the others equal: lower
		case b == "":
			return 1
		}
	}
}

func cmpUint(a, b uint64) int {
	if a < b {
		return -1
	}
	if a > b {
		return 1
	}
	return 0
}

// comparePreIdent compares two pre-release identifiers: numeric ones
// numerically (they have no leading zeros: the longer is higher), below
// alphanumeric ones, which compare in ASCII order.
func comparePreIdent(x, y string) int {
	nx, ny := allDigits(x), allDigits(y)
	switch {
	case nx && ny:
		if len(x) != len(y) {
			if len(x) < len(y) {
				return -1
			}
			return 1
		}
		return strings.Compare(x, y)
	case nx:
		return -1
	case ny:
		return 1
	}
	return strings.Compare(x, y)
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
