package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/abkit/experiments"
)

// doneMessages are what a page says after a form's action.
var doneMessages = map[string]string{
	"on":              "turned on for everyone",
	"off":             "turned off",
	"rule":            "rule saved",
	"course-override": "course overrides saved",
	"org-override":    "org overrides saved",
	"window":          "enrollment window saved",
	"winner":          "winner forced on everyone",
	"undo-winner":     "winner undone, previous rules restored",
	"archive":         "archived",
	"resume":          "resumed",
	"delete":          "experiment deleted",
	"notes":           "notes saved",
	"weights":         "weights saved",
}

// Actions, each POST {prefix}/api/experiments/{flag}/{action} with a
// JSON body (or the same fields as an HTML form).
var actions = map[string]func(*Admin, *request) error{
	"on":              (*Admin).turnOn,
	"off":             (*Admin).turnOff,
	"rule":            (*Admin).setRule,
	"course-override": (*Admin).courseOverride,
	"org-override":    (*Admin).orgOverride,
	"window":          (*Admin).setWindow,
	"winner":          (*Admin).forceWinner,
	"undo-winner":     (*Admin).undoWinner,
	"archive":         (*Admin).archive,
	"resume":          (*Admin).resume,
	"delete":          (*Admin).delete,
	"notes":           (*Admin).setNotes,
	"weights":         (*Admin).setWeights,
}

// request is one action under way.
type request struct {
	ctx  context.Context // carries the actor
	r    *http.Request
	st   *state
	x    Detail
	meta experiments.ExperimentMeta
}

// actionError is an action refused, with its status.
type actionError struct {
	status int
	msg    string
}

func (e *actionError) Error() string { return e.msg }

func refuse(status int, format string, args ...any) error {
	return &actionError{status, fmt.Sprintf(format, args...)}
}

// act runs an action and answers with the experiment (JSON) or a
// redirect to its page (form).
func (a *Admin) act(w http.ResponseWriter, r *http.Request, actor string) {
	run := actions[r.PathValue("action")]
	if run == nil {
		a.fail(w, r, http.StatusNotFound, fmt.Sprintf("no action %q", r.PathValue("action")))
		return
	}
	flag := r.PathValue("flag")
	st, err := a.load(r.Context())
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	if !a.known(st, flag) {
		a.fail(w, r, http.StatusNotFound, fmt.Sprintf("no experiment %q", flag))
		return
	}
	req := &request{ctx: experiments.WithActor(r.Context(), actor), r: r, st: st, x: a.detail(st, flag), meta: st.snap.Meta[flag]}
	if err := run(a, req); err != nil {
		var refused *actionError
		switch {
		case errors.As(err, &refused):
			a.fail(w, r, refused.status, refused.msg)
		case errors.Is(err, experiments.ErrInvalid):
			a.fail(w, r, http.StatusBadRequest, err.Error())
		default:
			a.serverError(w, r, err)
		}
		return
	}
	a.log.Info("admin: "+r.PathValue("action"), "experiment", flag, "actor", actor)
	if isForm(r) {
		// The page says what was done from a fixed message per action:
		// nothing a link could make it say.
		to := a.prefix + "/experiments/" + url.PathEscape(flag) + "?done=" + r.PathValue("action")
		if r.PathValue("action") == "delete" {
			to = a.prefix + "/?done=delete"
		}
		http.Redirect(w, r, to, http.StatusSeeOther)
		return
	}
	if st, err = a.load(r.Context()); err != nil {
		a.serverError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, a.detail(st, flag))
}

