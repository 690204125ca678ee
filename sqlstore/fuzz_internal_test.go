package sqlstore

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/abkit/experiments"
)

// The stored configuration is JSON in jsonb columns that people can edit
// by hand, so the decoders that read it back (decodeRule, decodeGoal,
// decodeMeta) get arbitrary bytes. These targets check that they never
// panic, that every refusal wraps experiments.ErrInvalid, and that what
// they accept is a valid value that survives json.Marshal and decoding
// again unchanged (up to nil versus empty slices and maps, which
// omitempty does not tell apart). More seeds are in testdata/fuzz/<FuzzName>/.

func FuzzDecodeRule(f *testing.F) {
	for _, s := range []string{
		`{}`, `null`, `{"everyone":true}`, `{"everyone":false,"percent":50}`,
		`{"percent":12.5,"authenticated":true,"staff":true,"superusers":true,"users":["alice","bob"],"groups":["beta"]}`,
		`{"users":[]}`, `{"users":null}`, `{"percent":-0}`, `{"percent":1e-320}`, `{"percent":100}`,
		`{"percent":100.0000001}`, `{"percent":-1}`, `{"percent":1e400}`, `{"percent":"50"}`,
		`{"users":[""]}`, `{"users":["a\u0000b"]}`, `{"groups":["\u0085"]}`, `{"users":["\ud800"]}`,
		"{\"users\":[\"\xff\"]}", `{"unknown":1}`, `{"STAFF":true}`, `{"staff":true}{"staff":false}`,
		`{"staff":true} trailing`, `[]`, `"rule"`, `{"everyone":null}`, `{"everyone":1}`,
		`{"users":["Zoë","李小龙","🙂","quote\"back\\slash","line\u2028sep"]}`, ``, `{`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRule(b)
		if err != nil {
			if !errors.Is(err, experiments.ErrInvalid) {
				t.Fatalf("decodeRule(%q) = %v, want an error wrapping ErrInvalid", b, err)
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("decodeRule(%q) accepted %+v, which Validate refuses: %v", b, r, err)
		}
		again := mustRoundTrip(t, b, r, func(b []byte) (experiments.Rule, error) { return decodeRule(b) })
		if !reflect.DeepEqual(normalRule(again), normalRule(r)) {
			t.Fatalf("decodeRule(%q) = %+v, but after a round trip %+v", b, r, again)
		}
	})
}

func FuzzDecodeGoal(f *testing.F) {
	for _, s := range []struct{ name, json string }{
		{"signup", `{"name":"signup","once":true}`},
		{"purchase", `{"name":"purchase","value":"sum"}`},
		{"engaged", `{"name":"engaged","include":["enrolled","video"],"exclude":["refunded"]}`},
		{"engaged", `{"name":"engaged","include":["engaged"]}`},
		{"g", `{"name":"g","value":"per-participant"}`},
		{"g", `{"name":"g","value":"median"}`},
		{"g", `{"name":"g","value":7}`},
		{"g", `{"name":"h"}`},
		{"g", `{"name":"g","exclude":["x"]}`},
		{"g", `{"name":"g","include":["a"],"value":"sum"}`},
		{"g", `{"name":"g","include":[]}`},
		{"", `{"name":""}`},
		{"a b", `{"name":"a b"}`},
		{"g", `null`},
		{"g", `{"name":"g","extra":true}`},
	} {
		f.Add(s.name, []byte(s.json))
	}
	f.Fuzz(func(t *testing.T, name string, b []byte) {
		g, err := decodeGoal(name, b)
		if err != nil {
			if !errors.Is(err, experiments.ErrInvalid) {
				t.Fatalf("decodeGoal(%q, %q) = %v, want an error wrapping ErrInvalid", name, b, err)
			}
			return
		}
		if err := g.Validate(); err != nil || g.Name != name {
			t.Fatalf("decodeGoal(%q, %q) accepted %+v (Validate: %v)", name, b, g, err)
		}
		again := mustRoundTrip(t, b, g, func(b []byte) (experiments.Goal, error) { return decodeGoal(name, b) })
		if !reflect.DeepEqual(normalGoal(again), normalGoal(g)) {
			t.Fatalf("decodeGoal(%q, %q) = %+v, but after a round trip %+v", name, b, g, again)
		}
	})
}

