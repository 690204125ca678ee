package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/abkit/experiments"
)

// Experiment meta, and the history of an experiment's configuration
// (experiments.Auditor).

func setMeta(flag string, m experiments.ExperimentMeta) write {
	return func(ctx context.Context, s Store) error { return s.SetExperimentMeta(ctx, flag, m) }
}

// The experiment of the history tests, and names around it that a
// history must tell apart from it.
const (
	histFlag  = "storetest.hist"
	histID    = 11
	histActor = "storetest <actor@example.com>"
)

// fullMeta returns a meta with every field set, new on every call.
func fullMeta() experiments.ExperimentMeta {
	return experiments.ExperimentMeta{
		Notes:    "Hypothesis: a shorter form converts better.\nDecision — ship «B» 🙂\r\n\tthanks, Zoë & 李",
		Archived: true,
		Winner: &experiments.Winner{Bucket: 1, Previous: map[string]experiments.Rule{
			histFlag:        {Percent: 12.5, Users: []string{"alice"}},
			histFlag + ".1": experiments.On(),
			histFlag + ".2": {Groups: []string{"beta"}},
		}},
	}
}

func testMetaAndHistory(t *testing.T, newStore func(*testing.T) Store) {
	testMeta(t, newStore)
	testMetaRefusals(t, newStore)
	testHistory(t, newStore)
}

func testMeta(t *testing.T, newStore func(*testing.T) Store) {
	t.Run("ok, meta reads back in the snapshot as written", func(t *testing.T) {
		f := setUp(t, newStore)
		want := map[string]experiments.ExperimentMeta{
			histFlag:                fullMeta(),
			"storetest.archived":    {Archived: true},
			"storetest.notes":       {Notes: "only notes"},
			"storetest.control_won": {Winner: &experiments.Winner{Bucket: 0}},
			"storetest.longest": {
				Notes:  strings.Repeat("é", experiments.MaxNotesLen/2),
				Winner: &experiments.Winner{Bucket: 1023, Previous: map[string]experiments.Rule{"storetest.longest.1023": {}}},
			},
		}
		for _, flag := range slices.Sorted(maps.Keys(want)) {
			f.apply(setMeta(flag, want[flag]))
		}
		if got := f.data().Meta; !reflect.DeepEqual(got, normalized(experiments.SnapshotData{Meta: want}).Meta) {
			t.Errorf("Data().Meta =\n%+v\nwant\n%+v", got, want)
		}
	})
	t.Run("ok, meta set again is replaced", func(t *testing.T) {
		f := setUp(t, newStore)
		second := experiments.ExperimentMeta{Notes: "second"}
		f.apply(setMeta(histFlag, fullMeta()), setMeta(histFlag, second))
		if got := f.data().Meta; len(got) != 1 || !reflect.DeepEqual(got[histFlag], second) {
			t.Errorf("Data().Meta = %+v, want only %+v", got, second)
		}
	})
	t.Run("ok, the zero meta removes it and the others stay", func(t *testing.T) {
		f := setUp(t, newStore)
		other := experiments.ExperimentMeta{Archived: true}
		f.apply(setMeta(histFlag, fullMeta()), setMeta("storetest.other", other), setMeta(histFlag, experiments.ExperimentMeta{}))
		if got := f.data().Meta; len(got) != 1 || !reflect.DeepEqual(got["storetest.other"], other) {
			t.Errorf("Data().Meta = %+v, want only storetest.other's %+v", got, other)
		}
	})
	t.Run("ok, the zero meta of an experiment without meta is not an error and changes nothing", func(t *testing.T) {
		f := setUp(t, newStore)
		f.apply(setMeta("storetest.other", experiments.ExperimentMeta{Notes: "other", Archived: true}), setFlag(histFlag, experiments.On()))
		before := f.data()
		f.apply(setMeta(histFlag, experiments.ExperimentMeta{}))
		if after := f.data(); !reflect.DeepEqual(before, after) {
			t.Errorf("Data() after the zero meta = %+v, want %+v", after, before)
		}
	})
	t.Run("ok, the caller's winner and previous rules are copied", func(t *testing.T) {
		f := setUp(t, newStore)
		m := fullMeta()
		f.apply(setMeta(histFlag, m))
		m.Winner.Bucket = 2
		m.Winner.Previous[histFlag].Users[0] = "mallory"
		m.Winner.Previous["storetest.hist.3"] = experiments.Off()
		if got := f.data().Meta[histFlag]; !reflect.DeepEqual(got, normalizedMeta(fullMeta())) {
			t.Errorf("Data().Meta[%s] = %+v after the caller changed its meta, want %+v", histFlag, got, fullMeta())
		}
	})
	t.Run("ok, meta does not change decisions", func(t *testing.T) {
		f := setUp(t, newStore)
		f.apply(setFlag(bucketFlag.Name(), experiments.On()),
			setMeta(bucketFlag.Name(), experiments.ExperimentMeta{Archived: true, Winner: &experiments.Winner{Bucket: 2}}),
			setFlag(mainFlag.Name(), experiments.Off()),
			setMeta(mainFlag.Name(), experiments.ExperimentMeta{Winner: &experiments.Winner{Bucket: 1}}))
		f.checkDecision(bucketFlag, alice, courseA, hashed)
		f.checkMainFlag(alice, courseA, false)
	})
}

