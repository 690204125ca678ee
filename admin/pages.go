package admin

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/results"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticRoot embed.FS

var staticFS, _ = fs.Sub(staticRoot, "static")

var templates = template.Must(template.New("").Funcs(template.FuncMap{
	"ruleText": ruleText,
	"weights":  experiments.FormatWeights,
	// conditionRows are the rows of the rule form's audience: the
	// rule's conditions, then a blank row to add one.
	"conditionRows": func(r *experiments.Rule) []experiments.Condition {
		var cs []experiments.Condition
		if r != nil {
			cs = append(cs, r.Conditions...)
		}
		return append(cs, experiments.Condition{})
	},
	"ops":     func() []experiments.Op { return conditionOps },
	"percent": func(v float64) string { return strconv.FormatFloat(100*v, 'f', 1, 64) + "%" },
	"total": func(r results.Report) int64 {
		var n int64
		for _, b := range r.Buckets {
			n += b.Participants
		}
		return n
	},
	"signedPercent": func(v float64) string {
		return fmt.Sprintf("%+.1f%%", 100*v)
	},
	// points formats a difference of rates in percentage points.
	"points": func(v float64) string {
		return fmt.Sprintf("%+.1f pts", 100*v)
	},
	"pValue": func(p float64) string {
		if p < 0.001 {
			return "< 0.001"
		}
		return strconv.FormatFloat(p, 'f', 3, 64)
	},
	"number":      func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) },
	"bucketClass": func(i int) string { return "b" + strconv.Itoa(i%8) },
	"pathEscape":  url.PathEscape,
	"json": func(raw json.RawMessage) string {
		if raw == nil {
			return "—"
		}
		return string(raw)
	},
	"join": strings.Join,
	"deref": func(p *int) int {
		if p == nil {
			return -1
		}
		return *p
	},
	"comparison": func(cs []results.ReportComparison, i int) *results.ReportComparison {
		for k := range cs {
			if cs[k].Variant == i {
				return &cs[k]
			}
		}
		return nil
	},
	"overrides": func(flag string, list []Override, action, token string, change, archived bool, kind, field string) overridesData {
		return overridesData{flag, list, action, token, change, archived, kind, field}
	},
}).ParseFS(templateFS, "templates/*.html"))

// overridesData is the data of the overrides template: a list of course
// or org overrides and the forms to change the main flag's.
type overridesData struct {
	Flag          string // the main flag
	List          []Override
	Action, Token string // the actions' URL prefix and the CSRF token
	Change        bool
	Archived      bool
	Kind          string // course-override or org-override
	Field         string // course_key or org
}

// page is what every page's layout needs.
type page struct {
	Prefix string
	Title  string
	Actor  string
	Change bool   // may change: the forms are shown
	Token  string // the CSRF token of the forms
	Done   string // the message of the last action
	// Outside: the user may not view the dashboard (a 401 or 403 page),
	// so the page links to the site's root rather than to the dashboard.
	Outside bool
}

type errorPage struct {
	page
	Status     int
	StatusText string
	Message    string
}

// render executes template name into a buffer first, so that a template
// error gives a clean 500 rather than half a page.
func (a *Admin) render(w http.ResponseWriter, r *http.Request, status int, name string, data any) {
	if e, ok := data.(errorPage); ok {
		e.page = page{Prefix: a.prefix, Title: e.StatusText}
		if status == http.StatusUnauthorized || status == http.StatusForbidden {
			actor, p := a.authorize(r)
			e.Outside = actor == "" || p < View
		}
		data = e
	}
	var buf bytes.Buffer
	if err := templates.ExecuteTemplate(&buf, name, data); err != nil {
		a.log.Error("admin: rendering a page failed", "page", name, "err", err)
		http.Error(w, "rendering the page failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

func (a *Admin) page(r *http.Request, actor, title string) page {
	_, p := a.authorize(r)
	return page{Prefix: a.prefix, Title: title, Actor: actor, Change: p >= Change, Token: tokenOf(r), Done: doneMessages[r.URL.Query().Get("done")]}
}

func (a *Admin) listPage(w http.ResponseWriter, r *http.Request, actor string) {
	st, err := a.load(r.Context())
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	data := struct {
		page
		Live, Archived []Experiment
	}{page: a.page(r, actor, "Experiments")}
	for _, x := range a.list(st).Experiments {
		if x.Archived {
			data.Archived = append(data.Archived, x)
		} else {
			data.Live = append(data.Live, x)
		}
	}
	a.render(w, r, http.StatusOK, "list", data)
}

// experimentData is the experiment page's data.
type experimentData struct {
	page
	X            Detail
	Results      Results
	Participants *chart
	Rates        []*chart
	History      []experiments.Change
	HistoryError string
}

func (a *Admin) experimentPage(w http.ResponseWriter, r *http.Request, actor string) {
	st, flag, ok := a.found(w, r)
	if !ok {
		return
	}
	v, err := viewOf(r)
	if err != nil {
		a.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	x := a.detail(st, flag)
	data := experimentData{page: a.page(r, actor, flag), X: x, Results: a.resultsOf(r.Context(), st, x, v)}
	for i, rep := range data.Results.Reports {
		if i == 0 {
			data.Participants = participantsChart(rep.Series)
		}
		if ch := rateChart(rep.Goal.Name, rep.Series); ch != nil {
			data.Rates = append(data.Rates, ch)
		}
	}
	if data.Participants == nil && a.results != nil && len(x.Courses) > 0 {
		// No goal to report on: the participants alone.
		q := results.Query{Experiment: data.Results.experiment(flag),
			Goal: experiments.Goal{Name: "participants"}, Buckets: x.Buckets, Weights: resultWeights(x.Experiment)}
		if rep, err := results.Build(r.Context(), a.results, q); err == nil {
			data.Participants = participantsChart(rep.Series)
		}
	}
	if data.History, err = a.history(r.Context(), x, 50); err != nil {
		a.log.Warn("admin: reading the history failed", "experiment", flag, "err", err)
		data.HistoryError = "the history could not be read"
	}
	a.render(w, r, http.StatusOK, "experiment", data)
}

// conditionOps are the operators the rule form offers, in its order.
var conditionOps = []experiments.Op{
	experiments.Equals, experiments.In, experiments.NotIn,
	experiments.Less, experiments.LessOrEqual, experiments.Greater, experiments.GreaterOrEqual,
	experiments.SemverEqual, experiments.SemverLess, experiments.SemverLessOrEqual, experiments.SemverGreater, experiments.SemverGreaterOrEqual,
	experiments.Exists, experiments.NotExists,
}

// ruleText says in words who a rule turns a flag on for.
func ruleText(r *experiments.Rule) string {
	if r == nil {
		return "not set (off)"
	}
	return r.String()
}
