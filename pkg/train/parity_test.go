package train

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/lwr-go/lwr/pkg/libtorch"
	"github.com/lwr-go/lwr/pkg/losses"
	"github.com/lwr-go/lwr/pkg/lwr"
	"github.com/lwr-go/lwr/pkg/optim"
	"github.com/lwr-go/lwr/pkg/resnet"
)

// parityFile is testdata/parity.json, written by testdata/gen_parity.py
// with PyTorch.
type parityFile struct {
	Batch, Classes, Side int
	LRs                  []float64 // per step
	Momentum, Lambda     float64
	WeightDecay          float64 `json:"weight_decay"`
	Counts               []int64
	Cases                []struct {
		Loss  string
		LWR   bool
		Steps []struct {
			LossBal float64  `json:"loss_bal"`
			LWR     *float64 `json:"lwr"`
		}
		Sums, Norms map[string]float64
	}
}

// parityInit is gen_parity.py's init_value: the values of parameter
// number index (in name order), row-major.
func parityInit(index int, name string, shape []int64) []float32 {
	n := int64(1)
	for _, s := range shape {
		n *= s
	}
	out := make([]float32, n)
	for k := range out {
		wave := math.Sin(0.37*float64(k) + 1.3*float64(index) + 0.5)
		var v float64
		switch {
		case len(shape) >= 2:
			v = math.Sqrt(2/float64(n/shape[0])) * math.Sqrt2 * wave
		case strings.Contains("."+name, ".bn") && strings.HasSuffix(name, "weight"):
			v = 1 + 0.1*wave
		default:
			v = 0.1 * wave
		}
		out[k] = float32(v)
	}
	return out
}

// parityBatch is gen_parity.py's batch.
func parityBatch(p parityFile) (x, y *ts.Tensor) {
	side := p.Side * p.Side
	xs := make([]float32, p.Batch*side)
	ys := make([]int64, p.Batch)
	for b := 0; b < p.Batch; b++ {
		for k := 0; k < side; k++ {
			xs[b*side+k] = float32(1.5 * math.Sin(0.013*float64(k)*float64(b+1)+float64(b)))
		}
		ys[b] = int64(b % p.Classes)
	}
	x = ts.MustOfSlice(xs).MustView([]int64{int64(p.Batch), 1, int64(p.Side), int64(p.Side)}, true)
	return x, ts.MustOfSlice(ys)
}

// TestTrainStepParity runs the training step (ResNet-32 forward, Balanced
// Softmax or CE, LWR, backward, SGD with momentum and weight decay) from
// the weights and batch gen_parity.py gave PyTorch, through five steps
// with a learning-rate decay after the third, and compares each
// step's losses and then every parameter and batch-norm statistic.
func TestTrainStepParity(t *testing.T) {
	b, err := os.ReadFile("testdata/parity.json")
	if err != nil {
		t.Fatal(err)
	}
	var p parityFile
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	libtorch.SetNumThreads(1)
	for _, k := range p.Cases {
		name := k.Loss
		if k.LWR {
			name += "+lwr"
		}
		t.Run(name, func(t *testing.T) {
			err := libtorch.OnThread(func() error {
				vs := nn.NewVarStore(gotch.CPU)
				net, err := resnet.ResNet32(vs.Root(), resnet.Options{Classes: int64(p.Classes), InChannels: 1})
				if err != nil {
					return err
				}
				var reg *lwr.Regularizer
				if k.LWR {
					if reg, err = lwr.New(vs.Root().Sub("lwr"), 64, lwr.DefaultConfig()); err != nil {
						return err
					}
				}
				names, params := trainableParams(vs)
				libtorch.NoGrad(func() {
					for i, name := range names {
						v := ts.MustOfSlice(parityInit(i, name, params[i].MustSize())).MustView(params[i].MustSize(), true)
						params[i].Copy_(v)
						v.MustDrop()
					}
				})
				loss, err := losses.New(losses.DefaultConfig(k.Loss, 1), p.Counts)
				if err != nil {
					return err
				}
				opt, err := optim.NewSGD(params, p.LRs[0], p.Momentum, p.WeightDecay, false)
				if err != nil {
					return err
				}
				x, y := parityBatch(p)
				for i, want := range k.Steps {
					opt.LR = p.LRs[i]
					lb, r := trainStep(net, loss, reg, opt, x, y, p.Lambda)
					closeTo(t, fmt.Sprintf("step %d loss", i+1), lb.Float64Values(true)[0], want.LossBal, 1e-5)
					if want.LWR != nil {
						closeTo(t, fmt.Sprintf("step %d R", i+1), r.Float64Values(true)[0], *want.LWR, 1e-5)
					}
				}
				vars := vs.Variables()
				keys := make([]string, 0, len(k.Sums))
				for name := range k.Sums {
					keys = append(keys, name)
				}
				sort.Strings(keys)
				for _, name := range keys {
					v, ok := vars[name]
					if !ok {
						t.Errorf("%s: no such variable here", name)
						continue
					}
					d := v.MustTotype(gotch.Double, false)
					sum := d.MustSum(gotch.Double, false)
					norm := d.MustNorm(true)
					// A sum can cancel to near zero: compare it on the scale of the norm.
					closeTo(t, name+" sum", sum.Float64Values(true)[0], k.Sums[name], 2e-5*math.Max(1, k.Norms[name])/math.Max(1e-9, math.Abs(k.Sums[name])))
					closeTo(t, name+" norm", norm.Float64Values(true)[0], k.Norms[name], 2e-5)
				}
				if len(keys) != len(vars) {
					t.Errorf("%d variables here, %d in the reference", len(vars), len(keys))
				}
				// vars holds copies: the store must outlive them, or the
				// finalizers of its tensors free what they point to.
				runtime.KeepAlive(vs)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// closeTo reports got ≠ want beyond relative tolerance rel.
func closeTo(t *testing.T, what string, got, want, rel float64) {
	t.Helper()
	if d := math.Abs(got - want); d > rel*math.Abs(want) || math.IsNaN(got) {
		t.Errorf("%s = %.8g, PyTorch %.8g (relative difference %.2g)", what, got, want, d/math.Abs(want))
	}
}
