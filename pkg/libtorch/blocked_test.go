package libtorch_test

import (
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/lwr-go/lwr/internal/fusedtest"
	"github.com/lwr-go/lwr/pkg/libtorch"
)

// TestToBlocked: value (n, c, h, w) lands at [n, c/b, h, w, c mod b], and
// FromBlocked undoes it, for blocks of 8 and 16.
func TestToBlocked(t *testing.T) {
	for _, bs := range []int64{8, 16} {
		var s libtorch.Scope
		defer s.Free()
		x := s.Keep(ts.MustArange(ts.IntScalar(2*32*3*5), gotch.Float, gotch.CPU).MustView([]int64{2, 32, 3, 5}, true))
		b := s.Keep(libtorch.ToBlocked(x, bs))
		if got, want := b.MustSize(), []int64{2, 32 / bs, 3, 5, bs}; !equalInts(got, want) {
			t.Fatalf("block %d: shape %v, want %v", bs, got, want)
		}
		vals := b.Float64Values()
		for _, p := range [][4]int64{{0, 0, 0, 0}, {1, 9, 2, 4}, {0, 7, 1, 3}, {1, 15, 0, 1}, {1, 31, 2, 2}, {0, 17, 1, 0}} {
			n, c, h, w := p[0], p[1], p[2], p[3]
			want := float64(((n*32+c)*3+h)*5 + w)
			got := vals[(((n*(32/bs)+c/bs)*3+h)*5+w)*bs+c%bs]
			if got != want {
				t.Errorf("block %d: (%d,%d,%d,%d): %v, want %v", bs, n, c, h, w, got, want)
			}
		}
		back := s.Keep(libtorch.FromBlocked(b)).Float64Values()
		for i, v := range x.Float64Values() {
			if back[i] != v {
				t.Fatalf("block %d: FromBlocked(ToBlocked(x))[%d] = %v, want %v", bs, i, back[i], v)
			}
		}
	}
}

// ownWinograd reports whether lwr's own Winograd convolutions (8-channel
// blocks) run here, judged apart from the code under test: Linux says the
// CPU has AVX2 and FMA, and DNNL_MAX_CPU_ISA does not cap oneDNN (whose
// cap lwr follows) below AVX2.
func ownWinograd(t *testing.T) bool {
	t.Helper()
	info, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		t.Fatalf("which CPU: %v", err)
	}
	var flags []string
	for _, line := range strings.Split(string(info), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "flags" {
			flags = strings.Fields(v)
			break
		}
	}
	if !slices.Contains(flags, "avx2") || !slices.Contains(flags, "fma") {
		return false
	}
	isa := strings.ToUpper(os.Getenv("DNNL_MAX_CPU_ISA"))
	return isa != "SSE41" && isa != "AVX"
}