// serverError logs err and answers 500 without its details.
func (a *Admin) serverError(w http.ResponseWriter, r *http.Request, err error) {
	a.log.Error("admin: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	a.fail(w, r, http.StatusInternalServerError, "the store failed; see the server's log")
}

// decode reads the action's body into v: JSON (unknown fields refused)
// or, from a page, form fields that fill sets. An empty body leaves v as
// it is.
func (req *request) decode(v any, fields map[string]func(string) error) error {
	if isForm(req.r) {
		for name, set := range fields {
			if _, ok := req.r.PostForm[name]; ok {
				if err := set(strings.TrimSpace(req.r.PostForm.Get(name))); err != nil {
					return err
				}
			}
		}
		return nil
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, req.r.Body, maxBody))
	if err != nil {
		return refuse(http.StatusRequestEntityTooLarge, "body: %v", err)
	}
	if len(bytes.TrimSpace(body)) == 0 || v == nil {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return refuse(http.StatusBadRequest, "body: %v", err)
	}
	if dec.More() {
		return refuse(http.StatusBadRequest, "body: more than one JSON value")
	}
	return nil
}

// text returns a form field's setter for a string.
func text(p *string) func(string) error { return func(s string) error { *p = s; return nil } }

// checkbox returns a form field's setter for a checkbox.
func checkbox(p *bool) func(string) error {
	return func(s string) error { *p = s != "" && s != "false" && s != "0"; return nil }
}

// list returns a form field's setter for a list separated by commas,
// spaces or new lines.
func list(p *[]string) func(string) error {
	return func(s string) error {
		*p = strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
		return nil
	}
}

// number returns a form field's setter for an int.
func number(field string, p *int) func(string) error {
	return func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil {
			return refuse(http.StatusBadRequest, "%s %q: not a whole number", field, s)
		}
		*p = n
		return nil
	}
}

// live refuses an action that changes who sees what in an archived
// experiment or under a forced winner.
func (req *request) live(winnerToo bool) error {
	if req.x.Archived {
		return refuse(http.StatusConflict, "experiment %s is archived: resume it first", req.x.Flag)
	}
	if winnerToo && req.x.Winner != nil {
		return refuse(http.StatusConflict, "experiment %s has a forced winner (bucket %d): undo it first", req.x.Flag, *req.x.Winner)
	}
	return nil
}

func (a *Admin) turnOn(req *request) error  { return a.setMain(req, experiments.On()) }
func (a *Admin) turnOff(req *request) error { return a.setMain(req, experiments.Off()) }

func (a *Admin) setMain(req *request, r experiments.Rule) error {
	if err := req.decode(nil, nil); err != nil {
		return err
	}
	if err := req.live(true); err != nil {
		return err
	}
	return a.store.SetFlag(req.ctx, req.x.Flag, r)
}

// setRule sets the main flag's rule: everyone (true, false or null),
// percent, authenticated, staff, superusers, users, groups and the
// audience's conditions (from a page, the rows of formConditions).
func (a *Admin) setRule(req *request) error {
	var r experiments.Rule
	err := req.decode(&r, map[string]func(string) error{
		"percent": func(s string) error {
			if s == "" {
				r.Percent = 0
				return nil
			}
			p, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return refuse(http.StatusBadRequest, "percent %q: not a number", s)
			}
			r.Percent = p
			return nil
		},
		"authenticated": checkbox(&r.Authenticated),
		"staff":         checkbox(&r.Staff),
		"superusers":    checkbox(&r.Superusers),
		"users":         list(&r.Users),
		"groups":        list(&r.Groups),
	})
	if err != nil {
		return err
	}
	if isForm(req.r) {
		r.Conditions = formConditions(req.r.PostForm)
	}
	if err := req.live(true); err != nil {
		return err
	}
	if err := r.Validate(); err != nil {
		return err
	}
	return a.store.SetFlag(req.ctx, req.x.Flag, r)
}

