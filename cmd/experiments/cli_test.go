package main

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/abkit/experiments/internal/pgtest"
	"github.com/abkit/experiments/results"
	"github.com/abkit/experiments/sqlstore"
	"github.com/lib/pq"
)

// The flags every command has work before the command and after it, and
// mixed: the ones after the command win.
func TestFlagsBeforeOrAfterTheCommand(t *testing.T) {
	sd := seedStore(t)
	run := func(t *testing.T, args ...string) string {
		t.Helper()
		code, stdout, stderr := runCLI(t, args...)
		if code != exitOK || stderr != "" {
			t.Fatalf("%q: exit status %d, stderr:\n%s", args, code, stderr)
		}
		return stdout
	}
	reportAfter := run(t, "report", "-dsn", sd.dsn, "-schema", sd.schema, "-flag", checkoutFlag, "-json")
	var reports []results.Report
	decodeStrict(t, reportAfter, &reports)
	if len(reports) != 4 {
		t.Fatalf("%d reports, want 4", len(reports))
	}
	listAfter := run(t, "list", "-dsn", sd.dsn, "-schema", sd.schema)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"ok, -json before report", []string{"-json", "report", "-dsn", sd.dsn, "-schema", sd.schema, "-flag", checkoutFlag}, reportAfter},
		{"ok, every common flag before report", []string{"-json", "-dsn", sd.dsn, "-schema", sd.schema, "report", "-flag", checkoutFlag}, reportAfter},
		{"ok, -dsn and -schema before list", []string{"-dsn", sd.dsn, "-schema", sd.schema, "list"}, listAfter},
		{"ok, flags without a command", []string{"-dsn", sd.dsn, "-schema", sd.schema}, listAfter},
		{"ok, a flag after the command wins", []string{"-dsn", sd.dsn, "-schema", "nowhere", "list", "-schema", sd.schema}, listAfter},
		{"ok, -json=false after the command wins", []string{"-json", "-dsn", sd.dsn, "list", "-schema", sd.schema, "-json=false"}, listAfter},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := run(t, tc.args...); got != tc.want {
				t.Errorf("%q:\n%s\nwant:\n%s", tc.args, got, tc.want)
			}
		})
	}
}

// With -json, an error is one JSON object on stderr, with the exit
// status as its code; nothing goes to stdout.
func TestJSONErrors(t *testing.T) {
	sd := seedStore(t)
	db := []string{"-dsn", sd.dsn, "-schema", sd.schema}
	down := pgtest.UnusedAddr(t)
	for _, tc := range []struct {
		name string
		args []string
		want jsonError
	}{
		{"nok, unknown goal, -json after the command", append(append([]string{"report"}, db...), "-goal", "signup", "-json"),
			jsonError{Error: `unknown goal "signup"; goals: enrolled, purchase`, Code: exitUsage}},
		{"nok, unknown goal, -json before the command", append(append([]string{"-json", "report"}, db...), "-goal", "signup"),
			jsonError{Error: `unknown goal "signup"; goals: enrolled, purchase`, Code: exitUsage}},
		{"nok, an unknown flag before -json", append([]string{"report", "-nope", "-json"}, db...),
			jsonError{Error: "report: flag provided but not defined: -nope", Code: exitUsage, Hint: "Run 'experiments report -h' for usage."}},
		{"nok, unknown command", []string{"-json", "frobnicate"},
			jsonError{Error: `unknown command "frobnicate"; commands: list, report, migrate, help`, Code: exitUsage, Hint: "Run 'experiments -h' for usage."}},
		{"nok, no database", []string{"list", "--json"},
			jsonError{Error: "no database: give -dsn or set EXPERIMENTS_DSN", Code: exitUsage, Hint: "Run 'experiments -h' for usage."}},
		{"nok, database unreachable", []string{"-json", "list", "-dsn", "postgres://postgres@" + down + "/test?sslmode=disable"},
			jsonError{Error: "sqlstore: connecting to PostgreSQL at " + down + ": dial tcp " + down + ": connect: connection refused", Code: exitFailure}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(dsnEnv, "")
			code, stdout, stderr := runCLI(t, tc.args...)
			var got jsonError
			dec := json.NewDecoder(strings.NewReader(stderr))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&got); err != nil || dec.More() || !strings.HasSuffix(stderr, "}\n") || strings.Count(stderr, "\n") != 1 {
				t.Fatalf("%q: stderr is not one line of one JSON object (%v):\n%s", tc.args, err, stderr)
			}
			if code != tc.want.Code || got != tc.want || stdout != "" {
				t.Errorf("%q: exit status %d, stderr %+v, stdout %q; want %d, %+v, nothing", tc.args, code, got, stdout, tc.want.Code, tc.want)
			}
		})
	}
	t.Run("ok, without -json errors stay text", func(t *testing.T) {
		_, _, stderr := runCLI(t, append(append([]string{"report"}, db...), "-goal", "signup")...)
		if stderr != `experiments: unknown goal "signup"; goals: enrolled, purchase`+"\n" {
			t.Errorf("stderr %q", stderr)
		}
	})
}