func testMetaRefusals(t *testing.T, newStore func(*testing.T) Store) {
	winner := func(bucket int, previous map[string]experiments.Rule) experiments.ExperimentMeta {
		return experiments.ExperimentMeta{Winner: &experiments.Winner{Bucket: bucket, Previous: previous}}
	}
	cases := []refusal{
		{"nok, SetExperimentMeta with notes one byte too long", setMeta(histFlag, experiments.ExperimentMeta{Notes: strings.Repeat("n", experiments.MaxNotesLen+1)}), "notes"},
		{"nok, SetExperimentMeta with a NUL in the notes", setMeta(histFlag, experiments.ExperimentMeta{Notes: "a\x00b"}), "notes"},
		{"nok, SetExperimentMeta with an escape character in the notes", setMeta(histFlag, experiments.ExperimentMeta{Notes: "\x1b[31mred"}), "notes"},
		{"nok, SetExperimentMeta with a C1 control character in the notes", setMeta(histFlag, experiments.ExperimentMeta{Notes: "next\u0085line"}), "notes"},
		{"nok, SetExperimentMeta with notes that are not UTF-8", setMeta(histFlag, experiments.ExperimentMeta{Notes: "\xff"}), "notes"},
		{"nok, SetExperimentMeta with winner bucket -1", setMeta(histFlag, winner(-1, nil)), "winner bucket"},
		{"nok, SetExperimentMeta with winner bucket 1024", setMeta(histFlag, winner(1024, nil)), "winner bucket"},
		{"nok, SetExperimentMeta with a previous rule of another flag", setMeta(histFlag, winner(1, map[string]experiments.Rule{"storetest.other": experiments.On()})), "winner previous rule"},
		{"nok, SetExperimentMeta with a previous rule of a flag extending the name", setMeta(histFlag, winner(1, map[string]experiments.Rule{histFlag + "_2": experiments.On()})), "winner previous rule"},
		{"nok, SetExperimentMeta with a previous rule of a flag below the name", setMeta(histFlag, winner(1, map[string]experiments.Rule{histFlag + ".extra": experiments.On()})), "winner previous rule"},
		{"nok, SetExperimentMeta with a previous rule of bucket flag .1024", setMeta(histFlag, winner(1, map[string]experiments.Rule{histFlag + ".1024": experiments.On()})), "winner previous rule"},
		{"nok, SetExperimentMeta with a previous rule that is invalid", setMeta(histFlag, winner(1, map[string]experiments.Rule{histFlag: {Percent: 101}})), "percent"},
		{"nok, SetExperimentMeta with a bad flag name", setMeta("storetest", experiments.ExperimentMeta{Notes: "x"}), "flag name"},
		{"nok, SetExperimentMeta of the zero meta with a bad flag name", setMeta("storetest.", experiments.ExperimentMeta{}), "flag name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := setUp(t, newStore)
			f.apply(setFlag(histFlag, experiments.On()), setMeta(histFlag, fullMeta()))
			f.refuse(t, c.field, func() error { return c.write(f.ctx, f.s) })
		})
	}
}

// change is an expected experiments.Change. old and new are nil
// (absent), a Rule, a string (an override's state, a value) or an
// ExperimentMeta, compared with what the store's JSON decodes to.
type change struct {
	entity, key string
	old, new    any
}