// TestConvBlocked: ConvBlocked's output and its gradients to the input and
// the weight are libtorch's convolution in float64, within float32
// rounding, for ResNet-32's convolutions (the stem from an image batch in
// either layout, 3×3 at strides 1 and 2), a 1×1, weights in either layout,
// in blocks of 8 and of 16 where the channels allow, in both algorithms,
// Winograd checked to have run where there is one (oneDNN's in blocks of
// 16 on AVX-512, lwr's in blocks of 8 on AVX2); the weight's gradient
// keeps the weight's strides, and a second call gives the same bits.
func TestConvBlocked(t *testing.T) {
	fusedtest.Require(t)
	cases := []struct {
		name                        string
		n, in, out, side, k, stride int64
		wide                        int64 // width where not side
		plain, clInput, clWeight    bool
		inputGrad                   bool
	}{
		{name: "stem", n: 4, in: 3, out: 16, side: 8, k: 3, stride: 1, plain: true},
		{name: "stem-channels-last", n: 2, in: 3, out: 16, side: 6, k: 3, stride: 1, plain: true, clInput: true, clWeight: true},
		{name: "stem-input-grad", n: 2, in: 1, out: 16, side: 5, k: 3, stride: 1, plain: true, inputGrad: true},
		{name: "stem-8", n: 2, in: 1, out: 8, side: 5, k: 3, stride: 1, plain: true, inputGrad: true},
		{name: "3x3", n: 4, in: 16, out: 16, side: 8, k: 3, stride: 1, inputGrad: true},
		{name: "3x3-weight-channels-last", n: 3, in: 16, out: 16, side: 7, k: 3, stride: 1, inputGrad: true, clWeight: true},
		{name: "3x3-stride2", n: 3, in: 16, out: 32, side: 8, k: 3, stride: 2, inputGrad: true},
		{name: "3x3-stride2-odd", n: 2, in: 32, out: 64, side: 9, k: 3, stride: 2, inputGrad: true},
		{name: "3x3-stride2-14", n: 6, in: 32, out: 64, side: 14, k: 3, stride: 2, inputGrad: true, clWeight: true},
		{name: "3x3-stride2-28", n: 6, in: 16, out: 32, side: 28, k: 3, stride: 2, inputGrad: true},
		{name: "3x3-14", n: 6, in: 32, out: 32, side: 14, k: 3, stride: 1, inputGrad: true, clWeight: true},
		{name: "3x3-7", n: 6, in: 64, out: 64, side: 7, k: 3, stride: 1, inputGrad: true},
		{name: "3x3-24-to-40", n: 5, in: 24, out: 40, side: 9, k: 3, stride: 1, inputGrad: true},
		{name: "3x3-5x11", n: 3, in: 8, out: 16, side: 5, wide: 11, k: 3, stride: 1, inputGrad: true},
		{name: "1x1", n: 2, in: 8, out: 24, side: 4, k: 1, stride: 1, inputGrad: true},
		{name: "1x1-16", n: 2, in: 32, out: 48, side: 4, k: 1, stride: 1, inputGrad: true},
	}
	libtorch.ManualSeed(5)
	own := ownWinograd(t)
	for _, c := range cases {
		if c.wide == 0 {
			c.wide = c.side
		}
		for _, bs := range []int64{8, 16} {
			if c.out%bs != 0 || (!c.plain && c.in%bs != 0) {
				continue
			}
			for _, alg := range []libtorch.ConvAlgorithm{libtorch.ConvDirect, libtorch.ConvWinograd} {
				t.Run(fmt.Sprintf("%s/block%d/%s", c.name, bs, alg), func(t *testing.T) {
					var s libtorch.Scope
					defer s.Free()
					f32 := func(shape ...int64) *ts.Tensor { return s.Keep(ts.MustRandn(shape, gotch.Float, gotch.CPU)) }
					cl := func(x *ts.Tensor) *ts.Tensor {
						y, err := libtorch.ToChannelsLast(x)
						if err != nil {
							t.Fatal(err)
						}
						return s.Keep(y)
					}
					leaf := func(x *ts.Tensor, grad bool) *ts.Tensor {
						return s.Keep(x.MustDetach(false).MustSetRequiresGrad(grad, true))
					}
					x, w := f32(c.n, c.in, c.side, c.wide), f32(c.out, c.in, c.k, c.k)
					pad := c.k / 2
					ho, wo := (c.side+2*pad-c.k)/c.stride+1, (c.wide+2*pad-c.k)/c.stride+1
					gout := f32(c.n, c.out, ho, wo)
					d := func(x *ts.Tensor) *ts.Tensor { return s.Keep(x.MustTotype(gotch.Double, false)) }

					// The reference, in float64.
					xd, wd := leaf(d(x), c.inputGrad), leaf(d(w), true)
					want := s.Keep(ts.MustConv2d(xd, wd, libtorch.None, []int64{c.stride, c.stride}, []int64{pad, pad}, []int64{1, 1}, 1))
					s.Keep(s.Keep(want.MustMul(d(gout), false)).MustSum(gotch.Double, false)).MustBackward()

					xin := x
					switch {
					case !c.plain:
						xin = s.Keep(libtorch.ToBlocked(x, bs))
					case c.clInput:
						xin = cl(x)
					}
					xin = leaf(xin, c.inputGrad)
					win := w
					if c.clWeight {
						win = cl(w)
					}
					win = leaf(win, true)
					// Winograd runs where it applies, so that its values
					// are the ones checked below.
					wino := alg == libtorch.ConvWinograd && c.k == 3 && c.stride == 1 && !c.plain &&
						((bs == 16 && libtorch.PreferredBlock() == 16) || (bs == 8 && own))
					if used, err := libtorch.ConvBlockedAlgorithm(xin, win, bs, c.stride, pad, alg); err != nil {
						t.Fatal(err)
					} else if want := map[bool]libtorch.ConvAlgorithm{false: libtorch.ConvDirect, true: libtorch.ConvWinograd}[wino]; used != want {
						t.Fatalf("runs %s, want %s", used, want)
					}
					got := s.Keep(libtorch.ConvBlocked(xin, win, bs, c.stride, pad, alg))
					if sz, want := got.MustSize(), []int64{c.n, c.out / bs, ho, wo, bs}; !equalInts(sz, want) {
						t.Fatalf("output %v, want %v", sz, want)
					}
					again := s.Keep(libtorch.ConvBlocked(xin, win, bs, c.stride, pad, alg))
					if !slices.Equal(again.Float64Values(), got.Float64Values()) {
						t.Errorf("a second call gives other values")
					}
					s.Keep(s.Keep(got.MustMul(s.Keep(libtorch.ToBlocked(gout, bs)), false)).MustSum(gotch.Float, false)).MustBackward()
					dw := s.Keep(win.MustGrad(false))
					if got, want := dw.MustStride(), win.MustStride(); !equalInts(got, want) {
						t.Errorf("weight gradient strides %v, want the weight's %v", got, want)
					}
					checks := []struct {
						name      string
						got, want *ts.Tensor
					}{{"y", s.Keep(libtorch.FromBlocked(got)), want}, {"dw", dw, s.Keep(wd.MustGrad(false))}}
					if c.inputGrad {
						dx := s.Keep(xin.MustGrad(false))
						if !c.plain {
							dx = s.Keep(libtorch.FromBlocked(dx))
						}
						checks = append(checks, struct {
							name      string
							got, want *ts.Tensor
						}{"dx", dx, s.Keep(xd.MustGrad(false))})
					}
					for _, ch := range checks {
						g := s.Keep(d(ch.got).MustContiguous(false)).Float64Values()
						w := s.Keep(ch.want.MustContiguous(false)).Float64Values()
						if len(g) != len(w) {
							t.Fatalf("%s: %d values, want %d", ch.name, len(g), len(w))
						}
						worst, scale := 0.0, 0.0
						for i := range w {
							worst = math.Max(worst, math.Abs(g[i]-w[i]))
							scale = math.Max(scale, math.Abs(w[i]))
						}
						if worst > 1e-5*scale {
							t.Errorf("%s: off by %.3g (largest |value| %.3g): want ≤ 1e-5 of it", ch.name, worst, scale)
						}
					}
				})
			}
		}
	}
}

