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

// TestBlockedMatchesChannelsLast: ResNet-32 and ResNet-50 trained with blocked
// activations gives the logits, features and running statistics of the
// channels-last network (lwr's batch-norm kernel) up to float32 rounding,
// and the gradient of every parameter too, for RGB and gray images (even
// sides, and odd ones after two strides), in blocks of 8 and of 16
// channels, but not the same bits: the blocked path ran. In evaluation
// (before training) both run the same channels-last pass, to the bit.
//
// Each case runs for blockedSeeds draws of weights and inputs. Forward
// values must agree in every draw. A gradient must agree in at least one:
// where a ReLU's input lies within float32 rounding of zero, the two paths
// can put it on either side, and every gradient below that ReLU then
// moves by up to ~10% of its largest value (12 draws at CIFAR's 32×32,
// batch 8: 7 had such a flip in the block-8 or block-16 network). A
// wiring error fails every draw; a flip lands in one draw, rarely more.
// ResNet-50, with its 49 ReLUs and a max pool (whose argmax can flip the
// same way), had flips in every draw: there only the forward values are
// compared, in one draw, and TestBottleneckBlocked checks the gradients
// block by block.
func TestBlockedMatchesChannelsLast(t *testing.T) {
	fusedtest.Require(t)
	for _, c := range []blockedCase{
		{"rgb-16px", 3, 16, 8, 10, false, 8, false, libtorch.ConvAuto},
		{"gray-12px-normed", 1, 12, 6, 7, true, 8, false, libtorch.ConvAuto},
		{"rgb-16px", 3, 16, 8, 10, false, 8, false, libtorch.ConvDirect},
		{"rgb-16px", 3, 16, 8, 10, false, 8, false, libtorch.ConvWinograd},
		{"rgb-16px", 3, 16, 8, 10, false, 16, false, libtorch.ConvAuto},
		{"rgb-16px", 3, 16, 8, 10, false, 16, false, libtorch.ConvDirect},
		{"rgb-16px", 3, 16, 8, 10, false, 16, false, libtorch.ConvWinograd},
		{"gray-12px-normed", 1, 12, 6, 7, true, 16, false, libtorch.ConvAuto},
		{"resnet50-rgb-40px", 3, 40, 4, 10, false, 16, true, libtorch.ConvAuto},
		{"resnet50-rgb-40px", 3, 40, 4, 10, false, 16, true, libtorch.ConvDirect},
		{"resnet50-rgb-40px", 3, 40, 4, 10, false, 8, true, libtorch.ConvAuto},
	} {
		t.Run(fmt.Sprintf("%s/block%d/%s", c.name, c.block, c.alg), func(t *testing.T) {
			draw := func(seed int64) (map[string]float64, error) { return blockedVsChannelsLast(t, c, seed) }
			if c.resnet50 {
				// The forward values only (blockedVsChannelsLast reports
				// them), in one draw.
				if err := libtorch.OnThread(func() error { _, err := draw(1); return err }); err != nil {
					t.Fatal(err)
				}
				return
			}
			checkClosestDraw(t, blockedSeeds, draw)
		})
	}
}

