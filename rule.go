package experiments

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Rule says who a flag is on for, with django-waffle's Flag semantics,
// narrowed by an audience. It applies to main flags and bucket flags
// alike. A user is tested in this order: a user outside the audience
// (Conditions) is off; then Everyone (when set) decides alone; an
// anonymous user is off; then Authenticated, Staff, Superusers, Users,
// Groups and Percent, the first that matches turns the flag on;
// otherwise it is off.
type Rule struct {
	// Everyone, when set, turns the flag on (true) or off (false) for every
	// user of the audience, anonymous ones included, and the other fields
	// but Conditions are ignored.
	Everyone *bool `json:"everyone,omitempty"`
	// Percent turns the flag on for this share (0–100) of signed-in users.
	// The share is stable: a user is in or out the same way on every
	// request and server, and a larger percent keeps those already in.
	Percent float64 `json:"percent,omitempty"`
	// Authenticated turns the flag on for every signed-in user.
	Authenticated bool `json:"authenticated,omitempty"`
	// Staff turns the flag on for users with User.Staff.
	Staff bool `json:"staff,omitempty"`
	// Superusers turns the flag on for users with User.Superuser.
	Superusers bool `json:"superusers,omitempty"`
	// Users turns the flag on for these usernames (User.Username).
	Users []string `json:"users,omitempty"`
	// Groups turns the flag on for members of any of these groups.
	Groups []string `json:"groups,omitempty"`
	// Conditions are the audience: the rule applies only to users whose
	// User.Attributes pass every one of them (they are AND-ed; none: every
	// user). A user outside the audience is off, whatever the other
	// fields say: {Percent: 50, Conditions: country in [US CA]} is on for
	// half of the users whose country is US or CA. At most 32.
	Conditions []Condition `json:"conditions,omitempty"`
}

// On returns a Rule that is on for everyone.
func On() Rule { t := true; return Rule{Everyone: &t} }

// Off returns a Rule that is off for everyone.
func Off() Rule { f := false; return Rule{Everyone: &f} }

// Validate reports the first field of r that a store would refuse, as an
// error wrapping ErrInvalid.
func (r Rule) Validate() error {
	if math.IsNaN(r.Percent) || r.Percent < 0 || r.Percent > 100 {
		return fmt.Errorf("%w: rule percent %v: must be between 0 and 100", ErrInvalid, r.Percent)
	}
	for i, u := range r.Users {
		if err := checkText("rule users["+itoa(i)+"]", u, maxNameLen); err != nil {
			return err
		}
	}
	for i, g := range r.Groups {
		if err := checkText("rule groups["+itoa(i)+"]", g, maxNameLen); err != nil {
			return err
		}
	}
	return validateConditions(r.Conditions)
}

// String says in words who r turns a flag on for: "on for everyone",
// "off for everyone", "on for staff, users [ann bob], 20% of signed-in
// users", or "off (empty rule)" for a rule that matches nobody; an
// audience follows: "…, if country in [US CA] and age >= 18".
func (r Rule) String() string {
	s := r.who()
	if len(r.Conditions) > 0 && s != "off for everyone" && s != "off (empty rule)" {
		parts := make([]string, len(r.Conditions))
		for i, c := range r.Conditions {
			parts[i] = c.String()
		}
		s += ", if " + strings.Join(parts, " and ")
	}
	return s
}

// who is String without the audience.
func (r Rule) who() string {
	if r.Everyone != nil {
		if *r.Everyone {
			return "on for everyone"
		}
		return "off for everyone"
	}
	var who []string
	if r.Authenticated {
		who = append(who, "signed-in users")
	}
	if r.Staff {
		who = append(who, "staff")
	}
	if r.Superusers {
		who = append(who, "superusers")
	}
	if len(r.Users) > 0 {
		who = append(who, "users ["+strings.Join(r.Users, " ")+"]")
	}
	if len(r.Groups) > 0 {
		who = append(who, "groups ["+strings.Join(r.Groups, " ")+"]")
	}
	if r.Percent > 0 {
		who = append(who, strconv.FormatFloat(r.Percent, 'f', -1, 64)+"% of signed-in users")
	}
	if len(who) == 0 {
		return "off (empty rule)"
	}
	return "on for " + strings.Join(who, ", ")
}

// clone returns r with its own copies of the slices and pointer.
func (r Rule) clone() Rule {
	if r.Everyone != nil {
		e := *r.Everyone
		r.Everyone = &e
	}
	r.Users = append([]string(nil), r.Users...)
	r.Groups = append([]string(nil), r.Groups...)
	if r.Conditions != nil {
		cs := make([]Condition, len(r.Conditions))
		for i, c := range r.Conditions {
			c.Values = append([]string(nil), c.Values...)
			cs[i] = c
		}
		r.Conditions = cs
	}
	return r
}

// State is a per-course or per-org override of a flag.
type State int

const (
	// Unset removes the override: the flag's rule decides.
	Unset State = iota
	// ForceOn turns the flag on for every user in the course or org.
	ForceOn
	// ForceOff turns the flag off for every user in the course or org.
	ForceOff
)

