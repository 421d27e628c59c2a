package train

import (
	"fmt"

	"github.com/lwr-go/lwr/pkg/resnet"
)

// Fused evaluation (--fused-eval): batch norms folded into oneDNN
// convolutions that also add the residual and apply ReLU (resnet.Fold), for
// evaluation passes and for the frozen backbone of decoupled training.
const (
	FusedAuto = "auto" // fused where it can be (float32 on a CPU, a build with it), else libtorch's kernels
	FusedOn   = "on"   // fused, or an error saying why not
	FusedOff  = "off"  // libtorch's kernels, as in training
)

// evalNet returns the network an evaluation pass runs: net folded
// (resnet.Fold) for mode on, and for auto (or "") where it can be, else net
// itself. done frees what it made; call it when the pass ends, and fold
// again for the next pass (the weights change in between).
func evalNet(net resnet.Net, mode string) (n resnet.Net, done func(), err error) {
	if mode == FusedOff {
		return net, func() {}, nil
	}
	n, done, err = fold(net)
	if err != nil {
		if mode == FusedOn {
			return nil, nil, fmt.Errorf("--fused-eval on: %w", err)
		}
		return net, func() {}, nil
	}
	return n, done, nil
}

// frozenNet returns net for the epochs of decoupled training (--stage2):
// its frozen backbone — evaluation-mode batch norms, weights that never
// change — folded once for the whole run as mode says (see evalNet); net
// itself for other runs. done frees what it made when the run ends.
func frozenNet(net resnet.Net, mode string) (n resnet.Net, done func(), err error) {
	inner := net
	if cl, ok := net.(channelsLastNet); ok {
		inner = cl.Net
	}
	if _, ok := inner.(decoupled); !ok {
		return net, func() {}, nil
	}
	return evalNet(net, mode)
}

// fold folds the network inside the trainer's wrappers: channelsLastNet
// (the folded network takes inputs in any layout) and decoupled (its frozen
// backbone, which may be folded already).
func fold(net resnet.Net) (resnet.Net, func(), error) {
	switch n := net.(type) {
	case channelsLastNet:
		return fold(n.Net)
	case decoupled:
		inner, done, err := fold(n.Net)
		if err != nil {
			return nil, nil, err
		}
		return decoupled{Net: inner, scale: n.scale}, done, nil
	case *resnet.Folded:
		return n, func() {}, nil
	}
	f, err := resnet.Fold(net)
	if err != nil {
		return nil, nil, err
	}
	return f, f.Close, nil
}
