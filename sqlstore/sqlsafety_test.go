package sqlstore_test

import (
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// A static check that no SQL the store runs is built from anything but
// constant text and the store's table names, so that a user-controlled
// value can only reach the database as a query parameter ($1, $2, …).
//
// It parses the package's non-test Go files (go/ast, no type checking)
// and reports:
//
//  1. every string concatenation (a + chain) holding a literal that looks
//     like SQL (an upper-case keyword: SELECT, INSERT, UPDATE, DELETE,
//     FROM, WHERE, SET, …) with an operand that is not safe;
//  2. every fmt.Sprint, Sprintf, Sprintln or Fprintf call given such a
//     literal: SQL is never formatted;
//  3. every query argument of a database call (Exec, Query, QueryRow,
//     Get, Select and their Context, x, Must and Named forms) that is not
//     safe;
//  4. every literal of the tables struct whose fields are not each a
//     call on one string literal (newTables' q("experiments_…"), which
//     quotes the schema and the name with pq.QuoteIdentifier).
//
// Safe is: a string or number literal; a constant; a field of the tables
// struct (a quoted table name, see 4); pq.QuoteIdentifier(…) or
// pq.QuoteLiteral(…); strconv.Itoa(…) and FormatInt (digits); a + chain
// of safe operands; a local variable all of whose assignments are safe;
// a parameter that every call of its function in the package passes a
// safe value; a call of a function of the package all of whose returns
// are safe; a field of a struct (x.query) that every composite literal
// and assignment of the package fills with a safe value. Anything else
// (a package variable, a closure's parameter, strings.Join, a value from
// another package) is unsafe. Names are matched by name, not by type: it
// is a conservative lint, and a false alarm is fixed by keeping the SQL
// in one of the forms above. Exported functions that take SQL from the
// caller (NewEnrollments' query) are checked at this package's calls
// only: their callers' SQL is theirs.
func TestSQLIsBuiltOnlyFromConstantTextAndTableNames(t *testing.T) {
	fset := token.NewFileSet()
	paths, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	if len(files) < 5 {
		t.Fatalf("found %d source files, want the package's", len(files))
	}
	c := newSQLChecker(fset, files)
	problems := c.check()
	for _, p := range problems {
		t.Error(p)
	}
	if c.dbCalls < 20 || c.sqlChains < 20 {
		t.Errorf("checked %d database calls and %d SQL concatenations; the checker no longer sees the package's SQL", c.dbCalls, c.sqlChains)
	}
}

// The checker itself: it passes the safe forms and reports splicing,
// formatting, a spliced helper argument and a query variable built from
// a parameter.
func TestTheSQLCheckerReportsSplicedValues(t *testing.T) {
	const src = `package p

import (
	"context"
	"fmt"
	"strings"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

const table = "t"

type tables struct{ flags string }

type Store struct {
	db *sqlx.DB
	t  tables
}

type runner struct{ query string }

func newTables(schema string) tables {
	q := func(n string) string { return pq.QuoteIdentifier(schema) + "." + pq.QuoteIdentifier(n) }
	return tables{flags: q("experiments_flags")}
}

func badTables(name string) tables { return tables{flags: name} }

func (s *Store) good(ctx context.Context, name string) {
	s.db.ExecContext(ctx, "DELETE FROM "+s.t.flags+" WHERE name = $1", name)
	s.db.ExecContext(ctx, "DELETE FROM "+table+" WHERE name = $1", name)
	s.run(ctx, "SELECT 1 FROM "+s.t.flags)
	q := s.query()
	s.db.QueryContext(ctx, q)
	r := runner{query: "SELECT 2"}
	s.db.ExecContext(ctx, r.query)
}

func (s *Store) query() string { return "SELECT name FROM " + s.t.flags }

func (s *Store) run(ctx context.Context, query string) { s.db.ExecContext(ctx, query) }

func (s *Store) bad1(ctx context.Context, name string) {
	s.db.ExecContext(ctx, "DELETE FROM "+s.t.flags+" WHERE name = '"+name+"'")
}

func (s *Store) bad2(ctx context.Context, name string) {
	s.db.ExecContext(ctx, fmt.Sprintf("DELETE FROM t WHERE name = '%s'", name))
}

func (s *Store) bad3(ctx context.Context, name string) {
	q := "SELECT * FROM t WHERE a = " + name
	s.db.QueryContext(ctx, q)
}

func (s *Store) bad4(ctx context.Context, name string) {
	s.exec(ctx, "DELETE FROM t WHERE name = '"+name+"'")
}

func (s *Store) exec(ctx context.Context, query string) { s.db.ExecContext(ctx, query) }

func (s *Store) bad5(ctx context.Context, names []string) {
	s.db.GetContext(ctx, nil, strings.Join(names, ","))
}
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "p.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	problems := newSQLChecker(fset, []*ast.File{f}).check()
	var flagged []string
	for _, p := range problems {
		_, fn, _ := strings.Cut(p, " in ")
		fn, _, _ = strings.Cut(fn, ":")
		if !slices.Contains(flagged, fn) {
			flagged = append(flagged, fn)
		}
	}
	slices.Sort(flagged)
	want := []string{"bad1", "bad2", "bad3", "bad4", "bad5", "badTables", "exec"}
	if !slices.Equal(flagged, want) {
		t.Errorf("flagged %q, want %q; problems:\n%s", flagged, want, strings.Join(problems, "\n"))
	}
}

// sqlKeyword marks a string literal as SQL.
var sqlKeyword = regexp.MustCompile(`\b(SELECT|INSERT|UPDATE|DELETE|FROM|WHERE|SET|VALUES|RETURNING|JOIN|CREATE|DROP|ALTER|TRUNCATE|GRANT|WITH)\b`)

// dbMethods maps the database methods that take SQL to the index of
// their query argument.
var dbMethods = map[string]int{
	"Exec": 0, "ExecContext": 1, "MustExec": 0, "MustExecContext": 1,
	"Query": 0, "QueryContext": 1, "Queryx": 0, "QueryxContext": 1,
	"QueryRow": 0, "QueryRowContext": 1, "QueryRowx": 0, "QueryRowxContext": 1,
	"Get": 1, "GetContext": 2, "Select": 1, "SelectContext": 2,
	"NamedExec": 0, "NamedExecContext": 1, "NamedQuery": 0, "NamedQueryContext": 1,
	"Prepare": 0, "PrepareContext": 1, "Preparex": 0, "PreparexContext": 1,
}

type sqlChecker struct {
	fset        *token.FileSet
	files       []*ast.File
	consts      map[string]bool
	funcs       map[string][]*ast.FuncDecl
	structs     map[string][]string // struct type → its field names, in order
	fields      map[string][]ast.Expr
	tableFields map[string]bool
	visiting    map[ast.Node]bool
	problems    []string
	dbCalls     int
	sqlChains   int
}

func newSQLChecker(fset *token.FileSet, files []*ast.File) *sqlChecker {
	c := &sqlChecker{
		fset: fset, files: files, consts: map[string]bool{}, funcs: map[string][]*ast.FuncDecl{},
		structs: map[string][]string{}, fields: map[string][]ast.Expr{}, tableFields: map[string]bool{},
		visiting: map[ast.Node]bool{},
	}
	for _, f := range files {
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				c.funcs[d.Name.Name] = append(c.funcs[d.Name.Name], d)
			case *ast.GenDecl:
				for _, spec := range d.Specs {
					switch spec := spec.(type) {
					case *ast.ValueSpec:
						if d.Tok == token.CONST {
							for _, n := range spec.Names {
								c.consts[n.Name] = true
							}
						}
					case *ast.TypeSpec:
						if st, ok := spec.Type.(*ast.StructType); ok {
							c.structs[spec.Name.Name] = fieldNames(st)
						}
					}
				}
			}
		}
	}
	for _, name := range c.structs["tables"] {
		c.tableFields[name] = true
	}
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CompositeLit:
				c.collectLiteral(n, nil)
			case *ast.AssignStmt:
				if len(n.Lhs) == len(n.Rhs) {
					for i, l := range n.Lhs {
						if sel, ok := l.(*ast.SelectorExpr); ok {
							c.fields[sel.Sel.Name] = append(c.fields[sel.Sel.Name], n.Rhs[i])
						}
					}
				}
			}
			return true
		})
	}
	return c
}

func fieldNames(st *ast.StructType) []string {
	var names []string
	for _, f := range st.Fields.List {
		if len(f.Names) == 0 { // embedded
			names = append(names, "")
		}
		for _, n := range f.Names {
			names = append(names, n.Name)
		}
	}
	return names
}

// structFields returns the field names of the struct type expression t,
// or nil.
func (c *sqlChecker) structFields(t ast.Expr) []string {
	switch t := t.(type) {
	case *ast.StructType:
		return fieldNames(t)
	case *ast.Ident:
		return c.structs[t.Name]
	case *ast.IndexExpr:
		return c.structFields(t.X)
	case *ast.IndexListExpr:
		return c.structFields(t.X)
	}
	return nil
}

// collectLiteral records the values lit gives to struct fields; elided
// is the struct type of an element of an enclosing slice or map literal.
func (c *sqlChecker) collectLiteral(lit *ast.CompositeLit, elided []string) {
	names := elided
	if lit.Type != nil {
		names = c.structFields(lit.Type)
		var elem ast.Expr
		switch t := lit.Type.(type) {
		case *ast.ArrayType:
			elem = t.Elt
		case *ast.MapType:
			elem = t.Value
		}
		if elem != nil {
			if inner := c.structFields(elem); inner != nil {
				for _, e := range lit.Elts {
					if kv, ok := e.(*ast.KeyValueExpr); ok {
						e = kv.Value
					}
					if el, ok := e.(*ast.CompositeLit); ok && el.Type == nil {
						c.collectLiteral(el, inner)
					}
				}
			}
			return
		}
	}
	if names == nil {
		return
	}
	for i, e := range lit.Elts {
		if kv, ok := e.(*ast.KeyValueExpr); ok {
			if k, ok := kv.Key.(*ast.Ident); ok {
				c.fields[k.Name] = append(c.fields[k.Name], kv.Value)
			}
		} else if i < len(names) && names[i] != "" {
			c.fields[names[i]] = append(c.fields[names[i]], e)
		}
	}
}

func (c *sqlChecker) check() []string {
	for _, f := range c.files {
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			c.checkFunc(fn)
		}
	}
	return c.problems
}

func (c *sqlChecker) report(fn *ast.FuncDecl, n ast.Node, what string) {
	var b strings.Builder
	printer.Fprint(&b, c.fset, n)
	src := b.String()
	if len(src) > 200 {
		src = src[:200] + "…"
	}
	c.problems = append(c.problems, c.fset.Position(n.Pos()).String()+" in "+fn.Name.Name+": "+what+": "+src)
}

func (c *sqlChecker) checkFunc(fn *ast.FuncDecl) {
	var parents []ast.Node
	ast.Inspect(fn.Body, func(n ast.Node) bool {
		if n == nil {
			parents = parents[:len(parents)-1]
			return true
		}
		var parent ast.Node
		if len(parents) > 0 {
			parent = parents[len(parents)-1]
		}
		parents = append(parents, n)
		switch n := n.(type) {
		case *ast.BinaryExpr:
			if p, ok := parent.(*ast.BinaryExpr); ok && p.Op == token.ADD && n.Op == token.ADD {
				return true // checked as part of its chain
			}
			if n.Op == token.ADD && c.looksLikeSQL(n) {
				c.sqlChains++
				if !c.safe(n) {
					c.report(fn, n, "SQL concatenated with a value that is not constant text or a table name")
				}
			}
		case *ast.CallExpr:
			sel, ok := n.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if pkg, ok := sel.X.(*ast.Ident); ok && pkg.Name == "fmt" && strings.HasPrefix(sel.Sel.Name, "Sprint") || sel.Sel.Name == "Fprintf" {
				for _, a := range n.Args {
					if c.looksLikeSQL(a) {
						c.report(fn, n, "SQL formatted with fmt")
					}
				}
			}
			if i, ok := dbMethods[sel.Sel.Name]; ok && i < len(n.Args) {
				c.dbCalls++
				if !c.safe(n.Args[i]) {
					c.report(fn, n, "database call with a query that is not built from constant text and table names")
				}
			}
		case *ast.CompositeLit:
			if id, ok := n.Type.(*ast.Ident); ok && id.Name == "tables" {
				for _, e := range n.Elts {
					if kv, ok := e.(*ast.KeyValueExpr); ok {
						e = kv.Value
					}
					call, ok := e.(*ast.CallExpr)
					if !ok || len(call.Args) != 1 || !isStringLit(call.Args[0]) {
						c.report(fn, e, "a table name that is not a quoted constant")
					}
				}
			}
		}
		return true
	})
}

func isStringLit(e ast.Expr) bool {
	lit, ok := e.(*ast.BasicLit)
	return ok && lit.Kind == token.STRING
}

// looksLikeSQL reports whether e holds a string literal with an SQL keyword.
func (c *sqlChecker) looksLikeSQL(e ast.Expr) bool {
	found := false
	ast.Inspect(e, func(n ast.Node) bool {
		if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING && sqlKeyword.MatchString(lit.Value) {
			found = true
		}
		return !found
	})
	return found
}

// safe reports whether e is built only from constant text, numbers and
// table names (see the test's comment).
func (c *sqlChecker) safe(e ast.Expr) bool {
	if c.visiting[e] {
		return true // a cycle: the other paths decide
	}
	c.visiting[e] = true
	defer delete(c.visiting, e)
	switch e := e.(type) {
	case *ast.BasicLit:
		return true
	case *ast.ParenExpr:
		return c.safe(e.X)
	case *ast.BinaryExpr:
		return e.Op == token.ADD && c.safe(e.X) && c.safe(e.Y)
	case *ast.Ident:
		return c.safeIdent(e)
	case *ast.SelectorExpr:
		if c.tableFields[e.Sel.Name] {
			return true
		}
		values := c.fields[e.Sel.Name]
		if len(values) == 0 {
			return false
		}
		for _, v := range values {
			if !c.safe(v) {
				return false
			}
		}
		return true
	case *ast.CallExpr:
		return c.safeCall(e)
	}
	return false
}

func (c *sqlChecker) safeIdent(id *ast.Ident) bool {
	if c.consts[id.Name] {
		return true
	}
	if id.Obj == nil {
		return false
	}
	if id.Obj.Kind == ast.Con {
		return true
	}
	switch decl := id.Obj.Decl.(type) {
	case *ast.Field:
		return c.safeParam(decl, id.Name)
	case *ast.ValueSpec:
		for i, n := range decl.Names {
			if n.Name == id.Name && i < len(decl.Values) {
				return c.safe(decl.Values[i]) && c.safeAssignments(id.Obj)
			}
		}
		return false
	case *ast.AssignStmt:
		return c.safeAssignments(id.Obj)
	}
	return false
}

// safeAssignments reports whether every assignment to the variable obj is
// safe.
func (c *sqlChecker) safeAssignments(obj *ast.Object) bool {
	ok, any := true, false
	for _, f := range c.files {
		ast.Inspect(f, func(n ast.Node) bool {
			as, isAssign := n.(*ast.AssignStmt)
			if !isAssign || !ok {
				return ok
			}
			for i, l := range as.Lhs {
				id, isIdent := l.(*ast.Ident)
				if !isIdent || id.Obj != obj {
					continue
				}
				any = true
				switch {
				case len(as.Rhs) == len(as.Lhs):
					ok = ok && c.safe(as.Rhs[i])
				case len(as.Rhs) == 1:
					call, isCall := as.Rhs[0].(*ast.CallExpr)
					ok = ok && isCall && c.safeReturns(call, i)
				default:
					ok = false
				}
			}
			return ok
		})
	}
	return ok && any
}

// safeParam reports whether every call of the function declaring the
// parameter field passes it a safe value.
func (c *sqlChecker) safeParam(field *ast.Field, name string) bool {
	for fname, decls := range c.funcs {
		for _, fn := range decls {
			index := 0
			for _, f := range fn.Type.Params.List {
				for _, n := range f.Names {
					if f == field && n.Name == name {
						if _, variadic := f.Type.(*ast.Ellipsis); variadic {
							return false
						}
						return c.safeArgument(fname, index)
					}
					index++
				}
			}
		}
	}
	return false // a closure's parameter, or a receiver
}

// safeArgument reports whether every call of the function (or method)
// name in the package passes a safe value as argument index, and there
// is at least one.
func (c *sqlChecker) safeArgument(name string, index int) bool {
	ok, any := true, false
	for _, f := range c.files {
		ast.Inspect(f, func(n ast.Node) bool {
			call, isCall := n.(*ast.CallExpr)
			if !isCall || !ok || calledName(call) != name {
				return ok
			}
			any = true
			ok = index < len(call.Args) && c.safe(call.Args[index])
			return ok
		})
	}
	return ok && any
}

func calledName(call *ast.CallExpr) string {
	fun := call.Fun
	switch f := fun.(type) {
	case *ast.IndexExpr:
		fun = f.X
	case *ast.IndexListExpr:
		fun = f.X
	}
	switch f := fun.(type) {
	case *ast.Ident:
		return f.Name
	case *ast.SelectorExpr:
		return f.Sel.Name
	}
	return ""
}

func (c *sqlChecker) safeCall(call *ast.CallExpr) bool {
	if sel, ok := call.Fun.(*ast.SelectorExpr); ok {
		if pkg, ok := sel.X.(*ast.Ident); ok && pkg.Obj == nil {
			switch pkg.Name + "." + sel.Sel.Name {
			case "pq.QuoteIdentifier", "pq.QuoteLiteral", "strconv.Itoa", "strconv.FormatInt":
				return true
			}
		}
	}
	return c.safeReturns(call, 0)
}

// safeReturns reports whether the function of the package that call calls
// returns only safe values as its result index.
func (c *sqlChecker) safeReturns(call *ast.CallExpr, index int) bool {
	decls := c.funcs[calledName(call)]
	if len(decls) == 0 {
		return false
	}
	for _, fn := range decls {
		if fn.Body == nil {
			return false
		}
		ok := true
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.FuncLit:
				return false // its returns are its own
			case *ast.ReturnStmt:
				ok = ok && index < len(n.Results) && c.safe(n.Results[index])
			}
			return ok
		})
		if !ok {
			return false
		}
	}
	return true
}
