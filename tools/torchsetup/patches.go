package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// A Patch is one named change setup makes to the text of gotch v0.9.1's Go
// files. Each knows how many places it changes in that version: any other
// count means gotch's text moved, and setup stops with one line naming the
// patch rather than build a half-patched copy.
type Patch struct {
	Name  string   // what setup's messages call it
	Files []string // globs relative to gotch's root; _test.go files are left out
	Want  int      // places changed over all the files, in gotch v0.9.1
	// Apply returns src changed and the number of places it changed.
	Apply func(src string) (string, int)
}

// Patches are setup's changes to gotch, in the order they run. Their
// reasons are given beside each function below.
var Patches = []Patch{
	{"free-outputs", []string{"ts/tensor-generated.go"}, 2221, func(s string) (string, int) {
		return replaceAll(s, mallocSlots, fixedSlots)
	}},
	{"in-place-handles", []string{"ts/tensor-generated.go"}, 260, func(s string) (string, int) {
		return replaceAll(s, inPlaceSwap, fixedSwap)
	}},
	{"c-ints", []string{"libtch/*.go"}, 3, PatchCInts},
	{"save-arrays", []string{"libtch/tensor.go"}, len(saveMultiMallocs), PatchSaveMulti},
	{"fatal-to-panic", []string{"*.go", "ts/*.go", "nn/*.go"}, 2642, PatchFatal},
	{"torch-err", []string{"ts/error.go"}, 1, PatchTorchErr},
	{"ballast", []string{"ts/tensor.go"}, 1, PatchBallast},
}

// replaceAll replaces every from in s by to and counts them.
func replaceAll(s, from, to string) (string, int) {
	return strings.ReplaceAll(s, from, to), strings.Count(s, from)
}

