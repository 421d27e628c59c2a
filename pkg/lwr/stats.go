package lwr

import (
	"encoding/json"
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/lwr-go/lwr/pkg/libtorch"
)

// Stats describes classifier weights W [C,d]: the per-class row norms
// (which grow with class frequency under plain CE) and the pairwise cosine
// similarities of the rows (which LWR pushes down). Pairs are i ≠ j.
type Stats struct {
	Norms          []float64   `json:"norms"` // ‖w_c‖₂ per class
	NormMin        float64     `json:"norm_min"`
	NormMax        float64     `json:"norm_max"`
	NormMean       float64     `json:"norm_mean"`
	CosMax         float64     `json:"cos_max"`          // largest cos(w_i, w_j)
	CosMean        float64     `json:"cos_mean"`         // mean cos(w_i, w_j)
	FracAboveTheta float64     `json:"frac_above_theta"` // fraction of pairs with cos(w_i, w_j) > θ
	Cos            [][]float64 `json:"-"`                // the C×C cosine matrix, for plots
}

// MarshalJSON writes s with NaN and infinite values as null (JSON has no
// NaN: weights that diverged must not make a log line unwritable).
func (s Stats) MarshalJSON() ([]byte, error) {
	num := func(v float64) *float64 {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil
		}
		return &v
	}
	norms := make([]*float64, len(s.Norms))
	for i, v := range s.Norms {
		norms[i] = num(v)
	}
	return json.Marshal(struct {
		Norms          []*float64 `json:"norms"`
		NormMin        *float64   `json:"norm_min"`
		NormMax        *float64   `json:"norm_max"`
		NormMean       *float64   `json:"norm_mean"`
		CosMax         *float64   `json:"cos_max"`
		CosMean        *float64   `json:"cos_mean"`
		FracAboveTheta *float64   `json:"frac_above_theta"`
	}{norms, num(s.NormMin), num(s.NormMax), num(s.NormMean), num(s.CosMax), num(s.CosMean), num(s.FracAboveTheta)})
}

// WeightStats computes Stats of w [C,d] (C ≥ 2) without recording
// gradients. It costs one C×C product and copies C² numbers to the host
// (a device sync): cheap enough for every epoch.
func WeightStats(w *ts.Tensor, theta float64) Stats {
	var st Stats
	libtorch.NoGrad(func() {
		var s libtorch.Scope
		defer s.Free()
		wd := s.Keep(w.MustDetach(false).MustTotype(gotch.Double, true))
		norms := s.Keep(wd.MustNormScalaroptDim(ts.FloatScalar(2), []int64{1}, false, false))
		z := s.Keep(normalizeRows(&s, wd))
		cos := s.Keep(libtorch.MatMulT(z, z, nil).MustTo(gotch.CPU, true))
		st.Norms = norms.MustTo(gotch.CPU, false).Float64Values(true) // host sync
		c := len(st.Norms)
		vals := cos.Float64Values()
		st.Cos = make([][]float64, c)
		for i := range st.Cos {
			st.Cos[i] = vals[i*c : (i+1)*c]
		}
		st.NormMin, st.NormMax = math.Inf(1), math.Inf(-1)
		for _, n := range st.Norms {
			st.NormMin = math.Min(st.NormMin, n)
			st.NormMax = math.Max(st.NormMax, n)
			st.NormMean += n / float64(c)
		}
		st.CosMax = math.Inf(-1)
		var above, pairs int
		for i := 0; i < c; i++ {
			for j := 0; j < c; j++ {
				if i == j {
					continue
				}
				v := vals[i*c+j]
				st.CosMax = math.Max(st.CosMax, v)
				st.CosMean += v
				pairs++
				if v > theta {
					above++
				}
			}
		}
		if pairs > 0 {
			st.CosMean /= float64(pairs)
			st.FracAboveTheta = float64(above) / float64(pairs)
		}
	})
	return st
}
