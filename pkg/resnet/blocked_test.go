package resnet

import (
	"fmt"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/lwr-go/lwr/internal/fusedtest"
	"github.com/lwr-go/lwr/pkg/libtorch"
)

// trainingPass runs net forward in training on x and backward from
// sum(logits * r), and returns the logits, the features and, by name, the
// gradient of each trainable variable of vs and each running statistic
// after the pass. The caller frees them.
func trainingPass(vs *nn.VarStore, net Net, x, r *ts.Tensor) (logits, features *ts.Tensor, after map[string]*ts.Tensor) {
	logits, features = net.ForwardT(x, true)
	loss := logits.MustMul(r, false).MustSum(gotch.Float, true)
	loss.MustBackward()
	loss.MustDrop()
	after = map[string]*ts.Tensor{}
	for name, v := range vs.Variables() {
		if strings.HasSuffix(name, "running_mean") || strings.HasSuffix(name, "running_var") {
			after[name] = v.MustShallowClone()
		} else {
			after[name] = v.MustGrad(false)
		}
	}
	return logits, features, after
}

// TestBlockedMatchesChannelsLast: ResNet-32 trained with blocked
// activations gives the logits, features, gradients of every parameter
// and running statistics of the channels-last network (lwr's batch-norm
// kernel) up to float32 rounding, for CIFAR's 32×32 RGB and
// Fashion-MNIST's 28×28 gray images (odd sides after two strides), but
// not the same bits: the blocked path ran. In evaluation (before
// training) both run the same channels-last pass, to the bit.
func TestBlockedMatchesChannelsLast(t *testing.T) {
	fusedtest.Require(t)
	for _, c := range []blockedCase{
		{"cifar", 3, 32, 8, 10, false},
		{"fashion-normed", 1, 28, 6, 7, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			// On one OS thread: vs.Copy switches grad mode, a per-thread
			// setting, off and on again.
			if err := libtorch.OnThread(func() error { return blockedVsChannelsLast(t, c) }); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// blockedCase is a network and batch of TestBlockedMatchesChannelsLast.
type blockedCase struct {
	name           string
	channels, side int64
	batch, classes int64
	normed         bool
}

// blockedVsChannelsLast is TestBlockedMatchesChannelsLast's case; it
// reports mismatches on t and returns what stopped it.
func blockedVsChannelsLast(t *testing.T, c blockedCase) error {
	libtorch.ManualSeed(9)
	x := ts.MustRandn([]int64{c.batch, c.channels, c.side, c.side}, gotch.Float, gotch.CPU)
	defer x.MustDrop()
	r := ts.MustRandn([]int64{c.batch, c.classes}, gotch.Float, gotch.CPU)
	defer r.MustDrop()
	xcl, err := libtorch.ToChannelsLast(x)
	if err != nil {
		return err
	}
	defer xcl.MustDrop()
	type result struct {
		logits, features, eval *ts.Tensor
		after                  map[string]*ts.Tensor
	}
	// Both networks first, the second a copy of the first's
	// initial weights and statistics; then the passes.
	stores, nets := map[bool]*nn.VarStore{}, map[bool]Net{}
	for _, blocked := range []bool{false, true} {
		vs := nn.NewVarStore(gotch.CPU)
		net, err := ResNet32(vs.Root(), Options{Classes: c.classes, InChannels: c.channels, NormedClassifier: c.normed, Blocked: blocked})
		if err != nil {
			return err
		}
		if blocked {
			if err := vs.Copy(stores[false]); err != nil {
				return err
			}
		}
		vars := make([]*ts.Tensor, 0)
		for _, v := range vs.Variables() {
			vars = append(vars, &v)
		}
		if err := libtorch.SetChannelsLast(vars); err != nil {
			return err
		}
		stores[blocked], nets[blocked] = vs, net
	}
	runs := map[bool]result{}
	for _, blocked := range []bool{false, true} {
		var res result
		e, f := nets[blocked].ForwardT(xcl, false)
		f.MustDrop()
		res.eval = e
		res.logits, res.features, res.after = trainingPass(stores[blocked], nets[blocked], xcl, r)
		runs[blocked] = res
	}
	cl, bl := runs[false], runs[true]
	defer func() {
		for _, res := range []result{cl, bl} {
			res.logits.MustDrop()
			res.features.MustDrop()
			res.eval.MustDrop()
			for _, v := range res.after {
				v.MustDrop()
			}
		}
	}()
	if bl.logits.MustEqual(cl.logits, false) {
		t.Error("blocked and channels-last logits are the same bits: the blocked path did not run")
	}
	if !bl.eval.MustEqual(cl.eval, false) {
		t.Error("evaluation differs: it should run the same channels-last pass")
	}
	compare := func(name string, got, want *ts.Tensor) {
		diff, scale := maxAbsDiff(got, want)
		if diff > 2e-4*max(scale, 1e-2) {
			t.Errorf("%s: off by %.3g (largest |value| %.3g)", name, diff, scale)
		}
	}
	compare("logits", bl.logits, cl.logits)
	compare("features", bl.features, cl.features)
	if len(bl.after) != len(cl.after) {
		return fmt.Errorf("%d variables, want %d", len(bl.after), len(cl.after))
	}
	for name, want := range cl.after {
		compare(fmt.Sprintf("%s (gradient or statistic)", name), bl.after[name], want)
	}
	return nil
}

// TestBlockedRefused: the options and networks blocked activations do not
// fit are errors, not a silent fallback.
func TestBlockedRefused(t *testing.T) {
	fusedtest.Require(t)
	vs := nn.NewVarStore(gotch.CPU)
	for _, c := range []struct {
		name, want string
		build      func() error
	}{
		{"libtorch batch norm", "need lwr's batch-norm kernel", func() error {
			_, err := ResNet32(vs.Root(), Options{Classes: 10, InChannels: 3, Blocked: true, LibtorchBatchNorm: true})
			return err
		}},
		{"resnet50", "CIFAR networks", func() error {
			_, err := ResNet50(vs.Root(), Options{Classes: 10, InChannels: 3, Blocked: true})
			return err
		}},
		{"float64", "float32", func() error {
			prev := gotch.DefaultDType
			gotch.DefaultDType = gotch.Double
			defer func() { gotch.DefaultDType = prev }()
			_, err := ResNet32(vs.Root().Sub("f64"), Options{Classes: 10, InChannels: 3, Blocked: true})
			return err
		}},
	} {
		if err := c.build(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one saying %q", c.name, err, c.want)
		}
	}
}
