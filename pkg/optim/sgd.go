// Package optim implements SGD with momentum, weight decay and Nesterov as
// PyTorch's torch.optim.SGD does, with its state (the momentum buffers) in
// plain tensors that a checkpoint can save and restore. gotch's optimiser
// wraps libtorch's C++ one, whose state cannot be read back.
package optim

import (
	"fmt"

	"github.com/sugarme/gotch/ts"

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

// Step applies one update from the parameters' gradients and zeroes them.
// Parameters without a gradient (unused in the loss) are left alone.
func (o *SGD) Step() {
	libtorch.NoGrad(func() {
		if o.buffers == nil && o.Momentum > 0 {
			o.buffers = make([]*ts.Tensor, len(o.Params))
			for i, p := range o.Params {
				o.buffers[i] = p.MustZerosLike(false)
			}
		}
		for i, p := range o.Params {
			g := p.MustGrad(false)
			if !g.MustDefined() {
				g.MustDrop()
				continue
			}
			d := g
			if o.WeightDecay != 0 {
				d = p.MustMulScalar(ts.FloatScalar(o.WeightDecay), false).MustAdd(g, true)
			}
			step := d
			if o.Momentum > 0 {
				b := o.buffers[i]
				b.MustMulScalar_(ts.FloatScalar(o.Momentum))
				b.MustAdd_(d)
				step = b
				if o.Nesterov {
					step = b.MustMulScalar(ts.FloatScalar(o.Momentum), false).MustAdd(d, true)
				}
			}
			delta := step.MustMulScalar(ts.FloatScalar(o.LR), false)
			p.MustSub_(delta)
			delta.MustDrop()
			if step != d && step != o.bufferOf(i) {
				step.MustDrop()
			}
			if d != g {
				d.MustDrop()
			}
			g.MustZero_()
			g.MustDrop()
		}
	})
}

func (o *SGD) bufferOf(i int) *ts.Tensor {
	if o.buffers == nil {
		return nil
	}
	return o.buffers[i]
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
		if fmt.Sprint(b.MustSize()) != fmt.Sprint(o.Params[i].MustSize()) {
			return fmt.Errorf("sgd: momentum buffer %d has shape %v, parameter %v", i, b.MustSize(), o.Params[i].MustSize())
		}
	}
	o.buffers = bufs
	return nil
}
