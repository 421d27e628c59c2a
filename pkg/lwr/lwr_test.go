package lwr

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/lwr-go/lwr/internal/golden"

	"github.com/lwr-go/lwr/pkg/libtorch"
)

// lwrCase is one of testdata's lwr_cases (../losses/testdata/losses.json,
// computed with PyTorch 1.13 float64 autograd from the formula in the
// package comment).
type lwrCase struct {
	Name     string      `json:"name"`
	C        int         `json:"C"`
	D        int         `json:"d"`
	W        [][]float64 `json:"W"`
	W1       [][]float64 `json:"W1"`
	B1       []float64   `json:"b1"`
	W2       [][]float64 `json:"W2"`
	B2       []float64   `json:"b2"`
	Variants []struct {
		Name          string      `json:"name"`
		Projection    bool        `json:"projection"`
		Theta         float64     `json:"theta"`
		Tau           float64     `json:"tau"`
		MaskRowCounts []int       `json:"mask_row_counts"`
		RSum          float64     `json:"R_sum"`
		RMean         float64     `json:"R_mean"`
		GradW         [][]float64 `json:"grad_W"`
		GradW1        [][]float64 `json:"grad_W1"`
		GradB1        []float64   `json:"grad_b1"`
		GradW2        [][]float64 `json:"grad_W2"`
		GradB2        []float64   `json:"grad_b2"`
	} `json:"variants"`
}

