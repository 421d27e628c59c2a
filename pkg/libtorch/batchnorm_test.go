package libtorch_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/lwr-go/lwr/pkg/libtorch"
)

// bnCase is one call of BatchNormReLU: x [n,c,h,w] drawn from N(shift, 1),
// with a shortcut of x's shape when res is set, in the Blocked format
// [n,c/b,h,w,b] of block b (8 or 16) when block is set (else
// channels-last).
type bnCase struct {
	name       string
	n, c, h, w int64
	res        bool
	shift      float64
	block      int64
	noReLU     bool // BatchNorm: no shortcut, no ReLU
}

// bnResult is what a call gives: the output, the gradients of
// sum(y * gout) to x, the shortcut, the weight and the bias, and the
// running statistics after it, all as float64 values in NCHW order.
type bnResult struct {
	y, dx, dres, dw, db, mean, variance []float64
}

// runBN draws c's inputs from seed and runs them through BatchNormReLU in
// float32 channels-last or blocked (fused) or through libtorch's batch
// norm, add and ReLU in float64 (the reference). ok is false when
// BatchNormReLU declined.
func runBN(t *testing.T, c bnCase, seed int64, fused bool) (r bnResult, ok bool) {
	t.Helper()
	var s libtorch.Scope
	defer s.Free()
	libtorch.ManualSeed(seed)
	dtype := gotch.Double
	if fused {
		dtype = gotch.Float
	}
	draw := func(shape []int64, scale, shift float64) *ts.Tensor {
		x := s.Keep(ts.MustRandn(shape, gotch.Float, gotch.CPU))
		x = s.Keep(x.MustMulScalar(ts.FloatScalar(scale), false).MustAddScalar(ts.FloatScalar(shift), true))
		return s.Keep(x.MustTotype(dtype, false))
	}
	blocked := fused && c.block != 0
	leaf := func(x *ts.Tensor, cl bool) *ts.Tensor {
		if cl && blocked {
			x = s.Keep(libtorch.ToBlocked(x, c.block))
		} else if cl {
			y, err := libtorch.ToChannelsLast(x)
			if err != nil {
				t.Fatal(err)
			}
			x = s.Keep(y)
		}
		return s.Keep(x.MustDetach(false).MustSetRequiresGrad(true, true))
	}
	shape := []int64{c.n, c.c, c.h, c.w}
	x := leaf(draw(shape, 1, c.shift), fused)
	var res *ts.Tensor
	resDraw := draw(shape, 1, 0)
	if c.res {
		res = leaf(resDraw, fused)
	}
	w := leaf(draw([]int64{c.c}, 0.5, 1), false)
	b := leaf(draw([]int64{c.c}, 0.3, 0), false)
	mean := s.Keep(draw([]int64{c.c}, 1, 0).MustDetach(false))
	variance := s.Keep(draw([]int64{c.c}, 0.2, 1).MustAbs(false))
	gout := draw(shape, 1, 0)
	if blocked {
		gout = s.Keep(libtorch.ToBlocked(gout, c.block))
	}
	var y *ts.Tensor
	if fused {
		if c.noReLU {
			y = libtorch.BatchNorm(x, w, b, mean, variance, 0.1, 1e-5)
		} else {
			y = libtorch.BatchNormReLU(x, res, w, b, mean, variance, 0.1, 1e-5)
		}
		if y == nil {
			return r, false
		}
		s.Keep(y)
		if blocked && !equalInts(y.MustSize(), x.MustSize()) {
			t.Errorf("output is %v, want the input's blocked shape %v", y.MustSize(), x.MustSize())
		} else if !blocked && !isChannelsLast(y) {
			t.Errorf("output is not channels-last")
		}
	} else {
		y = s.Keep(ts.MustBatchNorm(x, w, b, mean, variance, true, 0.1, 1e-5, false))
		if res != nil {
			y = s.Keep(y.MustAdd(res, false))
		}
		if !c.noReLU {
			y = s.Keep(y.MustRelu(false))
		}
	}
	loss := s.Keep(s.Keep(y.MustMul(gout, false)).MustSum(dtype, false))
	loss.MustBackward()
	values := func(t *ts.Tensor) []float64 { // in NCHW order
		if len(t.MustSize()) == 5 {
			t = s.Keep(libtorch.FromBlocked(t))
		}
		return s.Keep(s.Keep(t.MustTotype(gotch.Double, false)).MustContiguous(true)).Float64Values()
	}
	r = bnResult{y: values(y), dx: values(s.Keep(x.MustGrad(false))), dw: values(s.Keep(w.MustGrad(false))),
		db: values(s.Keep(b.MustGrad(false))), mean: values(mean), variance: values(variance)}
	if res != nil {
		r.dres = values(s.Keep(res.MustGrad(false)))
	}
	return r, true
}

