package losses

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/lwr-go/lwr/internal/golden"
)

// vectors is the part of testdata/losses.json these tests read.
type vectors struct {
	Cases []struct {
		Name      string      `json:"name"`
		C         int         `json:"C"`
		Counts    []int64     `json:"counts"`
		Targets   []int64     `json:"targets"`
		Logits    [][]float64 `json:"logits"`
		CosLogits [][]float64 `json:"cos_logits"`
		Features  [][]float64 `json:"features"`
		Variants  []struct {
			Name           string             `json:"name"`
			Input          string             `json:"input"`
			Params         map[string]float64 `json:"params"`
			Loss           float64            `json:"loss"`
			GradLogits     [][]float64        `json:"grad_logits"`
			GradFeaturesL1 []float64          `json:"grad_features_l1"`
		} `json:"variants"`
	} `json:"classification_cases"`
}

func loadVectors(t *testing.T) vectors {
	t.Helper()
	b, err := os.ReadFile(golden.File())
	if err != nil {
		t.Fatal(err)
	}
	var g vectors
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

// variantLoss maps each golden variant to the loss New builds for it and
// the epoch at which it is evaluated (past the DRW and IB switches).
var variantLoss = map[string]struct {
	name  string
	epoch int
}{
	"ce":                    {"ce", 0},
	"logit_adjustment_tau1": {"logit-adjustment", 0},
	"balanced_softmax":      {"balanced-softmax", 0},
	"cb_ce_beta0.9999":      {"cb-ce", 0},
	"cb_ce_beta0.999":       {"cb-ce", 0},
	"ce_drw":                {"ce-drw", 160},
	"ldam":                  {"ldam", 0},
	"ldam_drw":              {"ldam-drw", 160},
	"ldam_cos":              {"ldam", 0},
	"ldam_drw_cos":          {"ldam-drw", 160},
	"focal_g1":              {"focal", 0},
	"focal_g2":              {"focal", 0},
	"focal_drw_g1":          {"focal-drw", 160},
	"ib":                    {"ib", 160},
	"ib_focal_g1":           {"ib-focal", 160},
}

func flatten(m [][]float64) ([]float64, []int64) {
	var out []float64
	for _, r := range m {
		out = append(out, r...)
	}
	return out, []int64{int64(len(m)), int64(len(m[0]))}
}

func leaf(vals []float64, shape []int64, dtype gotch.DType) *ts.Tensor {
	x := ts.MustOfSlice(vals).MustView(shape, true).MustTotype(dtype, true)
	return x.MustSetRequiresGrad(true, true)
}

func TestGoldenVectors(t *testing.T) {
	g := loadVectors(t)
	dtypes := []struct {
		dtype gotch.DType
		rtol  float64
	}{{gotch.Double, 1e-5}, {gotch.Float, 1e-4}}
	checked := 0
	for _, c := range g.Cases {
		for _, v := range c.Variants {
			spec, ok := variantLoss[v.Name]
			if !ok {
				t.Errorf("%s/%s: no loss maps to this golden variant", c.Name, v.Name)
				continue
			}
			for _, dt := range dtypes {
				t.Run(fmt.Sprintf("%s/%s/%v", c.Name, v.Name, dt.dtype), func(t *testing.T) {
					cfg := DefaultConfig(spec.name, 200)
					if tau, ok := v.Params["tau"]; ok {
						cfg.Tau = tau
					}
					if beta, ok := v.Params["beta"]; ok {
						cfg.Beta = beta
					}
					if gamma, ok := v.Params["gamma"]; ok {
						cfg.Gamma = gamma
					}
					if m, ok := v.Params["max_m"]; ok {
						cfg.MaxMargin, cfg.Scale = m, v.Params["s"]
					}
					if a, ok := v.Params["alpha"]; ok {
						cfg.IBAlpha, cfg.IBEpsilon = a, v.Params["epsilon"]
					}
					loss, err := New(cfg, c.Counts)
					if err != nil {
						t.Fatal(err)
					}
					if e, ok := loss.(EpochSetter); ok {
						e.SetEpoch(spec.epoch)
					}
					input := c.Logits
					if v.Input == "cos_logits" {
						input = c.CosLogits
					}
					vals, shape := flatten(input)
					x := leaf(vals, shape, dt.dtype)
					defer x.MustDrop()
					y := ts.MustOfSlice(c.Targets)
					defer y.MustDrop()
					var out, f *ts.Tensor
					if fl, ok := loss.(FeatureLoss); ok {
						fv, fshape := flatten(c.Features)
						f = leaf(fv, fshape, dt.dtype)
						defer f.MustDrop()
						out = fl.LossWithFeatures(x, y, f)
					} else {
						out = loss.Loss(x, y)
					}
					defer out.MustDrop()
					if err := golden.Within([]float64{out.Float64Values()[0]}, []float64{v.Loss}, dt.rtol); err != nil {
						t.Errorf("loss: %v", err)
					}
					out.MustBackward()
					grad := x.MustGrad(false)
					defer grad.MustDrop()
					want, _ := flatten(v.GradLogits)
					if err := golden.Within(grad.MustTotype(gotch.Double, false).Float64Values(true), want, dt.rtol); err != nil {
						t.Errorf("grad logits: %v", err)
					}
					if f != nil {
						// d loss/d f[i][k] = d loss/d h_i · sign(f[i][k])
						fg := f.MustGrad(false)
						defer fg.MustDrop()
						got := fg.MustTotype(gotch.Double, false).Float64Values(true)
						var want []float64
						for i, row := range c.Features {
							for _, fik := range row {
								want = append(want, v.GradFeaturesL1[i]*math.Copysign(1, fik))
							}
						}
						if err := golden.Within(got, want, dt.rtol); err != nil {
							t.Errorf("grad features: %v", err)
						}
					}
				})
				checked++
			}
		}
	}
	if checked < 70 {
		t.Errorf("checked %d variant×dtype pairs; the vectors hold more", checked)
	}
}
