package resnet

import (
	"errors"
	"fmt"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/lwr-go/lwr/pkg/libtorch"
)

// ErrNotFoldable is returned (wrapped) by Fold for a network or a machine
// it cannot fold: see Fold.
var ErrNotFoldable = errors.New("cannot fold batch norm for evaluation")

// Folded is a network's evaluation forward pass with each convolution and
// the batch norm after it folded into one oneDNN convolution, which also
// adds the residual and applies ReLU (libtorch.FusedConv): the same
// function as ForwardT(x, false) up to float32 rounding, in one pass over
// each activation where libtorch makes three or four. It holds a copy of
// the weights and running statistics at the time of Fold (fold again after
// they change; the classifier is the network's own) and runs on the CPU in
// float32, without gradients. Close frees it.
type Folded struct {
	stem    *libtorch.FusedConv
	maxPool bool // ImageNet's 3×3 max pool (stride 2) after the stem
	blocks  []foldedBlock
	head    *Classifier
	convs   []*libtorch.FusedConv // all of them, for Close
}

// foldedBlock is a residual block: convs[i] then ReLU, the last one adding
// the shortcut first; the shortcut is the block's input, down's output
// (bottleneck downsample) or the input subsampled by 2 and padded with
// padChannels zero channels on each side (option A).
type foldedBlock struct {
	convs       []*libtorch.FusedConv
	down        *libtorch.FusedConv
	padChannels int64
}

// Fold folds n, a *CIFARResNet or *ImageNetResNet whose parameters are
// float32 on the CPU, for evaluation. The error wraps ErrNotFoldable for
// another network, device or dtype, and libtorch.ErrNoFused when the build
// lacks the fused convolutions.
func Fold(n Net) (*Folded, error) {
	if !libtorch.FusedAvailable() {
		return nil, fmt.Errorf("%w: %w", ErrNotFoldable, libtorch.ErrNoFused)
	}
	f := &Folded{}
	err := f.build(n)
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// layer is a convolution and the batch norm after it.
type layer struct {
	c  conv2d
	bn batchNorm
}

// blockLayers is a residual block to fold: layers in order, the
// bottleneck's downsample (nil for none), option A's padding.
type blockLayers struct {
	layers      []layer
	down        *layer
	padChannels int64
}

func (f *Folded) build(n Net) error {
	var stem layer
	var blocks []blockLayers
	switch m := n.(type) {
	case *CIFARResNet:
		stem, f.head = layer{m.conv1, m.bn1}, m.head
		for _, b := range m.blocks {
			blocks = append(blocks, blockLayers{layers: []layer{{b.conv1, b.bn1}, {b.conv2, b.bn2}}, padChannels: b.padChannels})
		}
	case *ImageNetResNet:
		stem, f.head, f.maxPool = layer{m.conv1, m.bn1}, m.head, true
		for _, b := range m.blocks {
			bl := blockLayers{layers: []layer{{b.conv1, b.bn1}, {b.conv2, b.bn2}, {b.conv3, b.bn3}}}
			if b.down != nil {
				bl.down = &layer{b.down.conv, b.down.bn}
			}
			blocks = append(blocks, bl)
		}
	default:
		return fmt.Errorf("%w: a %T", ErrNotFoldable, n)
	}
	if err := checkFoldable(stem.c); err != nil {
		return err
	}
	var err error
	if f.stem, err = f.fold(stem); err != nil {
		return err
	}
	for _, b := range blocks {
		fb := foldedBlock{padChannels: b.padChannels}
		for _, l := range b.layers {
			c, err := f.fold(l)
			if err != nil {
				return err
			}
			fb.convs = append(fb.convs, c)
		}
		if b.down != nil {
			if fb.down, err = f.fold(*b.down); err != nil {
				return err
			}
		}
		f.blocks = append(f.blocks, fb)
	}
	return nil
}

// checkFoldable refuses parameters that are not float32 on the CPU.
func checkFoldable(c conv2d) error {
	if c.w.MustDevice().IsCuda() {
		return fmt.Errorf("%w: the network is on %v, fused convolutions run on the CPU", ErrNotFoldable, c.w.MustDevice())
	}
	if k := c.w.DType(); k != gotch.Float {
		return fmt.Errorf("%w: the network is %v, fused convolutions are float32", ErrNotFoldable, k)
	}
	return nil
}

func (f *Folded) fold(l layer) (*libtorch.FusedConv, error) {
	c, bn := l.c, l.bn
	fc, err := libtorch.NewFusedConv(c.w, bn.w, bn.b, bn.mean, bn.variance, bnEps,
		[2]int64{c.stride, c.stride}, [2]int64{c.pad, c.pad}, c.groups)
	if err != nil {
		return nil, err
	}
	f.convs = append(f.convs, fc)
	return fc, nil
}

// ForwardT implements Net for evaluation: logits [B,C] and features [B,D]
// of images x [B,ch,H,W]. It panics when train is true, and raises
// (libtorch.Raise) the fused convolutions' errors, which libtorch.Catch
// returns.
func (f *Folded) ForwardT(x *ts.Tensor, train bool) (logits, features *ts.Tensor) {
	if train {
		panic("resnet: a Folded network only evaluates")
	}
	h := fused(f.stem, x, nil, true)
	if f.maxPool {
		h = h.MustMaxPool2d([]int64{3, 3}, []int64{2, 2}, []int64{1, 1}, []int64{1, 1}, false, true)
	}
	features = pooledFeatures(h, f.blocks, false)
	return f.head.Forward(features), features
}

// forward runs the block on x (left for the caller to free); there is no
// training mode.
func (b foldedBlock) forward(x *ts.Tensor, _ bool) *ts.Tensor {
	h := x
	last := len(b.convs) - 1
	for _, c := range b.convs[:last] {
		next := fused(c, h, nil, true)
		if h != x {
			h.MustDrop()
		}
		h = next
	}
	var short *ts.Tensor
	switch {
	case b.down != nil:
		short = fused(b.down, x, nil, false)
	case b.padChannels > 0:
		short = optionA(x, b.padChannels)
	default:
		// The block's input itself: the result is computed in its memory
		// (the caller drops it next).
		short = x.MustShallowClone()
	}
	out := fused(b.convs[last], h, short, true)
	short.MustDrop()
	if h != x {
		h.MustDrop()
	}
	return out
}

// fused runs c, raising (libtorch.Raise) its error.
func fused(c *libtorch.FusedConv, x, add *ts.Tensor, relu bool) *ts.Tensor {
	y, err := c.Forward(x, add, relu)
	if err != nil {
		libtorch.Raise(err)
	}
	return y
}

// Head implements Net: the network's own classifier.
func (f *Folded) Head() *Classifier { return f.head }

// Close frees the folded convolutions.
func (f *Folded) Close() {
	for _, c := range f.convs {
		c.Close()
	}
	f.convs = nil
}
