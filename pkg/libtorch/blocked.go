package libtorch

import (
	"errors"
	"fmt"
	"sync"

	"github.com/sugarme/gotch/ts"

	"github.com/lwr-go/lwr/internal/csrc"
)

// Blocked is the memory format of activations in oneDNN's channel
// blocks: [N, C/b, H, W, b], contiguous, b = 8 (nChw8c, the layout
// oneDNN's AVX2 convolutions compute in) or 16 (nChw16c, AVX-512's).
// Images and weights stay channels-last; only a network's activations in
// training are blocked (resnet.Options.Block).
const Blocked = "blocked"

// ValidBlock reports whether b channels a block is one the blocked
// kernels handle: 8 or 16.
func ValidBlock(b int64) bool { return b == 8 || b == 16 }

// TrainingBlock is the channel block lwr trains in when asked for the
// Blocked format: PreferredBlock where oneDNN has one, else 8.
func TrainingBlock() int64 {
	if b := PreferredBlock(); ValidBlock(b) {
		return b
	}
	return 8
}

var preferred struct {
	once  sync.Once
	block int64
}

// PreferredBlock is the channel block of the activations oneDNN's
// training convolutions choose on this CPU when left to choose: 8 with
// AVX2 or SSE4.1, 16 with AVX-512 (DNNL_MAX_CPU_ISA caps it), 0 where
// they choose an unblocked layout or this build cannot call oneDNN
// (FusedAvailable).
func PreferredBlock() int64 {
	preferred.once.Do(func() { preferred.block = csrc.ConvBlock() })
	return preferred.block
}

// ErrNoBlocked is returned where the blocked convolutions are not built in.
var ErrNoBlocked = errors.New("blocked convolutions are not built in: they need Debian's libtorch and oneDNN's headers (apt-get install libdnnl-dev, then make setup)")

// ConvAlgorithm is how ConvBlocked computes a convolution, forward and
// both backward passes alike.
type ConvAlgorithm string

const (
	// ConvAuto ("" too) is ConvWinograd where it measured faster than
	// ConvDirect (BENCHMARKS.md), else ConvDirect: 3×3, stride 1, pad 1,
	// and in blocks of 16 (AVX-512) at least 32 channels in and out
	// (ResNet-32's second and third stages, ResNet-50's 3×3
	// convolutions), in blocks of 8 (AVX2) 16 to 256 (all of ResNet-32's,
	// ResNet-50's but the last stage's).
	ConvAuto ConvAlgorithm = "auto"
	// ConvDirect is oneDNN's direct convolution, as libtorch's own.
	ConvDirect ConvAlgorithm = "direct"
	// ConvWinograd is a Winograd convolution wherever there is one for the
	// shape (3×3, stride 1, a blocked input), else ConvDirect: in blocks
	// of 16 oneDNN's F(4×4, 3×3) (AVX-512 only), in blocks of 8 at pad 1
	// lwr's own F(2×2, 3×3) (CPUs with AVX2 and FMA; oneDNN has none
	// there). It multiplies less, and rounds differently: oneDNN's has ~3×
	// direct's float32 error in outputs and input gradients (~1e-6 of the
	// largest value), about direct's in weight gradients; lwr's about
	// direct's throughout.
	ConvWinograd ConvAlgorithm = "winograd"
)

// ParseConvAlgorithm returns s as a ConvAlgorithm: auto (or ""), direct
// or winograd.
func ParseConvAlgorithm(s string) (ConvAlgorithm, error) {
	switch a := ConvAlgorithm(s); {
	case a.code() < 0:
		return "", fmt.Errorf("convolution algorithm %q: want auto, direct or winograd", s)
	case a == "":
		return ConvAuto, nil
	default:
		return a, nil
	}
}

// code is a's number in conv_blocked.h; -1 for none (which it refuses).
func (a ConvAlgorithm) code() int64 {
	switch a {
	case "", ConvAuto:
		return 0
	case ConvDirect:
		return 1
	case ConvWinograd:
		return 2
	}
	return -1
}

// ConvBlocked returns conv(x, w) without bias, as one autograd node run by
// oneDNN with algorithm alg, in the Blocked format [N, O/b, H', W', b] of
// block b (8 or 16): x float32 on the CPU, either blocked [N, C/b, H, W,
// b] or an image batch [N, C, H, W] in any memory format (a network's
// first convolution); w [O, C, kh, kw] float32 in any memory format, O a
// multiple of b; the same stride and padding along both sides. w's
// gradient has w's strides. On failure it raises the error (Raise:
// OnThread and Catch return it), ErrNoBlocked where FusedAvailable is
// false. The caller frees the result.
func ConvBlocked(x, w *ts.Tensor, b, stride, pad int64, alg ConvAlgorithm) *ts.Tensor {
	if !FusedAvailable() {
		Raise(ErrNoBlocked)
	}
	if _, err := ParseConvAlgorithm(string(alg)); err != nil {
		Raise(fmt.Errorf("blocked convolution: %w", err))
	}
	out, msg := csrc.ConvBlocked(x.Ctensor(), w.Ctensor(), b, stride, pad, alg.code())
	if msg != "" {
		Raise(fmt.Errorf("%s (input %v, weight %v)", msg, x.MustSize(), w.MustSize()))
	}
	return wrap(out)
}

// ConvBlockedAlgorithm is the algorithm ConvBlocked(x, w, b, stride, pad,
// alg) runs on this CPU: ConvDirect or ConvWinograd. Only the shapes of x
// and w matter.
func ConvBlockedAlgorithm(x, w *ts.Tensor, b, stride, pad int64, alg ConvAlgorithm) (ConvAlgorithm, error) {
	if !FusedAvailable() {
		return "", ErrNoBlocked
	}
	if _, err := ParseConvAlgorithm(string(alg)); err != nil {
		return "", fmt.Errorf("blocked convolution: %w", err)
	}
	used, msg := csrc.ConvBlockedAlgorithm(x.Ctensor(), w.Ctensor(), b, stride, pad, alg.code())
	if msg != "" {
		return "", fmt.Errorf("%s (input %v, weight %v)", msg, x.MustSize(), w.MustSize())
	}
	if used == 2 {
		return ConvWinograd, nil
	}
	return ConvDirect, nil
}

// ToBlocked returns x [N, C, H, W] (C a multiple of b) in the Blocked
// format [N, C/b, H, W, b], a copy that autograd differentiates through.
func ToBlocked(x *ts.Tensor, b int64) *ts.Tensor {
	s := x.MustSize()
	v := x.MustView([]int64{s[0], s[1] / b, b, s[2], s[3]}, false)
	defer v.MustDrop()
	p := v.MustPermute([]int64{0, 1, 3, 4, 2}, false)
	defer p.MustDrop()
	return p.MustContiguous(false)
}

// FromBlocked returns blocked x [N, C/b, H, W, b] as [N, C, H, W]
// (contiguous NCHW), a copy that autograd differentiates through.
func FromBlocked(x *ts.Tensor) *ts.Tensor {
	s := x.MustSize()
	p := x.MustPermute([]int64{0, 1, 4, 2, 3}, false)
	defer p.MustDrop()
	c := p.MustContiguous(false)
	defer c.MustDrop()
	return c.MustView([]int64{s[0], s[1] * s[4], s[2], s[3]}, false)
}