func loadCases(t *testing.T) []lwrCase {
	t.Helper()
	b, err := os.ReadFile(golden.File())
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Cases []lwrCase `json:"lwr_cases"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Cases) == 0 {
		t.Fatal("no lwr_cases in the vectors")
	}
	return f.Cases
}

func flat(m [][]float64) []float64 {
	var out []float64
	for _, r := range m {
		out = append(out, r...)
	}
	return out
}

func leaf(vals []float64, dtype gotch.DType, shape ...int64) *ts.Tensor {
	return ts.MustOfSlice(vals).MustView(shape, true).MustTotype(dtype, true).MustSetRequiresGrad(true, true)
}

func gradOf(x *ts.Tensor) []float64 {
	g := x.MustGrad(false)
	return g.MustTotype(gotch.Double, true).Float64Values(true)
}

func TestGoldenVectors(t *testing.T) {
	for _, c := range loadCases(t) {
		for _, v := range c.Variants {
			for _, dt := range []struct {
				dtype gotch.DType
				rtol  float64
			}{{gotch.Double, 1e-5}, {gotch.Float, 1e-4}} {
				for _, red := range []Reduction{Sum, Mean} {
					t.Run(fmt.Sprintf("%s/%s/%v/%s", c.Name, v.Name, dt.dtype, red), func(t *testing.T) {
						cfg := Config{Theta: v.Theta, Tau: v.Tau, Projection: v.Projection, Reduction: red}
						C, d := int64(c.C), int64(c.D)
						r := &Regularizer{cfg: cfg}
						w := leaf(flat(c.W), dt.dtype, C, d)
						params := []*ts.Tensor{w}
						if v.Projection {
							r.W1, r.B1 = leaf(flat(c.W1), dt.dtype, d, d), leaf(c.B1, dt.dtype, d)
							r.W2, r.B2 = leaf(flat(c.W2), dt.dtype, d, d), leaf(c.B2, dt.dtype, d)
							params = append(params, r.W1, r.B1, r.W2, r.B2)
						}
						defer func() {
							for _, p := range params {
								p.MustDrop()
							}
						}()
						var s libtorch.Scope
						sim := r.similarity(&s, w)
						counts := sim.MustGt(ts.FloatScalar(v.Theta), false).MustSumDimIntlist([]int64{1}, false, gotch.Int64, true)
						for i, n := range counts.Int64Values(true) {
							if int(n) != v.MaskRowCounts[i] {
								t.Errorf("mask row %d: %d above θ, want %d", i, n, v.MaskRowCounts[i])
							}
						}
						s.Free()

						R := r.Loss(w)
						defer R.MustDrop()
						want, scale := v.RSum, 1.0
						if red == Mean {
							want, scale = v.RMean, 1/float64(c.C)
						}
						if err := golden.Within([]float64{R.Float64Values()[0]}, []float64{want}, dt.rtol); err != nil {
							t.Errorf("R: %v", err)
						}
						R.MustBackward()
						scaled := func(m []float64) []float64 {
							out := make([]float64, len(m))
							for i := range m {
								out[i] = m[i] * scale
							}
							return out
						}
						checks := []struct {
							name string
							x    *ts.Tensor
							want []float64
						}{{"W", w, flat(v.GradW)}}
						if v.Projection {
							checks = append(checks,
								struct {
									name string
									x    *ts.Tensor
									want []float64
								}{"W1", r.W1, flat(v.GradW1)},
								struct {
									name string
									x    *ts.Tensor
									want []float64
								}{"b1", r.B1, v.GradB1},
								struct {
									name string
									x    *ts.Tensor
									want []float64
								}{"W2", r.W2, flat(v.GradW2)},
								struct {
									name string
									x    *ts.Tensor
									want []float64
								}{"b2", r.B2, v.GradB2})
						}
						for _, ch := range checks {
							if err := golden.Within(gradOf(ch.x), scaled(ch.want), dt.rtol); err != nil {
								t.Errorf("grad %s: %v", ch.name, err)
							}
						}
					})
				}
			}
		}
	}
}

// TestFiniteDifferences checks the gradient of R against central
// differences in float64, with and without projection, for a θ at which
// the mask is mixed (a step of 1e-6 cannot flip it: each |s_ij-θ| is checked).
func TestFiniteDifferences(t *testing.T) {
	for _, proj := range []bool{false, true} {
		t.Run(fmt.Sprintf("projection=%v", proj), func(t *testing.T) {
			libtorch.ManualSeed(3)
			vs := nn.NewVarStore(gotch.CPU)
			const C, d = 6, 5
			r, err := New(vs.Root(), d, Config{Theta: 0.1, Tau: 0.1, Projection: proj, Reduction: Sum})
			if err != nil {
				t.Fatal(err)
			}
			if proj {
				for _, p := range []**ts.Tensor{&r.W1, &r.B1, &r.W2, &r.B2} {
					*p = (*p).MustTotype(gotch.Double, false).MustDetach(true)
				}
			}
			w0 := ts.MustRandn([]int64{C, d}, gotch.Double, gotch.CPU)
			base := w0.Float64Values()
			w := w0.MustSetRequiresGrad(true, true)
			R := r.Loss(w)
			R.MustBackward()
			grad := gradOf(w)
			var s libtorch.Scope
			sim := r.similarity(&s, w).MustDetach(false).Float64Values(true)
			s.Free()
			for i, v := range sim {
				if i%(C+1) != 0 && math.Abs(v-0.1) < 1e-4 {
					t.Fatalf("pair %d: s = %v too close to θ for a finite difference", i, v)
				}
			}
			eval := func(vals []float64) float64 {
				x := ts.MustOfSlice(vals).MustView([]int64{C, d}, true)
				defer x.MustDrop()
				var out float64
				libtorch.NoGrad(func() {
					R := r.Loss(x)
					out = R.Float64Values(true)[0]
				})
				return out
			}
			const h = 1e-6
			for k := range base {
				plus := append([]float64(nil), base...)
				minus := append([]float64(nil), base...)
				plus[k] += h
				minus[k] -= h
				fd := (eval(plus) - eval(minus)) / (2 * h)
				if math.Abs(fd-grad[k]) > 1e-6*(1+math.Abs(fd)) {
					t.Errorf("dR/dW[%d]: autograd %.9g, finite difference %.9g", k, grad[k], fd)
				}
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		cfg  Config
		want string
	}{
		{Config{Theta: 1.5, Tau: 0.1, Reduction: Sum}, "lwr theta = 1.5 is out of range"},
		{Config{Theta: math.NaN(), Tau: 0.1, Reduction: Sum}, "lwr theta"},
		{Config{Theta: 0.4, Tau: 0, Reduction: Sum}, "lwr tau = 0 is out of range"},
		{Config{Theta: 0.4, Tau: -1, Reduction: Sum}, "lwr tau = -1"},
		{Config{Theta: 0.4, Tau: 0.1, Reduction: "max"}, `lwr reduction "max"`},
	}
	for _, c := range cases {
		err := c.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate(%+v) = %v, want %q", c.cfg, err, c.want)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("default config: %v", err)
	}
}

func TestSchedule(t *testing.T) {
	cases := []struct {
		s    Schedule
		t, T int
		want float64
	}{
		{Quadratic, 0, 200, 1},
		{Quadratic, 100, 200, 0.25},
		{Quadratic, 150, 200, 0.0625},
		{Quadratic, 199, 200, 0.000025},
		{Constant, 150, 200, 1},
	}
	for _, c := range cases {
		got, err := c.s.Weight(c.t, c.T)
		if err != nil || math.Abs(got-c.want) > 1e-15 {
			t.Errorf("%s.Weight(%d, %d) = %v, %v; want %v", c.s, c.t, c.T, got, err, c.want)
		}
	}
	if _, err := Schedule("cosine").Weight(1, 2); err == nil {
		t.Error("unknown schedule accepted")
	}
}

func TestWeightStats(t *testing.T) {
	// Rows: e1, 2·e1 (cos 1 with row 0), e2, -e2 (cos -1 with row 2).
	w := ts.MustOfSlice([]float64{1, 0, 2, 0, 0, 1, 0, -1}).MustView([]int64{4, 2}, true)
	defer w.MustDrop()
	st := WeightStats(w, 0.4)
	if err := golden.Within(st.Norms, []float64{1, 2, 1, 1}, 1e-12); err != nil {
		t.Errorf("norms: %v", err)
	}
	if st.NormMin != 1 || st.NormMax != 2 || math.Abs(st.NormMean-1.25) > 1e-12 {
		t.Errorf("norm min/max/mean = %v/%v/%v, want 1/2/1.25", st.NormMin, st.NormMax, st.NormMean)
	}
	// 12 ordered pairs: (0,1),(1,0) cos 1; (2,3),(3,2) cos -1; the rest 0.
	if math.Abs(st.CosMax-1) > 1e-12 || math.Abs(st.CosMean) > 1e-12 || math.Abs(st.FracAboveTheta-2.0/12) > 1e-12 {
		t.Errorf("cos max/mean/frac = %v/%v/%v, want 1/0/%v", st.CosMax, st.CosMean, st.FracAboveTheta, 2.0/12)
	}
	// Diverged weights: NaN statistics are written as null, not a JSON error.
	nan := ts.MustOfSlice([]float64{math.NaN(), 0, 1, 0}).MustView([]int64{2, 2}, true)
	defer nan.MustDrop()
	b, err := json.Marshal(WeightStats(nan, 0.4))
	if err != nil || !strings.Contains(string(b), `"norms":[null,1]`) || !strings.Contains(string(b), `"cos_max":null`) {
		t.Errorf("stats of NaN weights encode as %s (err %v), want nulls", b, err)
	}
}

func TestNewRegistersProjection(t *testing.T) {
	vs := nn.NewVarStore(gotch.CPU)
	if _, err := New(vs.Root().Sub("lwr"), 8, DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	vars := vs.Variables()
	for _, name := range []string{"lwr.proj.0.weight", "lwr.proj.0.bias", "lwr.proj.2.weight", "lwr.proj.2.bias"} {
		if _, ok := vars[name]; !ok {
			t.Errorf("no variable %s (have %d variables)", name, len(vars))
		}
	}
	if n := len(vs.TrainableVariables()); n != 4 {
		t.Errorf("%d trainable variables, want 4", n)
	}
	if _, err := New(vs.Root(), 8, Config{Theta: 2, Tau: 0.1, Reduction: Sum}); err == nil {
		t.Error("New accepted θ = 2")
	}
}

// TestLossFreesItsTensors: a call leaves behind only the loss it returns
// (gotch's registry of live tensors; Go's collector off, so nothing is
// freed behind the caller's back by a finalizer).
func TestLossFreesItsTensors(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	err := libtorch.OnThread(func() error {
		vs := nn.NewVarStore(gotch.CPU)
		r, err := New(vs.Root().Sub("lwr"), 8, DefaultConfig())
		if err != nil {
			return err
		}
		w := ts.MustRandn([]int64{5, 8}, gotch.Float, gotch.CPU)
		defer w.MustDrop()
		r.Loss(w).MustDrop() // the first call may set up what later calls share
		before := len(ts.ExistingTensors)
		for i := 0; i < 3; i++ {
			r.Loss(w).MustDrop()
		}
		if after := len(ts.ExistingTensors); after != before {
			t.Errorf("3 calls left %d tensors behind, want 0", after-before)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
