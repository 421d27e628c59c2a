package libtorch

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// product is a·bᵀ + bias and the gradients of Σ y⊙g, in dtype.
type product struct{ y, da, db, dbias []float64 }

func multiply(t *testing.T, a, b, bias, g *ts.Tensor, dtype gotch.DType) product {
	t.Helper()
	var p product
	err := Catch(func() {
		var s Scope
		defer s.Free()
		leaf := func(x *ts.Tensor) *ts.Tensor {
			if x == nil {
				return nil
			}
			return s.Keep(x.MustDetach(false).MustTotype(dtype, true).MustSetRequiresGrad(true, true))
		}
		a, b, bias := leaf(a), leaf(b), leaf(bias)
		before := len(ts.ExistingTensors)
		y := MatMulT(a, b, bias)
		if n := len(ts.ExistingTensors) - before; n != 1 {
			t.Errorf("MatMulT left %d tensors, want 1 (its result)", n)
		}
		s.Keep(y)
		s.Keep(s.Keep(y.MustMul(s.Keep(g.MustTotype(dtype, false)), false)).MustSum(dtype, false)).MustBackward()
		values := func(x *ts.Tensor) []float64 {
			return s.Keep(x.MustDetach(false).MustTotype(gotch.Double, true)).Float64Values()
		}
		p.y, p.da, p.db = values(y), values(s.Keep(a.MustGrad(false))), values(s.Keep(b.MustGrad(false)))
		if bias != nil {
			p.dbias = values(s.Keep(bias.MustGrad(false)))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestMatMulT checks a·bᵀ + bias and its three gradients in float32 (the
// convolution route on a CPU without MKL, for the products of at least
// convolutionMACs) against float64 (libtorch's linear) on the same numbers.
func TestMatMulT(t *testing.T) {
	// No collection: Go's finalizers would free other tensors while MatMulT's are counted.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	ManualSeed(0)
	for _, c := range []struct {
		n, k, m int64
		bias    bool
	}{
		{1, 3, 2, false},
		{7, 64, 10, true},     // a CIFAR-10 classifier on a small batch
		{100, 64, 100, false}, // LWR's similarity of 100 classes
		{40, 300, 17, true},
		{16, 512, 512, true},   // LWR's projection MLP, 16 classes
		{256, 512, 256, false}, // 2²⁵ multiply-adds: the convolution route
		{128, 256, 600, true},
	} {
		t.Run(fmt.Sprintf("%dx%d·(%dx%d)ᵀ", c.n, c.k, c.m, c.k), func(t *testing.T) {
			a := ts.MustRandn([]int64{c.n, c.k}, gotch.Float, gotch.CPU)
			defer a.MustDrop()
			b := ts.MustRandn([]int64{c.m, c.k}, gotch.Float, gotch.CPU)
			defer b.MustDrop()
			g := ts.MustRandn([]int64{c.n, c.m}, gotch.Float, gotch.CPU)
			defer g.MustDrop()
			var bias *ts.Tensor
			if c.bias {
				bias = ts.MustRandn([]int64{c.m}, gotch.Float, gotch.CPU)
				defer bias.MustDrop()
			}
			got, want := multiply(t, a, b, bias, g, gotch.Float), multiply(t, a, b, bias, g, gotch.Double)
			// float32 sums of k products of N(0,1) numbers: errors grow as √k.
			tol := 1e-6 * math.Sqrt(float64(max(c.k, c.n))) * 8
			for _, v := range []struct {
				name      string
				got, want []float64
				scale     float64
			}{
				{"a·bᵀ + bias", got.y, want.y, math.Sqrt(float64(c.k))},
				{"d/da", got.da, want.da, math.Sqrt(float64(c.m))},
				{"d/db", got.db, want.db, math.Sqrt(float64(c.n))},
				{"d/dbias", got.dbias, want.dbias, math.Sqrt(float64(c.n))},
			} {
				if len(v.got) != len(v.want) {
					t.Fatalf("%s: %d values, want %d", v.name, len(v.got), len(v.want))
				}
				for i := range v.got {
					if d := math.Abs(v.got[i] - v.want[i]); d > tol*v.scale {
						t.Errorf("%s[%d] = %g, want %g (off by %.2g, tolerance %.2g)", v.name, i, v.got[i], v.want[i], d, tol*v.scale)
						break
					}
				}
			}
		})
	}
}

func TestMatMulTRoute(t *testing.T) {
	for _, c := range []struct {
		dtype   gotch.DType
		n, k, m int64
		want    bool // on a CPU without MKL
	}{
		{gotch.Float, 256, 256, 256, true},      // 2²⁴ multiply-adds
		{gotch.Float, 255, 256, 256, false},     // one row short
		{gotch.Float, 128, 64, 10, false},       // ResNet-32's classifier
		{gotch.Float, 1000, 2048, 2048, true},   // LWR's MLP at ImageNet-LT's size
		{gotch.Double, 1000, 2048, 2048, false}, // oneDNN has no float64 convolutions
	} {
		a := ts.MustZeros([]int64{c.n, c.k}, c.dtype, gotch.CPU)
		b := ts.MustZeros([]int64{c.m, c.k}, c.dtype, gotch.CPU)
		want := c.want && !HasMKL()
		if got := asConvolution(a, b); got != want {
			t.Errorf("%v %dx%d·(%dx%d)ᵀ on the CPU, MKL %v: convolution route %v, want %v", c.dtype, c.n, c.k, c.m, c.k, HasMKL(), got, want)
		}
		a.MustDrop()
		b.MustDrop()
	}
}

// matmulChild, when set, makes TestMatMulTChild multiply once;
// TestMatMulTRunsOneDNN runs it with oneDNN's log on.
const matmulChild = "LWR_MATMUL_TEST_CHILD"

func TestMatMulTChild(t *testing.T) {
	if os.Getenv(matmulChild) == "" {
		t.Skip("run by TestMatMulTRunsOneDNN")
	}
	err := OnThread(func() error {
		SetNumThreads(2)
		return Catch(func() {
			a := ts.MustOnes([]int64{256, 512}, gotch.Float, gotch.CPU)
			b := ts.MustOnes([]int64{256, 512}, gotch.Float, gotch.CPU)
			fmt.Println("sum", MatMulT(a, b, nil).MustSum(gotch.Double, true).Float64Values()[0])
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestMatMulTRunsOneDNN checks, in oneDNN's own log, that a float32
// product on a CPU without MKL runs as oneDNN's convolution (not the BLAS
// that libtorch's linear would call).
func TestMatMulTRunsOneDNN(t *testing.T) {
	if HasMKL() {
		t.Skip("libtorch has MKL: products stay matrix products")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestMatMulTChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), matmulChild+"=1", "DNNL_VERBOSE=1", "ONEDNN_VERBOSE=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(string(out), "sum 3.3554432e+07") {
		t.Errorf("256×512 ones · (256×512 ones)ᵀ: want sum 3.3554432e+07 (256·256·512) in\n%s", out)
	}
	found := false
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, ",exec,") && strings.Contains(line, "convolution") && strings.Contains(line, "mb256_ic512oc256") {
			found = true
		}
	}
	if !found {
		t.Errorf("no oneDNN convolution mb256_ic512oc256 in the child's log:\n%s", out)
	}
}
