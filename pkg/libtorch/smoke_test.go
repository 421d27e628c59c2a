package libtorch

import (
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// TestTinyConvNetLearns is the build's smoke test: a conv net built from
// gotch ops runs forward, backward and plain SGD steps on the CPU, and its
// loss on a fixed batch must fall.
func TestTinyConvNetLearns(t *testing.T) {
	err := OnThread(func() error {
		ManualSeed(1)
		param := func(shape ...int64) *ts.Tensor {
			x := ts.MustRandn(shape, gotch.Float, gotch.CPU)
			y := x.MustMulScalar(ts.FloatScalar(0.1), true)
			return y.MustSetRequiresGrad(true, true)
		}
		convW, convB := param(8, 1, 3, 3), param(8)
		fcW, fcB := param(4, 8*4*4), param(4)
		params := []*ts.Tensor{convW, convB, fcW, fcB}
		x := ts.MustRandn([]int64{16, 1, 8, 8}, gotch.Float, gotch.CPU)
		y := ts.MustRandint(4, []int64{16}, gotch.Int64, gotch.CPU)

		step := func() float64 {
			var s Scope
			defer s.Free()
			h := s.Keep(ts.MustConv2d(x, convW, convB, []int64{1, 1}, []int64{1, 1}, []int64{1, 1}, 1))
			h = s.Keep(h.MustRelu(false))
			h = s.Keep(h.MustAdaptiveAvgPool2d([]int64{4, 4}, false))
			h = s.Keep(h.MustFlatten(1, -1, false))
			logits := s.Keep(ts.MustLinear(h, fcW, fcB))
			loss := s.Keep(logits.MustCrossEntropyLoss(y, None, 1, -100, 0, false))
			loss.MustBackward()
			NoGrad(func() {
				for _, p := range params {
					g := s.Keep(p.MustGrad(false))
					p.MustSub_(s.Keep(g.MustMulScalar(ts.FloatScalar(0.5), false)))
					g.MustZero_()
				}
			})
			return loss.Float64Values()[0]
		}
		first := step()
		var last float64
		for i := 0; i < 60; i++ {
			last = step()
		}
		if !(last < 0.5*first) {
			t.Errorf("loss %.4f after 60 SGD steps, started at %.4f: want it halved", last, first)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
