package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/results"
)

// apiCSRF answers GET /api/csrf with the token that state-changing
// requests send in the X-CSRF-Token header (its cookie is set too).
func (a *Admin) apiCSRF(w http.ResponseWriter, r *http.Request, _ string) {
	writeJSON(w, http.StatusOK, map[string]string{"token": tokenOf(r), "header": csrfHeader})
}

func tokenOf(r *http.Request) string {
	t, _ := r.Context().Value(tokenKey{}).(string)
	return t
}

// List is the body of GET /api/experiments.
type List struct {
	Experiments []Experiment `json:"experiments"`
}

func (a *Admin) list(st *state) List {
	l := List{Experiments: []Experiment{}}
	for _, name := range a.names(st) {
		l.Experiments = append(l.Experiments, a.experiment(st, name))
	}
	return l
}

func (a *Admin) apiList(w http.ResponseWriter, r *http.Request, _ string) {
	st, err := a.load(r.Context())
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, a.list(st))
}

// found loads the state and checks the request's experiment exists,
// answering the request when it does not.
func (a *Admin) found(w http.ResponseWriter, r *http.Request) (*state, string, bool) {
	flag := r.PathValue("flag")
	st, err := a.load(r.Context())
	if err != nil {
		a.serverError(w, r, err)
		return nil, "", false
	}
	if !a.known(st, flag) {
		a.fail(w, r, http.StatusNotFound, fmt.Sprintf("no experiment %q", flag))
		return nil, "", false
	}
	return st, flag, true
}

func (a *Admin) apiExperiment(w http.ResponseWriter, r *http.Request, _ string) {
	if st, flag, ok := a.found(w, r); ok {
		writeJSON(w, http.StatusOK, a.detail(st, flag))
	}
}

// Results is the body of GET /api/experiments/{flag}/results: a report
// per goal of the store, for one course or for all courses together.
type Results struct {
	// CourseKey is the course of the reports: the query's course, else
	// the course (or "" for none) with the most participants, the first
	// of those in Detail.Courses' order on a tie. "" with AllCourses.
	CourseKey string `json:"course_key"`
	// AllCourses is true for reports on every course together
	// (?all_courses=true): each participant counts once, in the bucket
	// of their first exposure in any course (results.Experiment).
	AllCourses bool `json:"all_courses"`
	// Reports holds a report per goal, by goal name.
	Reports []results.Report `json:"reports"`
	// Errors holds the goals whose report failed, and why.
	Errors []GoalError `json:"errors"`
	// Message says why there are no reports, when there are none.
	Message string `json:"message,omitempty"`
	// Zone names the time zone of the reports' weekly series: ?zone=,
	// "UTC" by default.
	Zone string `json:"zone"`
	// By is the dimension of ?by=, "" without.
	By string `json:"by,omitempty"`
	// Breakdowns holds, with ?by=, a breakdown per goal by that
	// dimension (results.Breakdown: a report per value), by goal name;
	// a goal whose breakdown failed is in Errors.
	Breakdowns []results.Breakdown `json:"breakdowns,omitempty"`
}

// experiment returns the results' experiment for flag.
func (res Results) experiment(flag string) results.Experiment {
	return results.Experiment{Flag: flag, CourseKey: res.CourseKey, AllCourses: res.AllCourses}
}

// view is the reports a request asks for: a course, all courses, or
// (neither given) the course with the most participants.
type view struct {
	course string
	all    bool
	choose bool
	by     string         // ?by=: a dimension to break the reports down by
	zone   *time.Location // ?zone=: the weekly series' zone; nil for UTC
}

// viewOf reads the view from the query: course=… or all_courses=true,
// and by=… and zone=….
func viewOf(r *http.Request) (view, error) {
	q := r.URL.Query()
	v := view{course: q.Get("course"), choose: !q.Has("course"), by: q.Get("by")}
	if v.by != "" {
		if err := experiments.ValidateDimensionName(v.by); err != nil {
			return v, fmt.Errorf("by: %w", err)
		}
	}
	if z := q.Get("zone"); z != "" {
		loc, err := time.LoadLocation(z)
		if err != nil || z == "Local" {
			return v, fmt.Errorf("zone %q: want an IANA time zone name such as America/Los_Angeles, or UTC", z)
		}
		v.zone = loc
	}
	if q.Has("all_courses") {
		all, err := strconv.ParseBool(q.Get("all_courses"))
		if err != nil {
			return v, fmt.Errorf("all_courses %q: want true or false", q.Get("all_courses"))
		}
		if all && q.Has("course") {
			return v, fmt.Errorf("course %q with all_courses: want one or the other", v.course)
		}
		v.all = all
		v.choose = v.choose && !all
	}
	return v, nil
}

