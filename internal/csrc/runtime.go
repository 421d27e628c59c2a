package csrc

// #include <stdlib.h>
// #include "runtime.h"
import "C"

import "unsafe"

// ManualSeed seeds libtorch's default generators (CPU and CUDA).
func ManualSeed(seed int64) { C.lwr_manual_seed(C.int64_t(seed)) }

// NumThreads is the size of libtorch's intra-op thread pool.
func NumThreads() int { return int(C.lwr_get_num_threads()) }

// SetNumThreads sets it; n <= 0 leaves it as it is.
func SetNumThreads(n int) { C.lwr_set_num_threads(C.int(n)) }

// AutocastCUDA switches CUDA autocast on or off for the calling thread,
// to bfloat16 (bf16) or float16, and returns the previous state.
func AutocastCUDA(on, bf16 bool) (prev bool, msg string) {
	var p C.int
	e := C.lwr_autocast_cuda(flag(on), flag(bf16), &p)
	return p == 1, errString(e)
}

// AutocastCUDABF16 is 1 when CUDA autocast casts to bfloat16, 0 for
// float16, -1 otherwise.
func AutocastCUDABF16() int { return int(C.lwr_autocast_cuda_bf16()) }

// ChannelsLast returns t in the channels-last (NHWC) memory format: a new
// handle to t itself when it already is one or is not 4-d.
func ChannelsLast(t unsafe.Pointer) (unsafe.Pointer, string) {
	var out C.tensor
	e := C.lwr_channels_last(C.tensor(t), &out)
	return unsafe.Pointer(out), errString(e)
}

// SetChannelsLast switches a 4-d variable's storage to channels-last in
// place, keeping its identity (what module.to(memory_format=...) does).
func SetChannelsLast(t unsafe.Pointer) string { return errString(C.lwr_set_channels_last(C.tensor(t))) }

// IsChannelsLast reports whether t is 4-d and channels-last.
func IsChannelsLast(t unsafe.Pointer) bool { return C.lwr_is_channels_last(C.tensor(t)) == 1 }

// HasMKL reports whether libtorch does its CPU matrix products with
// Intel's MKL (at::hasMKL).
func HasMKL() bool { return C.lwr_has_mkl() == 1 }

// TorchVersion is libtorch's version, as its headers say ("2.11.0").
func TorchVersion() string { return C.GoString(C.lwr_torch_version()) }
