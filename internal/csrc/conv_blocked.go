package csrc

// #include <stdlib.h>
// #include "conv_blocked.h"
import "C"

import "unsafe"

// ConvBlock is oneDNN's preferred channel block of training activations
// on this CPU, 0 for none (see conv_blocked.h).
func ConvBlock() int64 { return int64(C.lwr_conv_block()) }

// ConvBlocked is a convolution in the blocked layout (see conv_blocked.h).
func ConvBlocked(x, w unsafe.Pointer, block, stride, pad int64) (unsafe.Pointer, string) {
	var out C.tensor
	e := C.lwr_conv_blocked(C.tensor(x), C.tensor(w), C.int64_t(block), C.int64_t(stride), C.int64_t(pad), &out)
	return unsafe.Pointer(out), errString(e)
}
