package experiments

import (
	"go/ast"
	"go/parser"
	"go/token"
	"testing"
)

// decide's one deferred call is open-coded by the compiler only while
// decide has at most 15 return statements (returns × defers <= 15); past
// that every decision, cached ones included, calls into the runtime on
// return. This keeps a new step from crossing the line unnoticed.
func TestDecideKeepsItsDeferOpenCoded(t *testing.T) {
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, "decide.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var decide *ast.FuncDecl
	for _, d := range file.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok && fd.Name.Name == "decide" && fd.Recv != nil {
			decide = fd
		}
	}
	if decide == nil {
		t.Fatal("no method decide in decide.go")
	}
	returns, defers := 0, 0
	ast.Inspect(decide.Body, func(n ast.Node) bool {
		switch n.(type) {
		case *ast.FuncLit:
			return false // a closure's statements are its own
		case *ast.ReturnStmt:
			returns++
		case *ast.DeferStmt:
			defers++
		}
		return true
	})
	if defers != 1 || returns*defers > 15 {
		t.Errorf("decide has %d return statements and %d deferred calls: want 1 deferred call and at most 15 returns", returns, defers)
	}
}