// checkClosestDraw runs draw for seeds 1 to n, each on one OS thread
// (vs.Copy switches grad mode, a per-thread setting, off and on again),
// and fails t for each value whose smallest error over the draws (as draw
// returns them, by name) is above blockedTolerance.
func checkClosestDraw(t *testing.T, n int64, draw func(seed int64) (map[string]float64, error)) {
	t.Helper()
	best := map[string]float64{}
	for seed := int64(1); seed <= n; seed++ {
		var errs map[string]float64
		err := libtorch.OnThread(func() error {
			var err error
			errs, err = draw(seed)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		for name, e := range errs {
			if b, ok := best[name]; !ok || e < b {
				best[name] = e
			}
		}
	}
	if len(best) == 0 {
		t.Fatal("nothing compared")
	}
	for name, e := range best {
		if e > blockedTolerance {
			t.Errorf("%s: off by %.3g of its largest value in the closest of %d draws", name, e, n)
		}
	}
}

// blockedSeeds is the number of draws TestBlockedMatchesChannelsLast runs
// for each case; blockedTolerance is its bound on the largest difference
// over the largest value (at least 0.01).
const (
	blockedSeeds     = 5
	blockedTolerance = 2e-4
)

// blockedCase is a network and batch of TestBlockedMatchesChannelsLast.
type blockedCase struct {
	name           string
	channels, side int64
	batch, classes int64
	normed         bool
	block          int64
	resnet50       bool // ResNet-50, else ResNet-32
	alg            libtorch.ConvAlgorithm
}

// blockedVsChannelsLast is one draw (seed) of
// TestBlockedMatchesChannelsLast's case: it reports forward mismatches on
// t and returns each gradient's largest difference over its largest value
// (at least 0.01), by name, or what stopped it.
func blockedVsChannelsLast(t *testing.T, c blockedCase, seed int64) (map[string]float64, error) {
	libtorch.ManualSeed(seed)
	x := ts.MustRandn([]int64{c.batch, c.channels, c.side, c.side}, gotch.Float, gotch.CPU)
	defer x.MustDrop()
	r := ts.MustRandn([]int64{c.batch, c.classes}, gotch.Float, gotch.CPU)
	defer r.MustDrop()
	xcl, err := libtorch.ToChannelsLast(x)
	if err != nil {
		return nil, err
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
		o := Options{Classes: c.classes, InChannels: c.channels, NormedClassifier: c.normed, Blocked: blocked, Block: c.block, ConvAlgorithm: c.alg}
		var net Net
		var err error
		if c.resnet50 {
			net, err = ResNet50(vs.Root(), o)
		} else {
			net, err = ResNet32(vs.Root(), o)
		}
		if err != nil {
			return nil, err
		}
		if blocked {
			if err := vs.Copy(stores[false]); err != nil {
				return nil, err
			}
		}
		if err := varsChannelsLast(vs); err != nil {
			return nil, err
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
		t.Errorf("seed %d: blocked and channels-last logits are the same bits: the blocked path did not run", seed)
	}
	if !bl.eval.MustEqual(cl.eval, false) {
		t.Errorf("seed %d: evaluation differs: it should run the same channels-last pass", seed)
	}
	relErr := func(got, want *ts.Tensor) float64 {
		diff, scale := maxAbsDiff(got, want)
		return diff / max(scale, 1e-2)
	}
	forward := map[string][2]*ts.Tensor{"logits": {bl.logits, cl.logits}, "features": {bl.features, cl.features}}
	if len(bl.after) != len(cl.after) {
		return nil, fmt.Errorf("%d variables, want %d", len(bl.after), len(cl.after))
	}
	grads := map[string]float64{}
	for name, want := range cl.after {
		if strings.HasSuffix(name, "running_mean") || strings.HasSuffix(name, "running_var") {
			forward[name] = [2]*ts.Tensor{bl.after[name], want}
			continue
		}
		grads[name] = relErr(bl.after[name], want)
	}
	for name, p := range forward {
		if e := relErr(p[0], p[1]); e > blockedTolerance {
			t.Errorf("seed %d: %s: off by %.3g of its largest value", seed, name, e)
		}
	}
	return grads, nil
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
		{"block of 4", "want 8 or 16", func() error {
			_, err := ResNet32(vs.Root().Sub("b4"), Options{Classes: 10, InChannels: 3, Blocked: true, Block: 4})
			return err
		}},
		{"algorithm", `algorithm "fft"`, func() error {
			_, err := ResNet32(vs.Root().Sub("fft"), Options{Classes: 10, InChannels: 3, Blocked: true, ConvAlgorithm: "fft"})
			return err
		}},
		{"resnext50", "grouped convolutions", func() error {
			_, err := ResNeXt50(vs.Root(), Options{Classes: 10, InChannels: 3, Blocked: true})
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

// TestOptionABlocked: the option-A shortcut of blocked activations is,
// value for value, the shortcut of the same activations unblocked, for
// pads of whole blocks and of half a 16-channel block (ResNet-32's 16 → 32
// stage in 16-channel blocks), and its gradient is the slice it came from.
func TestOptionABlocked(t *testing.T) {
	fusedtest.Require(t)
	for _, c := range []struct{ channels, pad, block int64 }{
		{16, 8, 8}, {32, 16, 8}, {16, 8, 16}, {32, 16, 16}, {48, 24, 16},
	} {
		t.Run(fmt.Sprintf("c%d-pad%d-block%d", c.channels, c.pad, c.block), func(t *testing.T) {
			var s libtorch.Scope
			defer s.Free()
			x := s.Keep(ts.MustRandn([]int64{2, c.channels, 5, 6}, gotch.Float, gotch.CPU))
			want := s.Keep(optionA(x, c.pad))
			xb := s.Keep(s.Keep(libtorch.ToBlocked(x, c.block)).MustSetRequiresGrad(true, false))
			got := s.Keep(optionABlocked(xb, c.pad))
			if sz := got.MustSize(); sz[4] != c.block || sz[1]*sz[4] != c.channels+2*c.pad {
				t.Fatalf("shape %v: want %d channels in blocks of %d", sz, c.channels+2*c.pad, c.block)
			}
			if !s.Keep(libtorch.FromBlocked(got)).MustEqual(want, false) {
				t.Fatal("values differ from the unblocked shortcut's")
			}
			// The gradient of sum(shortcut · g) is g's middle channels at
			// the even pixels, zero elsewhere.
			g := s.Keep(ts.MustRandn(want.MustSize(), gotch.Float, gotch.CPU))
			s.Keep(s.Keep(got.MustMul(s.Keep(libtorch.ToBlocked(g, c.block)), false)).MustSum(gotch.Float, false)).MustBackward()
			dx := s.Keep(libtorch.FromBlocked(s.Keep(xb.MustGrad(false))))
			wantDx := s.Keep(ts.MustZeros(x.MustSize(), gotch.Float, gotch.CPU))
			mid := s.Keep(g.MustNarrow(1, c.pad, c.channels, false))
			view := s.Keep(wantDx.MustSlice(2, []int64{0}, []int64{5}, 2, false).MustSlice(3, []int64{0}, []int64{6}, 2, true))
			view.Copy_(mid)
			if !dx.MustEqual(wantDx, false) {
				t.Fatal("gradient differs from g's middle channels at the even pixels")
			}
		})
	}
}

// TestBottleneckBlocked: a ResNet-50 bottleneck on blocked activations
// (with its downsample: a strided 1×1 convolution and a batch norm without
// ReLU, and without one) gives the output and the gradients of its input
// and of every parameter of the channels-last bottleneck (the running
// statistics: the whole networks' test) up to float32
// rounding, in blocks of 8 and 16, in at least one of blockedSeeds draws
// (see TestBlockedMatchesChannelsLast).
func TestBottleneckBlocked(t *testing.T) {
	fusedtest.Require(t)
	for _, c := range []struct {
		in, planes, stride int64
		bl                 blocking
	}{
		{64, 16, 1, blocking{16, libtorch.ConvAuto}}, {64, 16, 1, blocking{16, libtorch.ConvWinograd}},
		{64, 32, 1, blocking{16, libtorch.ConvAuto}}, {64, 32, 2, blocking{16, libtorch.ConvAuto}},
		{32, 8, 1, blocking{8, libtorch.ConvAuto}}, {32, 8, 1, blocking{8, libtorch.ConvWinograd}},
		{64, 16, 1, blocking{8, libtorch.ConvAuto}}, {64, 32, 2, blocking{8, libtorch.ConvAuto}},
	} {
		t.Run(fmt.Sprintf("in%d-planes%d-stride%d-block%d-%s", c.in, c.planes, c.stride, c.bl.b, c.bl.alg), func(t *testing.T) {
			checkClosestDraw(t, blockedSeeds, func(seed int64) (map[string]float64, error) {
				return bottleneckDraw(c.in, c.planes, c.stride, c.bl, seed)
			})
		})
	}
}

// bottleneckDraw is one draw of TestBottleneckBlocked: each compared
// value's largest difference over its largest value (at least 0.01), or
// what stopped it.
func bottleneckDraw(in, planes, stride int64, bl blocking, seed int64) (map[string]float64, error) {
	var s libtorch.Scope
	defer s.Free()
	libtorch.ManualSeed(seed)
	vs := nn.NewVarStore(gotch.CPU)
	b := newBottleneck(vs.Root(), in, planes, stride, 1, 64, normOptions{})
	if (b.down != nil) != (stride != 1 || in != 4*planes) {
		return nil, fmt.Errorf("downsample %v for %d → %d at stride %d", b.down != nil, in, 4*planes, stride)
	}
	if err := varsChannelsLast(vs); err != nil {
		return nil, err
	}
	x := s.Keep(ts.MustRandn([]int64{3, in, 9, 9}, gotch.Float, gotch.CPU))
	xcl, err := libtorch.ToChannelsLast(x)
	if err != nil {
		return nil, err
	}
	xcl = s.Keep(s.Keep(xcl).MustDetach(false).MustSetRequiresGrad(true, true))
	ycl := s.Keep(b.forward(xcl, true))
	g := s.Keep(ts.MustRandn(ycl.MustSize(), gotch.Float, gotch.CPU))
	s.Keep(s.Keep(ycl.MustMul(g, false)).MustSum(gotch.Float, false)).MustBackward()
	want := map[string]*ts.Tensor{"output": ycl, "input gradient": s.Keep(xcl.MustGrad(false))}
	for name, v := range vs.Variables() {
		if !strings.Contains(name, "running") {
			// A copy (in float64): the gradient tensor itself is zeroed
			// and filled again by the blocked pass.
			grad := s.Keep(v.MustGrad(false))
			want[name] = s.Keep(grad.MustTotype(gotch.Double, false))
			grad.MustZero_()
		}
	}
	xb := s.Keep(s.Keep(libtorch.ToBlocked(x, bl.b)).MustSetRequiresGrad(true, false))
	yb := s.Keep(b.forwardBlocked(xb, bl))
	s.Keep(s.Keep(yb.MustMul(s.Keep(libtorch.ToBlocked(g, bl.b)), false)).MustSum(gotch.Float, false)).MustBackward()
	got := map[string]*ts.Tensor{"output": s.Keep(libtorch.FromBlocked(yb)), "input gradient": s.Keep(libtorch.FromBlocked(s.Keep(xb.MustGrad(false))))}
	for name, v := range vs.Variables() {
		if !strings.Contains(name, "running") {
			got[name] = s.Keep(v.MustGrad(false))
		}
	}
	errs := map[string]float64{}
	for name, w := range want {
		diff, scale := maxAbsDiff(got[name], w)
		errs[name] = diff / max(scale, 1e-2)
	}
	return errs, nil
}

// varsChannelsLast stores vs's 4-d variables channels-last, as the trainer
// does for a channels-last or blocked run.
func varsChannelsLast(vs *nn.VarStore) error {
	vars := make([]*ts.Tensor, 0)
	for _, v := range vs.Variables() {
		vars = append(vars, &v)
	}
	return libtorch.SetChannelsLast(vars)
}
