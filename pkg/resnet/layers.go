package resnet

import (
	"fmt"
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/lwr-go/lwr/pkg/libtorch"
)

// FanMode selects the fan of He initialisation.
type FanMode int

const (
	FanIn  FanMode = iota // std = √(2/fan_in): kaiming_normal_ defaults, the CIFAR reference
	FanOut                // std = √(2/fan_out): torchvision's ResNet convolutions
)

// heNormal adds a variable of the given shape under p, drawn from
// N(0, 2/fan) (He et al., for ReLU). gotch's own "Kaiming" init draws
// N(0,1), which does not train deep nets; this is PyTorch's kaiming_normal_.
// Parameters take gotch.DefaultDType (float32 unless a caller changes it, as
// torch.set_default_dtype: the float64 parity tests do).
func heNormal(p *nn.Path, name string, shape []int64, mode FanMode) *ts.Tensor {
	receptive := int64(1)
	for _, s := range shape[2:] {
		receptive *= s
	}
	fan := shape[1] * receptive
	if mode == FanOut {
		fan = shape[0] * receptive
	}
	return addNormal(p, name, shape, math.Sqrt(2/float64(fan)))
}

func addNormal(p *nn.Path, name string, shape []int64, std float64) *ts.Tensor {
	x := ts.MustRandn(shape, gotch.DefaultDType, p.Device())
	y := x.MustMulScalar(ts.FloatScalar(std), true)
	v := p.MustAdd(name, y, true)
	y.MustDrop()
	return v
}

func addUniform(p *nn.Path, name string, shape []int64, bound float64) *ts.Tensor {
	x := ts.MustZeros(shape, gotch.DefaultDType, p.Device())
	x.MustUniform_(-bound, bound)
	v := p.MustAdd(name, x, true)
	x.MustDrop()
	return v
}

func addConst(p *nn.Path, name string, shape []int64, value float64, trainable bool) *ts.Tensor {
	x := ts.MustOnes(shape, gotch.DefaultDType, p.Device())
	if value != 1 {
		x = x.MustMulScalar(ts.FloatScalar(value), true)
	}
	v := p.MustAdd(name, x, trainable)
	x.MustDrop()
	return v
}

// conv2d is a bias-free convolution: weight [out, in/groups, k, k].
type conv2d struct {
	w                   *ts.Tensor
	stride, pad, groups int64
}

func newConv(p *nn.Path, in, out, k, stride, groups int64, mode FanMode) conv2d {
	return conv2d{
		w:      heNormal(p, "weight", []int64{out, in / groups, k, k}, mode),
		stride: stride, pad: k / 2, groups: groups,
	}
}

func (c conv2d) forward(x *ts.Tensor) *ts.Tensor {
	return ts.MustConv2d(x, c.w, libtorch.None, []int64{c.stride, c.stride}, []int64{c.pad, c.pad}, []int64{1, 1}, c.groups)
}

// batchNorm is BatchNorm2d with running statistics (momentum 0.1, ε 1e-5,
// PyTorch's defaults), named weight, bias, running_mean, running_var;
// synchronised over data-parallel workers in training when sync is set.
type batchNorm struct {
	w, b, mean, variance *ts.Tensor
	normOptions
}

// normOptions say how batch norms run in training: over the global batch
// when sync is set; as libtorch's ops, not lwr's kernel, when plain is.
type normOptions struct {
	sync  SyncBatchNorm
	plain bool
}

// SyncBatchNorm is batch norm in training of x [N,C,H,W] over the global
// batch of data-parallel workers (dist.Group.SyncBatchNorm): weight w and
// bias b [C], running statistics mean and variance [C] updated with the
// momentum. It panics on failure, as gotch's Must functions do.
type SyncBatchNorm func(x, w, b, mean, variance *ts.Tensor, momentum, eps float64) *ts.Tensor

// Batch norm's momentum (of the running statistics) and ε, PyTorch's defaults.
const (
	bnMomentum = 0.1
	bnEps      = 1e-5
)

func newBatchNorm(p *nn.Path, ch int64, no normOptions) batchNorm {
	return batchNorm{
		w:           addConst(p, "weight", []int64{ch}, 1, true),
		b:           addConst(p, "bias", []int64{ch}, 0, true),
		mean:        addConst(p, "running_mean", []int64{ch}, 0, false),
		variance:    addConst(p, "running_var", []int64{ch}, 1, false),
		normOptions: no,
	}
}

func (bn batchNorm) forward(x *ts.Tensor, train bool) *ts.Tensor {
	if train && bn.sync != nil {
		return bn.sync(x, bn.w, bn.b, bn.mean, bn.variance, bnMomentum, bnEps)
	}
	return ts.MustBatchNorm(x, bn.w, bn.b, bn.mean, bn.variance, train, bnMomentum, bnEps, true)
}

// convBN runs conv then batch norm, freeing the intermediate.
func convBN(c conv2d, bn batchNorm, x *ts.Tensor, train bool) *ts.Tensor {
	h := c.forward(x)
	defer h.MustDrop()
	return bn.forward(h, train)
}