// TestConvBlockedAlgorithm: auto runs Winograd exactly where it measured
// faster (3×3, stride 1, pad 1; in blocks of 16, ≥ 32 channels in and out,
// where oneDNN has it: AVX-512, where oneDNN prefers blocks of 16; in
// blocks of 8, 16 to 256 channels, where lwr's runs: AVX2), and winograd
// wherever the shape has one.
func TestConvBlockedAlgorithm(t *testing.T) {
	fusedtest.Require(t)
	var s libtorch.Scope
	defer s.Free()
	avx512, own := libtorch.PreferredBlock() == 16, ownWinograd(t)
	for _, c := range []struct {
		name                        string
		in, out, k, stride, pad, bs int64
		plain                       bool
		alg                         libtorch.ConvAlgorithm
		wino                        bool // where the block's Winograd runs
	}{
		{"32 channels", 32, 32, 3, 1, 1, 16, false, libtorch.ConvAuto, true},
		{"64 channels", 64, 64, 3, 1, 1, 16, false, "", true},
		{"32 to 64", 32, 64, 3, 1, 1, 16, false, libtorch.ConvAuto, true},
		{"16 channels", 16, 16, 3, 1, 1, 16, false, libtorch.ConvAuto, false},
		{"16 to 32", 16, 32, 3, 1, 1, 16, false, libtorch.ConvAuto, false},
		{"16 channels, asked winograd", 16, 16, 3, 1, 1, 16, false, libtorch.ConvWinograd, true},
		{"stride 2", 32, 64, 3, 2, 1, 16, false, libtorch.ConvAuto, false},
		{"1x1", 64, 64, 1, 1, 0, 16, false, libtorch.ConvAuto, false},
		{"1x1, asked winograd", 64, 64, 1, 1, 0, 16, false, libtorch.ConvWinograd, false},
		{"blocks of 8", 32, 32, 3, 1, 1, 8, false, libtorch.ConvAuto, true},
		{"blocks of 8, 16 channels", 16, 16, 3, 1, 1, 8, false, libtorch.ConvAuto, true},
		{"blocks of 8, 16 to 32", 16, 32, 3, 1, 1, 8, false, "", true},
		{"blocks of 8, 256 channels", 256, 256, 3, 1, 1, 8, false, libtorch.ConvAuto, true},
		{"blocks of 8, 512 channels", 512, 512, 3, 1, 1, 8, false, libtorch.ConvAuto, false},
		{"blocks of 8, 256 to 512", 256, 512, 3, 1, 1, 8, false, libtorch.ConvAuto, false},
		{"blocks of 8, 512 channels, asked winograd", 512, 512, 3, 1, 1, 8, false, libtorch.ConvWinograd, true},
		{"blocks of 8, 8 channels", 8, 8, 3, 1, 1, 8, false, libtorch.ConvAuto, false},
		{"blocks of 8, 8 channels, asked winograd", 8, 8, 3, 1, 1, 8, false, libtorch.ConvWinograd, true},
		{"blocks of 8, pad 0", 32, 32, 3, 1, 0, 8, false, libtorch.ConvAuto, false},
		{"blocks of 8, pad 0, asked winograd", 32, 32, 3, 1, 0, 8, false, libtorch.ConvWinograd, false},
		{"blocks of 8, stride 2", 32, 64, 3, 2, 1, 8, false, libtorch.ConvWinograd, false},
		{"blocks of 8, 1x1", 64, 64, 1, 1, 0, 8, false, libtorch.ConvWinograd, false},
		{"blocks of 8, image input", 3, 16, 3, 1, 1, 8, true, libtorch.ConvWinograd, false},
		{"blocks of 8, asked direct", 64, 64, 3, 1, 1, 8, false, libtorch.ConvDirect, false},
		{"image input", 32, 32, 3, 1, 1, 16, true, libtorch.ConvWinograd, false},
		{"asked direct", 64, 64, 3, 1, 1, 16, false, libtorch.ConvDirect, false},
	} {
		x := s.Keep(ts.MustZeros([]int64{2, c.in / c.bs, 12, 12, c.bs}, gotch.Float, gotch.CPU))
		if c.plain {
			x = s.Keep(ts.MustZeros([]int64{2, c.in, 12, 12}, gotch.Float, gotch.CPU))
		}
		w := s.Keep(ts.MustZeros([]int64{c.out, c.in, c.k, c.k}, gotch.Float, gotch.CPU))
		got, err := libtorch.ConvBlockedAlgorithm(x, w, c.bs, c.stride, c.pad, c.alg)
		want := libtorch.ConvDirect
		if c.wino && ((c.bs == 16 && avx512) || (c.bs == 8 && own)) {
			want = libtorch.ConvWinograd
		}
		if err != nil || got != want {
			t.Errorf("%s: %q, %v; want %q", c.name, got, err, want)
		}
	}
	x := s.Keep(ts.MustZeros([]int64{2, 2, 12, 12, 16}, gotch.Float, gotch.CPU))
	w := s.Keep(ts.MustZeros([]int64{32, 32, 3, 3}, gotch.Float, gotch.CPU))
	if _, err := libtorch.ConvBlockedAlgorithm(x, w, 16, 1, 1, "fft"); err == nil || !strings.Contains(err.Error(), `"fft"`) {
		t.Errorf("algorithm fft: error %v, want one naming it", err)
	}
	if _, err := libtorch.ParseConvAlgorithm("fft"); err == nil || !strings.Contains(err.Error(), `"fft"`) {
		t.Errorf("ParseConvAlgorithm(fft): error %v, want one naming it", err)
	}
}

