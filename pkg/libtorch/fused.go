package libtorch

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/sugarme/gotch/ts"

	"github.com/lwr-go/lwr/internal/csrc"
)

// FusedAvailable reports whether this build can run FusedConv: lwr was
// built against the headers of the oneDNN that libtorch links (Debian's
// libtorch with libdnnl-dev). PyPI's torch carries its own oneDNN, hidden
// inside libtorch_cpu.so, so there it is false.
func FusedAvailable() bool { return csrc.FusedAvailable() }

// ErrNoFused is returned by NewFusedConv when FusedAvailable is false.
var ErrNoFused = errors.New("fused evaluation is not built in: it needs Debian's libtorch and oneDNN's headers (apt-get install libdnnl-dev, then make setup)")

// FusedConv is a convolution and the batch norm after it, in evaluation
// (running statistics), folded into one oneDNN convolution with a bias,
// which can also add a residual and apply ReLU in the same pass: one
// memory pass over the output where libtorch makes three or four. CPU and
// float32 only; no gradients. The folded weights are a copy: fold again
// after the network's weights or statistics change.
type FusedConv struct {
	h unsafe.Pointer
}

// NewFusedConv folds the convolution weight w [O, I/groups, kh, kw]
// (stride and pad, each (height, width)) and the batch norm gamma, beta,
// mean, variance [O] with ε eps: weight w·s and bias beta − mean·s for
// s = gamma/√(variance + ε), computed in float64 and kept in float32.
func NewFusedConv(w, gamma, beta, mean, variance *ts.Tensor, eps float64, stride, pad [2]int64, groups int64) (*FusedConv, error) {
	if !FusedAvailable() {
		return nil, ErrNoFused
	}
	h, msg := csrc.FusedNew(w.Ctensor(), gamma.Ctensor(), beta.Ctensor(), mean.Ctensor(), variance.Ctensor(), eps, stride, pad, groups)
	if msg != "" {
		return nil, errors.New(msg)
	}
	return &FusedConv{h: h}, nil
}

// Forward returns relu?(conv(x) + bias + add) in channels-last memory for
// x [N, I, H, W] float32 on the CPU (any layout). add, nil for none, has
// the output's shape; when it is channels-last the result is computed in
// its memory, so add must not be used afterwards (the caller still frees
// its handle).
func (c *FusedConv) Forward(x, add *ts.Tensor, relu bool) (*ts.Tensor, error) {
	if c.h == nil {
		return nil, errors.New("fused convolution: used after Close")
	}
	var a unsafe.Pointer
	if add != nil {
		a = add.Ctensor()
	}
	out, msg := csrc.FusedRun(c.h, x.Ctensor(), a, relu)
	if msg != "" {
		return nil, fmt.Errorf("%s (input %v)", msg, x.MustSize())
	}
	return wrap(out), nil
}

// Close frees the folded weights and the kernels built for them.
func (c *FusedConv) Close() {
	if c.h != nil {
		csrc.FusedFree(c.h)
		c.h = nil
	}
}
