package csrc

// #include <stdlib.h>
// #include "batchnorm.h"
import "C"

import "unsafe"

// BNReLU is relu(batch_norm(x) + res) in training, without the relu
// where relu is false (see batchnorm.h); res may be nil. out is nil, with
// nothing done, where the kernel does not apply; msg is the error on
// failure.
func BNReLU(x, res, w, b, mean, variance unsafe.Pointer, momentum, eps float64, relu bool) (out unsafe.Pointer, msg string) {
	var o C.tensor
	r := C.int(0)
	if relu {
		r = 1
	}
	e := C.lwr_bn_relu(C.tensor(x), C.tensor(res), C.tensor(w), C.tensor(b), C.tensor(mean), C.tensor(variance),
		C.double(momentum), C.double(eps), r, &o)
	return unsafe.Pointer(o), errString(e)
}