// TestConvBlockedErrors: inputs ConvBlocked does not take are errors that
// say what is wrong, not crashes.
func TestConvBlockedErrors(t *testing.T) {
	fusedtest.Require(t)
	var s libtorch.Scope
	defer s.Free()
	ones := func(dtype gotch.DType, shape ...int64) *ts.Tensor {
		return s.Keep(ts.MustOnes(shape, dtype, gotch.CPU))
	}
	for _, c := range []struct {
		name, want string
		x, w       *ts.Tensor
		block      int64
		stride     int64
		alg        libtorch.ConvAlgorithm
	}{
		{"float64", "float32", ones(gotch.Double, 1, 8, 4, 4), ones(gotch.Double, 8, 8, 3, 3), 8, 1, ""},
		{"outputs not a multiple of 8", "multiple of 8", ones(gotch.Float, 1, 8, 4, 4), ones(gotch.Float, 12, 8, 3, 3), 8, 1, ""},
		{"outputs not a multiple of 16", "multiple of 16", ones(gotch.Float, 1, 8, 4, 4), ones(gotch.Float, 8, 8, 3, 3), 16, 1, ""},
		{"block of 4", "want 8 or 16", ones(gotch.Float, 1, 2, 4, 4, 4), ones(gotch.Float, 8, 8, 3, 3), 4, 1, ""},
		{"input in blocks of 8, asked 16", "contiguous [N, C/b, H, W, b], b = 16", ones(gotch.Float, 1, 2, 4, 4, 8), ones(gotch.Float, 16, 16, 3, 3), 16, 1, ""},
		{"channels", "input has 16 channels, weight wants 8", ones(gotch.Float, 1, 2, 4, 4, 8), ones(gotch.Float, 8, 8, 3, 3), 8, 1, ""},
		{"3-d", "want an input", ones(gotch.Float, 8, 4, 4), ones(gotch.Float, 8, 8, 3, 3), 8, 1, ""},
		{"stride 0", "stride < 1", ones(gotch.Float, 1, 8, 4, 4), ones(gotch.Float, 8, 8, 3, 3), 8, 0, ""},
		{"too small", "smaller than the kernel", ones(gotch.Float, 1, 8, 1, 1), ones(gotch.Float, 8, 8, 5, 5), 8, 1, ""},
		{"algorithm", `algorithm "fft": want auto, direct or winograd`, ones(gotch.Float, 1, 1, 4, 4, 8), ones(gotch.Float, 8, 8, 3, 3), 8, 1, "fft"},
	} {
		err := libtorch.Catch(func() { s.Keep(libtorch.ConvBlocked(c.x, c.w, c.block, c.stride, 1, c.alg)) })
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one saying %q", c.name, err, c.want)
		}
	}
}

// TestPreferredBlock: oneDNN's choice is a block this build handles, and
// 8 where the CPU's best kernels are AVX2 (or narrower).
func TestPreferredBlock(t *testing.T) {
	fusedtest.Require(t)
	b := libtorch.PreferredBlock()
	if b != 0 && b != 8 && b != 16 {
		t.Fatalf("PreferredBlock() = %d, want 0, 8 or 16", b)
	}
	t.Logf("oneDNN's preferred block here: %d", b)
}