// formConditions reads a rule form's audience: rows i = 0, 1, … of
// cond_attribute_i, cond_op_i and cond_values_i (separated by commas or
// new lines), up to the first row without cond_attribute_i. A row with
// an empty attribute (the blank row that adds one) or cond_remove_i
// checked is left out.
func formConditions(form url.Values) []experiments.Condition {
	var cs []experiments.Condition
	for i := 0; ; i++ {
		n := strconv.Itoa(i)
		if _, ok := form["cond_attribute_"+n]; !ok {
			return cs
		}
		attr := strings.TrimSpace(form.Get("cond_attribute_" + n))
		if attr == "" || form.Get("cond_remove_"+n) != "" {
			continue
		}
		c := experiments.Condition{Attribute: attr, Op: experiments.Op(strings.TrimSpace(form.Get("cond_op_" + n)))}
		for _, v := range strings.FieldsFunc(form.Get("cond_values_"+n), func(r rune) bool { return r == ',' || r == '\n' || r == '\r' }) {
			if v = strings.TrimSpace(v); v != "" {
				c.Values = append(c.Values, v)
			}
		}
		cs = append(cs, c)
	}
}

// overrideBody is the body of course-override and org-override.
type overrideBody struct {
	CourseKey string `json:"course_key,omitempty"`
	Org       string `json:"org,omitempty"`
	State     string `json:"state"` // "on", "off" or "unset"
}

func parseState(s string) (experiments.State, error) {
	switch s {
	case "on":
		return experiments.ForceOn, nil
	case "off":
		return experiments.ForceOff, nil
	case "unset", "":
		return experiments.Unset, nil
	}
	return 0, refuse(http.StatusBadRequest, "state %q: want on, off or unset", s)
}

func (a *Admin) courseOverride(req *request) error {
	return a.override(req, "course_key", "org", a.store.SetCourseOverride)
}

func (a *Admin) orgOverride(req *request) error {
	return a.override(req, "org", "course_key", a.store.SetOrgOverride)
}

// override sets or removes a course or org override of the main flag:
// field names the key in the body, other is the field of the other kind,
// refused.
func (a *Admin) override(req *request, field, other string,
	set func(ctx context.Context, name, key string, s experiments.State) error) error {
	var b overrideBody
	key := map[string]*string{"course_key": &b.CourseKey, "org": &b.Org}
	if err := req.decode(&b, map[string]func(string) error{field: text(key[field]), "state": text(&b.State)}); err != nil {
		return err
	}
	if *key[other] != "" {
		return refuse(http.StatusBadRequest, "%s: not a field of %s-override", other, strings.TrimSuffix(field, "_key"))
	}
	s, err := parseState(b.State)
	if err != nil {
		return err
	}
	if err := req.live(false); err != nil {
		return err
	}
	return set(req.ctx, req.x.Flag, *key[field], s)
}

// windowBody is the body of window: each bound a date ParseDate reads,
// or "" for none.
type windowBody struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

func (a *Admin) setWindow(req *request) error {
	var b windowBody
	if err := req.decode(&b, map[string]func(string) error{"start": text(&b.Start), "end": text(&b.End)}); err != nil {
		return err
	}
	b.Start, b.End = strings.TrimSpace(b.Start), strings.TrimSpace(b.End)
	if req.x.ExperimentID == nil {
		return refuse(http.StatusConflict, "experiment %s has no experiment ID: declare its flag WithExperimentID (and list it in Config.Flags) to give it an enrollment window", req.x.Flag)
	}
	if err := checkWindow(b.Start, b.End); err != nil {
		return refuse(http.StatusBadRequest, "%v", err)
	}
	if err := req.live(false); err != nil {
		return err
	}
	id := *req.x.ExperimentID
	for key, v := range map[string]string{experiments.EnrollmentStart: b.Start, experiments.EnrollmentEnd: b.End} {
		if req.st.snap.ExperimentValues[id][key] == v {
			continue
		}
		if err := a.store.SetExperimentValue(req.ctx, id, key, v); err != nil {
			return err
		}
	}
	return nil
}

// winnerBody is the body of winner.
type winnerBody struct {
	Bucket *int `json:"bucket"`
}

// ownFlags returns the experiment's flags set in the store: the main flag
// and its bucket flags.
func (req *request) ownFlags() []string {
	var names []string
	for name := range req.st.snap.Flags {
		if main, _, ok := experiments.SplitBucketFlag(name); name == req.x.Flag || ok && main == req.x.Flag {
			names = append(names, name)
		}
	}
	slices.SortFunc(names, compareFlags)
	return names
}

