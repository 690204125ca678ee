// Command experiments prints what a PostgreSQL store (package sqlstore)
// recorded: the experiments with exposures, and their results (package
// results) for the store's goals.
//
//	experiments [list] [-dsn DSN] [-schema S] [-json]
//	experiments report [-dsn DSN] [-schema S] [-flag F] [-course C] [-goal G] [-buckets N] [-weights W] [-json]
//	experiments migrate [-dsn DSN] [-schema S] [-print] [-json]
//
// The database is -dsn, or $EXPERIMENTS_DSN; -dsn, -schema and -json
// may come before the command too. list and report only read: a schema
// without a store is refused, never created, and one behind this
// version is not migrated (run "experiments migrate"). Run
// "experiments -h", "experiments report -h" and "experiments migrate -h"
// for the details.
//
// Exit status: 0 on success, 2 for bad input (an unknown command, flag
// or argument, a bad value, a goal, flag, course or schema the store
// does not have), 1 when something fails (the database, the output).
// With -json, errors are one JSON object on stderr:
// {"error": "…", "code": 2, "hint": "…"}, code being the exit status.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1 // the database or the output failed
	exitUsage   = 2 // bad input
)

// usageError is bad input: the command line, or a name the store does
// not have. It makes run exit with status 2.
type usageError struct {
	err error
	// hint adds a line pointing to the usage (for mistakes of syntax;
	// errors that list the valid names do without).
	hint string
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usagef returns a usageError.
func usagef(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

// run runs the command line args (without the program name), writing
// results to stdout and errors to stderr, and returns the exit status.
// The flags every command has (-dsn, -schema, -json) may come before the
// command as well as after it. With -json anywhere on the command line,
// errors are written as one JSON object (jsonError).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	asJSON := wantsJSON(args)
	err := dispatch(ctx, args, stdout, stderr, asJSON)
	if err == nil {
		return exitOK
	}
	code := exitFailure
	u, isUsage := errors.AsType[*usageError](err)
	if isUsage {
		code = exitUsage
	}
	if asJSON {
		e := jsonError{Error: err.Error(), Code: code}
		if isUsage {
			e.Hint = u.hint
		}
		b, _ := json.Marshal(e)
		fmt.Fprintf(stderr, "%s\n", b)
		return code
	}
	fmt.Fprintf(stderr, "experiments: %v\n", err)
	if isUsage && u.hint != "" {
		fmt.Fprintln(stderr, u.hint)
	}
	return code
}

// jsonError is an error as -json writes it to stderr, one line:
// {"error": "unknown goal \"x\"; goals: enrolled", "code": 2, "hint": "…"}.
type jsonError struct {
	// Error is the message, without the "experiments: " prefix.
	Error string `json:"error"`
	// Code is the exit status: 2 for bad input, 1 for a failure.
	Code int `json:"code"`
	// Hint points to the usage, for mistakes of syntax; left out otherwise.
	Hint string `json:"hint,omitempty"`
}

// wantsJSON says whether args hold -json (or --json, -json=true, …)
// before a "--", wherever it is: errors of the command line itself must
// be JSON too.
func wantsJSON(args []string) bool {
	on := false
	for _, a := range args {
		if a == "--" {
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "json" {
			continue
		}
		if !hasValue {
			on = true
			continue
		}
		if b, err := strconv.ParseBool(value); err == nil {
			on = b
		}
	}
	return on
}

// dispatch parses the flags before the command, then runs the command
// with them as its flags' defaults.
func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer, asJSON bool) error {
	var g common
	fs := flag.NewFlagSet("experiments", flag.ContinueOnError)
	g.register(fs)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return printUsage(stdout, listUsage, listFlags(new(listOptions)))
		}
		return &usageError{err: fmt.Errorf("%w (before the command, only -dsn, -schema and -json)", err),
			hint: "Run 'experiments -h' for usage."}
	}
	g.json = g.json || asJSON
	cmd, rest := "list", fs.Args()
	if len(rest) > 0 {
		cmd, rest = rest[0], rest[1:]
	}
	switch cmd {
	case "list":
		return list(ctx, g, rest, stdout, stderr)
	case "report":
		return report(ctx, g, rest, stdout, stderr)
	case "migrate":
		return migrate(ctx, g, rest, stdout, stderr)
	case "help":
		return help(rest, stdout)
	}
	return &usageError{err: fmt.Errorf("unknown command %q; commands: list, report, migrate, help", cmd),
		hint: "Run 'experiments -h' for usage."}
}

// help prints the usage of the command named in args, or the overview.
func help(args []string, stdout io.Writer) error {
	switch {
	case len(args) == 0 || len(args) == 1 && args[0] == "list":
		return printUsage(stdout, listUsage, listFlags(new(listOptions)))
	case len(args) == 1 && args[0] == "report":
		return printUsage(stdout, reportUsage, reportFlags(new(reportOptions)))
	case len(args) == 1 && args[0] == "migrate":
		return printUsage(stdout, migrateUsage, migrateFlags(new(migrateOptions)))
	}
	return &usageError{err: fmt.Errorf("help %s: unknown command; commands: list, report, migrate", strings.Join(args, " ")),
		hint: "Run 'experiments -h' for usage."}
}

// common holds the flags every command has.
type common struct {
	dsn    string
	schema string
	json   bool
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.dsn, "dsn", "", "the PostgreSQL connection string, `DSN` (default $EXPERIMENTS_DSN)")
	fs.StringVar(&c.schema, "schema", "public", "the `schema` of the store's tables")
	fs.BoolVar(&c.json, "json", false, "print one JSON document, for scripts")
}

// parse parses args into fs, whose common flags c (registered on fs)
// start from g, the flags given before the command. done says the command stops there: after
// -h, having printed the usage to stdout (err is the write's), or on a
// mistake (err is a usageError).
func parse(fs *flag.FlagSet, c *common, g common, args []string, usage string, stdout io.Writer) (done bool, err error) {
	*c = g
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	hint := "Run 'experiments " + fs.Name() + " -h' for usage."
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return true, printUsage(stdout, usage, fs)
		}
		return true, &usageError{err: fmt.Errorf("%s: %w", fs.Name(), err), hint: hint}
	}
	if fs.NArg() > 0 {
		return true, &usageError{err: fmt.Errorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0)), hint: hint}
	}
	return false, nil
}

// printUsage writes usage and fs's flags to w.
func printUsage(w io.Writer, usage string, fs *flag.FlagSet) error {
	if _, err := io.WriteString(w, usage+"\nFlags:\n"); err != nil {
		return err
	}
	fs.SetOutput(w)
	fs.PrintDefaults()
	return nil
}