// convBNRelu is convBNAddRelu without a shortcut.
func convBNRelu(c conv2d, bn batchNorm, x *ts.Tensor, train bool) *ts.Tensor {
	return convBNAddRelu(c, bn, x, nil, train)
}

// convBNAddRelu returns relu(bn(conv(x)) + short), short nil for none: in
// training, where it applies and the options allow, by lwr's kernel
// (libtorch.BatchNormReLU); else the add and the ReLU run in place on the
// batch norm's output (not needed by autograd), as torchvision's blocks do.
func convBNAddRelu(c conv2d, bn batchNorm, x, short *ts.Tensor, train bool) *ts.Tensor {
	h := c.forward(x)
	defer h.MustDrop()
	if train && bn.sync == nil && !bn.plain {
		if y := libtorch.BatchNormReLU(h, short, bn.w, bn.b, bn.mean, bn.variance, bnMomentum, bnEps); y != nil {
			return y
		}
	}
	y := bn.forward(h, train)
	if short != nil {
		y.MustAdd_(short)
	}
	y.MustRelu_()
	return y
}

// blockedConvBNAddRelu is convBNAddRelu in training on blocked
// activations (x blocked, or an image batch for the stem; short nil or
// blocked), all by lwr's kernels, blocked as bl says. It raises the
// error (libtorch.Raise) where they do not apply.
func blockedConvBNAddRelu(c conv2d, bn batchNorm, x, short *ts.Tensor, bl blocking) *ts.Tensor {
	return blockedConvNorm(c, x, bl, func(h *ts.Tensor) *ts.Tensor {
		return libtorch.BatchNormReLU(h, short, bn.w, bn.b, bn.mean, bn.variance, bnMomentum, bnEps)
	})
}

// blockedConvBN is convBN in training on blocked activations (a
// bottleneck's downsample): the batch norm by the same kernel, without
// shortcut and ReLU (libtorch.BatchNorm).
func blockedConvBN(c conv2d, bn batchNorm, x *ts.Tensor, bl blocking) *ts.Tensor {
	return blockedConvNorm(c, x, bl, func(h *ts.Tensor) *ts.Tensor {
		return libtorch.BatchNorm(h, bn.w, bn.b, bn.mean, bn.variance, bnMomentum, bnEps)
	})
}

// blockedConvNorm is norm(conv(x)), the convolution by libtorch.ConvBlocked
// in blocks of bl.b channels by algorithm bl.alg, its output freed; norm
// returns nil where lwr's batch-norm kernel declines. It raises the error
// (libtorch.Raise) where either does not apply.
func blockedConvNorm(c conv2d, x *ts.Tensor, bl blocking, norm func(h *ts.Tensor) *ts.Tensor) *ts.Tensor {
	if c.groups != 1 {
		libtorch.Raise(fmt.Errorf("resnet: blocked activations: a convolution in %d groups", c.groups))
	}
	h := libtorch.ConvBlocked(x, c.w, bl.b, c.stride, c.pad, bl.alg)
	defer h.MustDrop()
	y := norm(h)
	if y == nil {
		libtorch.Raise(fmt.Errorf("resnet: lwr's batch-norm kernel declined blocked activations %v", h.MustSize()))
	}
	return y
}

// Classifier is the last layer: logits [B,C] of features [B,D]. Its
// weight is [C,D], one row per class, which LWR reads.
type Classifier struct {
	Weight *ts.Tensor // [C,D]
	Bias   *ts.Tensor // [C]; nil for the normalised classifier
	// Normed makes logits cosines, cos(f_b, w_c): LDAM's normalised
	// classifier (its reference stores the weight transposed, [D,C]).
	Normed bool
}

// newClassifier is nn.Linear's layout and init, U(-1/√D, 1/√D), or with
// normed LDAM's: U(-1,1) then rows renormed (the scale does not matter).
func newClassifier(p *nn.Path, in, classes int64, normed bool, mode FanMode) *Classifier {
	if normed {
		return &Classifier{Weight: addUniform(p, "weight", []int64{classes, in}, 1), Normed: true}
	}
	c := &Classifier{}
	if mode == FanIn {
		// The CIFAR reference applies kaiming_normal_ to the Linear weight too.
		c.Weight = heNormal(p, "weight", []int64{classes, in}, FanIn)
	} else {
		c.Weight = addUniform(p, "weight", []int64{classes, in}, 1/math.Sqrt(float64(in)))
	}
	c.Bias = addUniform(p, "bias", []int64{classes}, 1/math.Sqrt(float64(in)))
	return c
}

// Forward returns logits [B,C] of features f [B,D].
func (c *Classifier) Forward(f *ts.Tensor) *ts.Tensor {
	if !c.Normed {
		return libtorch.MatMulT(f, c.Weight, c.Bias)
	}
	fn := normalize(f)
	defer fn.MustDrop()
	wn := normalize(c.Weight)
	defer wn.MustDrop()
	return libtorch.MatMulT(fn, wn, nil)
}

func normalize(x *ts.Tensor) *ts.Tensor {
	n := x.MustNormScalaroptDim(ts.FloatScalar(2), []int64{1}, true, false).MustClampMin(ts.FloatScalar(1e-12), true)
	defer n.MustDrop()
	return x.MustDiv(n, false)
}
