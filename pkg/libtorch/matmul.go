package libtorch

import (
	"sync"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/lwr-go/lwr/internal/csrc"
)

// None is an undefined tensor, for an absent optional argument (no bias,
// no class weights) in libtorch calls: one for the process, never freed,
// not a new one per call left to Go's finalizers.
var None = ts.NewTensor()

// HasMKL reports whether libtorch does its CPU matrix products with Intel's
// MKL. PyPI's builds do; Debian's libtorch 1.13 calls the system BLAS
// (libblas.so.3), by default the reference BLAS.
var HasMKL = sync.OnceValue(csrc.HasMKL)

// convolutionMACs is the size (N·M·K multiply-adds) from which MatMulT
// takes the convolution route. Smaller products take at most ~4 ms with the
// reference BLAS and stay libtorch's linear, equal bit for bit to what
// PyTorch computes on the same libtorch (ResNet-32's classifier, LWR at
// CIFAR's sizes); LWR at ImageNet-LT's (1,000 × 2,048 × 2,048) is 250 times
// larger.
const convolutionMACs = 1 << 24

// ConvolutionRoute reports whether MatMulT computes a product of macs
// multiply-adds (N·M·K) of dtype on dev as a 1×1 convolution: float32 on
// a CPU whose libtorch has no MKL, from 2²⁴ multiply-adds. The reference
// BLAS multiplies float32 matrices at ~8 GFLOP/s on a 2-core AVX-512
// machine where oneDNN's convolutions reach ~400; with MKL, its matrix
// product is the faster of the two.
func ConvolutionRoute(dev gotch.Device, dtype gotch.DType, macs int64) bool {
	return dtype == gotch.Float && !dev.IsCuda() && !HasMKL() && macs >= convolutionMACs
}

// MatMulT returns a·bᵀ + bias: a [N,K], b [M,K], bias [M] (nil for none)
// → [N,M], as torch.nn.functional.linear, with gradients to all three.
// Where ConvolutionRoute says so (large float32 products on a CPU without
// MKL) it runs as a 1×1 convolution of N one-pixel images of K channels
// with M filters, which libtorch hands to oneDNN; the values equal
// linear's up to float rounding. Otherwise (CUDA, MKL, float64, small
// products) it is linear. The caller frees the result; a and b are left
// as they are.
func MatMulT(a, b, bias *ts.Tensor) *ts.Tensor {
	if bias == nil {
		bias = None
	}
	if !asConvolution(a, b) {
		return ts.MustLinear(a, b, bias)
	}
	a4 := a.MustUnsqueeze(2, false).MustUnsqueeze(3, true) // [N,K,1,1]
	defer a4.MustDrop()
	b4 := b.MustUnsqueeze(2, false).MustUnsqueeze(3, true) // [M,K,1,1]
	defer b4.MustDrop()
	y := ts.MustConv2d(a4, b4, bias, []int64{1, 1}, []int64{0, 0}, []int64{1, 1}, 1) // [N,M,1,1]
	return y.MustFlatten(1, -1, true)
}

// asConvolution reports whether MatMulT takes the convolution route for
// a·bᵀ. (gotch's Device of a CPU tensor has Value 1, not gotch.CPU's -1:
// ConvolutionRoute compares by kind.)
func asConvolution(a, b *ts.Tensor) bool {
	as, bs := a.MustSize(), b.MustSize()
	return len(as) == 2 && len(bs) == 2 && ConvolutionRoute(a.MustDevice(), a.DType(), as[0]*as[1]*bs[0])
}
