// Package resnet builds the networks of the long-tailed benchmarks on gotch:
// ResNet-32 for 32×32 images (CIFAR-LT, Fashion-MNIST-LT) as in the LDAM-DRW
// reference code, and ResNet-50 (optionally ResNeXt-50 32×4d) for ImageNet-LT
// with torchvision's layout and parameter names.
//
// Each builder takes the variable-store path first; parameters are named as
// PyTorch names them (layer1.0.conv1.weight, downsample.1.running_mean, …).
package resnet

import (
	"errors"
	"fmt"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/lwr-go/lwr/pkg/libtorch"
)

// Net is a classifier network.
type Net interface {
	// ForwardT returns logits [B,C] and features [B,D] (the classifier's
	// input, which IB loss reads) of images x [B,ch,H,W]. train selects
	// batch statistics and updates the running ones. The caller frees both.
	ForwardT(x *ts.Tensor, train bool) (logits, features *ts.Tensor)
	// Head is the classifier, whose weight [C,D] LWR reads.
	Head() *Classifier
}

// Options are the settings shared by the builders.
type Options struct {
	Classes    int64 // number of classes C
	InChannels int64 // image channels: 3 (RGB), 1 (Fashion-MNIST)
	// NormedClassifier gives cosine logits, LDAM's normalised classifier.
	NormedClassifier bool
	// SyncBatchNorm, when set, replaces every batch norm in training
	// (--sync-bn: each layer normalises with the mean and variance of the
	// whole global batch of data-parallel workers).
	SyncBatchNorm SyncBatchNorm
	// LibtorchBatchNorm runs each batch norm, residual add and ReLU in
	// training as libtorch's separate ops, as PyTorch computes them. By
	// default, where the activations are float32, channels-last and on
	// the CPU, lwr's kernel runs them as one (libtorch.BatchNormReLU): the
	// same values up to float rounding, in fewer passes over memory.
	LibtorchBatchNorm bool
	// Blocked keeps the activations in training in oneDNN's channel
	// blocks (libtorch.Blocked, [N, C/b, H, W, b]): convolutions by
	// libtorch.ConvBlocked, batch norms by lwr's kernel, with no reorder
	// between them (a ResNet-32 step takes ~9% less time on AVX2 CPUs,
	// ~5% with AVX-512, and ~10-20% more with Winograd (ConvAlgorithm);
	// ResNet-50's 1.1-1.5× less; BENCHMARKS.md). The same values up to float32 rounding. CPU and
	// float32 only, where libtorch.FusedAvailable; not with SyncBatchNorm
	// or LibtorchBatchNorm. Evaluation runs as without it. ResNet-32 and
	// ResNet-50; ResNeXt-50 (grouped convolutions) refuses it.
	Blocked bool
	// Block is the channel block b of blocked activations, 8 or 16; 0
	// means libtorch.TrainingBlock (oneDNN's choice on this CPU).
	Block int64
	// ConvAlgorithm is how blocked activations' convolutions are computed
	// ("" is libtorch.ConvAuto: Winograd for the 3×3 stride-1 ones where
	// it measured faster: of 32 channels or more in blocks of 16, of 16 to
	// 256 in blocks of 8).
	ConvAlgorithm libtorch.ConvAlgorithm
}

// blocking is how a network's activations are laid out in training: in
// blocks of b channels (0: not blocked), convolved by alg.
type blocking struct {
	b   int64
	alg libtorch.ConvAlgorithm
}

// blocking is the layout a network built with o trains in: b 0 when not
// Blocked, else Block or libtorch.TrainingBlock.
func (o Options) blocking() blocking {
	if !o.Blocked {
		return blocking{}
	}
	b := o.Block
	if b == 0 {
		b = libtorch.TrainingBlock()
	}
	return blocking{b, o.ConvAlgorithm}
}

// norm is what each batch norm takes from the options.
func (o Options) norm() normOptions {
	return normOptions{sync: o.SyncBatchNorm, plain: o.LibtorchBatchNorm}
}

