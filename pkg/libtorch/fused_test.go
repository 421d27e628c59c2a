package libtorch_test

import (
	"math"
	"runtime"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/lwr-go/lwr/internal/fusedtest"
	"github.com/lwr-go/lwr/pkg/libtorch"
)

// TestFusedConv: a folded convolution gives conv → batch norm (running
// statistics) → + add → ReLU as libtorch computes it in float64, within
// float32 rounding, for the shapes ResNet-32 and ResNet-50 use (3×3 and
// 1×1, strides 1 and 2, the 7×7 stem, grouped), inputs in either layout.
func TestFusedConv(t *testing.T) {
	fusedtest.Require(t)
	cases := []struct {
		name                     string
		n, in, out, side, k, str int64
		groups                   int64
		add, relu, cl            bool
	}{
		{"3x3", 4, 16, 16, 8, 3, 1, 1, false, true, true},
		{"3x3-add-relu", 4, 16, 16, 8, 3, 1, 1, true, true, true},
		{"3x3-stride2", 3, 16, 32, 9, 3, 2, 1, false, true, false},
		{"1x1-stride2-no-relu", 2, 32, 64, 8, 1, 2, 1, false, false, true},
		{"1x1-add-no-relu", 2, 8, 24, 5, 1, 1, 1, true, false, false},
		{"7x7-stem", 2, 3, 8, 20, 7, 2, 1, false, true, false},
		{"1-channel", 5, 1, 16, 28, 3, 1, 1, false, true, false},
		{"grouped", 2, 32, 32, 6, 3, 1, 8, false, true, true},
	}
	libtorch.ManualSeed(3)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var s libtorch.Scope
			defer s.Free()
			f32 := func(shape ...int64) *ts.Tensor { return s.Keep(ts.MustRandn(shape, gotch.Float, gotch.CPU)) }
			x := f32(c.n, c.in, c.side, c.side)
			if c.cl {
				y, err := libtorch.ToChannelsLast(x)
				if err != nil {
					t.Fatal(err)
				}
				x = s.Keep(y)
			}
			w := f32(c.out, c.in/c.groups, c.k, c.k)
			gamma := s.Keep(f32(c.out).MustAddScalar(ts.FloatScalar(1), false))
			beta := f32(c.out)
			mean := f32(c.out)
			variance := s.Keep(ts.MustRand([]int64{c.out}, gotch.Float, gotch.CPU).MustAddScalar(ts.FloatScalar(0.1), true))
			pad := c.k / 2
			ho := (c.side+2*pad-c.k)/c.str + 1
			var add *ts.Tensor
			if c.add {
				add = f32(c.n, c.out, ho, ho)
			}
			d := func(x *ts.Tensor) *ts.Tensor { return s.Keep(x.MustTotype(gotch.Double, false)) }
			want := s.Keep(ts.MustConv2d(d(x), d(w), libtorch.None, []int64{c.str, c.str}, []int64{pad, pad}, []int64{1, 1}, c.groups))
			want = s.Keep(ts.MustBatchNorm(want, d(gamma), d(beta), d(mean), d(variance), false, 0.1, 1e-5, false))
			if c.add {
				want = s.Keep(want.MustAdd(d(add), false))
			}
			if c.relu {
				want = s.Keep(want.MustRelu(false))
			}
			var addCopy *ts.Tensor
			if add != nil {
				addCopy = s.Keep(add.MustTotype(gotch.Float, false).MustContiguous(true)) // the call may compute in add's memory
			}
			fc, err := libtorch.NewFusedConv(w, gamma, beta, mean, variance, 1e-5, [2]int64{c.str, c.str}, [2]int64{pad, pad}, c.groups)
			if err != nil {
				t.Fatal(err)
			}
			defer fc.Close()
			for round := 0; round < 2; round++ {
				in := addCopy
				if in != nil {
					in = s.Keep(in.MustTotype(gotch.Float, false).MustContiguous(true))
				}
				got, err := fc.Forward(x, in, c.relu)
				if err != nil {
					t.Fatal(err)
				}
				s.Keep(got)
				if !isChannelsLast(got) {
					t.Errorf("result is not channels-last")
				}
				// Values in NCHW order on both sides.
				gs := s.Keep(d(got).MustContiguous(false)).Float64Values()
				w := s.Keep(want.MustContiguous(false)).Float64Values()
				if len(gs) != len(w) {
					t.Fatalf("%d values, want %d", len(gs), len(w))
				}
				worst, scale := 0.0, 0.0
				for i := range w {
					worst = math.Max(worst, math.Abs(gs[i]-w[i]))
					scale = math.Max(scale, math.Abs(w[i]))
				}
				if worst > 1e-5*scale {
					t.Errorf("round %d: off by %.3g (largest |value| %.3g): want ≤ 1e-5 of it", round, worst, scale)
				}
			}
		})
	}
}

