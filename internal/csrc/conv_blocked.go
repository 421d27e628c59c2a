package csrc

// #include <stdlib.h>
// #include "conv_blocked.h"
import "C"

import "unsafe"

// ConvBlock is oneDNN's preferred channel block of training activations
// on this CPU, 0 for none (see conv_blocked.h).
func ConvBlock() int64 { return int64(C.lwr_conv_block()) }

// ConvBlocked is a convolution in the blocked layout by algorithm alg
// (see conv_blocked.h).
func ConvBlocked(x, w unsafe.Pointer, block, stride, pad, alg int64) (unsafe.Pointer, string) {
	var out C.tensor
	e := C.lwr_conv_blocked(C.tensor(x), C.tensor(w), C.int64_t(block), C.int64_t(stride), C.int64_t(pad), C.int64_t(alg), &out)
	return unsafe.Pointer(out), errString(e)
}

// ConvBlockedAlgorithm is the algorithm ConvBlocked runs with these
// arguments: 1 direct, 2 Winograd (see conv_blocked.h).
func ConvBlockedAlgorithm(x, w unsafe.Pointer, block, stride, pad, alg int64) (int64, string) {
	var used C.int64_t
	e := C.lwr_conv_blocked_algorithm(C.tensor(x), C.tensor(w), C.int64_t(block), C.int64_t(stride), C.int64_t(pad), C.int64_t(alg), &used)
	return int64(used), errString(e)
}