func (o Options) validate() error {
	if o.Classes < 2 {
		return fmt.Errorf("resnet: %d classes: want ≥ 2", o.Classes)
	}
	if o.InChannels < 1 {
		return fmt.Errorf("resnet: %d input channels: want ≥ 1", o.InChannels)
	}
	if o.Block != 0 && !libtorch.ValidBlock(o.Block) {
		return fmt.Errorf("resnet: blocks of %d channels: want 8 or 16", o.Block)
	}
	if _, err := libtorch.ParseConvAlgorithm(string(o.ConvAlgorithm)); err != nil {
		return fmt.Errorf("resnet: %w", err)
	}
	if o.Blocked && (o.SyncBatchNorm != nil || o.LibtorchBatchNorm) {
		return errors.New("resnet: blocked activations need lwr's batch-norm kernel: not with synchronised or libtorch's batch norms")
	}
	return nil
}

// validateBlocked checks that the network on p can run blocked.
func (o Options) validateBlocked(p *nn.Path) error {
	switch {
	case !o.Blocked:
		return nil
	case !libtorch.FusedAvailable():
		return libtorch.ErrNoBlocked
	case p.Device().IsCuda():
		return errors.New("resnet: blocked activations are for CPUs; on a GPU run channels-last or contiguous")
	case gotch.DefaultDType != gotch.Float:
		return fmt.Errorf("resnet: blocked activations are float32; parameters are %v", gotch.DefaultDType)
	}
	return nil
}

// basicBlock is the CIFAR ResNet block: two 3×3 convolutions with an
// identity shortcut, or, where the shape changes, option A: subsample by 2
// and pad the new channels with zeros (no parameters).
type basicBlock struct {
	conv1, conv2 conv2d
	bn1, bn2     batchNorm
	padChannels  int64 // option A: channels padded on each side; 0 for identity
}

func newBasicBlock(p *nn.Path, in, out, stride int64, no normOptions) basicBlock {
	b := basicBlock{
		conv1: newConv(p.Sub("conv1"), in, out, 3, stride, 1, FanIn),
		bn1:   newBatchNorm(p.Sub("bn1"), out, no),
		conv2: newConv(p.Sub("conv2"), out, out, 3, 1, 1, FanIn),
		bn2:   newBatchNorm(p.Sub("bn2"), out, no),
	}
	if stride != 1 || in != out {
		b.padChannels = (out - in) / 2
	}
	return b
}

func (b basicBlock) forward(x *ts.Tensor, train bool) *ts.Tensor {
	h := convBNRelu(b.conv1, b.bn1, x, train)
	defer h.MustDrop()
	short := x
	if b.padChannels > 0 {
		short = optionA(x, b.padChannels)
		defer short.MustDrop()
	}
	return convBNAddRelu(b.conv2, b.bn2, h, short, train)
}

// forwardBlocked is forward in training on activations blocked as bl says.
func (b basicBlock) forwardBlocked(x *ts.Tensor, bl blocking) *ts.Tensor {
	h := blockedConvBNAddRelu(b.conv1, b.bn1, x, nil, bl)
	defer h.MustDrop()
	short := x
	if b.padChannels > 0 {
		short = optionABlocked(x, b.padChannels)
		defer short.MustDrop()
	}
	return blockedConvBNAddRelu(b.conv2, b.bn2, h, short, bl)
}

// optionABlocked is optionA of blocked x [B,C/b,H,W,b]: subsampled by 2,
// and pad zero channels on each side. Where pad is a multiple of b, that
// is pad/b zero blocks on each side. Where pad is b/2 more than that (16
// channels a block, ResNet-32's first 8-channel pad), each output block is
// the upper half of one input block and the lower half of the next:
// channel c of the output is channel c - pad of x. Other pads raise an
// error.
func optionABlocked(x *ts.Tensor, pad int64) *ts.Tensor {
	size := x.MustSize()
	b := size[4]
	sub := x.MustSlice(2, []int64{0}, []int64{size[2]}, 2, false).MustSlice(3, []int64{0}, []int64{size[3]}, 2, true)
	if pad%b == 0 {
		p := pad / b
		return sub.MustConstantPadNd([]int64{0, 0, 0, 0, 0, 0, p, p}, true)
	}
	if pad%b != b/2 {
		sub.MustDrop()
		libtorch.Raise(fmt.Errorf("resnet: option-A shortcut pads %d channels a side: blocked activations in %d-channel blocks want a multiple of %d", pad, b, b/2))
	}
	defer sub.MustDrop()
	s := sub.MustSize()
	halves := sub.MustReshape([]int64{s[0], s[1], s[2], s[3], 2, b / 2}, false)
	defer halves.MustDrop()
	// Output block j holds the upper half of input block j-k-1, then the
	// lower half of input block j-k, k whole blocks of pad: both padded to
	// the output's C/b + 2k + 1 blocks.
	k := pad / b
	lower := halves.MustSelect(4, 0, false).MustConstantPadNd([]int64{0, 0, 0, 0, 0, 0, k, k + 1}, true)
	defer lower.MustDrop()
	upper := halves.MustSelect(4, 1, false).MustConstantPadNd([]int64{0, 0, 0, 0, 0, 0, k + 1, k}, true)
	defer upper.MustDrop()
	out := ts.MustStack([]*ts.Tensor{upper, lower}, 4)
	return out.MustView([]int64{s[0], s[1] + 2*k + 1, s[2], s[3], b}, true)
}

