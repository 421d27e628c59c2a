// Package csrc holds lwr's C++ kernels and their cgo bindings: batch norm
// + ReLU (batchnorm.cpp), ResNet-32's convolutions in oneDNN's blocked
// layout (conv_blocked.cpp, with lwr's own AVX2 Winograd convolutions in
// winograd.cpp), folded convolution + batch norm for evaluation
// (fused.cpp), the c10d process-group shim (dist.cpp), one-call SGD
// (sgd.cpp), and libtorch's seed, thread pool, autocast and memory formats
// (runtime.cpp). parallel.h is their parallel loop, on libtorch's threads.
//
// The C++ files are ordinary sources, formatted by .clang-format and built
// by cgo with lwr's own flags: optimised, -Wall -Wextra -Werror. The flags
// that depend on the libtorch found (include folders, C++ ABI, libraries,
// and the defines LWR_GLOO and LWR_DNNL for the variants setup could
// compile) are in cgo_flags.go, which `make setup` writes and git ignores;
// without it this package does not build.
//
// A tensor handle (tensor.h) is gotch's: a torch::Tensor made with new,
// passed here as unsafe.Pointer (ts.Tensor.Ctensor) and wrapped again with
// ts.New. Functions that can fail return the kernel's error message, ""
// for none; no C++ exception crosses into Go. pkg/libtorch, pkg/dist and
// pkg/optim are the Go API over these bindings.
package csrc

// #include <stdlib.h>
import "C"

import "unsafe"

// errString returns the message of a kernel's error and frees it ("" for none).
func errString(e *C.char) string {
	if e == nil {
		return ""
	}
	defer C.free(unsafe.Pointer(e))
	return C.GoString(e)
}

// flag is 1 for true, 0 for false.
func flag(b bool) C.int {
	if b {
		return 1
	}
	return 0
}