func FuzzDecodeMeta(f *testing.F) {
	for _, s := range []struct{ flag, json string }{
		{"ns.exp", `{"notes":"hypothesis: more sign-ups\n\thttps://example.org"}`},
		{"ns.exp", `{"archived":true}`},
		{"ns.exp", `{"winner":{"bucket":1,"previous":{"ns.exp":{"percent":50},"ns.exp.1":{"users":["alice"]}}}}`},
		{"ns.exp", `{"winner":{"bucket":0}}`},
		{"ns.exp", `{"winner":{"bucket":1024}}`},
		{"ns.exp", `{"winner":{"bucket":-1}}`},
		{"ns.exp", `{"winner":{"bucket":1,"previous":{"ns.other":{}}}}`},
		{"ns.exp", `{"winner":{"bucket":1,"previous":{"ns.exp.01":{}}}}`},
		{"ns.exp", `{"winner":{"bucket":1,"previous":{}}}`},
		{"ns.exp", `{"winner":null}`},
		{"ns.exp", `{"notes":"bell\u0007"}`},
		{"ns.exp", `{}`},
		{"ns", `{"archived":true}`},
	} {
		f.Add(s.flag, []byte(s.json))
	}
	f.Fuzz(func(t *testing.T, flag string, b []byte) {
		m, err := decodeMeta(flag, b)
		if err != nil {
			if !errors.Is(err, experiments.ErrInvalid) {
				t.Fatalf("decodeMeta(%q, %q) = %v, want an error wrapping ErrInvalid", flag, b, err)
			}
			return
		}
		if err := m.Validate(flag); err != nil || m.IsZero() {
			t.Fatalf("decodeMeta(%q, %q) accepted %+v (Validate: %v)", flag, b, m, err)
		}
		again := mustRoundTrip(t, b, m, func(b []byte) (experiments.ExperimentMeta, error) { return decodeMeta(flag, b) })
		if !reflect.DeepEqual(normalMeta(again), normalMeta(m)) {
			t.Fatalf("decodeMeta(%q, %q) = %+v, but after a round trip %+v", flag, b, m, again)
		}
	})
}

// mustRoundTrip marshals v, which decode accepted from b, as a store
// writes it, decodes that again and checks that it marshals the same.
func mustRoundTrip[T any](t *testing.T, b []byte, v T, decode func([]byte) (T, error)) T {
	t.Helper()
	stored, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("decoded %q into %+v, which does not marshal: %v", b, v, err)
	}
	again, err := decode(stored)
	if err != nil {
		t.Fatalf("decoded %q into %+v, marshalled as %s, which does not decode: %v", b, v, stored, err)
	}
	if restored, err := json.Marshal(again); err != nil || string(restored) != string(stored) {
		t.Fatalf("decoded %q, marshalled as %s, then as %s (%v)", b, stored, restored, err)
	}
	return again
}

func normalRule(r experiments.Rule) experiments.Rule {
	if len(r.Users) == 0 {
		r.Users = nil
	}
	if len(r.Groups) == 0 {
		r.Groups = nil
	}
	return r
}

func normalGoal(g experiments.Goal) experiments.Goal {
	if len(g.Include) == 0 {
		g.Include = nil
	}
	if len(g.Exclude) == 0 {
		g.Exclude = nil
	}
	return g
}

func normalMeta(m experiments.ExperimentMeta) experiments.ExperimentMeta {
	if m.Winner == nil {
		return m
	}
	w := experiments.Winner{Bucket: m.Winner.Bucket}
	if len(m.Winner.Previous) > 0 {
		w.Previous = make(map[string]experiments.Rule, len(m.Winner.Previous))
		for name, r := range m.Winner.Previous {
			w.Previous[name] = normalRule(r)
		}
	}
	m.Winner = &w
	return m
}