// forceWinner serves bucket i to everyone: the main flag on for everyone,
// bucket flag i on for everyone, the other bucket flags off. The rules it
// replaces are kept in the meta first, so that undo-winner restores them
// even if a later write fails.
func (a *Admin) forceWinner(req *request) error {
	var b winnerBody
	var bucket int
	err := req.decode(&b, map[string]func(string) error{"bucket": func(s string) error {
		b.Bucket = &bucket
		return number("bucket", &bucket)(s)
	}})
	if err != nil {
		return err
	}
	if b.Bucket == nil {
		return refuse(http.StatusBadRequest, "bucket: missing")
	}
	i := *b.Bucket
	if i < 0 || i >= req.x.Buckets {
		return refuse(http.StatusBadRequest, "bucket %d: want 0 to %d", i, req.x.Buckets-1)
	}
	if err := req.live(false); err != nil {
		return err
	}
	meta := req.meta
	prev := make(map[string]experiments.Rule)
	if meta.Winner != nil {
		prev = meta.Winner.Previous // a new winner replaces the old one: keep the rules from before both
	} else {
		for _, name := range req.ownFlags() {
			prev[name] = req.st.snap.Flags[name]
		}
	}
	meta.Winner = &experiments.Winner{Bucket: i, Previous: prev}
	if err := a.store.SetExperimentMeta(req.ctx, req.x.Flag, meta); err != nil {
		return err
	}
	if err := a.store.SetFlag(req.ctx, req.x.Flag, experiments.On()); err != nil {
		return err
	}
	winner := req.x.Flag + "." + strconv.Itoa(i)
	if err := a.store.SetFlag(req.ctx, winner, experiments.On()); err != nil {
		return err
	}
	for _, name := range req.ownFlags() {
		if name != req.x.Flag && name != winner {
			if err := a.store.SetFlag(req.ctx, name, experiments.Off()); err != nil {
				return err
			}
		}
	}
	return nil
}

