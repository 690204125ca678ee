package ofprovider

import (
	"context"
	"fmt"

	"github.com/open-feature/go-sdk/openfeature"

	"github.com/abkit/experiments"
)

// The attributes of the evaluation context that the provider reads. The
// targeting key is experiments.User.ID ("" is anonymous: bucket 0, never
// tracked). Every attribute is optional; one of the wrong type fails the
// evaluation with INVALID_CONTEXT. When the Go context of the evaluation
// carries request state (Middleware, Handler, NewContext) for the user of
// the targeting key, that state's user is the one decided for and the user
// attributes are not read; AttrCourseKey always is.
const (
	// AttrUsername is experiments.User.Username, a string: what
	// Rule.Users matches, and the key of experiments.EdXHasher.
	AttrUsername = "username"
	// AttrStaff is experiments.User.Staff, a bool: Rule.Staff, and the
	// event's IsStaff.
	AttrStaff = "staff"
	// AttrSuperuser is experiments.User.Superuser, a bool: Rule.Superusers.
	AttrSuperuser = "superuser"
	// AttrGroups is experiments.User.Groups, a []string (or a []any of
	// strings): Rule.Groups.
	AttrGroups = "groups"
	// AttrMasquerading is experiments.User.Masquerading, a bool: staff
	// viewing as this user, bucketed as them and never tracked.
	AttrMasquerading = "masquerading"
	// AttrCourseKey is the course key of the decision, a string
	// ("course-v1:ORG+COURSE+RUN"); absent or "" is no course.
	AttrCourseKey = "course_key"
)

// requestContext returns the context to decide with and the course key.
// When ctx carries x's request state for the targeting key's user (from
// Middleware, Handler or NewContext), that state is used as it is, with
// its user, request cache and session, and the user attributes are not
// read; otherwise the evaluation gets request state of its own for the
// user of the evaluation context.
func (p *Provider) requestContext(ctx context.Context, flat openfeature.FlattenedContext) (context.Context, string, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	id, err := attr[string](flat, openfeature.TargetingKey)
	if err != nil {
		return nil, "", err
	}
	courseKey, err := attr[string](flat, AttrCourseKey)
	if err != nil {
		return nil, "", err
	}
	if u, ok := p.x.RequestUser(ctx); ok && u.ID == id {
		return ctx, courseKey, nil
	}
	u, err := userOf(id, flat)
	if err != nil {
		return nil, "", err
	}
	return p.x.NewContext(ctx, u), courseKey, nil
}

// userOf builds the user of an evaluation context.
func userOf(id string, flat openfeature.FlattenedContext) (u experiments.User, err error) {
	u.ID = id
	if u.Username, err = attr[string](flat, AttrUsername); err != nil {
		return u, err
	}
	if u.Staff, err = attr[bool](flat, AttrStaff); err != nil {
		return u, err
	}
	if u.Superuser, err = attr[bool](flat, AttrSuperuser); err != nil {
		return u, err
	}
	if u.Masquerading, err = attr[bool](flat, AttrMasquerading); err != nil {
		return u, err
	}
	switch g := flat[AttrGroups].(type) {
	case nil:
	case []string:
		u.Groups = g
	case []any:
		u.Groups = make([]string, len(g))
		for i, v := range g {
			s, ok := v.(string)
			if !ok {
				return u, fmt.Errorf("attribute %q: element %d: want a string, got %T", AttrGroups, i, v)
			}
			u.Groups[i] = s
		}
	default:
		return u, fmt.Errorf("attribute %q: want []string, got %T", AttrGroups, g)
	}
	return u, nil
}

// attr returns the attribute key of flat, the zero T when absent (or nil).
func attr[T any](flat openfeature.FlattenedContext, key string) (T, error) {
	var zero T
	v, ok := flat[key]
	if !ok || v == nil {
		return zero, nil
	}
	t, ok := v.(T)
	if !ok {
		return zero, fmt.Errorf("attribute %q: want %T, got %T", key, zero, v)
	}
	return t, nil
}

// flatten is what OpenFeature clients give providers for ec.
func flatten(ec openfeature.EvaluationContext) openfeature.FlattenedContext {
	flat := openfeature.FlattenedContext(ec.Attributes())
	if k := ec.TargetingKey(); k != "" {
		flat[openfeature.TargetingKey] = k
	}
	return flat
}
