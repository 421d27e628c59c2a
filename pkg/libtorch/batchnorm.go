package libtorch

import (
	"unsafe"

	"github.com/sugarme/gotch/ts"

	"github.com/lwr-go/lwr/internal/csrc"
)

// BatchNormReLU returns relu(batch_norm(x) + res) in training, as one
// autograd node run by lwr's own kernel (internal/csrc/batchnorm.cpp): x float32 on the CPU, [N,C,H,W] channels-last or
// in the Blocked format [N,C/b,H,W,b], with N·H·W > 1; res nil or a
// float32 CPU tensor of x's shape (a residual block's shortcut); w and b
// the affine weight and bias [C]; mean and variance the running
// statistics [C], float32, updated in place with the momentum as
// torch.nn.BatchNorm2d updates them (variance unbiased).
// The batch is normalised with its mean and biased variance plus eps.
//
// libtorch computes the same with three or four ops, each a pass over
// the activations, and keeps the batch norm's output for ReLU's backward;
// this makes two passes forward and two backward, sums the statistics in
// double in blocks fixed by the shape (the result does not depend on the
// thread count, nor on the CPU's vector width), and equals libtorch's
// result up to float rounding. It returns nil, having done nothing, for
// any other case: the caller runs libtorch's ops. It panics with the
// libtorch error on failure, as gotch's Must functions do. The caller
// frees the result; x and res are left as they are.
func BatchNormReLU(x, res, w, b, mean, variance *ts.Tensor, momentum, eps float64) *ts.Tensor {
	return batchNorm(x, res, w, b, mean, variance, momentum, eps, true)
}

// BatchNorm is BatchNormReLU without the shortcut and the ReLU:
// batch_norm(x) in training (a bottleneck's downsample), by the same
// kernel, for the same cases, nil where it does not apply.
func BatchNorm(x, w, b, mean, variance *ts.Tensor, momentum, eps float64) *ts.Tensor {
	return batchNorm(x, nil, w, b, mean, variance, momentum, eps, false)
}

func batchNorm(x, res, w, b, mean, variance *ts.Tensor, momentum, eps float64, relu bool) *ts.Tensor {
	var r unsafe.Pointer
	if res != nil {
		r = res.Ctensor()
	}
	out, msg := csrc.BNReLU(x.Ctensor(), r, w.Ctensor(), b.Ctensor(), mean.Ctensor(), variance.Ctensor(), momentum, eps, relu)
	if msg != "" {
		panic(kernelError(msg))
	}
	if out == nil {
		return nil
	}
	return wrap(out)
}