// ApplyPatches runs patches over the gotch copy in root. It fails, with
// one line naming the patch and its files, when a patch changes another
// number of places than it wants; files are written only when it does not.
func ApplyPatches(root string, patches []Patch) error {
	for _, p := range patches {
		changed := map[string]string{}
		n := 0
		for _, glob := range p.Files {
			files, err := filepath.Glob(filepath.Join(root, glob))
			if err != nil {
				return err
			}
			for _, f := range files {
				if strings.HasSuffix(f, "_test.go") {
					continue
				}
				b, err := os.ReadFile(f)
				if err != nil {
					return err
				}
				src, k := p.Apply(string(b))
				if k > 0 {
					changed[f] = src
					n += k
				}
			}
		}
		if n != p.Want {
			return fmt.Errorf("patch %s: changed %d places in %s, want %d: gotch's text is not v0.9.1's",
				p.Name, n, strings.Join(p.Files, " "), p.Want)
		}
		for f, src := range changed {
			if err := os.WriteFile(f, []byte(src), 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// Two faults of gotch v0.9.1's generated Go bindings (ts/tensor-generated.go)
// that matter for a trainer running millions of ops:
//
//   - every op allocates its output slots with C.malloc(0) and never frees
//     them: 32 bytes lost per op, and ops with more than three outputs
//     write past the end of the allocation;
//   - every in-place op ("_" suffix) replaces the tensor's C handle with the
//     new one without deleting the old, whose reference keeps the storage
//     alive after the tensor is dropped.
const (
	mallocSlots = "ptr := (*lib.Ctensor)(unsafe.Pointer(C.malloc(0)))"
	// outputSlots leaves room for the largest op (five outputs) and more.
	fixedSlots  = "ptr := (*lib.Ctensor)(unsafe.Pointer(C.malloc(16 * 8)))\n  defer C.free(unsafe.Pointer(ptr))"
	inPlaceSwap = "ts.ctensor = *ptr"
	fixedSwap   = "lib.AtFree(ts.ctensor)\n  ts.ctensor = *ptr"
)

// cIntAsGoInt matches gotch's conversion of a C int result to a Go int by
// reinterpreting its address, which reads 8 bytes of a 4-byte value: the
// upper half is whatever lies next to it on the stack. It breaks
// GradSetEnabled (the previous mode it returns is garbage, so ts.NoGrad
// leaves gradients off), AtDevice and the CUDA device count.
var cIntAsGoInt = regexp.MustCompile(`\*\(\*int\)\(unsafe\.Pointer\(&([A-Za-z_][A-Za-z0-9_]*)\)\)`)

// PatchCInts replaces each such reinterpretation by a conversion, int(x),
// which is exact for C int, C long and Go int alike, and reports how many.
func PatchCInts(src string) (string, int) {
	n := len(cIntAsGoInt.FindAllStringIndex(src, -1))
	out := cIntAsGoInt.ReplaceAllString(src, "int($1)")
	if n > 0 && strings.Contains(out, "\"unsafe\"") && !strings.Contains(out, "unsafe.") {
		out += "\nvar _ unsafe.Pointer // keeps the import the patched code no longer needs\n"
	}
	return out, n
}

// gotch's Must* functions and many others end the process with log.Fatal
// on any libtorch error (a shape mismatch, an unreadable checkpoint, CUDA
// out of memory): no deferred function runs, so a trainer can neither
// checkpoint nor clean up, and the message carries a C++ backtrace. Setup
// makes them panic with the error instead; lwr recovers the panic on its
// training thread (pkg/libtorch.OnThread) and returns it as a Go error.
var fatalCalls = []struct{ from, to string }{
	{"log.Fatal(err)", "panic(err)"},
	{"log.Fatalf(", "log.Panicf("},
	{"log.Fatalln(", "log.Panicln("},
	{"log.Fatal(", "log.Panic("},
}

// PatchFatal replaces the calls to log.Fatal* in src by panics and reports
// how many. A file left without a use of package log keeps its import
// through a blank variable.
func PatchFatal(src string) (string, int) {
	n := 0
	for _, c := range fatalCalls {
		n += strings.Count(src, c.from)
		src = strings.ReplaceAll(src, c.from, c.to)
	}
	if n > 0 && strings.Contains(src, "\"log\"") && !strings.Contains(strings.ReplaceAll(src, "\"log\"", ""), "log.") {
		src += "\nvar _ = log.Printf // keeps the import the patched code no longer needs\n"
	}
	return src, n
}

// torchErrWithStack is how gotch's ts.TorchErr words every libtorch error:
// the message, then the Go stack of the call, so that each error is dozens
// of lines long.
const (
	torchErrWithStack = "trace := string(debug.Stack())\n\t\treturn fmt.Errorf(\"Libtorch API Error: %v\\n%v\\n\", errStr, trace)"
	torchErrShort     = "return fmt.Errorf(\"libtorch: %v\", errStr)"
)

// PatchTorchErr makes ts.TorchErr's errors the libtorch message alone,
// prefixed "libtorch: ", in src (ts/error.go), and counts the places.
func PatchTorchErr(src string) (string, int) {
	n := strings.Count(src, torchErrWithStack)
	if n == 0 {
		return src, 0
	}
	src = strings.ReplaceAll(src, torchErrWithStack, torchErrShort)
	return src + "\nvar _ = debug.Stack // keeps the import the patched code no longer needs\n", n
}

// gotch gives every tensor handle a 100 KB Go allocation ("ballast"), so
// that Go's garbage collector, which cannot see libtorch's memory, runs
// often enough to finalize dropped handles. A training step makes a few
// hundred handles: 100 KB each is tens of megabytes of Go allocation per
// step. lwr frees the handles of its hot paths itself, so 4 KB keeps the
// collector coming for the rest: the resident memory of a ResNet-32
// training loop drops by ~40 MB and stays flat over 1,000 steps
// (bench/resnet --mode train); the step time does not change measurably.
const (
	ballastOriginal = "lots [1e5]byte // 100k - always on host memory."
	ballastSmall    = "lots [4 << 10]byte // 4 KB (lwr's setup; gotch's is 100 KB): makes the collector see each handle"
)

// PatchBallast shrinks gotch's per-tensor ballast in src (ts/tensor.go)
// and counts the places.
func PatchBallast(src string) (string, int) {
	return replaceAll(src, ballastOriginal, ballastSmall)
}

// gotch's AtSaveMulti and AtSaveMultiNew (libtch/tensor.go) fill a C.malloc'd
// array of C pointers from Go through a Go pointer type. While the garbage
// collector runs, each store's write barrier reads the slot's old value,
// which in fresh malloc memory is garbage: when it happens to point into
// Go's heap the runtime stops with "found bad pointer in Go heap". Saving
// a checkpoint on its own thread while training allocates made it happen
// (CI, 2026-12-06). calloc zeroes the slots first.
var saveMultiMallocs = []struct{ from, to string }{
	{"ctensorsPtr := (*[1 << 30]C.tensor)(C.malloc(nbytes))",
		"ctensorsPtr := (*[1 << 30]C.tensor)(C.calloc(1, nbytes)) // lwr's setup: zeroed slots, see PatchSaveMulti"},
	{"cpointerSize := 4",
		"cpointerSize := int(unsafe.Sizeof(uintptr(0))) // lwr's setup: gotch's 4 is half a pointer"},
	{"cnamesPtr := (*[1 << 30]**C.char)(C.malloc(C.size_t(cpointerSize * len(tensor_names))))",
		"cnamesPtr := (*[1 << 30]**C.char)(C.calloc(C.size_t(len(tensor_names)), C.size_t(cpointerSize))) // lwr's setup: zeroed slots, see PatchSaveMulti"},
}

// PatchSaveMulti makes both arrays zeroed (and the second one's slots
// pointer-sized: gotch sizes them at 4 bytes) in src (libtch/tensor.go),
// and counts the places.
func PatchSaveMulti(src string) (string, int) {
	n := 0
	for _, m := range saveMultiMallocs {
		var k int
		src, k = replaceAll(src, m.from, m.to)
		n += k
	}
	return src, n
}