// optionA is the option-A shortcut of x [B,C,H,W]: subsampled by 2 and
// padded with pad zero channels on each side (no parameters). The caller
// frees it.
func optionA(x *ts.Tensor, pad int64) *ts.Tensor {
	size := x.MustSize()
	sub := x.MustSlice(2, []int64{0}, []int64{size[2]}, 2, false).MustSlice(3, []int64{0}, []int64{size[3]}, 2, true)
	return sub.MustConstantPadNd([]int64{0, 0, 0, 0, pad, pad}, true)
}

// CIFARResNet is ResNet-6n+2 for 32×32 inputs: a 3×3 stem of 16 channels,
// three stages of n basic blocks (16, 32, 64 channels, strides 1, 2, 2),
// global average pooling and the classifier named linear.
type CIFARResNet struct {
	conv1  conv2d
	bn1    batchNorm
	blocks []basicBlock
	head   *Classifier
	layout blocking // training in oneDNN's channel blocks (Options.Blocked); b 0 for not
}

// ResNet32 is CIFARResNet with n = 5, as in the LDAM-DRW reference: 0.46 M
// parameters for 100 classes. Convolutions and the classifier weight are
// He-initialised (fan in), as the reference's kaiming_normal_.
func ResNet32(p *nn.Path, o Options) (*CIFARResNet, error) {
	return NewCIFARResNet(p, 5, o)
}

// NewCIFARResNet builds ResNet-(6n+2).
func NewCIFARResNet(p *nn.Path, n int, o Options) (*CIFARResNet, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	if n < 1 {
		return nil, fmt.Errorf("resnet: %d blocks per stage: want ≥ 1", n)
	}
	if err := o.validateBlocked(p); err != nil {
		return nil, err
	}
	m := &CIFARResNet{
		conv1:  newConv(p.Sub("conv1"), o.InChannels, 16, 3, 1, 1, FanIn),
		bn1:    newBatchNorm(p.Sub("bn1"), 16, o.norm()),
		layout: o.blocking(),
	}
	in := int64(16)
	for stage, width := range []int64{16, 32, 64} {
		layer := p.Sub(fmt.Sprintf("layer%d", stage+1))
		for i := 0; i < n; i++ {
			stride := int64(1)
			if i == 0 && stage > 0 {
				stride = 2
			}
			m.blocks = append(m.blocks, newBasicBlock(layer.Sub(fmt.Sprint(i)), in, width, stride, o.norm()))
			in = width
		}
	}
	m.head = newClassifier(p.Sub("linear"), 64, o.Classes, o.NormedClassifier, FanIn)
	return m, nil
}

// ForwardT implements Net.
func (m *CIFARResNet) ForwardT(x *ts.Tensor, train bool) (logits, features *ts.Tensor) {
	if train && m.layout.b != 0 {
		features = m.blockedFeatures(x)
		return m.head.Forward(features), features
	}
	h := convBNRelu(m.conv1, m.bn1, x, train)
	features = pooledFeatures(h, m.blocks, train)
	return m.head.Forward(features), features
}

