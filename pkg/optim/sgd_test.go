package optim

import (
	"math"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// TestSGDMatchesTorch: two steps on loss = Σ p²/2 (gradient p) from p = [1, -2],
// lr 0.1, wd 0.01, μ 0.9. Expected values follow torch.optim.SGD's update:
// step 1: d = 1.01p, b = d, p -= 0.1b; step 2: d = 1.01p, b = 0.9b + d, p -= 0.1b
// (Nesterov: p -= 0.1(d + 0.9b)).
func TestSGDMatchesTorch(t *testing.T) {
	want := func(nesterov bool) []float64 {
		var out []float64
		for _, p0 := range []float64{1, -2} {
			p, b := p0, 0.0
			for s := 0; s < 2; s++ {
				d := p + 0.01*p
				b = 0.9*b + d
				if nesterov {
					p -= 0.1 * (d + 0.9*b)
				} else {
					p -= 0.1 * b
				}
			}
			out = append(out, p)
		}
		return out
	}
	for _, nesterov := range []bool{false, true} {
		p := ts.MustOfSlice([]float64{1, -2}).MustSetRequiresGrad(true, true)
		opt, err := NewSGD([]*ts.Tensor{p}, 0.1, 0.9, 0.01, nesterov)
		if err != nil {
			t.Fatal(err)
		}
		for s := 0; s < 2; s++ {
			loss := p.MustMul(p, false).MustSum(gotch.Double, true).MustMulScalar(ts.FloatScalar(0.5), true)
			loss.MustBackward()
			loss.MustDrop()
			opt.Step()
		}
		got := p.MustDetach(false).Float64Values(true)
		w := want(nesterov)
		for i := range w {
			if math.Abs(got[i]-w[i]) > 1e-12 {
				t.Errorf("nesterov=%v: p[%d] = %.15g, want %.15g", nesterov, i, got[i], w[i])
			}
		}
		g := p.MustGrad(false)
		if vals := g.Float64Values(true); vals[0] != 0 || vals[1] != 0 {
			t.Errorf("gradient not zeroed: %v", vals)
		}
		p.MustDrop()
	}
}

func TestNewSGDRejects(t *testing.T) {
	for _, c := range []struct {
		lr, m, wd float64
		nesterov  bool
	}{
		{-1, 0.9, 0, false}, {0.1, 1, 0, false}, {0.1, 0.9, -1, false}, {0.1, 0, 0, true},
	} {
		if _, err := NewSGD(nil, c.lr, c.m, c.wd, c.nesterov); err == nil {
			t.Errorf("NewSGD(lr %v, μ %v, wd %v, nesterov %v) accepted", c.lr, c.m, c.wd, c.nesterov)
		}
	}
}
