package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"

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
// per goal of the store, for one course.
type Results struct {
	// CourseKey is the course of the reports: the query's course, else
	// "" when the experiment has participants without a course, else its
	// first course.
	CourseKey string `json:"course_key"`
	// Reports holds a report per goal, by goal name.
	Reports []results.Report `json:"reports"`
	// Errors holds the goals whose report failed, and why.
	Errors []GoalError `json:"errors"`
	// Message says why there are no reports, when there are none.
	Message string `json:"message,omitempty"`
}

// GoalError is a goal whose report failed.
type GoalError struct {
	Goal  string `json:"goal"`
	Error string `json:"error"`
}

// results builds the reports of experiment x in course (chosen as
// Results.CourseKey says when choose).
func (a *Admin) resultsOf(ctx context.Context, st *state, x Detail, course string, choose bool) Results {
	res := Results{Reports: []results.Report{}, Errors: []GoalError{}}
	if a.results == nil {
		res.Message = "no results: Config.Results is not set and the store keeps no recordings"
		return res
	}
	if choose && len(x.Courses) > 0 && !slices.ContainsFunc(x.Courses, func(c CourseParticipants) bool { return c.CourseKey == "" }) {
		course = x.Courses[0].CourseKey
	}
	res.CourseKey = course
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
		q := results.Query{Experiment: results.Experiment{Flag: x.Flag, CourseKey: course}, Goal: st.snap.Goals[name], Buckets: x.Buckets}
		rep, err := results.Build(ctx, a.results, q)
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

func (a *Admin) apiResults(w http.ResponseWriter, r *http.Request, _ string) {
	st, flag, ok := a.found(w, r)
	if !ok {
		return
	}
	course, has := r.URL.Query()["course"]
	c := ""
	if has {
		c = course[0]
	}
	writeJSON(w, http.StatusOK, a.resultsOf(r.Context(), st, a.detail(st, flag), c, !has))
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