func isChannelsLast(x *ts.Tensor) bool {
	st := x.MustStride()
	sz := x.MustSize()
	return len(st) == 4 && st[1] == 1 && st[3] == sz[1] && st[2] == sz[1]*sz[3]
}

// TestFusedConvErrors: a wrong input, a wrong tensor to add and a use
// after Close are errors that say what is wrong, not crashes.
func TestFusedConvErrors(t *testing.T) {
	fusedtest.Require(t)
	var s libtorch.Scope
	defer s.Free()
	ones := func(shape ...int64) *ts.Tensor { return s.Keep(ts.MustOnes(shape, gotch.Float, gotch.CPU)) }
	fc, err := libtorch.NewFusedConv(ones(8, 4, 3, 3), ones(8), ones(8), ones(8), ones(8), 1e-5, [2]int64{1, 1}, [2]int64{1, 1}, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		x, add *ts.Tensor
		want   string
	}{
		{"channels", ones(2, 3, 5, 5), nil, "3 channels, weight wants 4"},
		{"not 4-d", ones(2, 4, 5), nil, "want a float32 input [N, C, H, W]"},
		{"float64", s.Keep(ts.MustOnes([]int64{2, 4, 5, 5}, gotch.Double, gotch.CPU)), nil, "want a float32 input"},
		{"add shape", ones(2, 4, 5, 5), ones(2, 8, 4, 4), "the tensor to add"},
	} {
		if _, err := fc.Forward(c.x, c.add, true); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
		}
	}
	if _, err := libtorch.NewFusedConv(ones(6, 4, 3, 3), ones(6), ones(6), ones(6), ones(6), 1e-5, [2]int64{1, 1}, [2]int64{1, 1}, 4); err == nil {
		t.Error("6 output channels in 4 groups: no error")
	}
	fc.Close()
	if _, err := fc.Forward(ones(2, 4, 5, 5), nil, true); err == nil || !strings.Contains(err.Error(), "after Close") {
		t.Errorf("after Close: %v, want an error", err)
	}
	fc.Close() // a second Close is harmless
}

// TestFusedConvThreads: a handle whose kernels were built on one OS thread
// runs on another, with the same and with another thread count, and gives
// the same values. Without AVX2 (make test-isa's SSE4.1 run) oneDNN picks a
// gemm-based convolution whose default scratchpad belongs to the creating
// thread: run on another it read a null buffer and crashed.
func TestFusedConvThreads(t *testing.T) {
	fusedtest.Require(t)
	var s libtorch.Scope
	defer s.Free()
	libtorch.ManualSeed(5)
	randn := func(shape ...int64) *ts.Tensor { return s.Keep(ts.MustRandn(shape, gotch.Float, gotch.CPU)) }
	ones := s.Keep(ts.MustOnes([]int64{16}, gotch.Float, gotch.CPU))
	zeros := s.Keep(ts.MustZeros([]int64{16}, gotch.Float, gotch.CPU))
	x := randn(5, 1, 28, 28)
	fc, err := libtorch.NewFusedConv(randn(16, 1, 3, 3), ones, zeros, zeros, ones, 1e-5, [2]int64{1, 1}, [2]int64{1, 1}, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	forward := func(threads int) ([]float64, error) {
		libtorch.SetNumThreads(threads)
		y, err := fc.Forward(x, nil, true)
		if err != nil {
			return nil, err
		}
		defer y.MustDrop()
		c := y.MustContiguous(false)
		defer c.MustDrop()
		return c.Float64Values(), nil
	}
	// Two goroutines, each locked to its OS thread until the test ends, so
	// that the second surely runs on another thread than the first.
	type result struct {
		v   []float64
		err error
	}
	first, second, release := make(chan result), make(chan result, 2), make(chan struct{})
	defer close(release)
	go func() {
		runtime.LockOSThread()
		v, err := forward(1)
		first <- result{v, err}
		<-release
	}()
	a := <-first
	if a.err != nil {
		t.Fatal(a.err)
	}
	go func() {
		runtime.LockOSThread()
		for _, threads := range []int{1, 2} {
			v, err := forward(threads)
			second <- result{v, err}
		}
		<-release
	}()
	for i, threads := range []int{1, 2} {
		b := <-second
		if b.err != nil {
			t.Fatal(b.err)
		}
		for k := range b.v {
			if math.Abs(b.v[k]-a.v[k]) > 1e-5*(1+math.Abs(a.v[k])) {
				t.Errorf("other thread, call %d (%d threads): value %d is %g, on the first thread %g", i, threads, k, b.v[k], a.v[k])
				break
			}
		}
	}
}
