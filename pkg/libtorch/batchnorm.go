package libtorch

import (
	lib "github.com/sugarme/gotch/libtch"
	"github.com/sugarme/gotch/ts"
)

// BatchNormReLU returns relu(batch_norm(x) + res) in training, as one
// autograd node run by lwr's own kernel (lwr_bn.cpp, written by
// tools/torchsetup): x float32 on the CPU, [N,C,H,W] channels-last or
// in the Blocked format [N,C/8,H,W,8], with N·H·W > 1; res nil or a
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
	var r lib.Ctensor
	if res != nil {
		r = lib.Ctensor(res.Ctensor())
	}
	out, ok := lib.LwrBNReLU(lib.Ctensor(x.Ctensor()), r, lib.Ctensor(w.Ctensor()), lib.Ctensor(b.Ctensor()),
		lib.Ctensor(mean.Ctensor()), lib.Ctensor(variance.Ctensor()), momentum, eps)
	if err := ts.TorchErr(); err != nil {
		panic(err)
	}
	if !ok {
		return nil
	}
	return ts.New(out)
}
