// Package optim implements SGD with momentum, weight decay and Nesterov as
// PyTorch's torch.optim.SGD does, with its state (the momentum buffers) in
// plain tensors that a checkpoint can save and restore. gotch's optimiser
// wraps libtorch's C++ one, whose state cannot be read back.
package optim

import (
	"fmt"
	"slices"
	"unsafe"

	"github.com/sugarme/gotch/ts"

	"github.com/lwr-go/lwr/internal/csrc"
	"github.com/lwr-go/lwr/pkg/libtorch"
)

// SGD updates parameters in place. For each parameter p with gradient g:
//
//	d = g + wd·p
//	b = μ·b + d                 (b starts at 0, so the first b is d)
//	p = p - lr·(d + μ·b)        with Nesterov, else p - lr·b
type SGD struct {
	Params      []*ts.Tensor
	LR          float64 // learning rate; the trainer sets it every epoch
	Momentum    float64 // μ (0.9 in the recipes)
	WeightDecay float64 // wd, applied to every parameter (5e-4 CIFAR, 2e-4 ImageNet)
	Nesterov    bool
	buffers     []*ts.Tensor // momentum buffers, one per parameter; nil until the first step
}

// NewSGD returns an optimiser over params (which must require grad).
func NewSGD(params []*ts.Tensor, lr, momentum, weightDecay float64, nesterov bool) (*SGD, error) {
	switch {
	case lr < 0:
		return nil, fmt.Errorf("sgd: learning rate %v: want ≥ 0", lr)
	case momentum < 0 || momentum >= 1:
		return nil, fmt.Errorf("sgd: momentum %v: want 0 ≤ μ < 1", momentum)
	case weightDecay < 0:
		return nil, fmt.Errorf("sgd: weight decay %v: want ≥ 0", weightDecay)
	case nesterov && momentum == 0:
		return nil, fmt.Errorf("sgd: Nesterov needs momentum > 0")
	}
	return &SGD{Params: params, LR: lr, Momentum: momentum, WeightDecay: weightDecay, Nesterov: nesterov}, nil
}

// Step applies one update from the parameters' gradients and zeroes them,
// in a single call into libtorch (one cgo call for all parameters instead
// of several per parameter). Parameters without a gradient (unused in the
// loss) are left alone.
func (o *SGD) Step() {
	if o.buffers == nil && o.Momentum > 0 {
		o.buffers = make([]*ts.Tensor, len(o.Params))
		libtorch.NoGrad(func() {
			for i, p := range o.Params {
				o.buffers[i] = p.MustZerosLike(false)
			}
		})
	}
	params := make([]unsafe.Pointer, len(o.Params))
	for i, p := range o.Params {
		params[i] = p.Ctensor()
	}
	var bufs []unsafe.Pointer
	if o.Momentum > 0 {
		bufs = make([]unsafe.Pointer, len(o.buffers))
		for i, b := range o.buffers {
			bufs[i] = b.Ctensor()
		}
	}
	if msg := csrc.SGDStep(params, bufs, o.LR, o.Momentum, o.WeightDecay, o.Nesterov); msg != "" {
		panic(fmt.Errorf("sgd step: libtorch: %s", msg))
	}
}

// Buffers are the momentum buffers, one per parameter (nil before the
// first step or without momentum), for checkpoints.
func (o *SGD) Buffers() []*ts.Tensor { return o.buffers }

// SetBuffers restores momentum buffers saved from Buffers; they must match
// the parameters in number and shape. The optimiser takes ownership.
func (o *SGD) SetBuffers(bufs []*ts.Tensor) error {
	if bufs == nil {
		o.buffers = nil
		return nil
	}
	if len(bufs) != len(o.Params) {
		return fmt.Errorf("sgd: %d momentum buffers for %d parameters", len(bufs), len(o.Params))
	}
	for i, b := range bufs {
		if !slices.Equal(b.MustSize(), o.Params[i].MustSize()) {
			return fmt.Errorf("sgd: momentum buffer %d has shape %v, parameter %v", i, b.MustSize(), o.Params[i].MustSize())
		}
	}
	o.buffers = bufs
	return nil
}