// step is a write of a history test and the change it should add to
// the experiment's history (nil: none).
type step struct {
	write write
	want  *change
}

func own(w write, entity, key string, old, new any) step {
	return step{w, &change{entity, key, old, new}}
}

func noise(w write) step { return step{write: w} }

// valueKey is the key of a change to an experiment's value.
func valueKey(experimentID int, key string) string { return strconv.Itoa(experimentID) + " " + key }

// applySteps runs the steps in order and returns the changes they
// should add, newest first.
func (f *fixture) applySteps(steps []step) []change {
	f.t.Helper()
	var want []change
	for i, s := range steps {
		if err := s.write(f.ctx, f.s); err != nil {
			f.t.Fatalf("step %d: %v", i, err)
		}
		if s.want != nil {
			want = append(want, *s.want)
		}
	}
	slices.Reverse(want)
	return want
}

// setUpHistory is setUp whose writes are made by histActor.
func setUpHistory(t *testing.T, newStore func(*testing.T) Store) *fixture {
	t.Helper()
	f := setUp(t, newStore)
	f.ctx = experiments.WithActor(f.ctx, histActor)
	return f
}

// history returns the store's History for q, failing the test on an
// error.
func (f *fixture) history(q experiments.HistoryQuery) []experiments.Change {
	f.t.Helper()
	h, err := f.s.History(f.ctx, q)
	if err != nil {
		f.t.Fatalf("History(%+v) = %v", q, err)
	}
	return h
}

// checkHistory checks that got is want, made by histActor, newest first.
func (f *fixture) checkHistory(got []experiments.Change, want []change) {
	f.t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		c, w := got[i], want[i]
		ok = c.Entity == w.entity && c.Key == w.key && c.Actor == histActor &&
			sameJSON(c.Old, w.old) && sameJSON(c.New, w.new) &&
			(i == 0 || c.ID < got[i-1].ID)
	}
	if ok {
		return
	}
	var g, w strings.Builder
	for _, c := range got {
		fmt.Fprintf(&g, "\t%d %q %s %q: %s -> %s\n", c.ID, c.Actor, c.Entity, c.Key, fmtRaw(c.Old), fmtRaw(c.New))
	}
	for _, c := range want {
		fmt.Fprintf(&w, "\t%q %s %q: %s -> %s\n", histActor, c.entity, c.key, fmtWant(c.old), fmtWant(c.new))
	}
	f.t.Errorf("history, newest first (IDs decreasing):\n%swant:\n%s", &g, &w)
}

func fmtRaw(b json.RawMessage) string {
	if b == nil {
		return "absent"
	}
	return string(b)
}

// fmtWant formats an expected old or new value as JSON.
func fmtWant(v any) string {
	if v == nil {
		return "absent"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%+v", v)
	}
	return string(b)
}

// sameJSON reports whether raw holds want (nil: absent), decoded into
// want's type: stores may reorder or space JSON objects.
func sameJSON(raw json.RawMessage, want any) bool {
	if want == nil || raw == nil {
		return want == nil && raw == nil
	}
	switch w := want.(type) {
	case string:
		var got string
		return decodeStrict(raw, &got) == nil && got == w
	case experiments.Rule:
		var got experiments.Rule
		return decodeStrict(raw, &got) == nil && reflect.DeepEqual(normalizedRule(got), normalizedRule(w))
	case experiments.ExperimentMeta:
		var got experiments.ExperimentMeta
		return decodeStrict(raw, &got) == nil && reflect.DeepEqual(normalizedMeta(got), normalizedMeta(w))
	}
	panic(fmt.Sprintf("storetest: no comparison for a change's %T", want))
}

// decodeStrict decodes one JSON value into v, refusing unknown fields
// and trailing data.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}