// undoWinner restores the rules a winner replaced, then drops it.
func (a *Admin) undoWinner(req *request) error {
	if err := req.decode(nil, nil); err != nil {
		return err
	}
	if req.x.Archived {
		return refuse(http.StatusConflict, "experiment %s is archived: resume it first", req.x.Flag)
	}
	meta := req.meta
	if meta.Winner == nil {
		return refuse(http.StatusConflict, "experiment %s has no forced winner", req.x.Flag)
	}
	names := req.ownFlags()
	for name := range meta.Winner.Previous {
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	for _, name := range names {
		old, had := meta.Winner.Previous[name]
		cur, has := req.st.snap.Flags[name]
		switch {
		case had && (!has || !reflect.DeepEqual(old, cur)):
			if err := a.store.SetFlag(req.ctx, name, old); err != nil {
				return err
			}
		case !had && has:
			if err := a.store.DeleteFlag(req.ctx, name); err != nil {
				return err
			}
		}
	}
	meta.Winner = nil
	return a.store.SetExperimentMeta(req.ctx, req.x.Flag, meta)
}

// archive takes a stopped experiment (off, or with a winner) off the live
// list.
func (a *Admin) archive(req *request) error {
	if err := req.decode(nil, nil); err != nil {
		return err
	}
	if req.meta.Archived {
		return nil
	}
	if s := req.x.Status; s == StatusOn || s == StatusTargeted {
		return refuse(http.StatusConflict, "experiment %s is %s: turn it off or force a winner before archiving it", req.x.Flag, s)
	}
	meta := req.meta
	meta.Archived = true
	return a.store.SetExperimentMeta(req.ctx, req.x.Flag, meta)
}

// resume puts an archived experiment back on the live list.
func (a *Admin) resume(req *request) error {
	if err := req.decode(nil, nil); err != nil {
		return err
	}
	if !req.meta.Archived {
		return nil
	}
	meta := req.meta
	meta.Archived = false
	return a.store.SetExperimentMeta(req.ctx, req.x.Flag, meta)
}

// deleteBody is the body of delete: confirm repeats the flag's name.
type deleteBody struct {
	Confirm string `json:"confirm"`
}

// delete removes an archived experiment's configuration: its flags, their
// overrides, its experiment values and its meta. Exposures and
// conversions stay.
func (a *Admin) delete(req *request) error {
	var b deleteBody
	if err := req.decode(&b, map[string]func(string) error{"confirm": text(&b.Confirm)}); err != nil {
		return err
	}
	if !req.x.Archived {
		return refuse(http.StatusConflict, "experiment %s is not archived: archive it before deleting it", req.x.Flag)
	}
	if b.Confirm != req.x.Flag {
		return refuse(http.StatusBadRequest, "confirm %q: type the experiment's name, %s, to delete it", b.Confirm, req.x.Flag)
	}
	for _, name := range req.ownFlags() {
		if err := a.store.DeleteFlag(req.ctx, name); err != nil {
			return err
		}
	}
	for _, o := range req.x.CourseOverrides {
		if err := a.store.SetCourseOverride(req.ctx, o.Flag, o.Key, experiments.Unset); err != nil {
			return err
		}
	}
	for _, o := range req.x.OrgOverrides {
		if err := a.store.SetOrgOverride(req.ctx, o.Flag, o.Key, experiments.Unset); err != nil {
			return err
		}
	}
	if id := req.x.ExperimentID; id != nil {
		for key := range req.st.snap.ExperimentValues[*id] {
			if err := a.store.SetExperimentValue(req.ctx, *id, key, ""); err != nil {
				return err
			}
		}
	}
	// Last, so that a failure above leaves it archived, to delete again.
	return a.store.SetExperimentMeta(req.ctx, req.x.Flag, experiments.ExperimentMeta{})
}

// notesBody is the body of notes.
type notesBody struct {
	Notes string `json:"notes"`
}

func (a *Admin) setNotes(req *request) error {
	var b notesBody
	if err := req.decode(&b, map[string]func(string) error{"notes": func(s string) error { b.Notes = s; return nil }}); err != nil {
		return err
	}
	b.Notes = strings.ReplaceAll(b.Notes, "\r\n", "\n")
	meta := req.meta
	meta.Notes = b.Notes
	if err := meta.Validate(req.x.Flag); err != nil {
		return err
	}
	return a.store.SetExperimentMeta(req.ctx, req.x.Flag, meta)
}

// weightsBody is the body of weights: one weight per bucket, control
// first; null or [] removes the store's weights (the flag's own apply
// again). From a page, the field is text such as "90/10", "" to remove.
type weightsBody struct {
	Weights []float64 `json:"weights"`
}

// setWeights stores the weights that replace the flag's WithWeights, in
// the experiment's meta (audited like every meta write). The flag must be
// registered, so that its number of buckets is known.
func (a *Admin) setWeights(req *request) error {
	var b weightsBody
	err := req.decode(&b, map[string]func(string) error{"weights": func(s string) error {
		if s == "" {
			return nil
		}
		w, err := experiments.ParseWeights(s)
		b.Weights = w
		return err
	}})
	if err != nil {
		return err
	}
	if !req.x.Registered {
		return refuse(http.StatusConflict, "experiment %s is not in Config.Flags: list its flag there, so that its number of buckets is known, to set its weights", req.x.Flag)
	}
	if err := req.live(true); err != nil {
		return err
	}
	if len(b.Weights) == 0 {
		b.Weights = nil
	} else if err := experiments.ValidateWeights(b.Weights, req.x.Buckets); err != nil {
		return fmt.Errorf("experiment %s: %w", req.x.Flag, err)
	}
	if slices.Equal(b.Weights, req.meta.Weights) {
		return nil
	}
	meta := req.meta
	meta.Weights = b.Weights
	return a.store.SetExperimentMeta(req.ctx, req.x.Flag, meta)
}
