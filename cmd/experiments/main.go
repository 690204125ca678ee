// Command experiments prints what a PostgreSQL store (package sqlstore)
// recorded: the experiments with exposures, and their results (package
// results) for the store's goals.
//
//	experiments [list] [-dsn DSN] [-schema S] [-json]
//	experiments report [-dsn DSN] [-schema S] [-flag F] [-course C] [-goal G] [-buckets N] [-json]
//
// The database is -dsn, or $EXPERIMENTS_DSN. The command reads; opening
// the store migrates its tables to this version, as every sqlstore.Open
// does, but a schema without a store is refused, never created. Run
// "experiments -h" and "experiments report -h" for the details.
//
// Exit status: 0 on success, 2 for bad input (an unknown command, flag
// or argument, a bad value, a goal, flag, course or schema the store
// does not have), 1 when something fails (the database, the output).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
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
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd, rest := "list", args
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, rest = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "list":
		err = list(ctx, rest, stdout, stderr)
	case "report":
		err = report(ctx, rest, stdout, stderr)
	case "help":
		err = help(rest, stdout)
	default:
		err = &usageError{err: fmt.Errorf("unknown command %q; commands: list, report, help", cmd),
			hint: "Run 'experiments -h' for usage."}
	}
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "experiments: %v\n", err)
	if u, ok := errors.AsType[*usageError](err); ok {
		if u.hint != "" {
			fmt.Fprintln(stderr, u.hint)
		}
		return exitUsage
	}
	return exitFailure
}

// help prints the usage of the command named in args, or the overview.
func help(args []string, stdout io.Writer) error {
	switch {
	case len(args) == 0 || len(args) == 1 && args[0] == "list":
		return printUsage(stdout, listUsage, listFlags(new(listOptions)))
	case len(args) == 1 && args[0] == "report":
		return printUsage(stdout, reportUsage, reportFlags(new(reportOptions)))
	}
	return &usageError{err: fmt.Errorf("help %s: unknown command; commands: list, report", strings.Join(args, " ")),
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

// parse parses args into fs. done says the command stops there: after
// -h, having printed the usage to stdout (err is the write's), or on a
// mistake (err is a usageError).
func parse(fs *flag.FlagSet, args []string, usage string, stdout io.Writer) (done bool, err error) {
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