// GoalError is a goal whose report failed.
type GoalError struct {
	Goal  string `json:"goal"`
	Error string `json:"error"`
}

// resultsOf builds the reports of experiment x in the view v (the course
// Results.CourseKey says when v.choose).
func (a *Admin) resultsOf(ctx context.Context, st *state, x Detail, v view) Results {
	res := Results{Reports: []results.Report{}, Errors: []GoalError{}, CourseKey: v.course, AllCourses: v.all, By: v.by, Zone: "UTC"}
	if v.zone != nil {
		res.Zone = v.zone.String()
	}
	if a.results == nil {
		res.Message = "no results: Config.Results is not set and the store keeps no recordings"
		return res
	}
	if v.choose && len(x.Courses) > 0 {
		most := x.Courses[0]
		for _, c := range x.Courses[1:] {
			if c.Total > most.Total {
				most = c
			}
		}
		res.CourseKey = most.CourseKey
	}
	goals := make([]string, 0, len(st.snap.Goals))
	for name := range st.snap.Goals {
		goals = append(goals, name)
	}
	slices.Sort(goals)
	if len(goals) == 0 {
		res.Message = "no goals: declare goals in the store (SetGoal) to see conversion rates"
		return res
	}
	for _, name := range goals {
		q := results.Query{Experiment: res.experiment(x.Flag), Goal: st.snap.Goals[name], Buckets: x.Buckets,
			Weights: resultWeights(x.Experiment), // the sample-ratio check expects the weights' split
			Zone:    v.zone, Dimension: v.by}
		rep, err := results.Build(ctx, a.results, q)
		if err == nil && v.by != "" {
			a.breakdown(ctx, &res, q)
		}
		switch {
		case errors.Is(err, results.ErrNoExposures):
			res.Message = "no participants yet"
			return res
		case err != nil:
			res.Errors = append(res.Errors, GoalError{Goal: name, Error: err.Error()})
			if !errors.Is(err, results.ErrBucketOutOfRange) && !errors.Is(err, experiments.ErrInvalid) {
				a.log.Warn("admin: results failed", "experiment", q.Experiment.String(), "goal", name, "err", err)
			}
		default:
			res.Reports = append(res.Reports, rep)
		}
	}
	return res
}

// breakdown adds q's breakdown to res, or its error.
func (a *Admin) breakdown(ctx context.Context, res *Results, q results.Query) {
	src, ok := a.results.(results.BreakdownSource)
	if !ok {
		res.Errors = append(res.Errors, GoalError{Goal: q.Goal.Name,
			Error: fmt.Sprintf("by %s: the results source (%T) cannot break results down", q.Dimension, a.results)})
		return
	}
	b, err := results.BuildBreakdown(ctx, src, q)
	if err != nil {
		res.Errors = append(res.Errors, GoalError{Goal: q.Goal.Name, Error: err.Error()})
		if !errors.Is(err, results.ErrTooManyValues) && !errors.Is(err, results.ErrBucketOutOfRange) && !errors.Is(err, experiments.ErrInvalid) {
			a.log.Warn("admin: breakdown failed", "experiment", q.Experiment.String(), "goal", q.Goal.Name, "by", q.Dimension, "err", err)
		}
		return
	}
	res.Breakdowns = append(res.Breakdowns, b)
}

func (a *Admin) apiResults(w http.ResponseWriter, r *http.Request, _ string) {
	st, flag, ok := a.found(w, r)
	if !ok {
		return
	}
	v, err := viewOf(r)
	if err != nil {
		a.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, a.resultsOf(r.Context(), st, a.detail(st, flag), v))
}

// History is the body of GET /api/experiments/{flag}/history.
type History struct {
	Changes []experiments.Change `json:"changes"`
}

// maxHistory bounds the limit parameter of the history.
const maxHistory = 1000

func (a *Admin) history(ctx context.Context, x Detail, limit int) ([]experiments.Change, error) {
	q := experiments.HistoryQuery{Flag: x.Flag, Limit: limit}
	if x.ExperimentID != nil {
		q.ExperimentID, q.HasExperimentID = *x.ExperimentID, true
	}
	changes, err := a.store.History(ctx, q)
	if changes == nil {
		changes = []experiments.Change{}
	}
	return changes, err
}

func (a *Admin) apiHistory(w http.ResponseWriter, r *http.Request, _ string) {
	limit := experiments.DefaultHistoryLimit
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxHistory {
			a.fail(w, r, http.StatusBadRequest, fmt.Sprintf("limit %q: want 1 to %d", s, maxHistory))
			return
		}
		limit = n
	}
	st, flag, ok := a.found(w, r)
	if !ok {
		return
	}
	changes, err := a.history(r.Context(), a.detail(st, flag), limit)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, History{Changes: changes})
}
