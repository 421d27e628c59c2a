package csrc

// #include <stdlib.h>
// #include "sgd.h"
import "C"

import "unsafe"

// SGDStep runs one SGD step over params in a single call (see sgd.h);
// bufs are the momentum buffers, one per parameter, or nil when momentum
// is 0. It returns the error, "" for none.
func SGDStep(params, bufs []unsafe.Pointer, lr, momentum, wd float64, nesterov bool) string {
	if len(params) == 0 {
		return ""
	}
	var b *C.tensor
	if len(bufs) > 0 {
		b = handles(bufs)
	}
	return errString(C.lwr_sgd_step(handles(params), b, C.int(len(params)), C.double(lr), C.double(momentum),
		C.double(wd), flag(nesterov)))
}
