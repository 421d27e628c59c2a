package main

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Function is one top-level wrapper of gotch's generated C++ file: its name,
// return type and the 1-based lines of its signature and closing brace.
type Function struct {
	Name       string
	ReturnType string // "void", "tensor", "tensor *" (a list), "int", "int64_t" or "double"
	Signature  string // the whole signature line, ending in "{"
	First      int    // line of the signature
	Last       int    // line of the closing "}"
}

// signatureLine matches "TYPE atg_NAME(...) {" and "TYPE *atg_NAME(...) {"
// (the wrappers that return a list of tensors attach the star to the name).
var signatureLine = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)(\s*\*\s*|\s+)(atg_[A-Za-z0-9_]+)\(.*\)\s*\{\s*$`)

// Functions lists the wrappers of a generated file, in order. Each one starts
// with a one-line signature at column 0 and ends with "}" alone on a line.
func Functions(src string) ([]Function, error) {
	lines := strings.Split(src, "\n")
	var fns []Function
	for i := 0; i < len(lines); i++ {
		m := signatureLine.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		ret := m[1]
		if strings.Contains(m[2], "*") {
			ret += " *"
		}
		f := Function{Name: m[3], ReturnType: ret, Signature: lines[i], First: i + 1}
		for j := i + 1; j < len(lines); j++ {
			if strings.TrimRight(lines[j], " \t\r") == "}" {
				f.Last = j + 1
				break
			}
			if signatureLine.MatchString(lines[j]) {
				return nil, fmt.Errorf("line %d: %s starts before %s (line %d) ends", j+1, lines[j], f.Name, f.First)
			}
		}
		if f.Last == 0 {
			return nil, fmt.Errorf("line %d: %s has no closing brace", f.First, f.Name)
		}
		fns = append(fns, f)
		i = f.Last - 1
	}
	return fns, nil
}

// ErrorLines returns the lines of file (matched on its base name) that the
// compiler's diagnostics point at: the error lines themselves and the
// "required from here" lines of template errors that end in a header.
// Compile with -w so that warnings do not count.
func ErrorLines(diagnostics, file string) []int {
	re := regexp.MustCompile(`(?m)(?:^|[\s/])` + regexp.QuoteMeta(file) + `:(\d+):(?:\d+:)?`)
	seen := map[int]bool{}
	for _, m := range re.FindAllStringSubmatch(diagnostics, -1) {
		n, err := strconv.Atoi(m[1])
		if err == nil {
			seen[n] = true
		}
	}
	out := make([]int, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Ints(out)
	return out
}

// FirstError returns the compiler's first error with the few lines of
// context that follow it, instead of the whole output.
func FirstError(diagnostics string) string {
	lines := strings.Split(diagnostics, "\n")
	for i, l := range lines {
		if strings.Contains(l, "error:") || strings.Contains(l, "fatal error") {
			end := i + 4
			if end > len(lines) {
				end = len(lines)
			}
			return strings.TrimRight(strings.Join(lines[i:end], "\n"), "\n")
		}
	}
	return lastLines(diagnostics, 5)
}

// Stub replaces the named wrappers of src by ones that raise a runtime
// error through gotch's PROTECT, so gotch reports it as a Go error instead
// of the build failing. It returns the new source and the names stubbed.
// A line that lies in no wrapper is an error: the file cannot be adapted.
func Stub(src string, errLines []int, version string) (string, []string, error) {
	fns, err := Functions(src)
	if err != nil {
		return "", nil, err
	}
	bad := map[int]bool{} // index into fns
	for _, n := range errLines {
		k := sort.Search(len(fns), func(i int) bool { return fns[i].Last >= n })
		if k == len(fns) || fns[k].First > n {
			return "", nil, fmt.Errorf("line %d lies outside any generated wrapper", n)
		}
		bad[k] = true
	}
	lines := strings.Split(src, "\n")
	var out []string
	var names []string
	prev := 0
	for k, f := range fns {
		if !bad[k] {
			continue
		}
		out = append(out, lines[prev:f.First-1]...)
		out = append(out, stubBody(f, version)...)
		prev = f.Last
		names = append(names, f.Name)
	}
	out = append(out, lines[prev:]...)
	return strings.Join(out, "\n"), names, nil
}

// StubMessage is the runtime error of a wrapper that setup adapted.
func StubMessage(name, version string) string {
	return fmt.Sprintf("lwr: torch op %s is not available with libtorch %s "+
		"(gotch v0.9.1 targets libtorch 2.1; setup turned this wrapper into an error because it does not compile against these headers)",
		strings.TrimPrefix(name, "atg_"), version)
}

func stubBody(f Function, version string) []string {
	body := []string{
		f.Signature,
		"  PROTECT(",
		"    throw std::runtime_error(" + strconv.Quote(StubMessage(f.Name, version)) + ");",
		"  )",
	}
	switch f.ReturnType {
	case "void":
	case "tensor", "tensor *":
		body = append(body, "  return nullptr;")
	default:
		body = append(body, "  return 0;")
	}
	return append(body, "}")
}