// TestBatchNormReLU: lwr's kernel gives relu(batch_norm(x) + res) in
// training, its gradients and the updated running statistics as
// libtorch computes them in float64, within float32 rounding: for
// ResNet-32's and ResNet-50's widths, with and without the shortcut, one
// channel, two values per channel, and a mean far from zero against the
// spread (where a one-pass variance in float32 would lose it); in the
// channels-last and the Blocked format (blocks of 8 and of 16); and
// batch_norm(x) alone (BatchNorm).
func TestBatchNormReLU(t *testing.T) {
	for _, c := range []bnCase{
		{name: "resnet32-stage1", n: 4, c: 16, h: 8, w: 8},
		{name: "residual", n: 4, c: 16, h: 8, w: 8, res: true},
		{name: "wide", n: 2, c: 256, h: 3, w: 5, res: true},
		{name: "one-channel", n: 3, c: 1, h: 5, w: 5},
		{name: "two-values", n: 2, c: 4, h: 1, w: 1, res: true},
		{name: "mean-300", n: 4, c: 8, h: 6, w: 6, shift: 300},
		{name: "blocked", n: 4, c: 16, h: 8, w: 8, block: 8},
		{name: "blocked-residual", n: 4, c: 32, h: 5, w: 7, res: true, block: 8},
		{name: "blocked-one-block", n: 3, c: 8, h: 4, w: 4, res: true, block: 8},
		{name: "blocked-two-values", n: 2, c: 16, h: 1, w: 1, res: true, block: 8},
		{name: "blocked-mean-300", n: 4, c: 16, h: 6, w: 6, shift: 300, block: 8},
		{name: "blocked16", n: 4, c: 32, h: 8, w: 8, block: 16},
		{name: "no-relu", n: 4, c: 32, h: 7, w: 7, noReLU: true},
		{name: "no-relu-mean-300", n: 4, c: 8, h: 6, w: 6, shift: 300, noReLU: true},
		{name: "blocked16-no-relu", n: 4, c: 64, h: 7, w: 7, block: 16, noReLU: true},
		{name: "blocked8-no-relu", n: 3, c: 16, h: 4, w: 6, block: 8, noReLU: true},
		{name: "blocked16-residual", n: 4, c: 64, h: 5, w: 7, res: true, block: 16},
		{name: "blocked16-residual-14", n: 6, c: 32, h: 14, w: 14, res: true, block: 16},
		{name: "blocked16-2px", n: 6, c: 32, h: 3, w: 2, res: true, block: 16},
		{name: "blocked16-one-block", n: 3, c: 16, h: 4, w: 4, res: true, block: 16},
		{name: "blocked16-two-values", n: 2, c: 32, h: 1, w: 1, res: true, block: 16},
		{name: "blocked16-mean-300", n: 4, c: 16, h: 6, w: 6, shift: 300, block: 16},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok := runBN(t, c, 11, true)
			if !ok {
				t.Fatal("BatchNormReLU declined a float32 channels-last or blocked CPU input")
			}
			want, _ := runBN(t, c, 11, false)
			for _, f := range []struct {
				name      string
				got, want []float64
			}{
				{"y", got.y, want.y}, {"dx", got.dx, want.dx}, {"dres", got.dres, want.dres},
				{"dw", got.dw, want.dw}, {"db", got.db, want.db},
				{"running mean", got.mean, want.mean}, {"running var", got.variance, want.variance},
			} {
				if len(f.got) != len(f.want) {
					t.Fatalf("%s: %d values, want %d", f.name, len(f.got), len(f.want))
				}
				// Scale at least 0.01: with two values per channel the
				// gradient to x is zero but for rounding.
				worst, scale := 0.0, 0.01
				for i := range f.want {
					worst = math.Max(worst, math.Abs(f.got[i]-f.want[i]))
					scale = math.Max(scale, math.Abs(f.want[i]))
				}
				if worst > 2e-5*scale {
					t.Errorf("%s: off by %.3g (largest |value| %.3g): want ≤ 2e-5 of it", f.name, worst, scale)
				}
			}
		})
	}
}

// TestBatchNormReLUThreads: the result is the same to the bit on one
// thread and on two (the sums run in blocks fixed by the shape).
func TestBatchNormReLUThreads(t *testing.T) {
	prev := libtorch.NumThreads()
	defer libtorch.SetNumThreads(prev)
	for _, block := range []int64{0, 8, 16} {
		c := bnCase{n: 8, c: 16, h: 32, w: 32, res: true, block: block} // 4 blocks of rows; 16 or 8 planes
		var runs []bnResult
		for _, n := range []int{1, 2} {
			libtorch.SetNumThreads(n)
			r, ok := runBN(t, c, 5, true)
			if !ok {
				t.Fatal("declined")
			}
			runs = append(runs, r)
		}
		sameBits(t, fmt.Sprintf("block=%d", block), runs[0], runs[1])
	}
}

