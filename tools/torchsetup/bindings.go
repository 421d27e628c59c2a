package main

import (
	"fmt"
	"regexp"
	"strings"
)

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

// PatchBindings fixes both faults in the text of tensor-generated.go and
// reports how many allocations and in-place ops it changed. It is an error
// if the file does not have the shape these patches expect.
func PatchBindings(src string) (string, int, int, error) {
	allocs := strings.Count(src, mallocSlots)
	swaps := strings.Count(src, inPlaceSwap)
	if allocs == 0 {
		return "", 0, 0, fmt.Errorf("no %q in the generated bindings: not gotch v0.9.1's layout", mallocSlots)
	}
	src = strings.ReplaceAll(src, mallocSlots, fixedSlots)
	src = strings.ReplaceAll(src, inPlaceSwap, fixedSwap)
	return src, allocs, swaps, nil
}

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
// prefixed "libtorch: ". It is an error if src (ts/error.go) does not
// have the expected shape.
func PatchTorchErr(src string) (string, error) {
	if !strings.Contains(src, torchErrWithStack) {
		return "", fmt.Errorf("no %q: not gotch v0.9.1's TorchErr", torchErrWithStack)
	}
	src = strings.Replace(src, torchErrWithStack, torchErrShort, 1)
	return src + "\nvar _ = debug.Stack // keeps the import the patched code no longer needs\n", nil
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

// PatchBallast shrinks gotch's per-tensor ballast in src (ts/tensor.go).
// It is an error if src does not have gotch v0.9.1's.
func PatchBallast(src string) (string, error) {
	if !strings.Contains(src, ballastOriginal) {
		return "", fmt.Errorf("no %q: not gotch v0.9.1's Tensor", ballastOriginal)
	}
	return strings.Replace(src, ballastOriginal, ballastSmall, 1), nil
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
// pointer-sized: gotch sizes them at 4 bytes) in src (libtch/tensor.go).
// It is an error if src does not have gotch v0.9.1's code.
func PatchSaveMulti(src string) (string, error) {
	for _, m := range saveMultiMallocs {
		if strings.Count(src, m.from) != 1 {
			return "", fmt.Errorf("no single %q: not gotch v0.9.1's libtch", m.from)
		}
		src = strings.Replace(src, m.from, m.to, 1)
	}
	return src, nil
}
