package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// cLine matches a line of C or C++: a preprocessor directive, an extern
// "C" block, a qualified C++ name, or a C function head.
var cLine = regexp.MustCompile(`^\s*#\s*(include|define|ifn?def|if|endif|pragma)\b|extern "C"|\b(std|torch|at|c10|c10d|dnnl)::|^\s*(static\s+)?(void|int|char|double|int64_t|tensor)\s*\*?\s*\w+\([^)]*\)\s*\{`)

// cSource reports whether a Go string holds C or C++ source: three or more
// of its lines look like C.
func cSource(s string) bool {
	n := 0
	for _, l := range strings.Split(s, "\n") {
		if cLine.MatchString(l) {
			n++
		}
	}
	return n >= 3
}

// cStrings lists the string literals of a Go file that hold C or C++.
func cStrings(t *testing.T, name string, src []byte) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), name, src, 0)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var found []string
	ast.Inspect(f, func(n ast.Node) bool {
		if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
			if s, err := strconv.Unquote(lit.Value); err == nil && cSource(s) {
				found = append(found, strings.SplitN(s, "\n", 2)[0])
			}
		}
		return true
	})
	return found
}

// TestCStrings: the detector finds the kernel setup used to keep in a
// string, and nothing in Go code, comments or one-line patterns.
func TestCStrings(t *testing.T) {
	for file, want := range map[string]bool{"kernel_in_string.go.txt": true, "go_and_comments.go.txt": false} {
		b, err := os.ReadFile(filepath.Join("testdata", "cstrings", file))
		if err != nil {
			t.Fatal(err)
		}
		if got := len(cStrings(t, file, b)) > 0; got != want {
			t.Errorf("%s: C source found = %v, want %v", file, got, want)
		}
	}
}

// TestNoCSourceInGoStrings: no Go file of lwr's holds C or C++ source in a
// string; kernels are .h/.cpp files (internal/csrc).
func TestNoCSourceInGoStrings(t *testing.T) {
	root := filepath.Join("..", "..")
	checked := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case "third_party", ".git", ".gpu", "runs", "data", "testdata":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		checked++
		for _, s := range cStrings(t, path, b) {
			t.Errorf("%s: a string holds C/C++ source (%q...): make it a file in internal/csrc", path, s)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 100 {
		t.Fatalf("checked %d Go files under %s, want lwr's whole tree", checked, root)
	}
}