// sameBits fails t where a and b differ in any bit.
func sameBits(t *testing.T, name string, a, b bnResult) {
	t.Helper()
	for _, f := range []struct {
		name string
		a, b []float64
	}{{"y", a.y, b.y}, {"dx", a.dx, b.dx}, {"dres", a.dres, b.dres}, {"dw", a.dw, b.dw}, {"db", a.db, b.db}, {"running var", a.variance, b.variance}} {
		for i := range f.a {
			if f.a[i] != f.b[i] {
				t.Errorf("%s: %s[%d]: %v on one thread, %v on two", name, f.name, i, f.a[i], f.b[i])
				break
			}
		}
	}
}

// TestBatchNormReLUDeclines: inputs the kernel does not handle come back
// nil with the running statistics untouched, for libtorch's ops to run.
func TestBatchNormReLUDeclines(t *testing.T) {
	var s libtorch.Scope
	defer s.Free()
	ones := func(dtype gotch.DType, shape ...int64) *ts.Tensor {
		return s.Keep(ts.MustOnes(shape, dtype, gotch.CPU))
	}
	cl := func(x *ts.Tensor) *ts.Tensor {
		y, err := libtorch.ToChannelsLast(x)
		if err != nil {
			t.Fatal(err)
		}
		return s.Keep(y)
	}
	for _, c := range []struct {
		name   string
		x, res *ts.Tensor
	}{
		{"float64", cl(ones(gotch.Double, 2, 4, 3, 3)), nil},
		{"NCHW", ones(gotch.Float, 2, 4, 3, 3), nil},
		{"one value per channel", cl(ones(gotch.Float, 1, 4, 1, 1)), nil},
		{"3-d", ones(gotch.Float, 2, 4, 3), nil},
		{"5-d not contiguous", s.Keep(ones(gotch.Float, 2, 1, 3, 3, 4).MustTranspose(2, 3, false)), nil},
		{"shortcut shape", cl(ones(gotch.Float, 2, 4, 3, 3)), cl(ones(gotch.Float, 2, 4, 2, 2))},
		{"shortcut float64", cl(ones(gotch.Float, 2, 4, 3, 3)), cl(ones(gotch.Double, 2, 4, 3, 3))},
	} {
		mean, variance := s.Keep(ts.MustZeros([]int64{4}, gotch.Float, gotch.CPU)), ones(gotch.Float, 4)
		if y := libtorch.BatchNormReLU(c.x, c.res, ones(gotch.Float, 4), ones(gotch.Float, 4), mean, variance, 0.1, 1e-5); y != nil {
			y.MustDrop()
			t.Errorf("%s: ran, want nil", c.name)
		}
		if m, v := mean.Float64Values(), variance.Float64Values(); m[0] != 0 || v[0] != 1 {
			t.Errorf("%s: running statistics changed to %v, %v", c.name, m, v)
		}
	}
}

// TestBatchNormReLUNaN: a NaN in the input comes out as NaN in its
// channel, as with libtorch's ops, not as a ReLU zero that hides it.
func TestBatchNormReLUNaN(t *testing.T) {
	var s libtorch.Scope
	defer s.Free()
	x := s.Keep(ts.MustRandn([]int64{2, 3, 4, 4}, gotch.Float, gotch.CPU))
	libtorch.NoGrad(func() {
		v := s.Keep(x.MustSelect(1, 1, false).MustSelect(0, 0, true).MustSelect(0, 2, true).MustSelect(0, 3, true))
		v.MustFill_(ts.FloatScalar(math.NaN()))
	})
	xl, err := libtorch.ToChannelsLast(x)
	if err != nil {
		t.Fatal(err)
	}
	s.Keep(xl)
	ones := func() *ts.Tensor { return s.Keep(ts.MustOnes([]int64{3}, gotch.Float, gotch.CPU)) }
	y := libtorch.BatchNormReLU(xl, nil, ones(), ones(), ones(), ones(), 0.1, 1e-5)
	if y == nil {
		t.Fatal("declined")
	}
	s.Keep(y)
	vals := s.Keep(y.MustContiguous(false)).Float64Values() // NCHW: channel 1 of each image is NaN
	for i, v := range vals {
		ch := i / 16 % 3
		if ch == 1 && !math.IsNaN(v) {
			t.Fatalf("value %d (channel 1) is %v, want NaN", i, v)
		}
		if ch != 1 && math.IsNaN(v) {
			t.Fatalf("value %d (channel %d) is NaN", i, ch)
		}
	}
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