// blockedFeatures is the pooled features [B,64] of images x in training,
// the activations in between blocked (Options.Blocked).
func (m *CIFARResNet) blockedFeatures(x *ts.Tensor) *ts.Tensor {
	h := blockedConvBNAddRelu(m.conv1, m.bn1, x, nil, m.layout)
	return blockedPooledFeatures(h, m.blocks, m.layout)
}

// maxPoolBlocked is the ImageNet stem's max pool (3×3, stride 2, pad 1)
// of blocked x [N,G,H,W,b], freeing x. Seen as [N·G, b, H, W] with
// channels-last strides (no copy), x is what libtorch's channels-last
// max pool takes; its channels-last output seen back is blocked.
func maxPoolBlocked(x *ts.Tensor) *ts.Tensor {
	s := x.MustSize()
	v := x.MustView([]int64{s[0] * s[1], s[2], s[3], s[4]}, true).MustPermute([]int64{0, 3, 1, 2}, true)
	y := v.MustMaxPool2d([]int64{3, 3}, []int64{2, 2}, []int64{1, 1}, []int64{1, 1}, false, true)
	ys := y.MustSize()
	back := y.MustPermute([]int64{0, 2, 3, 1}, true).MustContiguous(true)
	return back.MustView([]int64{s[0], s[1], ys[2], ys[3], s[4]}, true)
}

// Head implements Net.
func (m *CIFARResNet) Head() *Classifier { return m.head }

// block is a residual block.
type block interface {
	forward(x *ts.Tensor, train bool) *ts.Tensor
}

// pooledFeatures runs h [B,ch,H,W] through the blocks, freeing each
// intermediate and h, and returns the globally average-pooled features [B,D].
func pooledFeatures[B block](h *ts.Tensor, blocks []B, train bool) *ts.Tensor {
	for _, b := range blocks {
		next := b.forward(h, train)
		h.MustDrop()
		h = next
	}
	return h.MustAdaptiveAvgPool2d([]int64{1, 1}, true).MustFlatten(1, -1, true)
}

// blockedBlock is a residual block that also runs on blocked activations.
type blockedBlock interface {
	forwardBlocked(x *ts.Tensor, bl blocking) *ts.Tensor
}

// blockedPooledFeatures is pooledFeatures in training on h [B,C/b,H,W,b]
// blocked as bl says: the average over H and W is [B,C/b,b], channel c
// at (c/b, c mod b), so flattened it is [B,C] in channel order.
func blockedPooledFeatures[B blockedBlock](h *ts.Tensor, blocks []B, bl blocking) *ts.Tensor {
	for _, blk := range blocks {
		next := blk.forwardBlocked(h, bl)
		h.MustDrop()
		h = next
	}
	return h.MustMeanDim([]int64{2, 3}, false, gotch.Float, true).MustFlatten(1, -1, true)
}

// bottleneck is torchvision's Bottleneck (ResNet v1.5: the stride sits on
// the 3×3 convolution), with a 1×1 convolution + BN downsample where the
// shape changes.
type bottleneck struct {
	conv1, conv2, conv3 conv2d
	bn1, bn2, bn3       batchNorm
	down                *struct {
		conv conv2d
		bn   batchNorm
	}
}

func newBottleneck(p *nn.Path, in, planes, stride, groups, baseWidth int64, no normOptions) bottleneck {
	width := planes * baseWidth / 64 * groups
	out := planes * 4
	b := bottleneck{
		conv1: newConv(p.Sub("conv1"), in, width, 1, 1, 1, FanOut),
		bn1:   newBatchNorm(p.Sub("bn1"), width, no),
		conv2: newConv(p.Sub("conv2"), width, width, 3, stride, groups, FanOut),
		bn2:   newBatchNorm(p.Sub("bn2"), width, no),
		conv3: newConv(p.Sub("conv3"), width, out, 1, 1, 1, FanOut),
		bn3:   newBatchNorm(p.Sub("bn3"), out, no),
	}
	if stride != 1 || in != out {
		d := p.Sub("downsample")
		b.down = &struct {
			conv conv2d
			bn   batchNorm
		}{newConv(d.Sub("0"), in, out, 1, stride, 1, FanOut), newBatchNorm(d.Sub("1"), out, no)}
	}
	return b
}