// String returns "unset", "on" or "off".
func (s State) String() string {
	switch s {
	case Unset:
		return "unset"
	case ForceOn:
		return "on"
	case ForceOff:
		return "off"
	}
	return "State(" + itoa(int(s)) + ")"
}

func (s State) validate() error {
	if s < Unset || s > ForceOff {
		return fmt.Errorf("%w: state %d: must be Unset, ForceOn or ForceOff", ErrInvalid, int(s))
	}
	return nil
}

// CourseOrg returns the organization of an Open edX course key:
// "ORG" for "course-v1:ORG+COURSE+RUN" (and "ccx-v1:ORG+COURSE+RUN+ccx@N")
// and for the old "ORG/COURSE/RUN". It returns "" for anything else. Like
// edX's opaque keys, each part is letters, digits and "_-~.:".
func CourseOrg(courseKey string) string {
	var org, course, run string
	if rest, ok := strings.CutPrefix(courseKey, "course-v1:"); ok {
		org, rest, _ = strings.Cut(rest, "+")
		course, run, _ = strings.Cut(rest, "+")
	} else if rest, ok := strings.CutPrefix(courseKey, "ccx-v1:"); ok {
		var ccx string
		org, rest, _ = strings.Cut(rest, "+")
		course, rest, _ = strings.Cut(rest, "+")
		run, ccx, _ = strings.Cut(rest, "+")
		if id, ok := strings.CutPrefix(ccx, "ccx@"); !ok || id == "" || strings.Trim(id, "0123456789") != "" {
			return ""
		}
	} else {
		var rest string
		org, rest, _ = strings.Cut(courseKey, "/")
		course, run, _ = strings.Cut(rest, "/")
	}
	// A part holding a separator means too many parts.
	if !keyPart(org) || !keyPart(course) || !keyPart(run) {
		return ""
	}
	return org
}

// keyPart reports whether s is a part of a course key: one or more
// letters, digits or "_-~.:".
func keyPart(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !nameByte(c) && c != '~' && c != '.' && c != ':' {
			return false
		}
	}
	return true
}

// compiledFlag is one flag of a Snapshot, ready to evaluate: its rule,
// overrides and, for a main flag, the bucket flags "name.i" set in the store.
type compiledFlag struct {
	rule    Rule
	hasRule bool
	percent string // hashing group of Percent: "percent:" + name
	conds   []cond // the rule's audience, compiled (audience.go)
	users   map[string]struct{}
	groups  map[string]struct{}
	courses map[string]State
	orgs    map[string]State
	buckets []*compiledFlag // index i is flag name.i, nil when absent
}

// on reports whether the flag is on for u in courseKey: the course
// override, else the org override, else the rule.
func (c *compiledFlag) on(x *Experiments, u *User, courseKey string) bool {
	on, _ := c.eval(x, u, courseKey)
	return on
}

// eval is on, and whether u is in the audience of the rule that applies:
// false only when no override applies and u fails the rule's
// conditions. Overrides ignore the audience: they force the flag for
// everyone in the course or org. A nil c, a flag the store does not
// have, is off.
func (c *compiledFlag) eval(x *Experiments, u *User, courseKey string) (on, audience bool) {
	if c == nil {
		return false, true
	}
	if courseKey != "" {
		if c.courses != nil {
			switch c.courses[courseKey] {
			case ForceOn:
				return true, true
			case ForceOff:
				return false, true
			}
		}
		if c.orgs != nil {
			if org := CourseOrg(courseKey); org != "" {
				switch c.orgs[org] {
				case ForceOn:
					return true, true
				case ForceOff:
					return false, true
				}
			}
		}
	}
	if !c.hasRule {
		return false, true
	}
	if c.conds != nil && !inAudience(c.conds, u.Attributes) {
		return false, false
	}
	return c.ruleOn(x, u), true
}

func (c *compiledFlag) ruleOn(x *Experiments, u *User) bool {
	r := &c.rule
	if r.Everyone != nil {
		return *r.Everyone
	}
	if u.ID == "" {
		return false
	}
	if r.Authenticated || r.Staff && u.Staff || r.Superusers && u.Superuser {
		return true
	}
	if c.users != nil && u.Username != "" {
		if _, ok := c.users[u.Username]; ok {
			return true
		}
	}
	if c.groups != nil {
		for _, g := range u.Groups {
			if _, ok := c.groups[g]; ok {
				return true
			}
		}
	}
	if r.Percent > 0 {
		// A failing custom Hasher leaves the user out.
		h, err := x.hash(c.percent, "", u, percentBuckets)
		return err == nil && float64(h) < r.Percent*percentBuckets/100
	}
	return false
}

// percentBuckets is the resolution of Rule.Percent: 0.01%.
const percentBuckets = 10000

func compileRule(name string, r Rule) (c compiledFlag) {
	c.rule, c.hasRule = r, true
	c.percent = "percent:" + name
	c.conds = compileConditions(r.Conditions)
	c.users = set(r.Users)
	c.groups = set(r.Groups)
	return c
}

func set(list []string) map[string]struct{} {
	if len(list) == 0 {
		return nil
	}
	m := make(map[string]struct{}, len(list))
	for _, s := range list {
		m[s] = struct{}{}
	}
	return m
}
