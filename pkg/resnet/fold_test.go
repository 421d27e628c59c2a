package resnet

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/lwr-go/lwr/internal/fusedtest"
	"github.com/lwr-go/lwr/pkg/libtorch"
)

// maxAbsDiff returns max |a-b| and max |b| over two tensors of one shape.
func maxAbsDiff(a, b *ts.Tensor) (diff, scale float64) {
	av := a.MustTotype(gotch.Double, false).MustContiguous(true)
	defer av.MustDrop()
	bv := b.MustTotype(gotch.Double, false).MustContiguous(true)
	defer bv.MustDrop()
	x, y := av.Float64Values(), bv.Float64Values()
	for i := range x {
		diff = math.Max(diff, math.Abs(x[i]-y[i]))
		scale = math.Max(scale, math.Abs(y[i]))
	}
	return diff, scale
}

// TestFoldedMatchesForward: the folded evaluation pass gives the logits
// and features of ForwardT(x, false), up to float32 rounding, for every
// network Fold takes, on inputs in either memory format, and leaves the
// input as it was.
func TestFoldedMatchesForward(t *testing.T) {
	fusedtest.Require(t)
	cases := []struct {
		name     string
		channels int64
		size     int64
		batch    int64
		normed   bool
		cl       bool
		build    func(*nn.Path, Options) (Net, error)
	}{
		{"resnet32-gray", 1, 28, 5, false, true, func(p *nn.Path, o Options) (Net, error) { return ResNet32(p, o) }},
		{"resnet32-rgb-nchw", 3, 32, 3, false, false, func(p *nn.Path, o Options) (Net, error) { return ResNet32(p, o) }},
		{"resnet32-normed", 3, 32, 1, true, true, func(p *nn.Path, o Options) (Net, error) { return ResNet32(p, o) }},
		{"resnet50", 3, 64, 2, false, true, func(p *nn.Path, o Options) (Net, error) { return ResNet50(p, o) }},
		{"resnext50", 3, 32, 2, false, false, func(p *nn.Path, o Options) (Net, error) { return ResNeXt50(p, o) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			vs := nn.NewVarStore(gotch.CPU)
			net, err := c.build(vs.Root(), Options{Classes: 7, InChannels: c.channels, NormedClassifier: c.normed})
			if err != nil {
				t.Fatal(err)
			}
			fusedtest.PerturbBatchNorms(vs)
			x := ts.MustRandn([]int64{c.batch, c.channels, c.size, c.size}, gotch.Float, gotch.CPU)
			if c.cl {
				y, err := libtorch.ToChannelsLast(x)
				if err != nil {
					t.Fatal(err)
				}
				x.MustDrop()
				x = y
			}
			defer x.MustDrop()
			before := x.MustTotype(gotch.Double, false)
			defer before.MustDrop()
			f, err := Fold(net)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			err = libtorch.Catch(func() {
				libtorch.NoGrad(func() {
					wantL, wantF := net.ForwardT(x, false)
					defer wantL.MustDrop()
					defer wantF.MustDrop()
					for round := 0; round < 2; round++ { // the second reuses the kernels
						gotL, gotF := f.ForwardT(x, false)
						for _, p := range []struct {
							what      string
							got, want *ts.Tensor
						}{{"logits", gotL, wantL}, {"features", gotF, wantF}} {
							if g, w := p.got.MustSize(), p.want.MustSize(); len(g) != len(w) || g[0] != w[0] || g[1] != w[1] {
								t.Fatalf("%s %v, want %v", p.what, g, w)
							}
							d, s := maxAbsDiff(p.got, p.want)
							if s == 0 || d > 1e-4*s {
								t.Errorf("round %d: %s differ by %.3g (largest |value| %.3g): want ≤ 1e-4 of it", round, p.what, d, s)
							}
						}
						gotL.MustDrop()
						gotF.MustDrop()
					}
				})
			})
			if err != nil {
				t.Fatal(err)
			}
			if d, _ := maxAbsDiff(x, before); d != 0 {
				t.Errorf("the input changed by up to %g", d)
			}
		})
	}
}

// TestFoldRefuses: other dtypes and network types are refused with
// ErrNotFoldable, not folded wrongly.
func TestFoldRefuses(t *testing.T) {
	fusedtest.Require(t)
	prev := gotch.SetDefaultDType(gotch.Double)
	vs := nn.NewVarStore(gotch.CPU)
	net64, err := ResNet32(vs.Root(), Options{Classes: 3, InChannels: 1})
	gotch.SetDefaultDType(prev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Fold(net64); !errors.Is(err, ErrNotFoldable) || !strings.Contains(err.Error(), "float32") {
		t.Errorf("float64 network: %v, want ErrNotFoldable naming float32", err)
	}
	net, err := ResNet32(nn.NewVarStore(gotch.CPU).Root(), Options{Classes: 3, InChannels: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Fold(other{net}); !errors.Is(err, ErrNotFoldable) {
		t.Errorf("another network type: %v, want ErrNotFoldable", err)
	}
}

type other struct{ Net }

// TestFoldedOnlyEvaluates: training through a Folded network is a
// programming error and panics.
func TestFoldedOnlyEvaluates(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("ForwardT(x, true) on a Folded network did not panic")
		}
	}()
	var f Folded
	f.ForwardT(nil, true)
}