func testHistory(t *testing.T, newStore func(*testing.T) Store) {
	all := experiments.HistoryQuery{Flag: histFlag, ExperimentID: histID, HasExperimentID: true}
	t.Run("ok, the actor of experiments.WithActor and the time are recorded", func(t *testing.T) {
		f := setUp(t, newStore)
		start := time.Now()
		ctx := experiments.WithActor(f.ctx, "alice@example.com")
		if err := f.s.SetFlag(ctx, histFlag, experiments.On()); err != nil {
			t.Fatal(err)
		}
		h := f.history(all)
		if len(h) != 1 || h[0].Actor != "alice@example.com" {
			t.Fatalf("history %+v, want one change by alice@example.com", h)
		}
		if at := h[0].At; at.Location() != time.UTC || at.Before(start.Add(-time.Hour)) || at.After(time.Now().Add(time.Hour)) {
			t.Errorf("change at %v (%v); want about %v, in UTC", at, at.Location(), start.UTC())
		}
	})
	t.Run("ok, every change to an experiment is recorded with its old and new values, newest first", func(t *testing.T) {
		f := setUpHistory(t, newStore)
		percent10 := experiments.Rule{Percent: 10}
		aliceOnly := experiments.Rule{Users: []string{"alice"}}
		notes := experiments.ExperimentMeta{Notes: "first"}
		steps := []step{
			own(setFlag(histFlag, percent10), "flag", histFlag, nil, percent10),
			noise(setFlag(histFlag+"_2", experiments.On())),
			noise(setFlag(histFlag+".extra", experiments.On())),
			noise(setFlag("storetest.histx", experiments.On())),
			own(setFlag(histFlag, experiments.On()), "flag", histFlag, percent10, experiments.On()),
			own(setFlag(histFlag+".1", aliceOnly), "flag", histFlag+".1", nil, aliceOnly),
			noise(setFlag(histFlag+".1024", experiments.On())),
			noise(setFlag(histFlag+".01", experiments.On())),
			noise(setFlag(histFlag+".1.2", experiments.On())),
			own(courseOverride(histFlag, courseA, experiments.ForceOn), "course_override", histFlag+" "+courseA, nil, "on"),
			noise(courseOverride(histFlag+"_2", courseA, experiments.ForceOn)),
			noise(courseOverride(histFlag+".extra", courseA, experiments.ForceOn)),
			own(courseOverride(histFlag, courseA, experiments.Unset), "course_override", histFlag+" "+courseA, "on", nil),
			own(orgOverride(histFlag+".2", "edX", experiments.ForceOff), "org_override", histFlag+".2 edX", nil, "off"),
			own(orgOverride(histFlag+".2", "edX", experiments.ForceOn), "org_override", histFlag+".2 edX", "off", "on"),
			own(orgOverride(histFlag+".2", "edX", experiments.Unset), "org_override", histFlag+".2 edX", "on", nil),
			noise(orgOverride(histFlag+".extra", "edX", experiments.ForceOff)),
			noise(value(histID*10+1, experiments.EnrollmentStart, "2020-01-01")),
			noise(value(1, "1 k", "v")),
			own(value(histID, experiments.EnrollmentStart, "2020-01-01"), "value", valueKey(histID, experiments.EnrollmentStart), nil, "2020-01-01"),
			own(value(histID, experiments.EnrollmentEnd, "not-a-date"), "value", valueKey(histID, experiments.EnrollmentEnd), nil, "not-a-date"),
			own(value(histID, experiments.EnrollmentStart, ""), "value", valueKey(histID, experiments.EnrollmentStart), "2020-01-01", nil),
			noise(setMeta(histFlag+".1", experiments.ExperimentMeta{Notes: "a bucket flag's meta is not the experiment's"})),
			noise(setMeta(histFlag+"_2", experiments.ExperimentMeta{Archived: true})),
			noise(setGoal(experiments.Goal{Name: histFlag})),
			noise(enroll(histFlag, courseA, fixedNow)),
			own(setMeta(histFlag, notes), "meta", histFlag, nil, notes),
			own(setMeta(histFlag, fullMeta()), "meta", histFlag, notes, fullMeta()),
			own(setMeta(histFlag, experiments.ExperimentMeta{}), "meta", histFlag, fullMeta(), nil),
			own(deleteFlag(histFlag+".1"), "flag", histFlag+".1", aliceOnly, nil),
			own(deleteFlag(histFlag), "flag", histFlag, experiments.On(), nil),
			noise(deleteFlag(histFlag + ".extra")),
		}
		want := f.applySteps(steps)
		f.checkHistory(f.history(all), want)
	})
	t.Run("ok, values are left out without HasExperimentID and kept only for the experiment asked", func(t *testing.T) {
		f := setUpHistory(t, newStore)
		want := f.applySteps([]step{
			own(setFlag(histFlag, experiments.On()), "flag", histFlag, nil, experiments.On()),
			noise(value(histID, experiments.EnrollmentStart, "2020-01-01")),
			noise(value(histID*10+1, experiments.EnrollmentStart, "2020-01-01")),
		})
		f.checkHistory(f.history(experiments.HistoryQuery{Flag: histFlag, ExperimentID: histID}), want)
		want = append([]change{{"value", valueKey(1, "k"), nil, "v"}}, want...)
		f.apply(value(1, "k", "v"))
		f.checkHistory(f.history(experiments.HistoryQuery{Flag: histFlag, ExperimentID: 1, HasExperimentID: true}), want)
	})
	t.Run("ok, Limit keeps the newest changes", func(t *testing.T) {
		f := setUpHistory(t, newStore)
		var steps []step
		for i := range 6 {
			r := experiments.Rule{Percent: float64(i + 1)}
			var old any
			if i > 0 {
				old = experiments.Rule{Percent: float64(i)}
			}
			steps = append(steps, own(setFlag(histFlag, r), "flag", histFlag, old, r),
				noise(setFlag(histFlag+".extra", r)))
		}
		want := f.applySteps(steps)
		f.checkHistory(f.history(experiments.HistoryQuery{Flag: histFlag, Limit: 3}), want[:3])
	})
	t.Run("ok, without a Limit the newest DefaultHistoryLimit changes, behind as many of other flags", func(t *testing.T) {
		f := setUpHistory(t, newStore)
		const n = experiments.DefaultHistoryLimit + 5
		var steps []step
		for i := range n {
			r := experiments.Rule{Percent: float64(i+1) / 10}
			var old any
			if i > 0 {
				old = experiments.Rule{Percent: float64(i) / 10}
			}
			steps = append(steps, own(setFlag(histFlag, r), "flag", histFlag, old, r))
		}
		for i := range n {
			steps = append(steps, noise(setFlag(histFlag+".extra", experiments.Rule{Percent: float64(i+1) / 10})))
		}
		want := f.applySteps(steps)
		f.checkHistory(f.history(experiments.HistoryQuery{Flag: histFlag}), want[:experiments.DefaultHistoryLimit])
	})
	t.Run("ok, an experiment without changes has an empty history", func(t *testing.T) {
		f := setUpHistory(t, newStore)
		f.apply(setFlag(histFlag+"_2", experiments.On()), setFlag(histFlag+".extra", experiments.On()),
			value(histID+1, experiments.EnrollmentStart, "2020-01-01"))
		f.checkHistory(f.history(all), nil)
	})
	t.Run("ok, refused writes and enrollments are not recorded", func(t *testing.T) {
		f := setUpHistory(t, newStore)
		want := f.applySteps([]step{own(setFlag(histFlag, experiments.On()), "flag", histFlag, nil, experiments.On())})
		for _, w := range []write{
			setFlag(histFlag, experiments.Rule{Percent: 101}),
			setMeta(histFlag, experiments.ExperimentMeta{Winner: &experiments.Winner{Bucket: 1024}}),
			courseOverride(histFlag, courseA, experiments.State(7)),
			value(histID, experiments.EnrollmentStart, "2020\x00"),
		} {
			if err := w(f.ctx, f.s); !errors.Is(err, experiments.ErrInvalid) {
				t.Fatalf("bad write = %v, want ErrInvalid", err)
			}
		}
		f.apply(enroll(alice.ID, courseA, fixedNow))
		f.checkHistory(f.history(all), want)
	})
	for _, flag := range []string{"", "storetest", "storetest.hist ", "storetest.hist%", "storetest.*"} {
		t.Run(fmt.Sprintf("nok, History of flag %q is refused", flag), func(t *testing.T) {
			f := setUpHistory(t, newStore)
			f.apply(setFlag(histFlag, experiments.On()))
			if h, err := f.s.History(f.ctx, experiments.HistoryQuery{Flag: flag}); !errors.Is(err, experiments.ErrInvalid) || h != nil {
				t.Errorf("History(%q) = %v, %v; want nil and an error wrapping experiments.ErrInvalid", flag, h, err)
			}
		})
	}
}