func (b bottleneck) forward(x *ts.Tensor, train bool) *ts.Tensor {
	h := convBNRelu(b.conv1, b.bn1, x, train)
	h2 := convBNRelu(b.conv2, b.bn2, h, train)
	h.MustDrop()
	defer h2.MustDrop()
	short := x
	if b.down != nil {
		short = convBN(b.down.conv, b.down.bn, x, train)
		defer short.MustDrop()
	}
	return convBNAddRelu(b.conv3, b.bn3, h2, short, train)
}

// forwardBlocked is forward in training on activations blocked as bl
// says; the downsample's batch norm runs without ReLU by the same
// kernel (blockedConvBN).
func (b bottleneck) forwardBlocked(x *ts.Tensor, bl blocking) *ts.Tensor {
	h := blockedConvBNAddRelu(b.conv1, b.bn1, x, nil, bl)
	h2 := blockedConvBNAddRelu(b.conv2, b.bn2, h, nil, bl)
	h.MustDrop()
	defer h2.MustDrop()
	short := x
	if b.down != nil {
		short = blockedConvBN(b.down.conv, b.down.bn, x, bl)
		defer short.MustDrop()
	}
	return blockedConvBNAddRelu(b.conv3, b.bn3, h2, short, bl)
}

// ImageNetResNet is torchvision's ResNet with bottleneck blocks.
type ImageNetResNet struct {
	conv1  conv2d
	bn1    batchNorm
	blocks []bottleneck
	head   *Classifier
	layout blocking // training in oneDNN's channel blocks (Options.Blocked); b 0 for not
}

// ResNet50 is torchvision's resnet50: 25,557,032 parameters for 1000
// classes, convolutions He-initialised (fan out), fc as nn.Linear.
func ResNet50(p *nn.Path, o Options) (*ImageNetResNet, error) {
	return newImageNetResNet(p, []int{3, 4, 6, 3}, 1, 64, o)
}

// ResNeXt50 is torchvision's resnext50_32x4d.
func ResNeXt50(p *nn.Path, o Options) (*ImageNetResNet, error) {
	return newImageNetResNet(p, []int{3, 4, 6, 3}, 32, 4, o)
}

func newImageNetResNet(p *nn.Path, layers []int, groups, baseWidth int64, o Options) (*ImageNetResNet, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	if o.Blocked && groups != 1 {
		return nil, errors.New("resnet: blocked activations are built for ResNet-32 and ResNet-50, not for grouped convolutions (ResNeXt)")
	}
	if err := o.validateBlocked(p); err != nil {
		return nil, err
	}
	m := &ImageNetResNet{
		conv1:  conv2d{w: heNormal(p.Sub("conv1"), "weight", []int64{64, o.InChannels, 7, 7}, FanOut), stride: 2, pad: 3, groups: 1},
		bn1:    newBatchNorm(p.Sub("bn1"), 64, o.norm()),
		layout: o.blocking(),
	}
	in := int64(64)
	for stage, n := range layers {
		planes := int64(64) << stage
		layer := p.Sub(fmt.Sprintf("layer%d", stage+1))
		for i := 0; i < n; i++ {
			stride := int64(1)
			if i == 0 && stage > 0 {
				stride = 2
			}
			m.blocks = append(m.blocks, newBottleneck(layer.Sub(fmt.Sprint(i)), in, planes, stride, groups, baseWidth, o.norm()))
			in = planes * 4
		}
	}
	m.head = newClassifier(p.Sub("fc"), in, o.Classes, o.NormedClassifier, FanOut)
	return m, nil
}

// ForwardT implements Net.
func (m *ImageNetResNet) ForwardT(x *ts.Tensor, train bool) (logits, features *ts.Tensor) {
	if train && m.layout.b != 0 {
		h := maxPoolBlocked(blockedConvBNAddRelu(m.conv1, m.bn1, x, nil, m.layout))
		features = blockedPooledFeatures(h, m.blocks, m.layout)
		return m.head.Forward(features), features
	}
	h := convBNRelu(m.conv1, m.bn1, x, train)
	h = h.MustMaxPool2d([]int64{3, 3}, []int64{2, 2}, []int64{1, 1}, []int64{1, 1}, false, true)
	features = pooledFeatures(h, m.blocks, train)
	return m.head.Forward(features), features
}

// Head implements Net.
func (m *ImageNetResNet) Head() *Classifier { return m.head }
