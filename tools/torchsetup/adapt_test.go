package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFunctions(t *testing.T) {
	fns, err := Functions(readTestdata(t, "libtch/torch_api_generated.cpp.h"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Function{
		{Name: "atg_relu", ReturnType: "void", First: 3, Last: 8},
		{Name: "atg_gelu", ReturnType: "void", First: 10, Last: 15},
		{Name: "atg_dim", ReturnType: "int64_t", First: 17, Last: 22},
		{Name: "atg_clone", ReturnType: "tensor", First: 24, Last: 29},
		// Wrappers of ops that return a list attach the star to the name.
		{Name: "atg_align_tensors", ReturnType: "tensor *", First: 31, Last: 42},
	}
	if len(fns) != len(want) {
		t.Fatalf("got %d functions, want %d", len(fns), len(want))
	}
	for i, w := range want {
		g := fns[i]
		if g.Name != w.Name || g.ReturnType != w.ReturnType || g.First != w.First || g.Last != w.Last {
			t.Errorf("function %d: got %s %s lines %d-%d, want %s %s lines %d-%d",
				i, g.ReturnType, g.Name, g.First, g.Last, w.ReturnType, w.Name, w.First, w.Last)
		}
	}
}

func TestFunctionsMalformed(t *testing.T) {
	cases := map[string]string{
		"unclosed": "void atg_a(tensor self) {\n  PROTECT()\n",
		"nested":   "void atg_a(tensor self) {\nvoid atg_b(tensor self) {\n}\n",
	}
	for name, src := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := Functions(src); err == nil {
				t.Error("no error for a malformed file")
			}
		})
	}
}

func TestErrorLines(t *testing.T) {
	got := ErrorLines(readTestdata(t, "gxx_errors.txt"), "torch_api_generated.cpp.h")
	want := []int{123, 4510, 9001}
	if !slices.Equal(got, want) {
		t.Errorf("got lines %v, want %v", got, want)
	}
	if got := ErrorLines("torch_api.cpp:12:3: error: x\n", "torch_api_generated.cpp.h"); len(got) != 0 {
		t.Errorf("errors of another file gave lines %v", got)
	}
}

func TestFirstError(t *testing.T) {
	got := FirstError(readTestdata(t, "gxx_errors.txt"))
	if !strings.HasPrefix(got, "torch_api_generated.cpp.h:123:35: error: '_cslt_compress'") {
		t.Errorf("first error starts %q", strings.SplitN(got, "\n", 2)[0])
	}
	if n := strings.Count(got, "\n") + 1; n > 4 {
		t.Errorf("first error has %d lines, want at most 4", n)
	}
}

func TestStub(t *testing.T) {
	src := readTestdata(t, "libtch/torch_api_generated.cpp.h")
	out, names, err := Stub(src, []int{12, 26, 27, 33}, "1.13.0")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names, []string{"atg_gelu", "atg_clone", "atg_align_tensors"}) {
		t.Errorf("stubbed %v, want [atg_gelu atg_clone atg_align_tensors]", names)
	}
	if strings.Contains(out, "torch::gelu") || strings.Contains(out, "clone_missing") || strings.Contains(out, "align_tensors_missing") {
		t.Error("stubbed bodies still call the missing ops")
	}
	for _, keep := range []string{"torch::relu(*self)", "return torch::dim(*self);"} {
		if !strings.Contains(out, keep) {
			t.Errorf("untouched wrapper lost %q", keep)
		}
	}
	if !strings.Contains(out, StubMessage("atg_gelu", "1.13.0")) {
		t.Error("stub does not raise the message")
	}
	if strings.Count(out, "  )\n  return nullptr;\n}") != 2 {
		t.Error("tensor- and list-returning stubs do not return nullptr")
	}
	fns, err := Functions(out)
	if err != nil || len(fns) != 5 {
		t.Fatalf("stubbed file: %d functions, err %v; want 5", len(fns), err)
	}
	if _, _, err := Stub(src, []int{1}, "1.13.0"); err == nil {
		t.Error("a line outside any wrapper was not an error")
	}
}