func TestMigrateCommand(t *testing.T) {
	ctx := context.Background()
	want := sqlstore.SchemaVersion()
	schema := newSchema(t)
	db := []string{"-dsn", testDSN(), "-schema", schema}
	t.Run("ok, -print on a new schema prints every migration and changes nothing", func(t *testing.T) {
		out := runOK(t, append([]string{"migrate", "-print"}, db...)...)
		script, err := sqlstore.MigrationSQL(schema, 0)
		if err != nil || out != script {
			t.Errorf("printed:\n%s\nwant MigrationSQL's (%v):\n%s", out, err, script)
		}
		var n int
		if err := testDB(t).Get(&n, "SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema); err != nil || n != 0 {
			t.Errorf("schema created by -print (%d, %v)", n, err)
		}
	})
	t.Run("ok, migrate prints the versions before and after", func(t *testing.T) {
		if out, w := runOK(t, append([]string{"migrate"}, db...)...), fmt.Sprintf("schema %q: version 0 -> %d\n", schema, want); out != w {
			t.Errorf("first migrate: %q, want %q", out, w)
		}
		if out, w := runOK(t, append([]string{"migrate"}, db...)...), fmt.Sprintf("schema %q: version %d, up to date\n", schema, want); out != w {
			t.Errorf("second migrate: %q, want %q", out, w)
		}
		var m migrated
		decodeStrict(t, runOK(t, append([]string{"-json", "migrate"}, db...)...), &m)
		if m != (migrated{Schema: schema, Before: want, After: want, Wanted: want}) {
			t.Errorf("migrate -json: %+v", m)
		}
		if out := runOK(t, append([]string{"migrate", "-print"}, db...)...); out != "" {
			t.Errorf("-print on an up-to-date schema: %q, want nothing", out)
		}
		var sc migrationScript
		decodeStrict(t, runOK(t, append([]string{"migrate", "-print", "-json"}, db...)...), &sc)
		if sc != (migrationScript{Schema: schema, From: want, To: want}) {
			t.Errorf("migrate -print -json: %+v", sc)
		}
	})
	t.Run("nok, a schema newer than the program is left alone", func(t *testing.T) {
		ahead := newSchema(t)
		if _, _, err := sqlstore.Migrate(ctx, testDB(t), ahead); err != nil {
			t.Fatal(err)
		}
		if _, err := testDB(t).Exec("UPDATE "+pq.QuoteIdentifier(ahead)+".experiments_schema_migrations SET version = $1", want+1); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{"migrate"}, {"migrate", "-print"}, {"list"}} {
			code, stdout, stderr := runCLI(t, append(args, "-dsn", testDSN(), "-schema", ahead)...)
			w := fmt.Sprintf("schema %q is at version %d, this store wants %d", ahead, want+1, want)
			if code != exitFailure || !strings.Contains(stderr, w) || stdout != "" {
				t.Errorf("%q: exit status %d, stderr %s, stdout %q; want 1 and %q", args, code, stderr, stdout, w)
			}
		}
	})
}

// list and report only read: a schema behind the program is reported,
// not migrated.
func TestReadingCommandsDoNotMigrate(t *testing.T) {
	ctx := context.Background()
	schema := newSchema(t)
	// A schema at version 2, as an older program left it.
	q, err := sqlstore.MigrationSQL(schema, 0)
	if err != nil {
		t.Fatal(err)
	}
	q = regexp.MustCompile(`(?s)\n-- 0003_.*?\nTRUNCATE`).ReplaceAllString(q, "\nTRUNCATE")
	q = regexp.MustCompile(`VALUES \(\d+, false\)`).ReplaceAllString(q, "VALUES (2, false)")
	if _, err := testDB(t).Exec(q); err != nil {
		t.Fatalf("%v\n%s", err, q)
	}
	code, _, stderr := runCLI(t, "list", "-dsn", testDSN(), "-schema", schema)
	w := fmt.Sprintf("schema %q is at version 2 (migrated by an older version), this store wants %d; migrate it", schema, sqlstore.SchemaVersion())
	if code != exitFailure || !strings.Contains(stderr, w) {
		t.Errorf("list: exit status %d, stderr:\n%s\nwant 1 and %q", code, stderr, w)
	}
	if v, err := sqlstore.Version(ctx, testDB(t), schema); v != 2 || err != nil {
		t.Errorf("version %d (%v) after list, want 2", v, err)
	}
}

// A role granted only the README's SELECT grants runs list and report.
func TestReadOnlyRole(t *testing.T) {
	sd := seedStore(t)
	reader, dsn := pgtest.Role(t, "exptest_cli_reader_")
	pgtest.Grants(t, "../../README.md", "experiments_reader", sd.schema, reader)
	for _, args := range [][]string{{"list"}, {"report", "-flag", checkoutFlag, "-course", course, "-goal", "enrolled"}} {
		code, stdout, stderr := runCLI(t, append(args, "-dsn", dsn, "-schema", sd.schema)...)
		if code != exitOK || stderr != "" || stdout == "" {
			t.Errorf("%q as a reader: exit status %d, stderr:\n%s", args, code, stderr)
		}
	}
}
