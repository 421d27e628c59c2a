package csrc

// #include <stdlib.h>
// #include "fused.h"
import "C"

import "unsafe"

// FusedAvailable reports whether the fused and blocked convolutions were
// built (with oneDNN's headers, LWR_DNNL).
func FusedAvailable() bool { return C.lwr_fused_available() == 1 }

// FusedNew folds a convolution and its batch norm (see fused.h); stride
// and pad are (height, width).
func FusedNew(w, gamma, beta, mean, variance unsafe.Pointer, eps float64, stride, pad [2]int64, groups int64) (unsafe.Pointer, string) {
	var h unsafe.Pointer
	e := C.lwr_fused_new(C.tensor(w), C.tensor(gamma), C.tensor(beta), C.tensor(mean), C.tensor(variance), C.double(eps),
		C.int64_t(stride[0]), C.int64_t(stride[1]), C.int64_t(pad[0]), C.int64_t(pad[1]), C.int64_t(groups), &h)
	return h, errString(e)
}

// FusedRun runs a folded convolution; add is nil for none.
func FusedRun(h, x, add unsafe.Pointer, relu bool) (unsafe.Pointer, string) {
	var out C.tensor
	e := C.lwr_fused_run(h, C.tensor(x), C.tensor(add), flag(relu), &out)
	return unsafe.Pointer(out), errString(e)
}

// FusedFree frees a folded convolution.
func FusedFree(h unsafe.Pointer) { C.lwr_fused_free(h) }