func TestStubMessage(t *testing.T) {
	got := StubMessage("atg_squeeze_dims", "1.13.0")
	for _, want := range []string{"squeeze_dims", "libtorch 1.13.0", "gotch v0.9.1"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
}

// copyFixture copies testdata/libtch into a temporary folder that adapt may write.
func copyFixture(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := copyTree(filepath.Join("testdata", "libtch"), dir, nil); err != nil {
		t.Fatal(err)
	}
	return dir
}

func fakeLibtorch(t *testing.T, name string) Libtorch {
	inc, err := filepath.Abs(filepath.Join("testdata", name, "include"))
	if err != nil {
		t.Fatal(err)
	}
	return Libtorch{Version: "0.0.1", Includes: []string{inc, filepath.Join(inc, "torch", "csrc", "api", "include")}, CXX11ABI: true}
}

// TestAdaptCompiles runs the real compiler: the wrappers that call ops the
// headers lack are stubbed, and the result compiles.
func TestAdaptCompiles(t *testing.T) {
	dir := copyFixture(t)
	lt := fakeLibtorch(t, "fakelib")
	adapted, total, err := adapt(dir, lt, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if total != 5 || !slices.Equal(adapted, []string{"atg_gelu", "atg_clone", "atg_align_tensors"}) {
		t.Errorf("adapted %v of %d, want [atg_gelu atg_clone atg_align_tensors] of 5", adapted, total)
	}
	b, _ := os.ReadFile(filepath.Join(dir, generatedFile))
	if _, ok, err := syntaxCheck(dir, lt, string(b)); !ok || err != nil {
		t.Errorf("adapted file does not compile (err %v)", err)
	}
}

// TestAdaptBrokenHeaders: headers that do not parse cannot be adapted; the
// error shows the compiler's first error, not all of its output.
func TestAdaptBrokenHeaders(t *testing.T) {
	dir := copyFixture(t)
	_, _, err := adapt(dir, fakeLibtorch(t, "brokenlib"), t.Logf)
	if err == nil {
		t.Fatal("broken headers adapted without error")
	}
	msg := err.Error()
	if !strings.Contains(msg, "torch.h:4") || !strings.Contains(msg, "error:") {
		t.Errorf("error does not show the compiler's first error in torch.h:\n%s", msg)
	}
	if n := strings.Count(msg, "\n"); n > 6 {
		t.Errorf("error has %d lines; want the first error only:\n%s", n, msg)
	}
}

func TestPatchBindings(t *testing.T) {
	src := `func(ts *Tensor) Abs(del bool)(retVal *Tensor, err error) {
  ptr := (*lib.Ctensor)(unsafe.Pointer(C.malloc(0)))
  lib.AtgAbs(ptr, ts.ctensor)
  retVal = newTensor(*ptr, "Abs")
}
func(ts *Tensor) Abs_()(err error) {
  ptr := (*lib.Ctensor)(unsafe.Pointer(C.malloc(0)))
  lib.AtgAbs_(ptr, ts.ctensor)
  ts.ctensor = *ptr
}
`
	out, allocs := patchNamed(t, "free-outputs").Apply(src)
	out, swaps := patchNamed(t, "in-place-handles").Apply(out)
	if allocs != 2 || swaps != 1 {
		t.Errorf("patched %d allocations and %d swaps, want 2 and 1", allocs, swaps)
	}
	if strings.Contains(out, "C.malloc(0)") || strings.Count(out, "defer C.free(unsafe.Pointer(ptr))") != 2 {
		t.Errorf("allocations not fixed:\n%s", out)
	}
	if !strings.Contains(out, "lib.AtFree(ts.ctensor)\n  ts.ctensor = *ptr") {
		t.Errorf("in-place op does not free the old handle:\n%s", out)
	}
}

// patchNamed is the Patch called name.
func patchNamed(t *testing.T, name string) Patch {
	t.Helper()
	for _, p := range Patches {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("no patch %s", name)
	return Patch{}
}

func TestPatchCInts(t *testing.T) {
	cases := []struct{ in, want string }{
		{"return *(*int)(unsafe.Pointer(&cretVal))", "return int(cretVal)"},
		{"x := *(*int)(unsafe.Pointer(&t))\ny := unsafe.Sizeof(x)", "x := int(t)\ny := unsafe.Sizeof(x)"},
		{"return *(*bool)(unsafe.Pointer(&retVal))", "return *(*bool)(unsafe.Pointer(&retVal))"},
	}
	for _, c := range cases {
		if got, _ := PatchCInts(c.in); got != c.want {
			t.Errorf("PatchCInts(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	out, n := PatchCInts("import (\n\t\"unsafe\"\n)\nfunc f() int { t := 1; return *(*int)(unsafe.Pointer(&t)) }\n")
	if n != 1 || !strings.Contains(out, "var _ unsafe.Pointer") {
		t.Errorf("unused unsafe import not kept alive (n=%d):\n%s", n, out)
	}
}

func TestPatchFatal(t *testing.T) {
	cases := []struct {
		in, want string
		n        int
	}{
		{"if err != nil { log.Fatal(err) }", "if err != nil { panic(err) }", 1},
		{`log.Fatalf("bad %v", x)`, `log.Panicf("bad %v", x)`, 1},
		{`log.Fatal("no")`, `log.Panic("no")`, 1},
		{"return x", "return x", 0},
	}
	for _, c := range cases {
		got, n := PatchFatal(c.in)
		if got != c.want || n != c.n {
			t.Errorf("PatchFatal(%q) = %q, %d; want %q, %d", c.in, got, n, c.want, c.n)
		}
	}
	out, _ := PatchFatal("import \"log\"\nfunc f(err error) { log.Fatal(err) }\n")
	if !strings.Contains(out, "var _ = log.Printf") {
		t.Errorf("unused log import not kept alive:\n%s", out)
	}
	out, _ = PatchFatal("import \"log\"\nfunc f(err error) { log.Fatal(err); log.Print(1) }\n")
	if strings.Contains(out, "var _ = log.Printf") {
		t.Errorf("a used log import got a blank variable:\n%s", out)
	}
}

func TestPatchTorchErr(t *testing.T) {
	src := "func TorchErr() error {\n\tif errStr != \"\" {\n\t\t" + torchErrWithStack + "\n\t}\n\treturn nil\n}\n"
	out, n := PatchTorchErr(src)
	if n != 1 || strings.Contains(out, "debug.Stack()") || !strings.Contains(out, torchErrShort) {
		t.Errorf("TorchErr still appends the stack (%d places):\n%s", n, out)
	}
	if _, n := PatchTorchErr("package ts\n"); n != 0 {
		t.Errorf("a file without gotch's TorchErr: %d places", n)
	}
}

func TestPatchBallast(t *testing.T) {
	src := "type bigStruct struct {\n\t" + ballastOriginal + "\n}\n"
	got, n := PatchBallast(src)
	if n != 1 || !strings.Contains(got, "lots [4 << 10]byte") || strings.Contains(got, "1e5") {
		t.Errorf("PatchBallast = %q, %d", got, n)
	}
}

func TestPatchSaveMulti(t *testing.T) {
	src := "func AtSaveMulti() {\n\t" + saveMultiMallocs[1].from + "\n\t" + saveMultiMallocs[2].from + "\n}\nfunc AtSaveMultiNew() {\n\t" + saveMultiMallocs[0].from + "\n}\n"
	got, n := PatchSaveMulti(src)
	if n != 3 || strings.Contains(got, "C.malloc") || strings.Count(got, "C.calloc(") != 2 || strings.Contains(got, ":= 4") {
		t.Errorf("PatchSaveMulti = %q, %d", got, n)
	}
}

// TestApplyPatchesGotch runs every patch over a copy of gotch v0.9.1 from
// the module cache (skipped where the cache lacks it): each changes the
// number of places it wants. Then, for each patch, a copy whose first
// target is edited away makes ApplyPatches fail with one line naming that
// patch, and leaves the files untouched.
func TestApplyPatchesGotch(t *testing.T) {
	pristine, err := moduleDir(gotchModule, gotchVersion)
	if err != nil {
		t.Skipf("gotch %s not in the module cache: %v", gotchVersion, err)
	}
	copyGotch := func(t *testing.T) string {
		dir := t.TempDir()
		for _, d := range []string{"libtch", "ts", "nn"} {
			if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for _, glob := range []string{"*.go", "libtch/*.go", "ts/*.go", "nn/*.go"} {
			files, _ := filepath.Glob(filepath.Join(pristine, glob))
			for _, f := range files {
				rel, _ := filepath.Rel(pristine, f)
				if err := copyFile(f, filepath.Join(dir, rel)); err != nil {
					t.Fatal(err)
				}
			}
		}
		return dir
	}
	if err := ApplyPatches(copyGotch(t), Patches); err != nil {
		t.Fatalf("gotch %s: %v", gotchVersion, err)
	}
	for i, p := range Patches {
		t.Run(p.Name, func(t *testing.T) {
			dir := copyGotch(t)
			// Edit gotch's text as a new release might: the first file p
			// changes loses the first line p would change.
			var target string
			for _, glob := range p.Files {
				files, _ := filepath.Glob(filepath.Join(dir, glob))
				for _, f := range files {
					b, _ := os.ReadFile(f)
					if _, k := p.Apply(string(b)); k > 0 && target == "" {
						target = f
					}
				}
			}
			if target == "" {
				t.Fatalf("patch %s changes nothing in gotch", p.Name)
			}
			b, _ := os.ReadFile(target)
			edited := breakFirst(string(b), p)
			if err := os.WriteFile(target, []byte(edited), 0o644); err != nil {
				t.Fatal(err)
			}
			before := readAll(t, dir)
			err := ApplyPatches(dir, Patches[i:i+1])
			if err == nil {
				t.Fatalf("patch %s applied to an edited gotch without error", p.Name)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "patch "+p.Name+": ") || strings.Contains(msg, "\n") {
				t.Errorf("error is not one line naming the patch: %q", msg)
			}
			if after := readAll(t, dir); after != before {
				t.Error("a failed patch wrote files")
			}
		})
	}
}

// breakFirst removes one of the places p changes in src: it drops lines,
// from the first, until p changes one place fewer.
func breakFirst(src string, p Patch) string {
	_, want := p.Apply(src)
	lines := strings.Split(src, "\n")
	for i := range lines {
		cut := strings.Join(append(append([]string{}, lines[:i]...), lines[i+1:]...), "\n")
		if _, k := p.Apply(cut); k == want-1 {
			return cut
		}
	}
	return src
}

// readAll is the content of every .go file under dir, concatenated.
func readAll(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			data, _ := os.ReadFile(path)
			b.WriteString(path)
			b.Write(data)
		}
		return nil
	})
	return b.String()
}
