package resnet

import (
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// none stands for an absent optional tensor (no bias) in libtorch calls.
var none = ts.NewTensor()

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
	return ts.MustConv2d(x, c.w, none, []int64{c.stride, c.stride}, []int64{c.pad, c.pad}, []int64{1, 1}, c.groups)
}

// batchNorm is BatchNorm2d with running statistics (momentum 0.1, ε 1e-5,
// PyTorch's defaults), named weight, bias, running_mean, running_var;
// synchronised over data-parallel workers in training when sum is set.
type batchNorm struct {
	w, b, mean, variance *ts.Tensor
	sum                  StatsSum
}

// StatsSum returns the sum of a tensor over data-parallel workers as a new
// tensor, differentiably (its gradient is summed over the workers too).
type StatsSum func(*ts.Tensor) *ts.Tensor

// Batch norm's momentum (of the running statistics) and ε, PyTorch's defaults.
const (
	bnMomentum = 0.1
	bnEps      = 1e-5
)

func newBatchNorm(p *nn.Path, ch int64, sum StatsSum) batchNorm {
	return batchNorm{
		w:        addConst(p, "weight", []int64{ch}, 1, true),
		b:        addConst(p, "bias", []int64{ch}, 0, true),
		mean:     addConst(p, "running_mean", []int64{ch}, 0, false),
		variance: addConst(p, "running_var", []int64{ch}, 1, false),
		sum:      sum,
	}
}

func (bn batchNorm) forward(x *ts.Tensor, train bool) *ts.Tensor {
	if train && bn.sum != nil {
		return bn.syncForward(x)
	}
	return ts.MustBatchNorm(x, bn.w, bn.b, bn.mean, bn.variance, train, bnMomentum, bnEps, true)
}

// syncForward is batch norm in training over the global batch: each
// worker sums its x [N,C,H,W] and x² per channel, shifted by the running
// mean K (the same on every worker; it keeps E[x²] − E[x]² from
// cancelling), the sums and counts are summed over the workers, and
//
//	mean = K + Σ(x−K)/n,  var = Σ(x−K)²/n − (mean−K)²,
//	y = (x − mean)·w/√(var+ε) + b
//
// with n the images × pixels of all workers. The running statistics take
// mean and the unbiased n/(n−1)·var, as PyTorch's SyncBatchNorm does.
func (bn batchNorm) syncForward(x *ts.Tensor) *ts.Tensor {
	var free []*ts.Tensor
	keep := func(t *ts.Tensor) *ts.Tensor { free = append(free, t); return t }
	defer func() {
		for _, t := range free {
			t.MustDrop()
		}
	}()
	size := x.MustSize()
	ch := size[1]
	perChannel := []int64{1, ch, 1, 1}
	dims := []int64{0, 2, 3}
	k := keep(keep(bn.mean.MustDetach(false)).MustView(perChannel, false))
	d := keep(x.MustSub(k, false)) // x − K
	s1 := keep(d.MustSumDimIntlist(dims, false, x.DType(), false))
	s2 := keep(keep(d.MustMul(d, false)).MustSumDimIntlist(dims, false, x.DType(), false))
	count := keep(ts.MustFull([]int64{1}, ts.FloatScalar(float64(size[0]*size[2]*size[3])), x.DType(), x.MustDevice()))
	total := keep(bn.sum(keep(ts.MustCat([]*ts.Tensor{s1, s2, count}, 0))))
	n := keep(total.MustNarrow(0, 2*ch, 1, false))
	shift := keep(keep(total.MustNarrow(0, 0, ch, false)).MustDiv(n, false)) // mean − K
	variance := keep(keep(keep(total.MustNarrow(0, ch, ch, false)).MustDiv(n, false)).MustSub(keep(shift.MustMul(shift, false)), false))
	mean := keep(shift.MustAdd(keep(bn.mean.MustDetach(false)), false))
	scale := keep(keep(keep(variance.MustAddScalar(ts.FloatScalar(bnEps), false)).MustRsqrt(false)).MustMul(bn.w, false))
	y := keep(keep(x.MustSub(keep(mean.MustView(perChannel, false)), false)).MustMul(keep(scale.MustView(perChannel, false)), false))
	out := y.MustAdd(keep(bn.b.MustView(perChannel, false)), false)
	updateRunning(bn.mean, mean, 1)
	nv := n.Float64Values(false)[0]
	updateRunning(bn.variance, variance, nv/math.Max(nv-1, 1))
	return out
}

// updateRunning sets r ← (1−bnMomentum)·r + bnMomentum·f·v, without
// recording gradients.
func updateRunning(r, v *ts.Tensor, f float64) {
	prev := ts.MustGradSetEnabled(false)
	defer ts.MustGradSetEnabled(prev)
	a := r.MustMulScalar(ts.FloatScalar(1-bnMomentum), false)
	b := v.MustMulScalar(ts.FloatScalar(bnMomentum*f), false)
	next := a.MustAdd(b, true)
	b.MustDrop()
	r.Copy_(next)
	next.MustDrop()
}

// convBN runs conv then batch norm, freeing the intermediate.
func convBN(c conv2d, bn batchNorm, x *ts.Tensor, train bool) *ts.Tensor {
	h := c.forward(x)
	defer h.MustDrop()
	return bn.forward(h, train)
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
		return ts.MustLinear(f, c.Weight, c.Bias)
	}
	fn := normalize(f)
	defer fn.MustDrop()
	wn := normalize(c.Weight)
	defer wn.MustDrop()
	return ts.MustLinear(fn, wn, none)
}

func normalize(x *ts.Tensor) *ts.Tensor {
	n := x.MustNormScalaroptDim(ts.FloatScalar(2), []int64{1}, true, false).MustClampMin(ts.FloatScalar(1e-12), true)
	defer n.MustDrop()
	return x.MustDiv(n, false)
}
